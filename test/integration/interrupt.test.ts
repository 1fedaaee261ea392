/**
 * A TERM to a running job, for real (PostgreSQL 15, Ceph radosgw, the AWS CLI): restore and backup
 * share one set of handlers (scripts/lib.sh, restorable_traps), so both stop at once, tear down
 * every process they started and their temp/run dir, and end the same way: exit 1 (a failed
 * stage, the exit-code contract) with the one failure line "FAILED at stage <stage>: interrupted
 * by SIGTERM", and /fail pinged once by a job that pings. The drill's throwaway (cluster,
 * containers, volumes) is covered the same way in drill.test.ts, restore-docker.test.ts and
 * drill-volumes.test.ts.
 *
 * The job is caught mid-stage without timing: a test session holds a table lock, so pg_dump (or
 * pg_restore) waits in the middle of its stream until the test sends TERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, type BackupEnv } from "../support/backup-env";
import { follow, processesMentioning } from "../support/drill-fixtures";
import { startPingServer, type PingServer } from "../support/pings";
import { cleanLibpqEnv, loadSampleData, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { descendants, processAlive, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(`${PG_BIN}/initdb`, `${PG_BIN}/psql`, "pg_dump", "pg_restore", "pgbench", "radosgw", "/usr/bin/aws", "zstd", "flock", "curl", "jq");

const HOST = "web-1";
const BUCKET = "interrupt";

/** A session that holds `lockSql` (in an open transaction) until release(). */
async function holdLock(pg: PgCluster, database: string, lockSql: string): Promise<{ release(): Promise<void> }> {
  const p = spawn(`${PG_BIN}/psql`, ["-XAtq", "-v", "ON_ERROR_STOP=1", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-d", database], {
    env: cleanLibpqEnv(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  p.stdout.on("data", (b: Buffer) => (out += b.toString()));
  p.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const closed = new Promise<void>((resolve) => p.on("close", () => resolve()));
  p.stdin.write(`BEGIN;\n${lockSql};\nSELECT 'locked';\n`);
  await waitFor(`the lock (${lockSql})`, () => {
    if (p.exitCode !== null) throw new Error(`psql ended: ${err}`);
    return out.includes("locked");
  }, 30_000);
  return {
    async release() {
      p.stdin.end("ROLLBACK;\n");
      await closed;
    },
  };
}

/**
 * TERM a job caught mid-stage (its processes must include `running`) and check how it ended:
 * exit 1, the failure line matching `line` last on stderr, every process it had started gone.
 * Returns the failure line.
 */
async function terminate(child: ChildProcess, job: ReturnType<typeof follow>, running: string[], line: RegExp): Promise<string> {
  const started = descendants(child.pid!);
  expect(started.map((p) => p.comm)).toEqual(expect.arrayContaining(running));
  child.kill("SIGTERM");
  expect(await job.exited).toBe(1);
  const failed = failedLine(job);
  expect(failed).toMatch(line);
  expect(job.stderr.trimEnd().split("\n").pop()).toBe(failed);
  for (const p of started) expect(processAlive(p.pid), `${p.comm} (${p.pid}) outlived the job`).toBe(false);
  return failed;
}

/** The reason of a failure line ("interrupted by SIGTERM"). */
const reasonOf = (line: string) => line.replace(/^.* FAILED at stage [a-z-]+: /, "");

describe.skipIf(!tools.ok)("TERM during restore and during backup", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let pings: PingServer;
  let env: BackupEnv;
  const target = () => `local:${pg.socketDir}:${pg.port}`;
  /** Sessions of `app` (pg_dump, pg_restore) waiting for a lock. */
  const waiting = (app: string) => pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE application_name = '${app}' AND wait_event_type = 'Lock'`);

  beforeAll(async () => {
    [s3, pg, pings] = await Promise.all([startS3Server(), startPostgres(), startPingServer()]);
    await Promise.all([loadSampleData(pg, "app"), s3.createBucket(BUCKET, { versioning: true })]);
    env = createBackupEnv({
      host: HOST,
      s3: { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin },
      pingUrl: pings.url,
      postgres: [{ via: "local", host: pg.socketDir, port: pg.port, user: "postgres", database: "app" }],
    });
  });

  afterAll(async () => {
    env?.remove();
    await Promise.allSettled([pings?.stop(), pg?.stop(), s3?.stop()]);
  });

  const lines: string[] = [];

  it("restore: TERM while pg_restore runs stops it, removes the temp dir, leaves the target as it was; exit 1, one failure line", async () => {
    const b = await env.run("backup", [], { now: "2026-11-24T03:00:00Z" });
    expect(b.code, b.stderr).toBe(0);
    const first = await env.run("restore", ["--database", "app", "--target", target(), "--target-database", "copy"]);
    expect(first.code, first.stderr).toBe(0);
    const users = await pg.psql("SELECT count(*) FROM public.users", { database: "copy" });
    const tables = await pg.psql("SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables WHERE schemaname = 'public'", { database: "copy" });
    // --force drops the backup's objects first: it waits for this session's lock.
    const lock = await holdLock(pg, "copy", `LOCK TABLE ${tables} IN ACCESS SHARE MODE`);
    try {
      const child = env.spawn("restore", ["--database", "app", "--target", target(), "--target-database", "copy", "--force"]);
      const restoring = follow(child);
      await waitFor("pg_restore waiting for the lock", async () => (await waiting("pg_restore")) !== "0", 120_000, 200);
      expect(processesMentioning(env.tmpDir).length).toBeGreaterThan(0);
      lines.push(await terminate(child, restoring, ["pg_restore"], /restorable restore: FAILED at stage restore: interrupted by SIGTERM$/));
      expect(processesMentioning(env.tmpDir)).toEqual([]);
      expect(env.leftovers()).toEqual([]);
    } finally {
      await lock.release();
    }
    // All or nothing: the interrupted transaction changed nothing.
    expect(await pg.psql("SELECT count(*) FROM public.users", { database: "copy" })).toBe(users);
  });

  it("backup: TERM while pg_dump streams stops the pipe, removes the run dir, uploads no manifest; exit 1, the same wording, /fail once", async () => {
    const lock = await holdLock(pg, "app", "LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE");
    const before = pings.pings.length;
    try {
      const child = env.spawn("backup", [], { now: "2026-11-25T03:00:00Z" });
      const backingUp = follow(child);
      await waitFor("pg_dump waiting for the lock", async () => (await waiting("pg_dump")) !== "0", 120_000, 200);
      lines.push(await terminate(child, backingUp, ["pg_dump", "zstd", "aws"], /restorable backup: FAILED at stage dump: interrupted by SIGTERM$/));
      expect(env.leftovers()).toEqual([]);
    } finally {
      await lock.release();
    }
    const fail = await pings.waitFor("fail", 10_000, before);
    expect(fail.body).toContain("FAILED at stage dump: interrupted by SIGTERM");
    const mine = pings.pings.slice(before).map((p) => p.kind);
    expect(mine.filter((k) => k === "fail")).toHaveLength(1);
    expect(mine).not.toContain("success");
    const keys = (await env.list(`${HOST}/`)).map((k) => k.key);
    expect(keys.filter((k) => k.includes("/postgres/app/20261125T030000Z"))).toEqual([]);
    // One wording for both jobs.
    expect(lines.map(reasonOf)).toEqual(["interrupted by SIGTERM", "interrupted by SIGTERM"]);
  });
});
