// wal-archiver faults beyond the ones wal-archiver.test.ts drives, against real services: the
// spool's disk full (a small tmpfs mounted as <stateDir>/wal) and the bucket briefly missing
// (deleted and made again by its owner). Each must end loud (the alarm names the segment that is
// not off-site, a fail ping) while it lasts, with the server's WAL kept by the slot, and with no
// gap once it is over: never a silent gap.
import { mkdirSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostBucketAccess, type BackupEnv } from "../support/backup-env";
import { startPingServer, type PingServer } from "../support/pings";
import { startPostgres, type PgCluster } from "../support/postgres";
import { run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";
import { localArchiverEnv, walArchive, type WalArchive } from "../support/wal-archive";

const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_receivewal", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws", "zstd", "flock", "curl", "mount", "umount");

const BUCKET = "wal-faults";
const HOST = "web-1";
const SEGMENT = 16 * 1024 * 1024;

describe.skipIf(!tools.ok)("wal-archiver faults: a full spool disk, a missing bucket", () => {
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
});
