// wal-archiver under wall-clock jumps, against real services: PostgreSQL 15 (local mode), Ceph
// radosgw behind a TCP relay the test can cut, a local ping server. The archiver and everything it
// starts (pg_receivewal, psql, curl, zstd, stat, date, sleep) run with libfaketime preloaded
// (test/support/fake-clock.ts): the test moves their wall clock while they run, the kernel's
// monotonic clock, /proc/uptime and the files' mtimes stay true, as in a real jump (NTP stepping
// a wrong clock, a bad RTC after a reboot, an operator's `date -s`). Each jump must end with no
// gap in the archive, or with a loud failure that names the missing segment: never a silent gap.
//   - back 10 minutes during an S3 outage: the alarm still comes (it is not pushed 10 minutes
//     away, nor lifted by the jump), names the segment, pings /fail; every marker arrives after;
//   - forward 10 minutes on a busy, healthy archive: no false alarm, the status file does not
//     claim WAL waited 10 minutes, every marker arrives;
//   - 30 minutes ahead, past the store's tolerance for a request's date (SigV4, 15 minutes): the
//     store refuses the uploads (RequestTimeTooSkewed), a loud alarm names the segment and the
//     store's answer; with the clock put right it catches up, no gap.
// 10 minutes stays inside the store's tolerance on purpose: those jumps test the archiver's own
// clocks, the third one the store's answer.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostBucketAccess, type BackupEnv } from "../support/backup-env";
import { LIBFAKETIME, startFakeClock, type FakeClock } from "../support/fake-clock";
import { startPingServer, type PingServer } from "../support/pings";
import { startPostgres, type PgCluster } from "../support/postgres";
import { runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { tcpRelay, type TcpRelay } from "../support/tcp-relay";
import { requireTools } from "../support/tools";
import { localArchiverEnv, walArchive, type Archiver, type WalArchive } from "../support/wal-archive";

const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_receivewal", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws", "zstd", "flock", "curl", LIBFAKETIME);

const BUCKET = "wal-clock";
const HOST = "web-1";
const RPO = 10; // localArchiverEnv's test RPO (seconds)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realNow = () => Date.now() / 1000;

describe.skipIf(!tools.ok)("wal-archiver under wall-clock jumps", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let pings: PingServer;
  let net: TcpRelay;
  let clock: FakeClock;
  let e: BackupEnv;
  let w: WalArchive;
  let cluster: string;
  let n = 0;
  const walPrefix = () => `${HOST}/wal/${cluster}/`;

  beforeAll(async () => {
    [s3, pg, pings] = await Promise.all([startS3Server(), startPostgres(), startPingServer()]);
    await s3.createBucket(BUCKET, { versioning: true });
    const access = await hostBucketAccess(s3, BUCKET, HOST);
    net = await tcpRelay(new URL(s3.endpoint));
    await pg.psql("CREATE DATABASE app");
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "app" });
    e = localArchiverEnv({ s3: { ...access, endpoint: net.url }, port: pg.port, pingUrl: pings.url });
    cluster = e.host.pitr!.clusters[0]!.name;
    w = walArchive(e, walPrefix);
    clock = await startFakeClock(e.dir);
  }, 300_000);

  afterAll(async () => {
    await w?.stopAll();
    await clock?.stop();
    e?.remove();
    await Promise.allSettled([pg?.stop(), pings?.stop(), net?.stop()]);
    await s3?.stop();
  }, 120_000);

  /** The archiver's environment: the jumping clock; TZ=UTC because its log stamps local time with a Z. */
  const archiverEnv = () => ({ ...clock.env, TZ: "UTC" });

  /** Commits a marker and completes its segment (a new segment file for the archiver to ship). */
  async function commitMarker(label: string): Promise<string> {
    const note = `marker-${label}-${++n}-${Date.now()}`;
    await pg.psql(`INSERT INTO marker (note) VALUES ('${note}')`, { database: "app" });
    await pg.psql("SELECT pg_switch_wal()");
    return note;
  }

  const alarmLines = (a: Archiver, from = 0) => a.stderr().slice(from).split("\n").filter((l) => l.includes("FAILED at stage archive"));
  /** The archiver's last round as it dated it (its wall clock) and how long WAL had waited then. */
  const status = () => {
    const [at, waiting] = readFileSync(join(e.stateDir, "wal", `${cluster}.status`), "utf8").trim().split(" ").map(Number);
    return { at: at!, waiting: waiting! };
  };
  /** How far the archiver's wall clock is from the true one, from its status file (rewritten every round, 2 s). */
  const archiverSkew = () => status().at - realNow();
  /** The time a log line is stamped with, as seconds since the epoch. */
  const stampOf = (line: string) => Date.parse(line.slice(0, 20)) / 1000;

  it("the fault itself: a process tree under the fake clock sees the jump in bash, date and its children; not in /proc/uptime or in what the kernel stamps", async () => {
    clock.set(-600);
    try {
      const upBefore = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
      const before = realNow();
      const script = 'echo "$EPOCHSECONDS ${EPOCHREALTIME%.*} $(date +%s) $(bash -c \'echo $EPOCHSECONDS\')"; echo x >"$1"; stat -c %Y -- "$1"; read -r up _ </proc/uptime; echo "$up"';
      const r = await runOk("bash", ["-c", script, "probe", join(e.dir, "probe")], { env: e.env(archiverEnv()) });
      const after = realNow();
      const upAfter = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
      const [clocks, mtime, up] = r.stdout.trim().split("\n");
      // bash's $EPOCHSECONDS and $EPOCHREALTIME, date, a nested bash: 10 minutes back.
      for (const t of clocks!.split(" ").map(Number)) {
        expect(t).toBeGreaterThanOrEqual(Math.floor(before) - 600 - 1);
        expect(t).toBeLessThanOrEqual(after - 600 + 1);
      }
      // A file written now carries the true time; the monotonic clock the archiver reads is true.
      expect(Number(mtime)).toBeGreaterThanOrEqual(Math.floor(before) - 1);
      expect(Number(mtime)).toBeLessThanOrEqual(after + 1);
      expect(Number(up)).toBeGreaterThanOrEqual(upBefore);
      expect(Number(up)).toBeLessThanOrEqual(upAfter);
    } finally {
      clock.set(0);
    }
  }, 60_000);

  it("the archiver runs under the fake clock and ships a marker", async () => {
    const a = await w.startReady({ env: archiverEnv() });
    // (the first upload has taken a minute when radosgw was slow to answer its first request)
    await w.reachesBucket(await commitMarker("first"), 120_000);
    expect(a.stderr()).not.toMatch(/FAILED|libfaketime/);
  }, 120_000);

  it("back 10 minutes during an S3 outage: the alarm comes within about the RPO, names the segment and pings /fail, and the jump does not lift it; back online, every marker arrives, no gap", async () => {
    const a = w.archivers.at(-1)!;
    const fails = pings.of("fail").length;
    const from = a.stderr().length;
    await net.down();
    let down = true;
    try {
      const during = await commitMarker("back");
      // The archiver has seen the segment waiting (its wait is being timed) ...
      const seg = await w.withLog(waitFor("the upload to fail", () => a.stderr().slice(from).match(/cannot upload ([0-9A-F]{24}) yet \(will retry\)/)?.[1], 60_000, 200));
      // ... when the clock goes back 10 minutes.
      clock.set(-600);
      const jumped = a.stderr().length;
      // Timed by the wall clock, the wait would be negative for 10 minutes: no alarm until then.
      await w.withLog(waitFor("the alarm", () => alarmLines(a, from).length > 0, 60_000, 200));
      const alarm = alarmLines(a, from)[0]!;
      const m = alarm.match(new RegExp(`WAL older than the RPO \\((\\d+)s > ${RPO}s\\) is not off-site: ${seg} and later are missing`));
      expect(m, alarm).not.toBeNull();
      expect(Number(m![1])).toBeLessThan(600);
      await waitFor("a fail ping", () => pings.of("fail").length > fails, 30_000);
      expect(pings.of("fail").at(-1)!.body).toContain(`${seg} and later are missing`);
      // The outage goes on for two RPOs under the jumped clock: the status file (what the drill
      // reads) keeps counting, and nothing says "caught up" (the jump hiding the alarm would).
      await w.withLog(waitFor("the archiver to report 2 RPOs of waiting on its jumped clock", () => Math.abs(archiverSkew() + 600) < 30 && status().waiting >= 2 * RPO, 60_000, 500));
      expect(a.stderr().slice(jumped)).not.toMatch(/caught up/);
      await net.up();
      down = false;
      await w.reachesBucket(during, 90_000);
      await w.withLog(waitFor("caught up", () => a.stderr().slice(jumped).includes("caught up: the archive is within the RPO again"), 60_000, 200));
      // Its log is dated by the jumped clock too.
      const caughtUp = a.stderr().slice(jumped).split("\n").find((l) => l.includes("caught up"))!;
      expect(Math.abs(stampOf(caughtUp) - realNow() + 600), caughtUp).toBeLessThan(30);
      await w.reachesBucket(await commitMarker("after-back"));
    } finally {
      // The next cases start from the true clock and a reachable store, whatever happened here.
      clock.set(0);
      if (down) await net.up();
    }
    await w.expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 300_000);

  it("forward 10 minutes on a busy, healthy archive: no false alarm, the status file does not claim 10 minutes of waiting, every marker arrives, no gap", async () => {
    const a = w.archivers.at(-1)!;
    const fails = pings.of("fail").length;
    // Whatever the previous jump left is done: the archive is within the RPO.
    await w.withLog(waitFor("a round within the RPO", () => Math.abs(archiverSkew()) < 30 && status().waiting <= RPO, 60_000, 500));
    const from = a.stderr().length;
    clock.set(600);
    try {
      // A segment a second for a while: segment files keep arriving in the spool while the
      // archiver uploads the one before (their mtimes are on the old clock, 10 minutes "ago").
      const notes: string[] = [];
      for (let k = 0; k < 12; k++) {
        notes.push(await commitMarker(`forward-${k}`));
        await sleep(1000);
      }
      for (const note of notes) await w.reachesBucket(note, 60_000);
      await w.withLog(waitFor("a round on the jumped clock", () => Math.abs(archiverSkew() - 600) < 30, 30_000, 500));
      expect(alarmLines(a, from)).toEqual([]);
      expect(pings.of("fail").length).toBe(fails);
      expect(status().waiting).toBeLessThan(600);
    } finally {
      clock.set(0);
    }
    await w.expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 300_000);

  it("30 minutes ahead, past the store's limit for a request's date: the store refuses (RequestTimeTooSkewed), a loud alarm names the segment; the clock put right, it catches up, no gap", async () => {
    const a = w.archivers.at(-1)!;
    const fails = pings.of("fail").length;
    const from = a.stderr().length;
    clock.set(1800);
    try {
      const during = await commitMarker("skewed");
      const seg = await w.withLog(waitFor("the store's refusal", () => a.stderr().slice(from).match(/cannot upload ([0-9A-F]{24}) yet \(will retry\): HTTP 403 RequestTimeTooSkewed/)?.[1], 60_000, 200));
      await w.withLog(waitFor("the alarm", () => alarmLines(a, from).length > 0, 60_000, 200));
      expect(alarmLines(a, from)[0]).toMatch(new RegExp(`is not off-site: ${seg} and later are missing .*\\(upload error, see above\\)`));
      await waitFor("a fail ping", () => pings.of("fail").length > fails, 30_000);
      expect(pings.of("fail").at(-1)!.body).toMatch(/RequestTimeTooSkewed/);
      clock.set(0);
      await w.reachesBucket(during, 90_000);
      await w.withLog(waitFor("caught up", () => a.stderr().slice(from).includes("caught up: the archive is within the RPO again"), 60_000, 200));
      await w.reachesBucket(await commitMarker("after-skew"));
    } finally {
      clock.set(0);
    }
    await w.expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 300_000);
});
