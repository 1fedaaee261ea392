// npm run render: Pulumi.<stack>.yaml -> what pulumi up would install, for PR review.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main, MARKER, stackConfigFromYaml } from "../../infra/cli/render";
import { ConfigError, parseConfig } from "../../infra/config";
import { buildPlan } from "../../infra/plan";
import { CRON_BEGIN, placeholderSecrets, renderHost } from "../../infra/plan/render";

const REPO = resolve(__dirname, "../..");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "rcli-"));
  dirs.push(d);
  return d;
}

const STACK = `# a test stack
config:
  aws:region: eu-central-1          # another provider's key: ignored
  restorable:storage:
    provider: s3
    bucket: review-backups
    endpoint: https://s3.example.net
  restorable:objectives: { rpo: 24h, rto: 1h }
  restorable:retention: { daily: 10 }
  restorable:notify: { pingUrl: "https://hc-ping.com/abc" }
  restorable:hosts:
    - name: web-1
      ssh: { host: 203.0.113.10 }
      postgres:
        - { via: compose, project: /srv/app, service: db, user: app, database: app }
      volumes: [uploads]
    - name: web-2
      ssh: { host: 203.0.113.11 }
      postgres:
        - { via: local, database: shop }
  restorable:sshPrivateKey:
    secure: v1:abc123
  restorable:s3Credentials:
    secure: v1:def456
`;

function cli(args: string[]): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const code = main(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

function stackDir(yaml: string, stack = "test"): string {
  const d = tmp();
  writeFileSync(join(d, `Pulumi.${stack}.yaml`), yaml);
  return d;
}

describe("render CLI", () => {
  it("writes every host file as pulumi up would install it, with placeholder secrets", () => {
    const d = stackDir(STACK);
    const out = join(d, "out");
    const r = cli(["--stack", "test", "--dir", d, "--out", out]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/rendered stack test/);

    // Same bytes as renderHost with placeholder secrets.
    const raw = stackConfigFromYaml(STACK);
    const plan = buildPlan(parseConfig(raw));
    for (const h of plan.hosts) {
      const rendered = renderHost(plan, h, placeholderSecrets(h));
      for (const f of rendered.files) {
        const p = join(out, "hosts", h.name, "files", f.path);
        expect(readFileSync(p, "utf8"), p).toBe(f.content);
        expect(statSync(p).mode & 0o777, p).toBe(f.mode);
      }
      expect(readFileSync(join(out, "hosts", h.name, "crontab"), "utf8")).toBe(rendered.crontab);
      expect(readFileSync(join(out, "hosts", h.name, "FILES"), "utf8")).toContain("0600 /etc/restorable/credentials secret");
      const cred = readFileSync(join(out, "hosts", h.name, "files/etc/restorable/credentials"), "utf8");
      expect(cred).toMatch(/AWS_SECRET_ACCESS_KEY='<SECRET: /);
    }
    expect(readFileSync(join(out, "hosts/web-1/crontab"), "utf8")).toContain(CRON_BEGIN);

    // Bucket policy as JSON.
    const lifecycle = JSON.parse(readFileSync(join(out, "bucket/lifecycle.s3.json"), "utf8")) as { Rules: { ID: string; Expiration?: { Days?: number } }[] };
    expect(lifecycle).toEqual(plan.lifecycle.s3);
    expect(lifecycle.Rules.find((x) => x.ID === "web-1-daily")?.Expiration?.Days).toBe(10);
    const iam = JSON.parse(readFileSync(join(out, "bucket/access/web-2.iam-policy.json"), "utf8"));
    expect(iam).toEqual(plan.hosts[1]!.access.iamPolicy);
    expect(JSON.parse(readFileSync(join(out, "bucket/bucket.json"), "utf8"))).toMatchObject({ name: "review-backups", provider: "s3" });

    // The human summary: retention, schedules, what goes where.
    const summary = readFileSync(join(out, "SUMMARY.md"), "utf8");
    expect(summary).toContain("a restore point for each of the last 10 days");
    expect(summary).toContain("`web-1/daily/postgres/app/20261124T030000Z.dump.zst`");
    expect(summary).toContain("`web-1/daily/volumes/uploads/20261124T030000Z.tar.zst`");
    expect(summary).toContain("`0 3 * * *` backup");
    expect(summary).toContain("`0 5 1 * *` restore-drill");
    expect(summary).not.toMatch(/web-2.*backup-volumes/);
  });

  it("renders the provider's own formats for B2 (native lifecycle rules and key specs)", () => {
    const d = stackDir(STACK.replace("provider: s3", "provider: b2").replace("endpoint: https://s3.example.net", "region: us-west-002"));
    const out = join(d, "out");
    expect(cli(["--stack", "test", "--dir", d, "--out", out]).code).toBe(0);
    expect(existsSync(join(out, "bucket/lifecycle.b2.json"))).toBe(true);
    expect(existsSync(join(out, "bucket/access/web-1.b2-key.json"))).toBe(true);
    expect(existsSync(join(out, "bucket/lifecycle.s3.json"))).toBe(false);
  });

  it("is reproducible and replaces its own previous output (a removed host disappears)", () => {
    const d = stackDir(STACK);
    const out = join(d, "out");
    expect(cli(["--stack", "test", "--dir", d, "--out", out]).code).toBe(0);
    const before = readFileSync(join(out, "hosts/web-1/files/opt/restorable/backup"), "utf8");
    writeFileSync(join(d, "Pulumi.test.yaml"), STACK.replace(/    - name: web-2[\s\S]*?database: shop \}\n/, ""));
    expect(cli(["--stack", "test", "--dir", d, "--out", out]).code).toBe(0);
    expect(readFileSync(join(out, "hosts/web-1/files/opt/restorable/backup"), "utf8")).toBe(before);
    expect(existsSync(join(out, "hosts/web-2"))).toBe(false);
    expect(existsSync(join(out, MARKER))).toBe(true);
  });

  it("refuses to clear a non-empty directory it did not write", () => {
    const d = stackDir(STACK);
    const out = join(d, "precious");
    mkdirSync(out);
    writeFileSync(join(out, "notes.txt"), "mine");
    const r = cli(["--stack", "test", "--dir", d, "--out", out]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not empty and was not written by npm run render/);
    expect(readFileSync(join(out, "notes.txt"), "utf8")).toBe("mine");
  });

  it("rejects unknown restorable: keys but accepts the secret ones", () => {
    const d = stackDir(STACK.replace("  restorable:hosts:", "  restorable:retenion: { daily: 3 }\n  restorable:hosts:"));
    const r = cli(["--stack", "test", "--dir", d, "--out", join(d, "out")]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/restorable:retenion: unknown key/);
    expect(r.err).not.toMatch(/sshPrivateKey: unknown/);
  });

  it("exits non-zero with the ConfigError text on bad config", () => {
    const d = stackDir(STACK.replace("- name: web-1\n      ssh: { host: 203.0.113.10 }", "- name: web-1\n      ssh: { host: 203.0.113.10 }\n      schedule: { backup: \"0 3 * *\" }"));
    const r = cli(["--stack", "test", "--dir", d, "--out", join(d, "out")]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('restorable:hosts[0].schedule.backup: "0 3 * *" is not a 5-field cron expression');
    expect(existsSync(join(d, "out"))).toBe(false);
  });

  it("plain config stored as a secret is an error (render cannot decrypt it)", () => {
    expect(() => stackConfigFromYaml("config:\n  restorable:notify:\n    secure: v1:xyz\n")).toThrow(ConfigError);
  });

  it("usage errors exit 2", () => {
    expect(cli([]).code).toBe(2);
    expect(cli(["--stack", "x"]).code).toBe(2);
    expect(cli(["--bogus"]).code).toBe(2);
    const d = tmp();
    const r = cli(["--stack", "missing", "--dir", d, "--out", join(d, "o")]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot read .*Pulumi\.missing\.yaml/);
  });

  it("npm run render runs the CLI entry point (exit status and files)", () => {
    const d = stackDir(STACK, "ci");
    const out = join(d, "out");
    const ok = spawnSync("npx", ["tsx", join(REPO, "infra/cli/render.ts"), "--stack", "ci", "--dir", d, "--out", out], { cwd: REPO, encoding: "utf8" });
    expect(ok.status, ok.stderr).toBe(0);
    expect(existsSync(join(out, "hosts/web-1/files/opt/restorable/backup"))).toBe(true);
    writeFileSync(join(d, "Pulumi.ci.yaml"), STACK.replace("bucket: review-backups", "bucket: Review_Backups"));
    const bad = spawnSync("npx", ["tsx", join(REPO, "infra/cli/render.ts"), "--stack", "ci", "--dir", d, "--out", out], { cwd: REPO, encoding: "utf8" });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/invalid restorable config:[\s\S]*restorable:storage\.bucket: "Review_Backups" may contain only lowercase/);
  });
});
