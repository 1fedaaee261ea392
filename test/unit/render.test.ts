// renderHost and its pieces: quoting, config, credentials, crontab, hash, and the rendered shell
// passing shellcheck for every example config. Pure TypeScript plus real bash and shellcheck.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig, type RawConfig } from "../../infra/config";
import fc from "fast-check";
import { buildPlan, heldPoints, isoWeekStart, itemPath, objectKeys, TIERS, tierFor, utcStamp, type BackupKind, type Plan } from "../../infra/plan";
import {
  CRON_BEGIN, CRON_END, cronJobs, loadTemplates, placeholderSecrets, renderConfig, renderCredentials, renderHost,
  renderTemplate, STATE_DIR, templateSpec, type HostSecrets, type Template,
} from "../../infra/plan/render";
import { cronEscape, shArray, shAssign, shq } from "../../infra/plan/shell";
import { requireTools } from "../support/tools";

const AGE1 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const AGE2 = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

const TRICKY = [
  "",
  "plain",
  "with space",
  "it's",
  "''",
  `"double" and \\backslash\\`,
  "$HOME $(id) `id` ${x:-y}",
  "new\nline",
  "tab\there",
  "glob * ? [a]",
  "semi; rm -rf / & | > <",
  "ünïcödé 日本語 🎉",
  "trailing\\",
  "!bang !! history",
  "%percent%",
  "-n",
];

function bashPrint(script: string): string {
  return execFileSync("bash", ["-c", script], { encoding: "utf8" });
}

describe("shq", () => {
  it("round-trips every value through bash unchanged", () => {
    for (const v of TRICKY) {
      expect(bashPrint(`x=${shq(v)}; printf '%s' "$x"`)).toBe(v);
      // Also as a command argument.
      expect(bashPrint(`printf '%s' ${shq(v)}`)).toBe(v);
    }
  });
  it("quotes everything, including harmless words", () => {
    expect(shq("abc")).toBe("'abc'");
    expect(shq("")).toBe("''");
    expect(shq("it's")).toBe(`'it'\\''s'`);
  });
  it("rejects NUL", () => {
    expect(() => shq("a\0b")).toThrow(/NUL/);
  });
  it("arrays and assignments keep every element", () => {
    const out = bashPrint(`${shAssign("A", TRICKY)}; printf '%s\\0' "\${#A[@]}" "\${A[@]}"`);
    expect(out.split("\0").slice(0, -1)).toEqual([String(TRICKY.length), ...TRICKY]);
    expect(shArray([])).toBe("()");
    expect(shAssign("N", 3)).toBe("N='3'");
    expect(() => shAssign("BAD-NAME", "x")).toThrow(/variable name/);
  });
  it("cronEscape escapes % and refuses newlines", () => {
    expect(cronEscape("date +%Y%m%d")).toBe("date +\\%Y\\%m\\%d");
    expect(() => cronEscape("a\nb")).toThrow(/lines/);
  });
});

// ------------------------------------------------------------------------------------------------
// Example configs: every access mode, volumes only, encryption, several hosts, odd paths.

const base = {
  storage: { provider: "b2", bucket: "acme-prod-backups", region: "us-west-002" },
  objectives: { rpo: "24h", rto: "1h" },
} as const;

const EXAMPLES: Record<string, RawConfig> = {
  "compose + volume (the seed)": {
    ...base,
    notify: { pingUrl: "https://hc-ping.com/7e1c5b0a-4a43-4f0e-9d0e-2b7f3c1a9e55" },
    hosts: [
      {
        name: "web-1",
        ssh: { host: "203.0.113.10" },
        postgres: [{ via: "compose", project: "/srv/app", service: "db", user: "app", database: "app" }],
        volumes: ["uploads"],
        drill: { checks: ["SELECT count(*) > 0 FROM users", "SELECT 'it''s' <> ''"] },
      },
    ],
  },
  "container + local, encrypted, custom paths and level": {
    storage: { provider: "aws", bucket: "acme-backups", region: "eu-central-1" },
    objectives: { rpo: "12h", rto: "2h" },
    retention: { daily: 14, weekly: 8, monthly: 24 },
    hosts: [
      {
        name: "db-2",
        ssh: { host: "198.51.100.7", user: "backup", port: 2222 },
        postgres: [
          { via: "container", container: "pg_main", database: "shop", user: "shop_owner" },
          { via: "local", host: "/var/run/postgresql", port: 5433, database: "analytics" },
        ],
        schedule: { backup: "15 */6 * * *", drill: "0 4 * * 0" },
        drill: { runtime: "local" },
        encryption: { ageRecipients: [AGE1, AGE2] },
        paths: { scriptsDir: "/usr/local/lib/restorable", configDir: "/etc/restorable-db2" },
        zstdLevel: 6,
      },
    ],
  },
  "volumes only, S3-compatible store": {
    storage: { provider: "s3", bucket: "minio-backups", endpoint: "https://s3.example.net" },
    objectives: { rpo: "24h", rto: "4h" },
    hosts: [{ name: "files", ssh: { host: "192.0.2.20" }, volumes: ["nextcloud_data", "caddy.config"], volumeImage: "alpine:3.20" }],
  },
  "two hosts": {
    ...base,
    hosts: [
      { name: "a", ssh: { host: "192.0.2.1" }, postgres: [{ via: "local", database: "one" }, { via: "local", database: "two", port: 5434 }] },
      { name: "b", ssh: { host: "192.0.2.2" }, postgres: [{ via: "compose", project: "/opt/stack", service: "postgres", database: "b" }], volumes: ["v1"], schedule: { backup: "0 2 * * *", volumes: "30 2 * * *" } },
    ],
  },
};

function planOf(raw: RawConfig): Plan {
  return buildPlan(parseConfig(raw));
}

const SECRET_MARK = "S3CR3T";
function realishSecrets(plan: Plan, hostIndex: number): HostSecrets {
  const h = plan.hosts[hostIndex]!;
  return {
    accessKeyId: `AKID${SECRET_MARK}${h.name}`,
    secretAccessKey: `sk/${SECRET_MARK}+'quote"$(x)`,
    pgPasswords: Object.fromEntries(h.config.postgres.map((p, i) => [p.database, i % 2 === 0 ? `pw ${SECRET_MARK} '${i}'` : ""])),
  };
}

/** Source a rendered conf (+ credentials) in bash and read variables back. */
function sourceAndRead(files: { path: string; content: string }[], names: string[]): Record<string, string[]> {
  const dir = mkdtempSync(join(tmpdir(), "rrt-"));
  try {
    const paths = files.map((f, i) => {
      const p = join(dir, `f${i}`);
      writeFileSync(p, f.content);
      return p;
    });
    // No `set -u`: bash 5.2 calls ${#X[@]} of a scalar X unbound under it.
    const script = [
      "set -eo pipefail",
      ...paths.map((p) => `. ${shq(p)}`),
      ...names.map((n) => `printf '%s\\0' ${shq(n)} "\${#${n}[@]}" "\${${n}[@]}"`),
    ].join("\n");
    const out = execFileSync("bash", ["-c", script], { encoding: "utf8" }).split("\0");
    const res: Record<string, string[]> = {};
    let i = 0;
    while (i < out.length - 1) {
      const name = out[i]!;
      const n = Number(out[i + 1]);
      res[name] = out.slice(i + 2, i + 2 + n);
      i += 2 + n;
    }
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("renderHost", () => {
  const templates = loadTemplates();

  it("finds the templates in scripts/ data-driven: libraries 0644, commands 0755 without .sh", () => {
    expect(templateSpec("lib.sh")).toEqual({ install: "lib.sh", mode: 0o644 });
    expect(templateSpec("lib-restore.sh")).toEqual({ install: "lib-restore.sh", mode: 0o644 });
    expect(templateSpec("backup.sh")).toEqual({ install: "backup", mode: 0o755 });
    expect(templateSpec("restore-drill.sh")).toEqual({ install: "restore-drill", mode: 0o755 });
    expect(templateSpec("README.md")).toBeUndefined();
    expect(templateSpec("Backup.sh")).toBeUndefined();
    const names = templates.map((t) => t.install);
    expect(names).toEqual(expect.arrayContaining(["lib.sh", "backup", "backup-volumes"]));
    expect(names[0]).toBe("lib.sh");
  });

  for (const [name, raw] of Object.entries(EXAMPLES)) {
    describe(name, () => {
      const plan = planOf(raw);
      plan.hosts.forEach((host, hi) => {
        const secrets = realishSecrets(plan, hi);
        const r = renderHost(plan, host, secrets, { templates });
        const { scriptsDir, configDir } = host.config.paths;

        it(`${host.name}: installs every template, the conf and the 0600 credentials file`, () => {
          const byPath = new Map(r.files.map((f) => [f.path, f]));
          for (const t of templates) {
            const f = byPath.get(`${scriptsDir}/${t.install}`);
            expect(f, t.install).toBeDefined();
            expect(f!.mode).toBe(t.mode);
            expect(f!.secret).toBe(false);
          }
          expect(byPath.get(`${configDir}/restorable.conf`)).toMatchObject({ mode: 0o644, secret: false });
          expect(byPath.get(`${configDir}/credentials`)).toMatchObject({ mode: 0o600, secret: true });
          expect(r.files.filter((f) => f.secret)).toHaveLength(1);
          expect(new Set(r.files.map((f) => f.path)).size).toBe(r.files.length);
          for (const f of r.files) expect(f.path.startsWith("/")).toBe(true);
        });

        it(`${host.name}: secrets live only in the credentials file`, () => {
          for (const f of r.files.filter((x) => !x.secret)) expect(f.content, f.path).not.toContain(SECRET_MARK);
          expect(r.crontab).not.toContain(SECRET_MARK);
          expect(r.files.find((f) => f.secret)!.content).toContain(SECRET_MARK);
        });

        it(`${host.name}: scripts find their config at the rendered path; no placeholder is left`, () => {
          const lib = r.files.find((f) => f.path === `${scriptsDir}/lib.sh`)!;
          expect(lib.content).toContain(`RESTORABLE_DEFAULT_CONFIG=${shq(`${configDir}/restorable.conf`)}`);
          for (const f of r.files) expect(f.content, f.path).not.toMatch(/@@[A-Za-z0-9_]*@@/);
        });

        it(`${host.name}: restorable.conf and credentials read back in bash as configured`, () => {
          const c = host.config;
          const conf = r.files.find((f) => f.path.endsWith("/restorable.conf"))!;
          const cred = r.files.find((f) => f.secret)!;
          const v = sourceAndRead([conf, cred], [
            "RESTORABLE_HOST", "RESTORABLE_BUCKET", "RESTORABLE_ENDPOINT", "RESTORABLE_REGION", "RESTORABLE_PREFIX",
            "RESTORABLE_PING_URL", "RESTORABLE_ZSTD_LEVEL", "RESTORABLE_AGE_RECIPIENTS", "RESTORABLE_RPO_SECONDS",
            "RESTORABLE_RTO_SECONDS", "RESTORABLE_CREDENTIALS", "RESTORABLE_STATE_DIR", "RESTORABLE_PG_DATABASE",
            "RESTORABLE_PG_VIA", "RESTORABLE_PG_USER", "RESTORABLE_PG_PROJECT", "RESTORABLE_PG_SERVICE",
            "RESTORABLE_PG_CONTAINER", "RESTORABLE_PG_HOST", "RESTORABLE_PG_PORT", "RESTORABLE_VOLUMES",
            "RESTORABLE_VOLUME_IMAGE", "RESTORABLE_DRILL_RUNTIME", "RESTORABLE_DRILL_IMAGE", "RESTORABLE_DRILL_CHECKS",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTORABLE_PG_PASSWORD",
          ]);
          expect(v.RESTORABLE_HOST).toEqual([host.name]);
          expect(v.RESTORABLE_BUCKET).toEqual([plan.bucket]);
          expect(v.RESTORABLE_ENDPOINT).toEqual([plan.endpoint]);
          expect(v.RESTORABLE_REGION).toEqual([plan.region]);
          expect(v.RESTORABLE_PREFIX).toEqual([`${host.name}/`]);
          expect(v.RESTORABLE_PING_URL).toEqual([plan.config.notify.pingUrl ?? ""]);
          expect(v.RESTORABLE_ZSTD_LEVEL).toEqual([String(c.zstdLevel)]);
          expect(v.RESTORABLE_AGE_RECIPIENTS).toEqual(c.encryption?.ageRecipients ?? []);
          expect(v.RESTORABLE_RPO_SECONDS).toEqual([String(plan.config.objectives.rpo)]);
          expect(v.RESTORABLE_RTO_SECONDS).toEqual([String(plan.config.objectives.rto)]);
          expect(v.RESTORABLE_CREDENTIALS).toEqual([`${configDir}/credentials`]);
          expect(v.RESTORABLE_STATE_DIR).toEqual([STATE_DIR]);
          expect(v.RESTORABLE_PG_DATABASE).toEqual(c.postgres.map((p) => p.database));
          expect(v.RESTORABLE_PG_VIA).toEqual(c.postgres.map((p) => p.via));
          expect(v.RESTORABLE_PG_USER).toEqual(c.postgres.map((p) => p.user));
          expect(v.RESTORABLE_PG_PROJECT).toEqual(c.postgres.map((p) => (p.via === "compose" ? p.project : "")));
          expect(v.RESTORABLE_PG_SERVICE).toEqual(c.postgres.map((p) => (p.via === "compose" ? p.service : "")));
          expect(v.RESTORABLE_PG_CONTAINER).toEqual(c.postgres.map((p) => (p.via === "container" ? p.container : "")));
          expect(v.RESTORABLE_PG_HOST).toEqual(c.postgres.map((p) => (p.via === "local" ? p.host : "")));
          expect(v.RESTORABLE_PG_PORT).toEqual(c.postgres.map((p) => (p.via === "local" ? String(p.port) : "")));
          expect(v.RESTORABLE_VOLUMES).toEqual(c.volumes);
          expect(v.RESTORABLE_VOLUME_IMAGE).toEqual([c.volumeImage]);
          expect(v.RESTORABLE_DRILL_RUNTIME).toEqual([c.drill.runtime]);
          expect(v.RESTORABLE_DRILL_IMAGE).toEqual([c.drill.image]);
          expect(v.RESTORABLE_DRILL_CHECKS).toEqual(c.drill.checks);
          expect(v.AWS_ACCESS_KEY_ID).toEqual([secrets.accessKeyId]);
          expect(v.AWS_SECRET_ACCESS_KEY).toEqual([secrets.secretAccessKey]);
          expect(v.RESTORABLE_PG_PASSWORD).toEqual(c.postgres.map((p) => secrets.pgPasswords[p.database] ?? ""));
        });

        it(`${host.name}: the crontab block runs backup, volumes only with volumes, the drill only with databases`, () => {
          const lines = r.crontab.trimEnd().split("\n");
          expect(lines[0]).toBe(CRON_BEGIN);
          expect(lines[lines.length - 1]).toBe(CRON_END);
          const jobs = lines.slice(1, -1);
          const scripts = jobs.map((l) => /\/([a-z-]+)' >>/.exec(l)?.[1]);
          const c = host.config;
          const expected = ["backup", ...(c.volumes.length ? ["backup-volumes"] : []), ...(c.postgres.length && templates.some((t) => t.install === "restore-drill") ? ["restore-drill"] : [])];
          expect(scripts).toEqual(expected);
          const schedules: Record<string, string> = { backup: c.schedule.backup, "backup-volumes": c.schedule.volumes ?? c.schedule.backup, "restore-drill": c.schedule.drill };
          jobs.forEach((l, i) => {
            const script = expected[i]!;
            expect(l.startsWith(`${schedules[script]} `)).toBe(true);
            expect(l).toContain(`${shq(`${scriptsDir}/${script}`)} >>${shq(`${STATE_DIR}/${script}.log`)} 2>&1`);
            expect(l).not.toMatch(/(^|[^\\])%/);
          });
          expect(cronJobs(host, templates.map((t) => t.install)).map((j) => j.script)).toEqual(expected);
        });
      });
    });
  }

  it("the hash changes with content, paths and modes, and not with secret values", () => {
    const plan = planOf(EXAMPLES["compose + volume (the seed)"]!);
    const h = plan.hosts[0]!;
    const a = renderHost(plan, h, realishSecrets(plan, 0), { templates });
    const again = renderHost(plan, h, realishSecrets(plan, 0), { templates });
    expect(again.hash).toBe(a.hash);
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    const otherSecrets = renderHost(plan, h, { accessKeyId: "x", secretAccessKey: "y", pgPasswords: {} }, { templates });
    expect(otherSecrets.hash).toBe(a.hash);
    const changedTemplate: Template[] = templates.map((t) => (t.install === "backup" ? { ...t, content: `${t.content}\n# changed\n` } : t));
    expect(renderHost(plan, h, realishSecrets(plan, 0), { templates: changedTemplate }).hash).not.toBe(a.hash);
    const changedMode: Template[] = templates.map((t) => (t.install === "lib.sh" ? { ...t, mode: 0o755 } : t));
    expect(renderHost(plan, h, realishSecrets(plan, 0), { templates: changedMode }).hash).not.toBe(a.hash);
    const plan2 = planOf({ ...EXAMPLES["compose + volume (the seed)"]!, retention: { daily: 8 } });
    const b = renderHost(plan2, plan2.hosts[0]!, realishSecrets(plan2, 0), { templates });
    expect(b.hash).not.toBe(a.hash); // the drill audits the retention promise: its counts are in the host config
    const raw3 = structuredClone(EXAMPLES["compose + volume (the seed)"]!);
    raw3.hosts[0]!.zstdLevel = 5;
    const plan3 = planOf(raw3);
    expect(renderHost(plan3, plan3.hosts[0]!, realishSecrets(plan3, 0), { templates }).hash).not.toBe(a.hash);
    const raw4 = structuredClone(EXAMPLES["compose + volume (the seed)"]!);
    raw4.hosts[0]!.schedule = { backup: "0 4 * * *" };
    const plan4 = planOf(raw4);
    expect(renderHost(plan4, plan4.hosts[0]!, realishSecrets(plan4, 0), { templates }).hash).not.toBe(a.hash);
  });

  it("without a restore-drill template there is no drill line (templates are data)", () => {
    const plan = planOf(EXAMPLES["compose + volume (the seed)"]!);
    const only = templates.filter((t) => ["lib.sh", "backup", "backup-volumes"].includes(t.install));
    const r = renderHost(plan, plan.hosts[0]!, realishSecrets(plan, 0), { templates: only });
    expect(r.crontab).not.toContain("restore-drill");
    expect(r.files.map((f) => f.path.split("/").pop()).sort()).toEqual(["backup", "backup-volumes", "credentials", "lib.sh", "restorable.conf"]);
  });

  it("placeholders: known ones are shell-quoted, an unknown one is an error", () => {
    expect(renderTemplate("t", "X=@@A@@ Y=@@A@@", { A: "it's" })).toBe(`X='it'\\''s' Y='it'\\''s'`);
    expect(() => renderTemplate("t.sh", "X=@@NOPE@@", { A: "a" })).toThrow(/t\.sh: unknown placeholder @@NOPE@@/);
  });

  it("a password for a database the host does not back up is an error", () => {
    const plan = planOf(EXAMPLES["compose + volume (the seed)"]!);
    expect(() => renderCredentials(plan.hosts[0]!, { accessKeyId: "a", secretAccessKey: "b", pgPasswords: { nope: "x" } })).toThrow(/database "nope"/);
  });

  it("placeholder secrets are clearly marked and still valid shell", () => {
    const plan = planOf(EXAMPLES["container + local, encrypted, custom paths and level"]!);
    const h = plan.hosts[0]!;
    const cred = renderCredentials(h, placeholderSecrets(h));
    expect(cred).toMatch(/AWS_SECRET_ACCESS_KEY='<SECRET: /);
    const v = sourceAndRead([{ path: "c", content: cred }], ["RESTORABLE_PG_PASSWORD"]);
    expect(v.RESTORABLE_PG_PASSWORD).toHaveLength(2);
  });

  it("the state dir can be moved (tests)", () => {
    const plan = planOf(EXAMPLES["compose + volume (the seed)"]!);
    const h = plan.hosts[0]!;
    expect(renderConfig(plan, h, { stateDir: "/tmp/x y" })).toContain(`RESTORABLE_STATE_DIR='/tmp/x y'`);
    expect(renderHost(plan, h, realishSecrets(plan, 0), { templates, stateDir: "/tmp/st" }).crontab).toContain(`>>'/tmp/st/backup.log'`);
  });
});

// ------------------------------------------------------------------------------------------------

const sc = requireTools("shellcheck", "bash");
describe.skipIf(!sc.ok)("rendered shell passes shellcheck", () => {
  const templates = loadTemplates();
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  // Content already checked (scripts are identical across hosts sharing a configDir).
  const checked = new Set<string>();
  for (const [name, raw] of Object.entries(EXAMPLES)) {
    it(name, () => {
      const plan = planOf(raw);
      plan.hosts.forEach((host, hi) => {
        const r = renderHost(plan, host, realishSecrets(plan, hi), { templates });
        const root = mkdtempSync(join(tmpdir(), "rsc-"));
        dirs.push(root);
        const toCheck: string[] = [];
        for (const f of r.files) {
          const p = join(root, f.path);
          mkdirSync(dirname(p), { recursive: true });
          writeFileSync(p, f.content, { mode: f.mode });
          if (!checked.has(f.content)) {
            checked.add(f.content);
            toCheck.push(p);
          }
        }
        if (toCheck.length === 0) return;
        // Every file, all severities (style included); sourced files followed from their directory.
        const res = spawnSync("shellcheck", ["-x", "-P", "SCRIPTDIR", "-s", "bash", "-S", "style", ...toCheck], { encoding: "utf8" });
        expect(res.stdout + res.stderr, `${host.name}: ${toCheck.join(", ")}`).toBe("");
        expect(res.status).toBe(0);
      });
    });
  }
});

// ------------------------------------------------------------------------------------------------

const LIB = join(__dirname, "../../scripts/lib.sh");
const HOST = "web-1";

describe.skipIf(!sc.ok)("scripts/lib.sh agrees with the plan", () => {
  it("restorable_clock: stamp, createdAt and ISO week equal utcStamp and isoWeekStart, every day over two years and at odd times", () => {
    const dates: Date[] = [];
    for (let d = Date.UTC(2026, 0, 1, 3, 0, 0); d < Date.UTC(2028, 0, 1); d += 86_400_000) dates.push(new Date(d));
    dates.push(new Date(Date.UTC(2026, 10, 1, 0, 0, 0)), new Date(Date.UTC(2026, 10, 30, 23, 59, 59)), new Date(Date.UTC(2028, 1, 29, 12, 0, 0)));
    dates.push(new Date(Date.UTC(2026, 10, 29, 23, 59, 59)), new Date(Date.UTC(2026, 10, 30, 0, 0, 0))); // Sunday night, Monday 00:00
    const iso = dates.map((d) => d.toISOString().replace(/\.000Z$/, "Z"));
    const script = `set -euo pipefail
. ${shq(LIB)}
while IFS= read -r now; do
  RESTORABLE_NOW=$now
  restorable_clock
  printf '%s %s %s %s\\n' "$RESTORABLE_STAMP" "$RESTORABLE_CREATED_AT" "$RESTORABLE_WEEK_FROM" "$RESTORABLE_WEEK_TO"
done`;
    const out = execFileSync("bash", ["-c", script], { input: `${iso.join("\n")}\n`, encoding: "utf8" }).trim().split("\n");
    expect(out).toHaveLength(dates.length);
    out.forEach((line, i) => {
      const d = dates[i]!;
      const monday = isoWeekStart(d);
      expect(monday.getUTCDay()).toBe(1);
      expect(d.getTime() - monday.getTime()).toBeLessThan(7 * 86_400_000);
      const day = (t: number) => utcStamp(new Date(t)).slice(0, 8);
      expect(line).toBe(`${utcStamp(d)} ${iso[i]} ${day(monday.getTime())} ${day(monday.getTime() + 7 * 86_400_000)}`);
    });
  });

  it("restorable_tier decides as tierFor over generated bucket histories (manifests, orphan dumps, other items)", () => {
    // The items a listing can mix: names that share a prefix, contain a slash, a space or glob characters.
    const items: BackupKind[] = [
      { kind: "postgres", database: "app" }, { kind: "postgres", database: "ap" }, { kind: "postgres", database: "app/x" },
      { kind: "postgres", database: "a*[b] c" }, { kind: "globals" }, { kind: "volume", volume: "app" },
    ];
    const DAY = 86_400_000;
    const entry = fc.record({
      item: fc.nat(items.length - 1),
      tier: fc.constantFrom(...TIERS),
      // Around the run: over a year back (expired monthlies are gone, but the rule must not care), a few days ahead.
      offsetMs: fc.integer({ min: -400 * DAY, max: 3 * DAY }),
      manifest: fc.boolean(),
    });
    const history = fc.record({
      now: fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2030, 0, 1) }).map((t) => new Date(Math.floor(t / 1000) * 1000)),
      item: fc.nat(items.length - 1),
      // Dense near the run (so every branch of the rule is taken), sparse further back.
      near: fc.array(entry.map((e) => ({ ...e, offsetMs: Math.round(e.offsetMs / 40) })), { maxLength: 12 }),
      far: fc.array(entry, { maxLength: 8 }),
    });
    // One bash for all cases (a bash start per case would cost seconds): a case is a line
    // "now<TAB>item", its keys, and a line "END".
    const script = `set -euo pipefail
. ${shq(LIB)}
RESTORABLE_PREFIX=$1
while IFS=$'\\t' read -r now item; do
  RESTORABLE_EXISTING_KEYS=()
  while IFS= read -r k && [[ $k != END ]]; do RESTORABLE_EXISTING_KEYS[$k]=1; done
  RESTORABLE_NOW=$now
  restorable_clock
  restorable_tier "$item"
  printf '%s\\n' "$RESTORABLE_TIER"
done`;
    const cases = fc.sample(history, { numRuns: 400, seed: 9 }).map((h) => {
      const keys = [...h.near, ...h.far].map((e) => {
        const k = objectKeys(HOST, e.tier, items[e.item]!, new Date(h.now.getTime() + e.offsetMs), { compressed: true, encrypted: false });
        return e.manifest ? k.manifest : k.object;
      });
      keys.push(`${HOST}/drills/${utcStamp(h.now)}.json`);
      const what = items[h.item]!;
      return { now: h.now.toISOString().replace(/\.000Z$/, "Z"), item: itemPath(what), keys, expected: tierFor(h.now, heldPoints(keys, HOST, what)) };
    });
    const input = cases.map((c) => `${c.now}\t${c.item}\n${c.keys.map((k) => `${k}\n`).join("")}END\n`).join("");
    const out = execFileSync("bash", ["-c", script, "x", `${HOST}/`], { input, encoding: "utf8" }).split("\n").slice(0, -1);
    expect(out).toHaveLength(cases.length);
    const seen = new Set<string>();
    cases.forEach((c, i) => {
      seen.add(c.expected);
      expect({ ...c, got: out[i] }).toEqual({ ...c, got: c.expected });
    });
    expect([...seen].sort()).toEqual(["daily", "monthly", "weekly"]);
  });

  it("restorable_json_str produces JSON strings that parse back to the input", () => {
    const values = [...TRICKY, "ctl\u0001\u001f", "quote\"back\\slash", "\r\n"];
    const script = `. ${shq(LIB)}; printf '['; sep=; for v in "$@"; do printf '%s%s' "$sep" "$(restorable_json_str "$v")"; sep=,; done; printf ']'`;
    const out = execFileSync("bash", ["-c", script, "x", ...values], { encoding: "utf8" });
    const parsed = JSON.parse(out) as string[];
    expect(parsed).toEqual(values.map((v) => v.replace(/[\u0001-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "")));
  });

  it("S3 URLs for the signed small requests: percent-encoding, path style vs virtual-hosted", () => {
    const url = (endpoint: string, style: string, bucket: string, key: string) =>
      execFileSync("bash", ["-c", `. ${shq(LIB)}; RESTORABLE_ENDPOINT=$1 RESTORABLE_S3_ADDRESSING_STYLE=$2 RESTORABLE_BUCKET=$3; restorable_s3_http_url "$4"`, "x", endpoint, style, bucket, key], { encoding: "utf8" });
    expect(url("https://s3.us-west-002.backblazeb2.com", "auto", "acme-prod", "web-1/daily/postgres/app$1/x y.json")).toBe(
      "https://acme-prod.s3.us-west-002.backblazeb2.com/web-1/daily/postgres/app%241/x%20y.json",
    );
    expect(url("https://minio.example.net/", "path", "b", "k/ü")).toBe("https://minio.example.net/b/k/%C3%BC");
    expect(url("http://127.0.0.1:9000", "auto", "b", "")).toBe("http://127.0.0.1:9000/b");
    expect(url("https://s3.eu-central-1.amazonaws.com", "auto", "dotted.bucket", "a")).toBe("https://s3.eu-central-1.amazonaws.com/dotted.bucket/a");
    const enc = execFileSync("bash", ["-c", `. ${shq(LIB)}; restorable_urlencode "$1"`, "x", "a-b_c.d~e/f+g=h&i j"], { encoding: "utf8" });
    expect(enc).toBe("a-b_c.d~e%2Ff%2Bg%3Dh%26i%20j");
  });

  it("a bad RESTORABLE_NOW is a usage error naming the variable", () => {
    const r = spawnSync("bash", ["-c", `. ${shq(LIB)}; RESTORABLE_SCRIPT=t; RESTORABLE_NOW=yesterday; restorable_clock`], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/restorable t: FAILED at stage config: RESTORABLE_NOW=yesterday is not an ISO-8601 UTC time/);
  });
});
