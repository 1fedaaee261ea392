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
    // the rendered default, and nothing may point at the default directories.
    for (const f of rendered.files.filter((f) => f.path.endsWith(".sh"))) expect(f.content, f.path).toMatch(/='\/home\/backup\/etc\/restorable\.conf'/);
    for (const f of rendered.files) expect(f.content, f.path).not.toMatch(/\/etc\/restorable\/|\/opt\/restorable\/|\/var\/lib\/restorable/);
  });

  it("cron logs and the install's state dir follow paths.stateDir", () => {
    expect(rendered.crontab).toContain(">>'/home/backup/state/backup.log'");
    expect(rendered.crontab).not.toContain("/var/lib/restorable");
    expect(installPlan(rendered, host).stateDir).toBe("/home/backup/state");
  });
});
