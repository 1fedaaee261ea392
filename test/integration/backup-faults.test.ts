// The backup's fault matrix, against real services. Every failure: a non-zero exit, the contract's
// one-line reason naming the stage, the fail ping (with the reason) received, no manifest for the
// failed run, nothing earlier lost, and no run directory left behind.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostIamPolicy } from "../../infra/plan";
import { createBackupEnv, failedLine, hostBucketAccess, type BackupEnv, type BackupEnvOptions, type BucketAccess } from "../support/backup-env";
import { startPingServer, type PingServer } from "../support/pings";
import { loadSampleData, startPostgres, type PgCluster } from "../support/postgres";
import { descendants, freePort, procInfo, run, waitFor, type RunResult } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_dump", "pgbench", "radosgw", "radosgw-admin", "/usr/bin/aws", "zstd", "flock", "curl");

const BUCKET = "faults";
const HOST = "web-1";
const BASELINE_NOW = "2026-11-24T01:00:00Z";

// ---- processes of a running backup ----------------------------------------------------------

function bytesWritten(pid: number): number {
  try {
    const m = /^wchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function collect(child: ChildProcess): Promise<RunResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on("data", (d: Buffer) => out.push(d));
  child.stderr!.on("data", (d: Buffer) => err.push(d));
  return new Promise((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })),
  );
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
};

/**
 * Start a backup, freeze the database's uploader as soon as it exists (so the pipe fills and the
 * dump is genuinely mid-stream), SIGKILL the database pipeline's `victim` once it has written
 * data, then let the uploader go on. (The roles' pipeline runs alongside in a background job of
 * the script, one level further down; its processes are left alone.)
 */
async function killMidStream(e: BackupEnv, now: string, victim: "pg_dump" | "zstd"): Promise<RunResult> {
  const child = e.spawn("backup", [], { now });
  const result = collect(child);
  const aws = await waitFor(
    "the uploader (aws s3 cp)",
    () => descendants(child.pid!).find((p) => p.comm === "aws" && cmdline(p.pid).includes("\0cp\0-\0") && cmdline(p.pid).includes("/postgres/app/")),
    60_000,
    5,
  );
  process.kill(aws.pid, "SIGSTOP");
  try {
    const target = await waitFor(
      `${victim} mid-stream`,
      // zstd: the database pipeline's is forked by the stream's child of the script's main shell
      // (the roles' one level further down, in the roles' job); pg_dump is the database pipeline's
      // only (the roles use pg_dumpall).
      () => descendants(child.pid!).find((p) => p.comm === victim && (victim === "pg_dump" || procInfo(p.ppid)?.ppid === child.pid) && bytesWritten(p.pid) > 64 * 1024),
      60_000,
      10,
    );
    // Still running (blocked on the full pipe) when killed: the dump is incomplete.
    expect(procInfo(target.pid)?.state).not.toBe("Z");
    process.kill(target.pid, "SIGKILL");
  } finally {
    process.kill(aws.pid, "SIGCONT");
  }
  return result;
}

describe.skipIf(!tools.ok)("backup fault matrix", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let pings: PingServer;
  let access: BucketAccess;
  let baseline: { key: string; size: number }[] = [];
  const envs: BackupEnv[] = [];
  const holders: ChildProcess[] = [];
  const PASSWORD = "app-pw-ÿ'\"$x";

  beforeAll(async () => {
    [s3, pg, pings] = await Promise.all([startS3Server(), startPostgres({ auth: "scram" }), startPingServer()]);
    await Promise.all([loadSampleData(pg, "app", { pgbenchScale: 2 }), s3.createBucket(BUCKET, { versioning: true })]);
    await pg.psql(`CREATE ROLE backup LOGIN SUPERUSER PASSWORD '${PASSWORD.replace(/'/g, "''")}'`);
    access = await hostBucketAccess(s3, BUCKET, HOST);

    // A good backup first: every fault below must leave it alone. It is November's restore point
    // (monthly) of the database and the roles, so the runs after it this week are daily.
    const e = newEnv();
    const ok = await e.run("backup", [], { now: BASELINE_NOW });
    if (ok.code !== 0) throw new Error(`baseline backup failed:\n${ok.stderr}`);
    baseline = await e.list(`${HOST}/`);
    expect(baseline.filter((k) => k.key.endsWith(".manifest.json"))).toHaveLength(2);
  });

  afterAll(async () => {
    for (const h of holders) if (h.exitCode === null) h.kill("SIGKILL");
    for (const e of envs) e.remove();
    await Promise.allSettled([pings?.stop(), pg?.stop()]);
    await s3?.stop();
  });

  function newEnv(o: Partial<BackupEnvOptions> = {}): BackupEnv {
    const e = createBackupEnv({
      s3: access,
      pingUrl: pings.url,
      postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, user: "backup", database: "app" }],
      pgPasswords: { app: PASSWORD },
      ...o,
    });
    envs.push(e);
    return e;
  }

  /**
   * Everything the fault matrix promises about a failed run. `failed` narrows "no manifest" to the
   * backup that failed (e.g. "postgres/app/"): the roles are a separate backup of the same run and
   * may well have succeeded. By default no manifest of the run may exist at all.
   */
  async function expectFailed(e: BackupEnv, r: RunResult, now: string, pingsBefore: number, stage: string, reason: RegExp, exitCode?: number, failed = ""): Promise<void> {
    const line = failedLine(r);
    expect(line, r.stderr).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ restorable backup: FAILED at stage ${stage}: `));
    expect(line, r.stderr).toMatch(reason);
    expect(r.code).not.toBe(0);
    if (exitCode !== undefined) expect(r.code).toBe(exitCode);
    // The last stderr line is the reason.
    expect(r.stderr.trimEnd().split("\n").pop()).toBe(line);
    const fail = await pings.waitFor("fail", 10_000, pingsBefore);
    expect(fail.body).toContain(`FAILED at stage ${stage}`);
    expect(pings.pings.slice(pingsBefore).filter((p) => p.kind === "success")).toEqual([]);
    const stamp = now.replace(/[-:]/g, "").replace(/\.\d+/, "");
    const all = await listAll();
    expect(all.filter((k) => k.key.includes(`${failed}${stamp}`) && k.key.endsWith(".manifest.json"))).toEqual([]);
    for (const b of baseline) expect(all).toContainEqual(b);
    expect(e.leftovers()).toEqual([]);
  }

  async function listAll(): Promise<{ key: string; size: number }[]> {
    const r = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--output", "json"]);
    const j = JSON.parse(r.stdout || "{}") as { Contents?: { Key: string; Size: number }[] };
    return (j.Contents ?? []).map((c) => ({ key: c.Key, size: c.Size }));
  }

  it("database unreachable", async () => {
    const e = newEnv({ postgres: [{ via: "local", host: "127.0.0.1", port: await freePort(), user: "backup", database: "app" }] });
    const before = pings.pings.length;
    const now = "2026-11-24T02:01:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "connect", /database app: .*(Connection refused|could not connect)/, 1);
  });

  it("wrong password", async () => {
    const e = newEnv({ pgPasswords: { app: "not-the-password" } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:02:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "connect", /database app: .*password authentication failed for user "backup"/, 1);
    expect(r.stderr).not.toContain("not-the-password");
  });

  for (const { name, now, victim, stage, reason } of [
    { name: "pg_dump killed mid-stream", now: "2026-11-24T02:03:00Z", victim: "pg_dump", stage: "dump", reason: /database app: pg_dump was killed by signal KILL/ },
    { name: "compressor failure", now: "2026-11-24T02:04:00Z", victim: "zstd", stage: "compress", reason: /database app: zstd was killed by signal KILL/ },
  ] as const) {
    it(name, async () => {
      const e = newEnv();
      const before = pings.pings.length;
      const r = await killMidStream(e, now, victim);
      await expectFailed(e, r, now, before, stage, reason, 1, "postgres/app/");
    });
  }

  it("S3 unreachable", async () => {
    const e = newEnv({ extraConf: { RESTORABLE_ENDPOINT: `http://127.0.0.1:${await freePort()}` } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:05:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "preflight", /cannot list s3:\/\/faults\/web-1\/monthly\/ at http:\/\/127\.0\.0\.1:\d+ \(the listing decides the tier\): curl: \(7\) Failed to connect/, 1);
  });

  it("wrong key (403)", async () => {
    const e = newEnv({ s3: { ...access, creds: { accessKeyId: access.creds.accessKeyId, secretAccessKey: "wrong-secret-key-0123456789" } } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:06:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "preflight", /HTTP 403 SignatureDoesNotMatch/, 1);
    expect(r.stderr).not.toContain("wrong-secret-key");
  });

  it("missing bucket", async () => {
    const e = newEnv({ s3: { ...access, bucket: "no-such-bucket" } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:07:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "preflight", /HTTP 404 NoSuchBucket/, 1);
  });

  it("upload refused (403 on PutObject while listing is allowed)", async () => {
    const uid = "web-1-readonly";
    const creds = await s3.createUser(uid);
    const policy = hostIamPolicy(BUCKET, HOST);
    policy.Statement = policy.Statement.map((st) => (st.Sid === "ReadWriteOwnPrefix" ? { ...st, Action: st.Action.filter((a) => a !== "s3:PutObject") } : st));
    const p = await s3.aws(s3.admin, ["iam", "put-user-policy", "--user-name", uid, "--policy-name", "readonly", "--policy-document", JSON.stringify(policy)]);
    expect(p.code, p.stderr).toBe(0);
    const e = newEnv({ s3: { ...access, creds } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:08:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "upload", /database app: aws s3 cp exited with status 1: upload failed: - to s3:\/\/faults\/web-1\/daily\/postgres\/app\/20261124T020800Z\.dump\.zst .*(AccessDenied|403|Forbidden|error without a message)/, 1, "postgres/app/");
  });

  it("upload not verifiable (403 on HEAD: the key may write but not read back): no manifest", async () => {
    const uid = "web-1-writeonly";
    const creds = await s3.createUser(uid);
    const policy = hostIamPolicy(BUCKET, HOST);
    // An explicit deny: RGW (like S3 ACLs) would otherwise let the uploader read what it owns.
    const own = policy.Statement.find((st) => st.Sid === "ReadWriteOwnPrefix")!;
    policy.Statement.push({ ...own, Sid: "NoReadBack", Effect: "Deny", Action: ["s3:GetObject"] });
    const p = await s3.aws(s3.admin, ["iam", "put-user-policy", "--user-name", uid, "--policy-name", "writeonly", "--policy-document", JSON.stringify(policy)]);
    expect(p.code, p.stderr).toBe(0);
    const e = newEnv({ s3: { ...access, creds } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:14:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "upload", /database app: cannot read back the size of s3:\/\/faults\/web-1\/daily\/postgres\/app\/20261124T021400Z\.dump\.zst: HTTP 403/, 1);
  });

  it("a second run while one holds the lock", async () => {
    const e = newEnv();
    mkdirSync(e.stateDir, { recursive: true, mode: 0o700 });
    const holder = spawn("flock", ["--no-fork", join(e.stateDir, "backup.lock"), "sleep", "120"], { stdio: "ignore" });
    holders.push(holder);
    try {
      await waitFor("the lock to be held", async () => {
        const r = await run("flock", ["-n", join(e.stateDir, "backup.lock"), "true"]);
        return r.code !== 0;
      });
      const before = pings.pings.length;
      const now = "2026-11-24T02:09:00Z";
      const r = await e.run("backup", [], { now });
      await expectFailed(e, r, now, before, "lock", /another backup run holds .*backup\.lock/, 3);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("missing credentials file", async () => {
    const e = newEnv();
    e.writeCredentials(null);
    const before = pings.pings.length;
    const now = "2026-11-24T02:10:00Z";
    const r = await e.run("backup", [], { now });
    await expectFailed(e, r, now, before, "credentials", /credentials file .*credentials is missing/, 2);
  });

  it("with a curl too old to sign S3 requests, the AWS CLI does the small requests: same results, same reasons", async () => {
    const ok = newEnv({ extraConf: { RESTORABLE_S3_SMALL_CLIENT: "aws" } });
    const r = await ok.run("backup", [], { now: "2026-11-24T02:12:00Z" });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    const keys = (await listAll()).map((k) => k.key);
    expect(keys).toEqual(expect.arrayContaining([`${HOST}/daily/postgres/app/20261124T021200Z.manifest.json`, `${HOST}/daily/globals/20261124T021200Z.manifest.json`]));
    const bad = newEnv({ s3: { ...access, bucket: "no-such-bucket" }, extraConf: { RESTORABLE_S3_SMALL_CLIENT: "aws" } });
    const before = pings.pings.length;
    const now = "2026-11-24T02:13:00Z";
    const r2 = await bad.run("backup", [], { now });
    await expectFailed(bad, r2, now, before, "preflight", /HTTP 404 NoSuchBucket/, 1);
  });

  it("a failing database does not stop the next one, and the run still fails naming it", async () => {
    const e = newEnv({
      postgres: [
        { via: "local", host: "127.0.0.1", port: pg.port, user: "backup", database: "nope" },
        { via: "local", host: "127.0.0.1", port: pg.port, user: "backup", database: "app" },
      ],
      pgPasswords: { nope: PASSWORD, app: PASSWORD },
    });
    const before = pings.pings.length;
    const now = "2026-11-24T02:11:00Z";
    const r = await e.run("backup", [], { now });
    expect(r.code).toBe(1);
    expect(failedLine(r)).toMatch(/FAILED at stage connect: database nope: .*database "nope" does not exist/);
    await pings.waitFor("fail", 10_000, before);
    const keys = (await listAll()).map((k) => k.key);
    expect(keys).toContain(`${HOST}/daily/postgres/app/20261124T021100Z.manifest.json`);
    expect(keys.filter((k) => k.includes("/nope/"))).toEqual([]);
  });
});
