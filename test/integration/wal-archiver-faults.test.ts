// wal-archiver faults beyond the ones wal-archiver.test.ts drives, against real services: the
// spool's disk full (a small tmpfs mounted as <stateDir>/wal), the bucket briefly missing
// (deleted and made again by its owner) and the server refusing the archiver (pg_hba.conf) while
// it keeps running and writing. Each must end loud (the alarm says what is not off-site, a fail
// ping) while it lasts, with the server's WAL kept by the slot, and with no gap once it is over:
// never a silent gap.
import { mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostBucketAccess, type BackupEnv } from "../support/backup-env";
import { startPingServer, type PingServer } from "../support/pings";
import { startPostgres, type PgCluster } from "../support/postgres";
import { run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";
import { keyHolding, localArchiverEnv, walArchive, walRecordBytes, type WalArchive } from "../support/wal-archive";

const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_receivewal", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws", "zstd", "flock", "curl", "mount", "umount");

const BUCKET = "wal-faults";
const HOST = "web-1";
const SEGMENT = 16 * 1024 * 1024;

describe.skipIf(!tools.ok)("wal-archiver faults: a full spool disk, a missing bucket, a server that refuses the archiver", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let pings: PingServer;
  let e: BackupEnv;
  let w: WalArchive;
  let cluster: string;
  let spoolMount: string | undefined;
  const walPrefix = () => `${HOST}/wal/${cluster}/`;
  let n = 0;

  beforeAll(async () => {
    [s3, pg, pings] = await Promise.all([startS3Server(), startPostgres(), startPingServer()]);
    await s3.createBucket(BUCKET, { versioning: true });
    const access = await hostBucketAccess(s3, BUCKET, HOST);
    await pg.psql("CREATE DATABASE app");
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "app" });
    e = localArchiverEnv({ s3: access, port: pg.port, pingUrl: pings.url });
    cluster = e.host.pitr!.clusters[0]!.name;
    w = walArchive(e, walPrefix);
    // The spool's disk: 4 segments' worth (a segment being written, one completed, room to spare).
    spoolMount = join(e.stateDir, "wal");
    mkdirSync(spoolMount, { recursive: true, mode: 0o700 });
    await runOk("mount", ["-t", "tmpfs", "-o", `size=${4 * SEGMENT},mode=0700`, "restorable-spool", spoolMount]);
  }, 300_000);

  afterAll(async () => {
    await w?.stopAll();
    if (spoolMount) await run("umount", ["-l", spoolMount]);
    e?.remove();
    await Promise.allSettled([pg?.stop(), pings?.stop()]);
    await s3?.stop();
  }, 120_000);

  /** Commits a marker and completes its segment (so the receiver must open the next one). */
  async function commitMarker(label: string, switchWal = true): Promise<string> {
    const note = `marker-${label}-${++n}-${Date.now()}`;
    await pg.psql(`INSERT INTO marker (note) VALUES ('${note}')`, { database: "app" });
    if (switchWal) await pg.psql("SELECT pg_switch_wal()");
    return note;
  }

  const alarms = () => (w.archivers.at(-1)!.stderr().match(/FAILED at stage archive: .*is not off-site: (the segment )?[0-9A-F]{24} and later are missing/g) ?? []).length;
  const slotStatus = () => pg.psql("SELECT wal_status FROM pg_replication_slots");

  /** Puts LINES ahead of pg_hba.conf's own and reloads; the function returned puts the file back
   * and reloads (once, however often it is called). */
  async function hbaAhead(lines: string): Promise<() => Promise<void>> {
    const hba = join(pg.dataDir, "pg_hba.conf");
    const before = readFileSync(hba, "utf8");
    writeFileSync(hba, `${lines}${before}`);
    await pg.psql("SELECT pg_reload_conf()");
    let back = false;
    return async () => {
      if (back) return;
      back = true;
      writeFileSync(hba, before);
      await pg.psql("SELECT pg_reload_conf()");
    };
  }

  it("the archiver runs with its spool on a small disk", async () => {
    await w.startReady();
    await w.reachesBucket(await commitMarker("first"));
  }, 120_000);

  it("the spool's disk full: loud (the alarm names the segment, a fail ping), the server keeps the WAL; space again: it catches up with no gap", async () => {
    const a = w.archivers.at(-1)!;
    const fails = pings.of("fail").length;
    const before = alarms();
    // Leave less than one segment free: the receiver cannot make its next segment file.
    const avail = Number((await runOk("df", ["--output=avail", "-B1", spoolMount!])).stdout.trim().split("\n").at(-1));
    const filler = join(spoolMount!, "filler");
    writeFileSync(filler, Buffer.alloc(Math.max(0, avail - 4 * 1024 * 1024)));
    const during: string[] = [];
    for (let k = 0; k < 3; k++) during.push(await commitMarker(`full-${k}`));
    await w.withLog(waitFor("the alarm", () => alarms() > before, 120_000, 500));
    await waitFor("a fail ping", () => pings.of("fail").length > fails, 30_000);
    expect(await slotStatus()).toMatch(/^(reserved|extended)$/);
    for (let k = 3; k < 5; k++) during.push(await commitMarker(`full-${k}`));
    // The half-made segment file the full disk left is the one thing that would keep the
    // receiver from resuming; the archiver removes it (only zeros) once the receiver fails.
    rmSync(filler);
    for (const note of during) await w.reachesBucket(note, 120_000);
    await w.withLog(waitFor("caught up", () => a.stderr().includes("caught up: the archive is within the RPO again"), 90_000));
    expect(a.stderr()).toMatch(/removed [0-9A-F]{24}\.partial, a segment file the receiver could not finish making \(\d+ bytes of zeros/);
    // A receiver failing at once every round is not a line every round.
    const exits = a.stderr().split("\n").filter((l) => /pg_receivewal exited/.test(l));
    expect(exits.length).toBeLessThan(10);
    await w.reachesBucket(await commitMarker("after-full"));
    await w.expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 400_000);

  it("the bucket briefly missing (deleted, then made again by its owner): loud while it lasts, then every segment since arrives, no gap", async () => {
    const a = w.archivers.at(-1)!;
    const before = alarms();
    // The owner empties and deletes the bucket (every version), then makes it again.
    const vs = await s3.aws(s3.admin, ["s3api", "list-object-versions", "--bucket", BUCKET, "--output", "json"]);
    expect(vs.code, vs.stderr).toBe(0);
    const listed = JSON.parse(vs.stdout || "{}") as { Versions?: { Key: string; VersionId: string }[]; DeleteMarkers?: { Key: string; VersionId: string }[] };
    for (const v of [...(listed.Versions ?? []), ...(listed.DeleteMarkers ?? [])]) {
      const d = await s3.aws(s3.admin, ["s3api", "delete-object", "--bucket", BUCKET, "--key", v.Key, `--version-id=${v.VersionId}`]);
      expect(d.code, d.stderr).toBe(0);
    }
    const rb = await s3.aws(s3.admin, ["s3api", "delete-bucket", "--bucket", BUCKET]);
    expect(rb.code, rb.stderr).toBe(0);
    const during: string[] = [];
    for (let k = 0; k < 2; k++) during.push(await commitMarker(`nobucket-${k}`));
    await w.withLog(waitFor("the upload error", () => /cannot upload [0-9A-F]{24} yet \(will retry\)/.test(a.stderr()), 60_000, 500));
    await w.withLog(waitFor("the alarm", () => alarms() > before, 90_000, 500));
    await s3.createBucket(BUCKET, { versioning: true });
    for (const note of during) await w.reachesBucket(note, 120_000);
    await w.reachesBucket(await commitMarker("after-bucket"));
    // Everything since the bucket came back is contiguous (what was deleted with it is the owner's doing).
    const names = await w.expectNoGap();
    expect(names.length).toBeGreaterThan(0);
    expect(a.proc.exitCode).toBeNull();
  }, 400_000);

  it("the server refuses the archiver (pg_hba.conf) but keeps running and writing: an alarm after the RPO although nothing waits in the spool; let in again: what it wrote meanwhile arrives, caught up, no gap", async () => {
    const a = w.archivers.at(-1)!;
    const log = () => a.stderr();
    // Start from a quiet archive, not in alarm (an alarm still on from the test before would
    // only be said again after 5 minutes): its last alarm line, if any, is a "caught up".
    // Its segment completed by the archiver's own switch (not the test's): after it, no
    // transaction waits in the current segment, so the only clock running once the server
    // refuses is the unanswered one (else a dirty segment from before could raise the plain
    // "WAL older than the RPO" alarm first, and this one only 5 minutes later).
    await w.reachesBucket(await commitMarker("before-refused", false));
    await w.withLog(
      waitFor("no alarm on", () => {
        const l = log().split("\n").filter((x) => /FAILED at stage archive|caught up: the archive is within the RPO/.test(x));
        return l.length === 0 || l.at(-1)!.includes("caught up");
      }, 120_000, 500),
    );
    const from = log().length;
    const since = () => log().slice(from);
    const fails = pings.of("fail").length;
    // Refuse TCP from 127.0.0.1 (how the archiver and its receiver connect), normal and
    // replication, ahead of every other line; the test's own psql goes over the unix socket.
    const letIn = await hbaAhead("host all all 127.0.0.1/32 reject\nhost replication all 127.0.0.1/32 reject\n");
    await waitFor("TCP connections refused", async () => (await run("psql", ["-XAtqw", "-d", "app", "-c", "SELECT 1"], { env: pg.env() })).code !== 0, 30_000, 200);
    // The streaming receiver's connection predates the change: end it (it cannot come back).
    await pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'");
    const cutAt = Date.now();
    try {
      // The server keeps writing: these are on no receiver's disk, so nothing waits in the spool.
      const during: string[] = [];
      for (let k = 0; k < 2; k++) during.push(await commitMarker(`refused-${k}`));
      const alarmLine = /FAILED at stage archive: cluster \S+: cannot query the server for (\d+)s \(> RPO 10s\): WAL it writes meanwhile is not being archived[^\n]*: [^\n]*pg_hba\.conf rejects connection/;
      await w.withLog(waitFor("the alarm", () => alarmLine.test(since()), 90_000, 500));
      const after = (Date.now() - cutAt) / 1000;
      // About the RPO (10 s) after the server stopped answering: not before it, within a few rounds of it.
      expect(after).toBeGreaterThanOrEqual(10);
      expect(after).toBeLessThan(40);
      expect(Number(alarmLine.exec(since())![1])).toBeGreaterThan(10);
      expect(since()).toMatch(/a deliberately stopped server/);
      await waitFor("a fail ping", () => pings.of("fail").length > fails, 30_000);
      expect(pings.of("fail").at(-1)!.body).toMatch(/cannot query the server for \d+s/);
      // The age the drill reads (and the gauge carries) says it too.
      const status = readFileSync(join(e.stateDir, "wal", `${cluster}.status`), "utf8").trim().split(" ");
      expect(Number(status[1])).toBeGreaterThan(10);
      // The connection problem is one log line, not one a round.
      expect(since().split("\n").filter((l) => l.includes("cannot query the server (will retry)"))).toHaveLength(1);
      expect(await slotStatus()).toMatch(/^(reserved|extended)$/);
      // Let it in again.
      await letIn();
      // "caught up" only once the WAL written meanwhile is in the bucket (not at the first answer).
      const caughtUp = () => since().includes("caught up: the archive is within the RPO again");
      await w.withLog(waitFor("caught up", caughtUp, 120_000, 200));
      const fetched = new Map<string, Buffer>();
      for (const note of during) expect(await keyHolding(e, walPrefix(), note, fetched), `${note} in the bucket when "caught up" was said; the archiver said:\n${since().slice(-4000)}`).toBeDefined();
      expect(since()).toMatch(/cluster \S+: the server answers again after \d+s/);
    } finally {
      await letIn();
    }
    await w.reachesBucket(await commitMarker("after-refused"));
    await w.expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 400_000);

  it("the slot reserves WAL from setup: what the server writes before the receiver first streams is archived too (a slot an older version made, reserving nothing, is replaced)", async () => {
    // A fresh start (no spool) on a slot made the old way, by pg_receivewal --create-slot: it
    // reserves no WAL until a receiver first streams.
    await w.stopAll();
    const slot = await pg.psql("SELECT slot_name FROM pg_replication_slots");
    await pg.psql(`SELECT pg_drop_replication_slot('${slot}')`);
    await pg.psql(`SELECT pg_create_physical_replication_slot('${slot}')`);
    rmSync(join(spoolMount!, cluster), { recursive: true, force: true });
    // The receiver cannot connect at first (replication refused; the archiver's queries pass).
    const letIn = await hbaAhead("host replication all 127.0.0.1/32 reject\n");
    let note: string;
    try {
      const a = w.start();
      await w.withLog(waitFor("the slot to reserve WAL", async () => (await pg.psql(`SELECT restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = '${slot}'`)) === "t", 60_000, 200));
      expect(await pg.psql(`SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`)).toBe("f");
      // Committed, its segment completed, before any receiver streamed.
      note = await commitMarker("before-first-stream");
      expect(a.proc.exitCode).toBeNull();
    } finally {
      await letIn();
    }
    await w.reachesBucket(note, 120_000);
    await w.reachesBucket(await commitMarker("after-first-stream"));
    await w.expectNoGap();
  }, 300_000);

  it("the server drops WAL the archive never received (its slot invalidated at max_slot_wal_keep_size): an alarm at once naming the gap, counted in the age; archiving resumes by itself, with the part of the cut segment the receiver had; a base backup after the gap ends the alarm", async () => {
    const a = w.archivers.at(-1)!;
    const log = () => a.stderr();
    await w.reachesBucket(await commitMarker("before-lost"));
    const from = log().length;
    const since = () => log().slice(from);
    const fails = pings.of("fail").length;
    // Streamed to the receiver but its segment not completed: in the spool's .partial when the
    // receiver is cut off, and nowhere else once the server drops that segment.
    const streamed = await commitMarker("streamed-before-cut", false);
    const spool = join(spoolMount!, cluster);
    let cutSegment = "";
    await waitFor("the marker in the receiver's partial segment", () => {
      const f = readdirSync(spool).find((x) => x.endsWith(".partial") && walRecordBytes(readFileSync(join(spool, x))).includes(Buffer.from(streamed)));
      cutSegment = f?.replace(/\.partial$/, "") ?? "";
      return cutSegment !== "";
    }, 30_000, 200);
    const keep = await pg.psql("SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'");
    const letIn = await hbaAhead("host replication all 127.0.0.1/32 reject\n");
    const cutAt = Date.now();
    const gapAlarm = new RegExp(`FAILED at stage archive: cluster \\S+: the server dropped WAL the archive never received .*: the archive has a gap from ${cutSegment}; a restore reaches no further than the gap .* until a base backup is taken after it: run backup-base now`);
    try {
      await pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'walsender'");
      // 64 MB of WAL the receiver cannot fetch against a 32 MB bound, then a checkpoint: the
      // server invalidates the slot and removes the segments, the cut one among them.
      await pg.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '32MB'");
      await pg.psql("SELECT pg_reload_conf()");
      for (let k = 0; k < 4; k++) await commitMarker(`dropped-${k}`);
      await pg.psql("CHECKPOINT");
      await w.withLog(waitFor("the alarm", () => /FAILED at stage archive: cluster \S+: the server dropped WAL the archive never received/.test(since()), 60_000, 200));
      await waitFor("a fail ping", () => pings.of("fail").length > fails, 30_000);
    } finally {
      await pg.psql(`ALTER SYSTEM SET max_slot_wal_keep_size = '${keep}MB'`);
      await pg.psql("SELECT pg_reload_conf()");
      await letIn();
    }
    // The receiver cannot resume from its spool (the server removed that segment): the part of
    // it the receiver had goes off-site under its name, the slot is made again, archiving resumes.
    const after = await commitMarker("after-gap");
    await w.withLog(w.reachesBucket(after, 120_000));
    expect(await keyHolding(e, walPrefix(), streamed, new Map())).toBe(`${walPrefix()}${cutSegment}.zst`);
    expect(since()).toContain(`archived the part of ${cutSegment} the receiver had received before the server dropped the rest`);
    expect(since()).toMatch(gapAlarm);
    await expect(w.expectNoGap()).rejects.toThrow(new RegExp(`a gap in the WAL archive: ${cutSegment} -> `));
    // Still an alarm, and the WAL lost since the cut is in the age, while no base backup follows the gap.
    await new Promise((r) => setTimeout(r, 5000));
    expect(since()).not.toContain("caught up");
    const age = Number(readFileSync(join(e.stateDir, "wal", `${cluster}.status`), "utf8").trim().split(" ")[1]);
    expect(age).toBeGreaterThan(10);
    expect(age).toBeGreaterThanOrEqual((Date.now() - cutAt) / 1000 - 20);
    // A base backup after the gap: every time from it on is restorable again, the alarm ends.
    const oks = pings.of("success").length;
    const r = await e.run("backup-base", []);
    expect(r.stderr).not.toMatch(/FAILED/);
    await w.withLog(waitFor("the gap covered", () => new RegExp(`base backup \\d{8}T\\d{6}Z was taken after the gap from ${cutSegment}: every time from it on is restorable again`).test(since()), 90_000, 500));
    await w.withLog(waitFor("caught up", () => since().includes("caught up: the archive is within the RPO again"), 90_000, 500));
    await waitFor("a success ping", () => pings.of("success").length > oks, 30_000);
    expect(Number(readFileSync(join(e.stateDir, "wal", `${cluster}.status`), "utf8").trim().split(" ")[1])).toBeLessThanOrEqual(10);
    await w.reachesBucket(await commitMarker("after-base"));
    expect(a.proc.exitCode).toBeNull();
  }, 400_000);
});
