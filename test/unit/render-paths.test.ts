import { describe, expect, it } from "vitest";
import { parseConfig } from "../../infra/config";
import { buildPlan } from "../../infra/plan";
import { installPlan } from "../../infra/plan/install";
import { placeholderSecrets, renderHost } from "../../infra/plan/render";

describe("configured paths reach every rendered file and the install plan", () => {
  const cfg = parseConfig({
    storage: { provider: "aws", bucket: "acme-backups", region: "eu-central-1" },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [{ name: "web-1", ssh: { host: "203.0.113.10", user: "backup" }, postgres: [{ via: "local", database: "app" }], paths: { scriptsDir: "/home/backup/bin", configDir: "/home/backup/etc", stateDir: "/home/backup/state" } }],
  });
  const plan = buildPlan(cfg);
  const host = plan.hosts[0]!;
  const rendered = renderHost(plan, host, placeholderSecrets(host));

  it("files land under the configured dirs; the scripts default to the configured config file", () => {
    for (const f of rendered.files) expect(f.path).toMatch(/^\/home\/backup\/(bin|etc)\//);
    const conf = rendered.files.find((f) => f.path === "/home/backup/etc/restorable.conf")!;
    expect(conf.content).toContain("RESTORABLE_STATE_DIR='/home/backup/state'");
    expect(conf.content).toContain("RESTORABLE_CREDENTIALS='/home/backup/etc/credentials'");
    // The installed scripts find their config without RESTORABLE_CONFIG: the libraries carry
    // the rendered default, and nothing may point at the default directories. (lib-metrics.sh
    // is sourced by lib.sh after the config is read and reads no config of its own; lib-pitr.sh and
    // lib-restore.sh, lib-pitr-restore.sh and lib-progress.sh are only ever sourced after lib.sh, which carries it.)
    const noConfig = ["/lib-metrics.sh", "/lib-pitr.sh", "/lib-restore.sh", "/lib-pitr-restore.sh", "/lib-progress.sh"];
    for (const f of rendered.files.filter((f) => f.path.endsWith(".sh") && !noConfig.some((n) => f.path.endsWith(n)))) expect(f.content, f.path).toMatch(/='\/home\/backup\/etc\/restorable\.conf'/);
    // and the restore scripts see it: lib-restore.sh keeps lib.sh's value (it only clears an unrendered placeholder)
    const lib = rendered.files.find((f) => f.path.endsWith("/lib.sh"))!;
    expect(lib.content).toMatch(/^RESTORABLE_DEFAULT_CONFIG='\/home\/backup\/etc\/restorable\.conf'$/m);
    for (const f of rendered.files) expect(f.content, f.path).not.toMatch(/\/etc\/restorable\/|\/opt\/restorable\/|\/var\/lib\/restorable/);
  });

  it("the drill's age identity file reaches the config only when set", () => {
    const conf = (r: ReturnType<typeof renderHost>) => r.files.find((f) => f.path.endsWith("/restorable.conf"))!.content;
    expect(conf(rendered)).toContain("RESTORABLE_AGE_IDENTITY=''");
    const withId = parseConfig({
      storage: { provider: "aws", bucket: "acme-backups", region: "eu-central-1" },
      objectives: { rpo: "24h", rto: "1h" },
      hosts: [{ name: "web-1", ssh: { host: "203.0.113.10" }, postgres: [{ via: "local", database: "app" }], encryption: { ageRecipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"] }, drill: { ageIdentityFile: "/root/drill.agekey" } }],
    });
    const p2 = buildPlan(withId);
    expect(conf(renderHost(p2, p2.hosts[0]!, placeholderSecrets(p2.hosts[0]!)))).toContain("RESTORABLE_AGE_IDENTITY='/root/drill.agekey'");
    const without = buildPlan({ ...withId, hosts: [{ ...withId.hosts[0]!, drill: { ...withId.hosts[0]!.drill, ageIdentityFile: undefined } }] });
    expect(without.summary.join("\n")).toMatch(/WARNING: web-1 encrypts but has no drill\.ageIdentityFile/);
  });

  it("cron logs and the install's state dir follow paths.stateDir", () => {
    expect(rendered.crontab).toContain(">>'/home/backup/state/backup.log'");
    expect(rendered.crontab).not.toContain("/var/lib/restorable");
    expect(installPlan(rendered, host).stateDir).toBe("/home/backup/state");
  });
});
