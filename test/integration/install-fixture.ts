// A hand-made RenderedHost of the contract's shape (infra/plan/render.ts), for exercising the
// install plan without the real templates: same paths, modes and secret flag as renderHost().
import { createHash } from "node:crypto";
import { parseConfig, type RawConfig } from "../../infra/config";
import { buildPlan, type HostPlan } from "../../infra/plan";
import type { InstallInput } from "../../infra/plan/install";

export interface FixtureOptions {
  name?: string;
  sshUser: string;
  sshPort: number;
  /** Base dir: scripts in <base>/opt/restorable, config in <base>/etc/restorable, state in <base>/var/lib/restorable. */
  base?: string;
  backupSchedule?: string;
  /** Extra content in the backup script (a "template change"). */
  scriptVersion?: number;
  /** Leave restore-drill out of the rendered set. */
  withoutDrill?: boolean;
  secretKey?: string;
  rawHost?: Partial<RawConfig["hosts"][number]>;
}

export function fixture(o: FixtureOptions): { host: HostPlan; rendered: InstallInput; secret: string; stateDir: string } {
  const name = o.name ?? "web-1";
  const paths = o.base
    ? { scriptsDir: `${o.base}/opt/restorable`, configDir: `${o.base}/etc/restorable` }
    : { scriptsDir: "/opt/restorable", configDir: "/etc/restorable" };
  const stateDir = o.base ? `${o.base}/var/lib/restorable` : "/var/lib/restorable";
  const cfg = parseConfig({
    storage: { provider: "s3", bucket: "demo-bucket", endpoint: "http://127.0.0.1:9", allowNotOffsite: true },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [
      {
        name,
        ssh: { host: "127.0.0.1", user: o.sshUser, port: o.sshPort },
        postgres: [{ via: "local", database: "app" }],
        drill: { runtime: "local" },
        schedule: { backup: o.backupSchedule ?? "0 3 * * *", drill: "0 5 1 * *" },
        paths,
        ...o.rawHost,
      },
    ],
  });
  const host = buildPlan(cfg).hosts[0]!;
  const secret = o.secretKey ?? "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const s = paths.scriptsDir;
  const c = paths.configDir;
  const files: InstallInput["files"] = [
    { path: `${s}/lib.sh`, mode: 0o644, content: "# shared library\nrestorable_log() { printf '%s\\n' \"$*\" >&2; }\n", secret: false },
    { path: `${s}/backup`, mode: 0o755, content: `#!/bin/bash\n# backup v${o.scriptVersion ?? 1}\nexit 0\n`, secret: false },
    ...(o.withoutDrill ? [] : [{ path: `${s}/restore-drill`, mode: 0o755 as const, content: "#!/bin/bash\nexit 0\n", secret: false }]),
    {
      path: `${c}/restorable.conf`,
      mode: 0o644,
      content: `RESTORABLE_HOST='${name}'\nRESTORABLE_CREDENTIALS='${c}/credentials'\nRESTORABLE_STATE_DIR='${stateDir}'\n`,
      secret: false,
    },
    {
      path: `${c}/credentials`,
      mode: 0o600,
      content: `AWS_ACCESS_KEY_ID='AKIAFIXTURE'\nAWS_SECRET_ACCESS_KEY='${secret}'\nRESTORABLE_PG_PASSWORD=('')\n`,
      secret: true,
    },
  ];
  const crontab = [
    "# BEGIN restorable (managed by Pulumi; do not edit)",
    `${o.backupSchedule ?? "0 3 * * *"} ${s}/backup`,
    ...(o.withoutDrill ? [] : [`0 5 1 * * ${s}/restore-drill`]),
    "# END restorable",
    "",
  ].join("\n");
  const h = createHash("sha256");
  for (const f of files) {
    h.update(`${f.path}\0${f.mode}\0`);
    if (!f.secret) h.update(f.content);
  }
  h.update(crontab);
  return { host, rendered: { files, crontab, hash: h.digest("hex") }, secret, stateDir };
}
