// wal-archiver's fault matrix beyond wal-archiver.test.ts (which has SIGKILL, two archivers, a
// database restart, S3 unreachable and S3 answering 403), against real services: PostgreSQL 15
// (local mode), Ceph radosgw behind a relay the test can cut, the plan's least-privilege host key,
// a local ping server, WAL encrypted with age from the start. Each fault ends with no gap in the
// archive, or with the loud alarm naming the missing segment and then a catch-up with no gap:
//   the bucket missing when the archiver starts (then created),
//   the spool's disk full (a 40 MiB tmpfs as the spool) while S3 is unreachable,
//   a clock jump of every tool the archiver runs (libfaketime: curl signs with the jumped time, so a
//     jump past the store's allowed skew is a refusal; bash's own clock is not reached by it),
//   the run directory a SIGKILLed archiver left, which the next run removes.
// At the end every object decrypts with the age identity and a base backup plus the archive
// recover every committed marker with plain PostgreSQL.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, hostBucketAccess, type BackupEnv } from "../support/backup-env";
import { startPingServer, type PingServer } from "../support/pings";
import { cleanLibpqEnv, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { freePort, run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { tcpRelay } from "../support/tcp-relay";
import { requireTools } from "../support/tools";

const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const tools = requireTools(
  "/usr/lib/postgresql/15/bin/initdb", "pg_receivewal", "pg_basebackup", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws",
  "zstd", "age", "age-keygen", "flock", "curl", "tar", "mount", FAKETIME_LIB,
);

const BUCKET = "wal-faults";
const HOST = "web-1";

interface Archiver {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

describe.skipIf(!tools.ok)("wal-archiver fault matrix against real PostgreSQL and S3, WAL encrypted with age", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let pings: PingServer;
  let net: Awaited<ReturnType<typeof tcpRelay>>;
  let e: BackupEnv;
  let cluster: string;
  let spool: string;
  let identity: string;
  let clockFile: string;
  let mounted = false;
  const archivers: Archiver[] = [];
  const dirs: string[] = [];
  const markers: string[] = [];
  let restoredDir: string | undefined;

  beforeAll(async () => {
    [s3, pg, pings] = await Promise.all([startS3Server(), startPostgres(), startPingServer()]);
    // The host key exists (an IAM user policy), the bucket does not yet.
    const access = await hostBucketAccess(s3, BUCKET, HOST);
    net = await tcpRelay(new URL(s3.endpoint));
    await pg.psql("CREATE DATABASE app");
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "app" });
    const work = mkdtempSync(join(tmpdir(), "rwf-"));
    dirs.push(work);
    identity = join(work, "key.txt");
    await runOk("age-keygen", ["-o", identity]);
    const recipient = readFileSync(identity, "utf8").match(/public key: (age1\S+)/)![1]!;
    clockFile = join(work, "clock");
    writeFileSync(clockFile, "+0\n");
    e = createBackupEnv({
      s3: { ...access, endpoint: net.url },
      pingUrl: pings.url,
      objectives: { rpo: "1m", rto: "1h" },
      pitr: {},
      postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }],
      ageRecipients: [recipient],
      drill: { runtime: "local" },
      extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12, RESTORABLE_RPO_SECONDS: 10 },
    });
    cluster = e.host.pitr!.clusters[0]!.name;
    // The spool on its own small filesystem: room for two 16 MiB segments and a bit.
    spool = join(e.stateDir, "wal", cluster);
    mkdirSync(spool, { recursive: true, mode: 0o700 });
    await runOk("mount", ["-t", "tmpfs", "-o", "size=40m,mode=0700", "restorable-test-spool", spool]);
    mounted = true;
  }, 300_000);

  afterAll(async () => {
    for (const a of archivers) if (a.proc.exitCode === null) a.proc.kill("SIGTERM");
    await Promise.all(archivers.map((a) => Promise.race([a.exited, new Promise((r) => setTimeout(r, 10_000))])));
    for (const pid of receiverPids(spool)) process.kill(pid, "SIGTERM");
    if (restoredDir) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", restoredDir, "-m", "immediate", "-w", "stop"]);
    if (mounted) await run("umount", ["-l", spool]);
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    e?.remove();
    await Promise.allSettled([pg?.stop(), pings?.stop(), net?.stop()]);
    await s3?.stop();
  });

  /** The archiver with every tool it runs on a clock the test can move (clockFile: "+0", "-5m", ...). */
  function start(): Archiver {
    const proc = e.spawn("wal-archiver", [], {
      env: { LD_PRELOAD: FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_CACHE_DURATION: "1", FAKETIME_DONT_FAKE_MONOTONIC: "1", FAKETIME_DISABLE_SHM: "1" },
    });
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    proc.stdout!.resume();
    const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
    const a = { proc, stderr: () => err, exited };
    archivers.push(a);
    return a;
  }

  async function withLog<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- archiver stderr:\n${archivers.map((a) => a.stderr().slice(-4000)).join("\n---\n")}`);
    }
  }

  const walPrefix = () => `${HOST}/wal/${cluster}/`;
  const decrypt = async (b: Buffer) => pipe("bash", ["-o", "pipefail", "-c", `age -d -i '${identity}' | zstd -d -q -c`], b);
  const fetched = new Map<string, Buffer>();
  async function reachesBucket(text: string, timeoutMs = 90_000): Promise<string> {
    return withLog(
      waitFor(
        `"${text}" to reach the bucket`,
        async () => {
          for (const { key } of await e.list(walPrefix())) {
            if (!fetched.has(key)) fetched.set(key, await decrypt(await e.get(key)));
            if (fetched.get(key)!.includes(Buffer.from(text))) return key;
          }
          return undefined;
        },
        timeoutMs,
        500,
      ),
    );
  }

  async function commitMarker(label: string): Promise<string> {
    const note = `marker-${label}-${Date.now()}`;
    await pg.psql(`INSERT INTO marker (note) VALUES ('${note}')`, { database: "app" });
    markers.push(note);
    return note;
  }

  async function expectNoGap(): Promise<void> {
    const names = (await e.list(walPrefix())).map((k) => k.key.slice(walPrefix().length)).filter((n) => /^[0-9A-F]{24}\.zst\.age$/.test(n));
    expect(names.length).toBeGreaterThan(0);
    const nums = names.map((n) => parseInt(n.slice(8, 16), 16) * 256 + parseInt(n.slice(16, 24), 16));
    for (let k = 1; k < nums.length; k++) expect(nums[k]! - nums[k - 1]!, `${names[k - 1]} -> ${names[k]}`).toBe(1);
  }

  const alarms = (a: Archiver) => a.stderr().split("\n").filter((l) => l.includes("FAILED at stage archive"));

  it("the bucket is missing when the archiver starts: the store's answer and the alarm naming the segment; once it exists, it catches up", async () => {
    const a = start();
    await withLog(waitFor("the archiver to start", () => a.stderr().includes("archiving WAL of 1 cluster(s)"), 30_000));
    const during = await commitMarker("no-bucket");
    await withLog(waitFor("the upload error", () => /cannot upload [0-9A-F]{24} yet \(will retry\): .*(NoSuchBucket|HTTP 404)/.test(a.stderr()), 60_000, 500));
    await withLog(waitFor("the alarm", () => alarms(a).some((l) => /[0-9A-F]{24} and later are missing from .*\(upload error, see above\)/.test(l)), 60_000, 500));
    await waitFor("a fail ping", () => pings.of("fail").length > 0, 30_000);
    await s3.createBucket(BUCKET, { versioning: true });
    await reachesBucket(during);
    await withLog(waitFor("caught up", () => a.stderr().includes("caught up: the archive is within the RPO again"), 60_000, 500));
    await expectNoGap();
    // The base backup for the recovery at the end (the bucket exists now).
    const r = await e.run("backup-base", [], { now: "2026-11-29T02:00:00Z" });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
  }, 300_000);

  it("the spool's disk fills while S3 is unreachable: the receiver waits, the alarm names the segment; once S3 is back it drains and catches up, no gap", async () => {
    const a = archivers.at(-1)!;
    const alarmsBefore = alarms(a).length;
    await net.down();
    // Four completed segments' worth of WAL; the 40 MiB spool holds two.
    for (let k = 0; k < 4; k++) {
      await commitMarker(`spool-full-${k}`);
      await pg.psql("SELECT pg_switch_wal()");
      await new Promise((r) => setTimeout(r, 1500));
    }
    await withLog(waitFor("the full spool in the log", () => a.stderr().includes("the spool's disk is full"), 90_000, 500));
    await withLog(waitFor("the alarm", () => alarms(a).length > alarmsBefore && /[0-9A-F]{24} and later are missing/.test(alarms(a).at(-1)!), 90_000, 500));
    // The server keeps the WAL the archive has not received (the slot), bounded by max_slot_wal_keep_size.
    expect(await pg.psql("SELECT wal_status FROM pg_replication_slots")).toMatch(/^(reserved|extended)$/);
    await net.up();
    for (const m of markers) await reachesBucket(m, 120_000);
    await withLog(waitFor("the receiver restarted", () => a.stderr().includes("the spool has room again: restarting the receiver"), 60_000, 500));
    await reachesBucket(await commitMarker("after-spool-full"));
    await expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 400_000);

  it("a clock jump within the store's allowed skew (5 min back, then forward again) changes nothing: commits reach the bucket, no alarm", async () => {
    const a = archivers.at(-1)!;
    await withLog(waitFor("caught up", () => (a.stderr().match(/caught up/g) ?? []).length >= 2, 60_000, 500));
    const before = alarms(a).length;
    const m1 = await commitMarker("clock-back");
    await new Promise((r) => setTimeout(r, 2500)); // a round has seen it waiting
    writeFileSync(clockFile, "-5m\n");
    await reachesBucket(m1, 60_000);
    const m2 = await commitMarker("clock-forward");
    await new Promise((r) => setTimeout(r, 2500));
    writeFileSync(clockFile, "+0\n");
    await reachesBucket(m2, 60_000);
    await new Promise((r) => setTimeout(r, 15_000)); // more than the RPO: a false alarm would show
    expect(alarms(a).slice(before)).toEqual([]);
    await expectNoGap();
  }, 300_000);

  it("a clock jump past the store's allowed skew (+1 h): uploads are refused, loud alarm naming the segment; the clock set right, it catches up", async () => {
    const a = archivers.at(-1)!;
    const before = alarms(a).length;
    writeFileSync(clockFile, "+1h\n");
    await new Promise((r) => setTimeout(r, 1500));
    const during = await commitMarker("clock-skewed");
    await withLog(waitFor("the refusal", () => /cannot upload [0-9A-F]{24} yet \(will retry\): .*(RequestTimeTooSkewed|HTTP 403)/.test(a.stderr()), 90_000, 500));
    await withLog(waitFor("the alarm", () => alarms(a).length > before && /[0-9A-F]{24} and later are missing/.test(alarms(a).at(-1)!), 90_000, 500));
    writeFileSync(clockFile, "+0\n");
    await reachesBucket(during, 90_000);
    await expectNoGap();
  }, 300_000);

  it("SIGKILL leaves the archiver's run directory; the next run removes it and goes on, no gap", async () => {
    const a = archivers.at(-1)!;
    const runDirs = () => readdirSync(e.stateDir).filter((n) => n.startsWith("run.wal-archiver."));
    const left = runDirs();
    expect(left).toHaveLength(1);
    a.proc.kill("SIGKILL");
    await a.exited;
    expect(runDirs()).toEqual(left);
    const b = start();
    await withLog(waitFor("the new archiver to start", () => b.stderr().includes("archiving WAL of"), 60_000));
    expect(b.stderr()).toContain(`removed ${left[0]}, left by a run that ended without cleaning up (pid ${a.proc.pid})`);
    expect(existsSync(join(e.stateDir, left[0]!))).toBe(false);
    expect(runDirs()).toHaveLength(1);
    await reachesBucket(await commitMarker("after-kill"));
    await expectNoGap();
  }, 300_000);

  it("every object decrypts with the age identity; the base backup plus the archive recover every committed marker with plain PostgreSQL", async () => {
    await reachesBucket(markers.at(-1)!);
    const keys = (await e.list(`${HOST}/`)).map((k) => k.key);
    const manifest = keys.find((k) => k.includes("/base/") && k.endsWith(".manifest.json"))!;
    const m = JSON.parse((await e.get(manifest)).toString()) as { object: { key: string } };
    expect(m.object.key).toMatch(/\.tar\.zst\.age$/);
    const base = mkdtempSync(join(tmpdir(), "rwfr-"));
    dirs.push(base);
    chmodSync(base, 0o755);
    const dataDir = join(base, "data");
    const walDir = join(base, "wal");
    mkdirSync(dataDir, { mode: 0o700 });
    mkdirSync(walDir);
    writeFileSync(join(base, "base.tar"), await decrypt(await e.get(m.object.key)));
    await runOk("tar", ["-x", "-C", dataDir, "-f", join(base, "base.tar")]);
    for (const { key } of await e.list(walPrefix())) {
      expect(key).toMatch(/\.zst\.age$/);
      writeFileSync(join(walDir, key.slice(walPrefix().length).replace(/\.zst\.age$/, "")), await decrypt(await e.get(key)));
    }
    writeFileSync(join(dataDir, "recovery.signal"), "");
    writeFileSync(join(dataDir, "postgresql.auto.conf"), `restore_command = 'cp ${walDir}/%f %p'\nmax_slot_wal_keep_size = -1\n`, { flag: "a" });
    await runOk("chown", ["-R", "postgres:postgres", base]);
    chmodSync(dataDir, 0o700);
    const port = await freePort();
    const r = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dataDir, "-l", join(base, "log"), "-o", `-p ${port} -k ${base} -c listen_addresses=''`, "-w", "-t", "120", "start"]);
    if (r.code !== 0) throw new Error(`recovery did not start: ${readFileSync(join(base, "log"), "utf8").slice(-3000)}`);
    restoredDir = dataDir;
    const q = (sql: string) => runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", base, "-p", String(port), "-U", "postgres", "-d", "app", "-c", sql], { env: cleanLibpqEnv() });
    await waitFor("recovery to finish", async () => (await q("SELECT NOT pg_is_in_recovery()")).stdout.trim() === "t", 120_000, 500);
    expect((await q("SELECT note FROM marker ORDER BY id")).stdout.trim().split("\n")).toEqual(markers);
  }, 300_000);
});

/** pids of pg_receivewal processes writing into `dir`. */
function receiverPids(dir: string | undefined): number[] {
  if (!dir) return [];
  const out: number[] = [];
  for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const args = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      if (args[0]?.endsWith("pg_receivewal") && args.includes(dir)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function pipe(cmd: string, args: string[], input: Buffer): Promise<Buffer> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
    p.stdin.end(input);
  });
}
