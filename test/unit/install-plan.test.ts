// The pure install plan: command texts pass shellcheck, carry no secret, are deterministic; the
// payload is self-describing and complete; tools follow the host's configuration.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parseConfig, type RawConfig } from "../../infra/config";
import { buildPlan } from "../../infra/plan";
import { CRON_BEGIN, CRON_END, cronBlock, installPayload, installPlan, requiredTools, unwrapSh, type InstallInput } from "../../infra/plan/install";
import { requireTools } from "../support/tools";
import { fixture } from "../integration/install-fixture";

const shellcheck = requireTools("shellcheck");

function hostWith(raw: Partial<RawConfig["hosts"][number]>) {
  return buildPlan(
    parseConfig({
      storage: { provider: "b2", bucket: "acme-prod-backups", region: "us-west-002" },
      objectives: { rpo: "24h", rto: "1h" },
      hosts: [{ name: "web-1", ssh: { host: "203.0.113.10" }, ...raw }],
    }),
  ).hosts[0]!;
}

const tools = (raw: Partial<RawConfig["hosts"][number]>) => requiredTools(hostWith(raw).config).map((t) => t.tool);

describe("installPlan", () => {
  const f = fixture({ sshUser: "root", sshPort: 22 });
  const p = installPlan(f.rendered, f.host);

  describe.skipIf(!shellcheck.ok)("shellcheck", () => {
    for (const which of ["preflight", "install", "uninstall"] as const) {
      it(`the ${which} command's script passes shellcheck -s sh`, () => {
        const text = which === "install" ? p.install.command : which === "preflight" ? p.preflight : p.uninstall;
        const script = unwrapSh(text);
        // Throws with shellcheck's findings when there are any.
        execFileSync("shellcheck", ["-s", "sh", "-"], { input: script });
        expect(text.startsWith("exec /bin/sh -c '")).toBe(true);
      });
    }
    it("also for a docker/compose/encrypted host and a local-drill host", () => {
      for (const raw of [
        { postgres: [{ via: "compose" as const, project: "/srv/app", service: "db", database: "app" }], volumes: ["uploads"], encryption: { ageRecipients: [`age1${"q".repeat(58)}`] } },
        { postgres: [{ via: "local" as const, database: "app" }], drill: { runtime: "local" as const } },
      ]) {
        const q = installPlan(f.rendered, hostWith(raw));
        for (const t of [q.preflight, q.install.command, q.uninstall]) execFileSync("shellcheck", ["-s", "sh", "-"], { input: unwrapSh(t) });
      }
    });
  });

  it("keeps every secret out of the command texts; they travel only in stdin", () => {
    for (const t of [p.preflight, p.install.command, p.uninstall]) {
      expect(t).not.toContain(f.secret);
      expect(t).not.toContain(Buffer.from(f.secret).toString("base64").slice(0, 20));
    }
    const creds = f.rendered.files.find((x) => x.secret)!;
    expect(p.install.stdin).toContain(`file 600 ${creds.path} ${Buffer.from(creds.content).toString("base64")}\n`);
  });

  it("refuses to build when a secret would end up in a command text, or a secret file is not 0600", () => {
    const leaky: InstallInput = {
      ...f.rendered,
      files: f.rendered.files.map((x) => (x.secret ? { ...x, content: 'RECORD="/etc/restorable/.restorable-installed"\n' } : x)),
    };
    expect(() => installPlan(leaky, f.host)).toThrow(/contains content of the secret file/);
    expect(() => installPlan({ ...f.rendered, files: [...f.rendered.files, { path: "/etc/restorable/open", mode: 0o644, content: "x", secret: true }] }, f.host)).toThrow(/must have mode 600/);
  });

  it("is deterministic and triggers on the content hash", () => {
    expect(installPlan(f.rendered, f.host)).toEqual(p);
    expect(p.triggers).toEqual([f.rendered.hash]);
    const g = fixture({ sshUser: "root", sshPort: 22, backupSchedule: "30 2 * * *" });
    expect(installPlan(g.rendered, g.host).triggers).not.toEqual(p.triggers);
  });

  it("sends a self-describing payload: header, state dir, each file (mode, path, base64), the cron block, end", () => {
    const lines = p.install.stdin.trimEnd().split("\n");
    expect(lines[0]).toBe("restorable-install 1");
    expect(lines[1]).toBe("dir 700 /var/lib/restorable");
    expect(lines.at(-1)).toBe("end");
    const files = lines.filter((l) => l.startsWith("file ")).map((l) => l.split(" "));
    expect(files.map((x) => [x[1], x[2]])).toEqual(f.rendered.files.map((x) => [x.mode.toString(8), x.path]));
    for (const [i, x] of files.entries()) expect(Buffer.from(x[3]!, "base64").toString("utf8")).toBe(f.rendered.files[i]!.content);
    const cron = lines.find((l) => l.startsWith("cron "))!;
    expect(Buffer.from(cron.slice(5), "base64").toString("utf8")).toBe(f.rendered.crontab);
  });

  it("lists what goes where, without content", () => {
    expect(p.files).toContainEqual({ path: "/etc/restorable/credentials", mode: "0600", secret: true });
    expect(p.files).toContainEqual({ path: "/opt/restorable/backup", mode: "0755", secret: false });
    expect(p.record).toBe("/etc/restorable/.restorable-installed");
    expect(JSON.stringify(p.files)).not.toContain(f.secret);
  });

  it("rejects unsafe paths, modes and duplicate files", () => {
    const bad = (files: InstallInput["files"]) => () => installPlan({ ...f.rendered, files }, f.host);
    expect(bad([{ path: "relative/x", mode: 0o644, content: "", secret: false }])).toThrow(/absolute path/);
    expect(bad([{ path: "/opt/x y", mode: 0o644, content: "", secret: false }])).toThrow(/absolute path/);
    expect(bad([{ path: "/opt/../etc/x", mode: 0o644, content: "", secret: false }])).toThrow(/absolute path/);
    expect(bad([{ path: "/opt/x", mode: 0o777, content: "", secret: false }])).toThrow(/mode 777/);
    expect(bad([{ path: "/opt/x", mode: 0o644, content: "", secret: false }, { path: "/opt/x", mode: 0o644, content: "", secret: false }])).toThrow(/same path/);
  });

  it("takes the state dir from restorable.conf", () => {
    const g = fixture({ sshUser: "root", sshPort: 22, base: "/srv/t" });
    const q = installPlan(g.rendered, g.host);
    expect(q.stateDir).toBe("/srv/t/var/lib/restorable");
    expect(q.install.stdin).toContain("dir 700 /srv/t/var/lib/restorable\n");
    expect(q.uninstall).toContain('STATE_DIR="/srv/t/var/lib/restorable"');
  });
});

describe("cronBlock", () => {
  it("keeps a marked block and wraps bare lines in the markers", () => {
    expect(cronBlock(`${CRON_BEGIN}\n0 3 * * * /x\n${CRON_END}\n`)).toBe(`${CRON_BEGIN}\n0 3 * * * /x\n${CRON_END}\n`);
    expect(cronBlock(`${CRON_BEGIN}\n0 3 * * * /x\n${CRON_END}`)).toBe(`${CRON_BEGIN}\n0 3 * * * /x\n${CRON_END}\n`);
    expect(cronBlock("0 3 * * * /x\n")).toBe(`${CRON_BEGIN}\n0 3 * * * /x\n${CRON_END}\n`);
  });
  it("refuses stray or nested markers", () => {
    expect(() => cronBlock(`0 3 * * * /x\n${CRON_END}\n1 1 * * * /y`)).toThrow(/marker/);
    expect(() => cronBlock(`${CRON_BEGIN}\n${CRON_BEGIN}\n${CRON_END}`)).toThrow(/nested/);
  });
});

describe("installPayload", () => {
  it("ends with the end line, so a truncated stdin is detected", () => {
    const f = fixture({ sshUser: "root", sshPort: 22 });
    expect(installPayload(f.rendered, "/var/lib/restorable").endsWith("\nend\n")).toBe(true);
  });
});

describe("requiredTools follows the configuration", () => {
  it.each([
    ["local postgres, docker drill", { postgres: [{ via: "local" as const, database: "app" }] }, ["aws", "zstd", "flock", "curl", "crontab", "pg_dump", "pg_dumpall", "psql", "docker"], ["age", "initdb", "docker-compose|docker compose"]],
    ["local postgres, local drill", { postgres: [{ via: "local" as const, database: "app" }], drill: { runtime: "local" as const } }, ["pg_dump", "pg_restore", "initdb", "pg_ctl"], ["docker"]],
    ["compose postgres", { postgres: [{ via: "compose" as const, project: "/srv/app", service: "db", database: "app" }] }, ["docker", "docker-compose|docker compose"], ["pg_dump"]],
    ["container postgres, local drill", { postgres: [{ via: "container" as const, container: "db", database: "app" }], drill: { runtime: "local" as const } }, ["docker", "initdb"], ["pg_dump"]],
    ["volumes only", { volumes: ["uploads"] }, ["docker", "aws", "zstd"], ["pg_dump", "initdb", "psql"]],
    ["encrypted", { volumes: ["uploads"], encryption: { ageRecipients: [`age1${"q".repeat(58)}`] } }, ["age"], []],
  ])("%s", (_what, raw, needed, notNeeded) => {
    const t = tools(raw);
    for (const n of needed) expect(t).toContain(n);
    for (const n of notNeeded) expect(t).not.toContain(n);
    expect(new Set(t).size).toBe(t.length);
  });

  it("preflight checks the tools on cron's PATH, and says how to install what is missing", () => {
    const f = fixture({ sshUser: "root", sshPort: 22, rawHost: { encryption: { ageRecipients: [`age1${"q".repeat(58)}`] } } });
    const script = unwrapSh(installPlan(f.rendered, f.host).preflight);
    expect(script).toContain('PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"');
    expect(script).toContain("if ! command -v age >/dev/null 2>&1; then missing age age; fi");
    expect(script).toContain("apt-get install -y");
  });
});
