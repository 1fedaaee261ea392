// Cron end to end, with real components only: the real renderHost output installed over a real
// SSH connection (a non-root user) with the install plan's commands, the real cron daemon, a real
// PostgreSQL and a real S3 server (Ceph radosgw). With the backup scheduled `* * * * *`, the
// installed crontab line runs the installed backup in cron's own bare environment (not ours, not
// the SSH session's), and a manifest appears in the bucket. Then the installed restore-drill,
// run over SSH, proves that backup restores; uninstall leaves the user's crontab and the disk as
// they were.
import { chownSync, chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../infra/config";
import { buildPlan } from "../../infra/plan";
import { installPlan } from "../../infra/plan/install";
import { renderHost } from "../../infra/plan/render";
import { readCrontab, startCron, writeCrontab, type CronDaemon } from "../support/cron";
import { loadSampleData, startPostgres, type PgCluster } from "../support/postgres";
import { waitFor } from "../support/proc";
import { startS3Server, type S3Creds, type S3Server } from "../support/s3server";
import { startSshd, testUserName, type Sshd } from "../support/sshd";
import { requireTools } from "../support/tools";

const tools = requireTools(
  "/usr/sbin/sshd", "ssh", "ssh-keygen", "ssh-keyscan", "cron", "crontab",
  "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "/usr/bin/aws",
  "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "pg_dump", "psql", "pg_restore",
  "zstd", "jq", "flock", "curl",
);

const BUCKET = "cron-backups";
const USER_LINES = "# the user's own job\n23 4 * * * /usr/bin/true users-own-job\n";

describe.skipIf(!tools.ok)("cron runs the installed backup in its own environment", () => {
  let cron: CronDaemon | undefined;
  let s3: S3Server;
  let pg: PgCluster;
  let sshd: Sshd;
  let base: string;
  let hostKey: S3Creds;
  const user = testUserName("rcr");
  let plan: ReturnType<typeof installPlan>;
  let stateDir: string;

  beforeAll(async () => {
    // Only one cron daemon may run machine-wide. None running (a container, CI): start ours and
    // stop it afterwards. One running that we did not start (e.g. cron.service on a systemd
    // machine, started by apt): use it, it is the real daemon all the same, and leave it running.
    cron = await startCron({ reuseRunning: true });
    if (!cron.started) console.warn(`cron test: using the cron daemon already running (pid ${cron.pid}); it is left running`);
    [s3, pg, sshd] = await Promise.all([startS3Server(), startPostgres({ auth: "trust" }), startSshd({ users: [user] })]);
    await s3.createBucket(BUCKET, { versioning: true });
    hostKey = await s3.createUser("cron-host");
    // The bucket owner grants the host key its prefix (as a bucket policy: radosgw honours it).
    const policy = {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Principal: { AWS: ["arn:aws:iam:::user/cron-host"] }, Action: ["s3:PutObject", "s3:GetObject"], Resource: [`arn:aws:s3:::${BUCKET}/web-1/*`] },
        { Effect: "Allow", Principal: { AWS: ["arn:aws:iam:::user/cron-host"] }, Action: ["s3:ListBucket"], Resource: [`arn:aws:s3:::${BUCKET}`] },
      ],
    };
    const put = await s3.aws(s3.admin, ["s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", JSON.stringify(policy)]);
    expect(put.code, put.stderr).toBe(0);
    await loadSampleData(pg, "app");

    base = mkdtempSync(join(tmpdir(), "restorable-cron-"));
    chmodSync(base, 0o755);
    chownSync(base, sshd.users[user]!.uid, sshd.users[user]!.gid);
    stateDir = join(base, "state");
    const cfg = parseConfig({
      storage: { provider: "s3", bucket: BUCKET, endpoint: s3.endpoint, region: s3.region, allowNotOffsite: true },
      objectives: { rpo: "24h", rto: "1h" },
      hosts: [
        {
          name: "web-1",
          ssh: { host: "127.0.0.1", user, port: sshd.port },
          postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, user: "postgres", database: "app" }],
          schedule: { backup: "* * * * *", drill: "0 5 1 * *" },
          drill: { runtime: "local", checks: ["SELECT count(*) > 0 FROM public.users"] },
          paths: { scriptsDir: join(base, "opt"), configDir: join(base, "etc") },
        },
      ],
    });
    const p = buildPlan(cfg);
    const host = p.hosts[0]!;
    const rendered = renderHost(p, host, { accessKeyId: hostKey.accessKeyId, secretAccessKey: hostKey.secretAccessKey, pgPasswords: {} }, { stateDir });
    plan = installPlan(rendered, host);
    await writeCrontab(user, USER_LINES);
  });

  afterAll(async () => {
    // Every step runs even when an earlier one fails.
    const steps: Array<() => Promise<unknown>> = [
      async () => (sshd && plan ? sshd.ssh(user, plan.uninstall) : undefined),
      async () => cron?.stop(),
      async () => sshd?.stop(),
      async () => pg?.stop(),
      async () => s3?.stop(),
      async () => (base ? rmSync(base, { recursive: true, force: true }) : undefined),
    ];
    for (const s of steps) await s().catch(() => undefined);
  });

  it("preflight passes for the user with cron's PATH", async () => {
    const r = await sshd.ssh(user, plan.preflight);
    expect(r.stderr).not.toMatch(/not ready/);
    expect(r.code).toBe(0);
  });

  it("installs, and within a minute or two cron's run of the installed backup leaves a manifest in the bucket", async () => {
    const r = await sshd.ssh(user, plan.install.command, plan.install.stdin);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const cronText = (await readCrontab(user))!;
    expect(cronText.startsWith("# BEGIN restorable (managed by Pulumi; do not edit)\n* * * * * ")).toBe(true);
    expect(cronText.endsWith(USER_LINES)).toBe(true);

    const manifest = await waitFor(
      "a manifest uploaded by the cron-run backup",
      async () => {
        const ls = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/", "--output", "json"]);
        if (ls.code !== 0 || !ls.stdout.trim()) return undefined;
        const keys = ((JSON.parse(ls.stdout) as { Contents?: { Key: string }[] }).Contents ?? []).map((c) => c.Key);
        return keys.find((k) => /^web-1\/(daily|weekly|monthly)\/postgres\/app\/\d{8}T\d{6}Z\.manifest\.json$/.test(k));
      },
      150_000,
      2_000,
    );
    // It was cron that ran it: the crontab line's log in the state dir, written by that run.
    const log = readFileSync(join(stateDir, "backup.log"), "utf8");
    expect(log).not.toMatch(/FAILED/);
    const out = join(tmpdir(), `restorable-cron-manifest-${process.pid}.json`);
    const get = await s3.aws(hostKey, ["s3api", "get-object", "--bucket", BUCKET, "--key", manifest, out]);
    expect(get.code, get.stderr).toBe(0);
    const text = readFileSync(out, "utf8");
    rmSync(out, { force: true });
    const m = JSON.parse(text) as { host: string; database: string; kind: string; tables: { name: string }[] };
    expect(m).toMatchObject({ host: "web-1", database: "app", kind: "postgres" });
    expect(m.tables.map((t) => t.name)).toContain("users");
  });

  it("the installed restore-drill, run over SSH, restores that backup and reports to the bucket", async () => {
    const r = await sshd.ssh(user, `${base}/opt/restore-drill`, "", { timeoutMs: 300_000 });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    const ls = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/drills/", "--output", "json"]);
    const keys = ((JSON.parse(ls.stdout || "{}") as { Contents?: { Key: string }[] }).Contents ?? []).map((c) => c.Key);
    expect(keys.length).toBeGreaterThan(0);
  });

  it("uninstall stops the schedule and leaves only the user's own crontab and nothing on disk", async () => {
    const r = await sshd.ssh(user, plan.uninstall);
    expect(r.code).toBe(0);
    expect(await readCrontab(user)).toBe(USER_LINES);
    expect(readdirSync(base)).toEqual([]);
    expect(existsSync(stateDir)).toBe(false);
    // Backups in the bucket are never touched by uninstall.
    const ls = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/", "--output", "json"]);
    expect(JSON.parse(ls.stdout).Contents.length).toBeGreaterThan(0);
  });
});
