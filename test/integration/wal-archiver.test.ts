// wal-archiver (continuous WAL archiving for PITR) as rendered, against real services: PostgreSQL
// 15 (local mode), Ceph radosgw behind a TCP relay the test can cut (an S3 outage), the plan's
// least-privilege host key, a local ping server. Committed marker rows must reach the bucket on a
// quiet server (no other writes), through a SIGKILL of the archiver, a second archiver, a database
// restart and an S3 outage (the alarm names the missing segment and pings /fail; then it catches
// up), the archive must have no gap, and a base backup plus the archived WAL must recover every
// marker with plain PostgreSQL.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostBucketAccess, type BackupEnv, type BucketAccess } from "../support/backup-env";
import { startPingServer, type PingServer } from "../support/pings";
import { cleanLibpqEnv, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { freePort, run, runOk, waitFor } from "../support/proc";
import { localArchiverEnv, receiverPids, walArchive, type WalArchive } from "../support/wal-archive";
import { tcpRelay as relay } from "../support/tcp-relay";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_receivewal", "pg_basebackup", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws", "zstd", "flock", "curl", "tar", "promtool");

const BUCKET = "wal-archive";
const HOST = "web-1";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe.skipIf(!tools.ok)("wal-archiver against real PostgreSQL and S3", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let pings: PingServer;
  let access: BucketAccess;
  let net: Awaited<ReturnType<typeof relay>>;
  let e: BackupEnv;
  let w: WalArchive;
  const dirs: string[] = [];
  let restoredDir: string | undefined;
  let cluster: string;
  let textfileDir: string;
  const markers: string[] = [];

  beforeAll(async () => {
    [s3, pg, pings] = await Promise.all([startS3Server(), startPostgres(), startPingServer()]);
    await s3.createBucket(BUCKET, { versioning: true });
    access = await hostBucketAccess(s3, BUCKET, HOST);
    net = await relay(new URL(s3.endpoint));
    await pg.psql("CREATE DATABASE app");
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL, at timestamptz DEFAULT now())", { database: "app" });
    textfileDir = mkdtempSync(join(tmpdir(), "rwa-textfile-"));
    dirs.push(textfileDir);
    e = localArchiverEnv({ s3: { ...access, endpoint: net.url }, port: pg.port, pingUrl: pings.url, textfileDir });
    cluster = e.host.pitr!.clusters[0]!.name;
    w = walArchive(e, walPrefix);
  }, 300_000);

  afterAll(async () => {
    await w?.stopAll();
    // The last archiver stopped its receiver on TERM; a receiver still writing into this test's
    // state dir (an archiver that never got the TERM) is stopped by its pid.
    for (const pid of receiverPids(e?.stateDir)) process.kill(pid, "SIGTERM");
    if (restoredDir) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", restoredDir, "-m", "immediate", "-w", "stop"]);
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    e?.remove();
    await Promise.allSettled([pg?.stop(), pings?.stop(), net?.stop()]);
    await s3?.stop();
  });

  const walPrefix = () => `${HOST}/wal/${cluster}/`;

  /** The archiver's gauges for the cluster in the node_exporter textfile (checked by promtool). */
  async function unarchivedGauge(): Promise<{ age: number; checkedAt: number }> {
    const text = readFileSync(join(textfileDir, "restorable.prom"), "utf8");
    const check = await run("promtool", ["check", "metrics"], { input: text });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const l = `{host="${HOST}",cluster="${cluster}"} `;
    const value = (name: string) => {
      const line = text.split("\n").find((x) => x.startsWith(name + l));
      expect(line, text).toBeDefined();
      return Number(line!.slice(name.length + l.length));
    };
    return { age: value("restorable_wal_archive_unarchived_seconds"), checkedAt: value("restorable_wal_archive_check_timestamp_seconds") };
  }

  async function commitMarker(label: string): Promise<string> {
    const note = `marker-${label}-${Date.now()}`;
    await pg.psql(`INSERT INTO marker (note) VALUES ('${note}')`, { database: "app" });
    markers.push(note);
    return note;
  }

  it("takes a base backup first (for the recovery at the end)", async () => {
    const r = await e.run("backup-base", [], { now: "2026-11-29T02:00:00Z" });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
  }, 120_000);

  it("a committed marker row on a quiet server reaches the bucket, each object carries its sha256, and the server's WAL is bounded", async () => {
    const a = await w.startReady();
    expect(a.stderr()).toMatch(/setting max_slot_wal_keep_size = 4096MB/);
    expect(await pg.psql("SHOW max_slot_wal_keep_size")).toBe("4GB");
    expect(await pg.psql("SELECT slot_name || ' ' || slot_type FROM pg_replication_slots")).toBe(`restorable_${cluster.replace(/[^a-z0-9_]+/g, "_")} physical`);
    const note = await commitMarker("quiet");
    const key = await w.reachesBucket(note);
    // The object is verifiable: its sha256 is in its metadata.
    const head = await e.aws(["s3api", "head-object", "--bucket", BUCKET, "--key", key]);
    expect(JSON.parse(head.stdout).Metadata.sha256).toBe(sha256(await e.get(key)));
    expect(a.proc.exitCode).toBeNull();
    // Idle (no transaction): no more forced switches (each would cost the server a 16 MB segment),
    // though the archiver runs several rounds and the server writes its running-xacts records.
    const segment = async () => parseInt((await pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")).slice(8), 16);
    const before = await segment();
    await new Promise((r) => setTimeout(r, 15_000));
    expect((await segment()) - before).toBeLessThanOrEqual(1);
    // ... and idle is not an alarm: nothing committed waits.
    expect(a.stderr()).not.toMatch(/FAILED/);
    // A second archiver for the same host exits at once and quietly.
    const second = w.start();
    expect(await second.exited).toBe(0);
    expect(second.stderr()).toBe("");
    expect(a.proc.exitCode).toBeNull();
  }, 180_000);

  it("SIGKILL mid-stream: the next archiver stops the orphaned receiver and goes on without a gap", async () => {
    const a = w.archivers[0]!;
    await commitMarker("before-kill");
    a.proc.kill("SIGKILL");
    await a.exited;
    const b = w.start();
    await waitFor("the new archiver to start", () => b.stderr().includes("archiving WAL of"), 30_000);
    expect(b.stderr()).toMatch(/stopping the receiver \(pid \d+\) a previous archiver left running/);
    // Exactly one receiver from now on (the new archiver's own).
    await waitFor("the new receiver", () => receiverPids(e.stateDir).length === 1, 30_000);
    await w.reachesBucket(markers.at(-1)!);
    await w.reachesBucket(await commitMarker("after-kill"));
    await w.expectNoGap();
  }, 180_000);

  it("a database restart: the receiver comes back, no gap", async () => {
    const b = w.archivers.at(-1)!;
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", pg.dataDir, "-l", pg.logFile, "-m", "fast", "-w", "-t", "60", "restart"], { cwd: "/" });
    await w.withLog(waitFor("the receiver to be restarted", () => /pg_receivewal exited .*restarting it/.test(b.stderr()), 60_000));
    await w.reachesBucket(await commitMarker("after-restart"));
    await w.expectNoGap();
  }, 180_000);

  it("S3 unreachable for a while: loud alarm naming the missing segment, fail ping; then it catches up, no gap", async () => {
    const b = w.archivers.at(-1)!;
    const failsBefore = pings.of("fail").length;
    await net.down();
    const during = await commitMarker("during-outage");
    await waitFor("the alarm", () => /FAILED at stage archive: cluster .*WAL older than the RPO .* is not off-site: [0-9A-F]{24} and later are missing/.test(b.stderr()), 90_000, 500);
    await waitFor("a fail ping", () => pings.of("fail").length > failsBefore, 30_000);
    expect(pings.of("fail").at(-1)!.body).toMatch(/is not off-site/);
    // The textfile gauge says what the alarm says (written when the alarm starts), and promtool takes it.
    // (The archiver writes the textfile after the round that raised the alarm, so just after its
    // ping it may still hold the round before: wait for it.)
    const gauge = await waitFor("the gauge to carry the alarm's age", async () => {
      const g = await unarchivedGauge();
      return g.age > 10 ? g : undefined;
    }, 30_000, 200);
    expect(Math.abs(gauge.checkedAt - Date.now() / 1000)).toBeLessThan(60);
    await net.up();
    await w.reachesBucket(during, 90_000);
    await waitFor("caught up", () => b.stderr().includes("caught up: the archive is within the RPO again"), 60_000);
    await waitFor("the gauge back within the RPO", async () => (await unarchivedGauge()).age <= 10, 60_000, 500);
    await w.reachesBucket(await commitMarker("after-outage"));
    await w.expectNoGap();
    expect(b.proc.exitCode).toBeNull();
  }, 300_000);

  it("S3 answering 403 (a bucket policy denies the upload): loud alarm with the store's answer; then it catches up, no gap", async () => {
    const b = w.archivers.at(-1)!;
    const alarms = () => (b.stderr().match(/FAILED at stage archive/g) ?? []).length;
    const before = alarms();
    const deny = { Version: "2012-10-17", Statement: [{ Effect: "Deny", Principal: { AWS: [`arn:aws:iam:::user/${HOST}`] }, Action: ["s3:PutObject"], Resource: [`arn:aws:s3:::${BUCKET}/*`] }] };
    const put = await s3.aws(s3.admin, ["s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", JSON.stringify(deny)]);
    expect(put.code, put.stderr).toBe(0);
    try {
      const during = await commitMarker("during-403");
      await w.withLog(waitFor("the 403 in the log", () => /cannot upload [0-9A-F]{24} yet \(will retry\): HTTP 403/.test(b.stderr()), 60_000, 500));
      await w.withLog(waitFor("a new alarm", () => alarms() > before, 60_000, 500));
      expect(b.stderr().split("\n").filter((l) => l.includes("FAILED at stage archive")).at(-1)).toMatch(/[0-9A-F]{24} and later are missing .*\(upload error, see above\)/);
      const del = await s3.aws(s3.admin, ["s3api", "delete-bucket-policy", "--bucket", BUCKET]);
      expect(del.code, del.stderr).toBe(0);
      await w.reachesBucket(during, 90_000);
    } finally {
      await s3.aws(s3.admin, ["s3api", "delete-bucket-policy", "--bucket", BUCKET]);
    }
    await w.expectNoGap();
    expect(b.proc.exitCode).toBeNull();
  }, 300_000);

  it("the base backup plus the archived WAL recover every committed marker with plain PostgreSQL", async () => {
    await w.reachesBucket(markers.at(-1)!);
    const keys = (await e.list(`${HOST}/`)).map((k) => k.key).filter((k) => k.includes("/base/"));
    const m = JSON.parse((await e.get(keys.find((k) => k.endsWith(".manifest.json"))!)).toString()) as { object: { key: string } };
    const base = mkdtempSync(join(tmpdir(), "rpitr-"));
    dirs.push(base);
    chmodSync(base, 0o755);
    const dataDir = join(base, "data");
    const walDir = join(base, "wal");
    mkdirSync(dataDir, { mode: 0o700 });
    mkdirSync(walDir);
    writeFileSync(join(base, "base.tar.zst"), await e.get(m.object.key));
    await runOk("bash", ["-o", "pipefail", "-c", `zstd -d -q -c ${base}/base.tar.zst | tar -x -C ${dataDir}`]);
    for (const [name, bytes] of await w.objects()) writeFileSync(join(walDir, name), bytes);
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
    const got = (await q("SELECT note FROM marker ORDER BY id")).stdout.trim().split("\n");
    expect(got).toEqual(markers);
  }, 300_000);

  it("the drill's RPO check uses the archive: a day-old dump passes while the archiver runs, and fails once it has stopped", async () => {
    const b = w.archivers.at(-1)!;
    expect(b.proc.exitCode).toBeNull();
    const dump = await e.run("backup", [], { now: new Date().toISOString().replace(/\.\d+Z$/, "Z") });
    expect(dump.code).toBe(0);
    // The drill's clock a day later: the dump alone would be 1d old against an RPO of 10 s.
    const later = new Date(Date.now() + 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
    const ok = await e.run("restore-drill", [], { now: later });
    expect(ok.stderr).toMatch(/app: RPO from the WAL archive: committed WAL of app \(cluster .*\) has waited \d+s to go off-site/);
    expect(ok.code, ok.stderr.slice(-2000)).toBe(0);
    b.proc.kill("SIGTERM");
    expect(await b.exited).toBe(0);
    expect(b.stderr()).toMatch(/stopped by signal TERM/);
    expect(receiverPids(e.stateDir)).toEqual([]);
    // Two shipping periods (2 x 12 s) without a round: the archive no longer vouches for the RPO.
    const status = join(e.stateDir, "wal", `${cluster}.status`);
    const lastRound = Number(readFileSync(status, "utf8").split(" ")[0]);
    await waitFor("two shipping periods without a round", () => Date.now() / 1000 - lastRound > 2 * 12 + 1, 60_000, 500);
    const stale = await e.run("restore-drill", [], { now: later });
    expect(stale.code).not.toBe(0);
    // (the merged drill reports the roles item first; the database's reason is in the log)
    expect(stale.stderr).toMatch(/FAILED at stage rpo: /);
    expect(stale.stderr).toMatch(/app: the WAL archiver of cluster .* last ran \d+s ago: up to \d+s of app may not be off-site, more than the RPO objective/);
  }, 300_000);

  it("pitr-uninstall (pulumi destroy) stops the archiver and its receiver and drops the slot", async () => {
    const a = w.start();
    await w.withLog(waitFor("the archiver and its receiver", () => a.stderr().includes("archiving WAL of") && receiverPids(e.stateDir).length === 1, 30_000));
    expect(await pg.psql("SELECT count(*) FROM pg_replication_slots")).toBe("1");
    const r = await e.run("pitr-uninstall");
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(await a.exited).toBe(0);
    expect(receiverPids(e.stateDir)).toEqual([]);
    expect(await pg.psql("SELECT count(*) FROM pg_replication_slots")).toBe("0");
    // Idempotent: again, with nothing left to do.
    expect((await e.run("pitr-uninstall")).code).toBe(0);
  }, 120_000);
});
