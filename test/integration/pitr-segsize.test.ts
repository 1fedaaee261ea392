// Point-in-time recovery of a cluster made with `initdb --wal-segsize=1` (1 MB WAL segments, not
// PostgreSQL's default 16), against real services: PostgreSQL 15, Ceph radosgw, the plan's host
// key, the real wal-archiver and backup-base (pitr-fixture.ts). The cluster starts writing just
// before the end of WAL log 0 (pg_resetwal -l), and after the base backup the WAL crosses into
// log 1: with 1 MB segments 000000010000000000000FFF is followed by 000000010000000100000000,
// which 16 MiB arithmetic reads as a gap. The base manifest records the segment size
// (walSegmentBytes); `restore --list`, `restore --database/--cluster --at T`, the drill's
// continuity check and a deleted segment are read with it.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { walSegmentName, walSegmentOfLsn, walSegmentPosition } from "../../infra/plan/pitr";
import { archivedCluster, isoSecond as iso, PITR_FIXTURE_TOOLS, type ArchivedCluster } from "../support/pitr-fixture";
import { PG_BIN, type PgCluster } from "../support/postgres";
import { freePort, run, runOk } from "../support/proc";
import { requireTools } from "../support/tools";
import { walArchive } from "../support/wal-archive";

const tools = requireTools(...PITR_FIXTURE_TOOLS, "/usr/lib/postgresql/15/bin/pg_resetwal");
const BUCKET = "pitr-segsize";
const HOST = "web-1";
const MB = 1024 * 1024;
/** The first segment of WAL log 1 (with 1 MB segments, 4096 segments after the first of log 0). */
const LOG1_FIRST = "000000010000000100000000";

describe.skipIf(!tools.ok)("point-in-time recovery with 1 MB WAL segments, across a WAL log boundary", () => {
  let fx: ArchivedCluster;
  let stopLsn = "";
  let manifestKey = "";
  const started: string[] = [];

  beforeAll(async () => {
    fx = await archivedCluster({
      bucket: BUCKET,
      host: HOST,
      // 64 segments before the end of log 0: the setup's WAL (two CREATE DATABASE) stays in log 0.
      postgres: { walSegmentMB: 1, firstWalFile: "000000010000000000000FC0" },
      afterBaseBackup: crossIntoLog1,
    });
    const keys = (await fx.e.list(`${HOST}/`)).map((k) => k.key).filter((k) => /\/base\/.*\.manifest\.json$/.test(k));
    expect(keys).toHaveLength(1);
    manifestKey = keys[0]!;
    stopLsn = JSON.parse((await fx.e.get(manifestKey)).toString()).stopLsn;
  }, 400_000);

  afterAll(async () => {
    for (const d of started) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", d, "-m", "immediate", "-w", "stop"], { cwd: "/" });
    await fx?.stop();
  });

  /** After the base backup (in log 0): WAL switches until the server writes into log 1. */
  async function crossIntoLog1(pg: PgCluster): Promise<void> {
    const current = () => pg.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
    if ((await current()).slice(8, 16) !== "00000000") throw new Error(`the base backup is not in WAL log 0 (now at ${await current()}): start the cluster earlier in log 0`);
    await pg.psql("CREATE TABLE filler (x int)");
    for (let k = 0; (await current()).slice(8, 16) === "00000000"; k++) {
      if (k > 100) throw new Error(`still in WAL log 0 after 100 switches (${await current()})`);
      await pg.psql("INSERT INTO filler VALUES (1); SELECT pg_switch_wal()");
    }
  }

  const targetArgs = () => ["--target", `local:127.0.0.1:${fx.pg.port}`, "--user", "postgres"];
  const leftovers = () => fx.e.leftovers().filter((f) => !f.includes("run.wal-archiver."));
  const archivedNames = async () =>
    (await fx.e.list(fx.walPrefix())).map((k) => k.key.slice(fx.walPrefix().length).replace(/\.zst$/, "")).filter((n) => /^[0-9A-F]{24}$/.test(n));

  it("names segments as PostgreSQL does with 1 MB segments; backup-base records walSegmentBytes; the archive crosses into log 1 without a gap", async () => {
    expect(await fx.pg.psql("SHOW wal_segment_size")).toBe("1MB");
    // The pure arithmetic (infra/plan/pitr.ts, as lib-pitr-restore.sh's) against the server's own.
    for (const lsn of ["0/FFFFFFF", "0/FC00028", "1/1", "1/FFFFF", "1/100001", "A/12345678"]) {
      expect(walSegmentName(1, walSegmentOfLsn(lsn, MB), MB), lsn).toBe(await fx.pg.psql(`SELECT pg_walfile_name('${lsn}')`));
    }
    const manifest = JSON.parse((await fx.e.get(manifestKey)).toString());
    expect(manifest.walSegmentBytes).toBe(MB);
    // The base backup ends in log 0, the markers are in log 1.
    expect(walSegmentName(1, walSegmentOfLsn(stopLsn, MB), MB).slice(8, 16)).toBe("00000000");
    for (const m of fx.markers) expect(m.segment!.slice(8, 16)).toBe("00000001");
    const names = await archivedNames();
    expect(names).toContain("000000010000000000000FFF");
    expect(names).toContain(LOG1_FIRST);
    const w = walArchive(fx.e, () => fx.walPrefix());
    expect(await w.expectNoGap(MB)).toEqual(names);
    // Read as 16 MiB segments these names are refused (at most 256 segments in a log of those).
    await expect(w.expectNoGap()).rejects.toThrow(/is not a WAL segment name with 16777216-byte segments/);
  }, 60_000);

  it("restore --list shows the window, read with the recorded segment size", async () => {
    // The archiver keeps running: segments may arrive while this runs.
    const before = (await archivedNames()).length;
    const r = await fx.e.run("restore", ["--list"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`point in time: cluster ${fx.cluster} \\(databases app\\)`));
    expect(r.stdout).toMatch(/1 base backup\(s\), \d+ WAL segment\(s\) of 1 MiB in s3:/);
    const m = /window +(\S+) \.\. (\S+)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Date.parse(m![1]!)).toBeLessThanOrEqual(fx.markers[0]!.committedMs);
    expect(Date.parse(m![2]!)).toBeGreaterThanOrEqual(Math.floor(fx.markers[4]!.committedMs / 1000) * 1000);
    expect(r.stdout).not.toMatch(/then a gap/);
    const j = await fx.e.run("restore", ["--list", "--json"]);
    const pitr = j.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((o) => o.kind === "pitr");
    expect(pitr).toMatchObject({ cluster: fx.cluster, baseBackups: 1, walSegmentBytes: MB });
    expect(pitr.walSegments).toBeGreaterThanOrEqual(before);
    expect(pitr.walSegments).toBeLessThanOrEqual((await archivedNames()).length);
    expect(pitr.windows).toHaveLength(1);
    expect(pitr.windows[0].gapAfter).toBeNull();
  }, 60_000);

  it("restore --database app --at T sees exactly the markers committed at or before T, replaying the segments across the log boundary", async () => {
    const t = fx.between(3);
    const r = await fx.e.run("restore", ["--database", "app", "--at", iso(t), ...targetArgs(), "--target-database", "app_at"]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const got = (await fx.pg.psql("SELECT note FROM marker ORDER BY id", { database: "app_at" })).split("\n");
    expect(got).toEqual(fx.markers.filter((m) => m.committedMs <= t).map((m) => m.note));
    expect(got).toEqual(["marker-1", "marker-2", "marker-3"]);
    // The segments counted: from the base backup's stop point to the last one the server asked
    // for, at least up to marker 3's (it replayed that commit), at most up to the newest archived
    // one (it reads ahead of where it stops: recovery_prefetch).
    const n = Number(/; (\d+) WAL segment\(s\) from the archive/.exec(r.stdout)?.[1]);
    const stop = walSegmentOfLsn(stopLsn, MB);
    expect(n).toBeGreaterThanOrEqual(walSegmentPosition(fx.markers[2]!.segment!, MB) - stop + 1);
    expect(n).toBeLessThanOrEqual(walSegmentPosition((await archivedNames()).at(-1)!, MB) - stop + 1);
    expect(leftovers()).toEqual([]);
  }, 180_000);

  it("restore --cluster --at T recovers the whole 1 MB cluster into a new data directory", async () => {
    const t = fx.between(2);
    const dir = join(fx.scratch, "dr-at");
    const r = await fx.e.run("restore", ["--cluster", fx.cluster, "--at", iso(t), "--data-dir", dir]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(/databases: app, other, postgres; now on timeline 2/);
    const ctl = await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_controldata`, dir], { cwd: "/" });
    expect(ctl.stdout).toMatch(/Bytes per WAL segment: +1048576/);
    const port = await freePort();
    const sock = join(fx.scratch, `s${port}`);
    await runOk("mkdir", ["-p", sock]);
    await runOk("chown", ["postgres:", sock]);
    const s = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dir, "-l", join(sock, "log"), "-o", `-p ${port} -k ${sock} -c listen_addresses=''`, "-w", "-t", "60", "start"], { cwd: "/" });
    if (s.code !== 0) throw new Error(`the recovered cluster did not start: ${readFileSync(join(sock, "log"), "utf8").slice(-2000)}`);
    started.push(dir);
    const q = await runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "app", "-c", "SELECT string_agg(note, ',' ORDER BY id) FROM marker"]);
    expect(q.stdout.trim()).toBe(fx.markers.filter((m) => m.committedMs <= t).map((m) => m.note).join(","));
    expect(q.stdout.trim()).toBe("marker-1,marker-2");
  }, 180_000);

  it("the drill checks continuity from the base backup's stop point across the boundary and recovers to a second of the window", async () => {
    const r = await fx.e.run("restore-drill");
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const drills = join(fx.e.stateDir, "drills");
    const p = JSON.parse(readFileSync(join(drills, readdirSync(drills).sort().at(-1)!), "utf8")).pitr[0];
    expect(p).toMatchObject({ cluster: fx.cluster, result: "pass", failure: null });
    // From the base backup's stop point to the newest archived segment (the archiver keeps
    // running, so that one is read from the report), each of them counted once.
    const names = await archivedNames();
    const from = walSegmentName(1, walSegmentOfLsn(stopLsn, MB), MB);
    expect(names).toContain(p.continuity.to);
    expect(p.continuity).toEqual({ from, to: p.continuity.to, segments: names.indexOf(p.continuity.to) - names.indexOf(from) + 1 });
    expect(p.continuity.segments).toBe(walSegmentPosition(p.continuity.to, MB) - walSegmentPosition(from, MB) + 1);
    expect([from.slice(8, 16), p.continuity.to.slice(8, 16)]).toEqual(["00000000", "00000001"]);
  }, 180_000);

  it("a deleted segment (the first of log 1) fails the restore and the drill naming exactly that segment", async () => {
    const key = `${fx.walPrefix()}${LOG1_FIRST}.zst`;
    const good = await fx.e.get(key);
    const head = await fx.e.aws(["s3api", "head-object", "--bucket", BUCKET, "--key", key]);
    expect(head.code, head.stderr).toBe(0);
    const sha = JSON.parse(head.stdout).Metadata.sha256 as string;
    const del = await fx.s3.aws(fx.s3.admin, ["s3api", "delete-object", "--bucket", BUCKET, "--key", key]);
    expect(del.code, del.stderr).toBe(0);
    try {
      const r = await fx.e.run("restore", ["--database", "app", "--at", iso(fx.between(3)), ...targetArgs(), "--target-database", "app_gap"]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage find: .*the archive has a gap: WAL segment ${LOG1_FIRST} is missing`));
      expect(await fx.pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'app_gap'")).toBe("0");
      const list = await fx.e.run("restore", ["--list"]);
      expect(list.stdout).toContain(`then a gap: WAL segment ${LOG1_FIRST} is missing`);
      const drill = await fx.e.run("restore-drill");
      expect(drill.code).toBe(1);
      expect(drill.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage continuity: cluster .*: the WAL archive of cluster .* has a gap after the newest base backup \\(\\d{8}T\\d{6}Z\\): WAL segment ${LOG1_FIRST} is missing`));
    } finally {
      const file = join(fx.scratch, "good.zst");
      writeFileSync(file, good);
      const put = await fx.s3.aws(fx.s3.admin, ["s3api", "put-object", "--bucket", BUCKET, "--key", key, "--body", file, "--metadata", `sha256=${sha}`]);
      expect(put.code, put.stderr).toBe(0);
    }
  }, 180_000);

  it("base manifests that disagree about the segment size (pg_resetwal --wal-segsize) fail naming the cluster and both sizes; nothing is guessed", async () => {
    const m = JSON.parse((await fx.e.get(manifestKey)).toString());
    const stamp = "20000101T000000Z";
    const key = manifestKey.replace(/[^/]*$/, `${stamp}.manifest.json`);
    const file = join(fx.scratch, "other.manifest.json");
    writeFileSync(file, JSON.stringify({ ...m, createdAt: "2000-01-01T00:00:00Z", walSegmentBytes: 16 * MB }));
    const put = await fx.s3.aws(fx.s3.admin, ["s3api", "put-object", "--bucket", BUCKET, "--key", key, "--body", file]);
    expect(put.code, put.stderr).toBe(0);
    try {
      const r = await fx.e.run("restore", ["--list"]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(
        `the base backups of cluster ${fx.cluster} disagree about its WAL segment size: 1048576 bytes \\(base backup\\(s\\) \\d{8}T\\d{6}Z\\); 16777216 bytes \\(base backup\\(s\\) ${stamp}\\)`));
    } finally {
      const del = await fx.s3.aws(fx.s3.admin, ["s3api", "delete-object", "--bucket", BUCKET, "--key", key]);
      expect(del.code, del.stderr).toBe(0);
    }
    expect((await fx.e.run("restore", ["--list"])).code).toBe(0);
  }, 60_000);
});
