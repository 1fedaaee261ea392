// Point-in-time recovery (issue 11) as rendered, against real services: PostgreSQL 15 (local
// mode, track_commit_timestamp on so the test knows each marker's commit time), Ceph radosgw, the
// plan's least-privilege host key, the real wal-archiver and backup-base. Marker rows are
// committed one per WAL segment; `restore --database app --at T` must see exactly the markers
// committed at or before T and report the time reached; a corrupt and a missing WAL object fail
// naming the segment; a time outside the window is refused naming the nearest dump; the drill
// recovers to a random second of the window and reports the archive's RPO and the recovery time.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, hostBucketAccess, type BackupEnv } from "../support/backup-env";
import { PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { freePort, run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";
import { walSegmentName, walSegmentPosition } from "../../infra/plan/pitr";
import { ageKey, type AgeKey } from "../support/drill-fixtures";
import { archivedCluster, isoSecond, PITR_FIXTURE_TOOLS, type ArchivedCluster, type Marker } from "../support/pitr-fixture";
import { walArchive, type WalArchive } from "../support/wal-archive";

const tools = requireTools(...PITR_FIXTURE_TOOLS);

const ageTools = requireTools("age", "age-keygen");
const BUCKET = "pitr-restore";
const HOST = "web-1";
const iso = isoSecond;

describe.skipIf(!tools.ok)("point-in-time restore and drill against real PostgreSQL and S3", () => {
  let fx: ArchivedCluster;
  let s3: S3Server;
  let pg: PgCluster;
  let e: BackupEnv;
  let archiver: ChildProcess;
  let cluster: string;
  let scratch: string;
  const markers: Marker[] = [];
  const started: string[] = [];

  beforeAll(async () => {
    fx = await archivedCluster({ bucket: BUCKET, host: HOST });
    ({ s3, pg, e, cluster, scratch, archiver } = fx);
    markers.push(...fx.markers);
  }, 400_000);

  afterAll(async () => {
    for (const d of started) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", d, "-m", "immediate", "-w", "stop"], { cwd: "/" });
    await fx?.stop();
  });

  const walPrefix = () => fx.walPrefix();
  const segmentHolding = (text: string) => fx.segmentHolding(text);
  const between = (k: number) => fx.between(k);

  /** What restores left behind (the running archiver's own run dir is not theirs). */
  const leftovers = () => e.leftovers().filter((f) => !f.includes("run.wal-archiver."));
  const targetArgs = () => ["--target", `local:127.0.0.1:${pg.port}`, "--user", "postgres"];

  it("restore --list shows the window restorable to the second next to the dump restore points", async () => {
    const r = await e.run("restore", ["--list"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/postgres app\n/);
    expect(r.stdout).toMatch(new RegExp(`point in time: cluster ${cluster} \\(databases app\\)`));
    const m = /window +(\S+) \.\. (\S+)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    // From the base backup's end (before the first marker) to at least the last marker's commit.
    expect(Date.parse(m![1]!)).toBeLessThanOrEqual(markers[0]!.committedMs);
    expect(Date.parse(m![2]!)).toBeGreaterThanOrEqual(Math.floor(markers[4]!.committedMs / 1000) * 1000);
    const j = await e.run("restore", ["--list", "--json"]);
    const pitr = j.stdout.trim().split("\n").map((l) => JSON.parse(l)).find((o) => o.kind === "pitr");
    expect(pitr).toMatchObject({ cluster, databases: ["app"], baseBackups: 1 });
    expect(pitr.windows).toHaveLength(1);
  }, 120_000);

  it("restore --database app --at T sees exactly the markers committed at or before T, into another database; the others stay untouched", async () => {
    const t = between(3);
    const r = await e.run("restore", ["--database", "app", "--at", iso(t), ...targetArgs(), "--target-database", "app_at"]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const got = (await pg.psql("SELECT note FROM marker ORDER BY id", { database: "app_at" })).split("\n");
    expect(got).toEqual(markers.filter((m) => m.committedMs <= t).map((m) => m.note));
    expect(got).toEqual(["marker-1", "marker-2", "marker-3"]);
    // The time reached, next to the time asked for: the last replayed commit, at or before T.
    const reached = /asked for (\S+), reached (\S+)/.exec(r.stdout);
    expect(reached, r.stdout).not.toBeNull();
    expect(reached![1]).toBe(iso(t));
    expect(Date.parse(reached![2]!)).toBeLessThanOrEqual(t);
    expect(Date.parse(reached![2]!)).toBeGreaterThanOrEqual(markers[2]!.committedMs - 1);
    expect(r.stdout).toMatch(/the next commit, at .*, is not in it/);
    // The source and the other databases are untouched.
    expect(await pg.psql("SELECT count(*) FROM marker", { database: "app" })).toBe("5");
    expect(await pg.psql("SELECT x FROM keep", { database: "other" })).toBe("42");
    expect(leftovers()).toEqual([]);
    // The usual rules: a non-empty target database needs --force.
    const again = await e.run("restore", ["--database", "app", "--at", iso(between(1)), ...targetArgs(), "--target-database", "app_at"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/FAILED at stage target: database app_at .* is not empty .* without --force/);
    const forced = await e.run("restore", ["--database", "app", "--at", iso(between(1)), ...targetArgs(), "--target-database", "app_at", "--force"]);
    expect(forced.code, forced.stderr.slice(-3000)).toBe(0);
    expect((await pg.psql("SELECT note FROM marker ORDER BY id", { database: "app_at" })).split("\n")).toEqual(["marker-1"]);
  }, 300_000);

  it("a time the archive does not cover is refused, naming the nearest dump restore point; --dump restores that dump", async () => {
    const future = iso(Date.now() + 3_600_000);
    const r = await e.run("restore", ["--database", "app", "--at", future, ...targetArgs(), "--target-database", "app_future"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/FAILED at stage find: the WAL archive of cluster .* cannot recover database app to .*, nothing was restored: the archive covers .*; the nearest dump restore point is \d{8}T\d{6}Z \((daily|weekly|monthly)\): restore it with --at \d{8}T\d{6}Z --dump/);
    expect(await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'app_future'")).toBe("0");
    const d = await e.run("restore", ["--database", "app", "--at", future, "--dump", ...targetArgs(), "--target-database", "app_future"]);
    expect(d.code, d.stderr.slice(-2000)).toBe(0);
    expect(await pg.psql("SELECT count(*) FROM marker", { database: "app_future" })).toBe("0");
  }, 120_000);

  it("the drill recovers each archived cluster to a random second of its window, checks it stopped there, and reports the archive's RPO and the recovery time", async () => {
    const r = await e.run("restore-drill");
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const report = JSON.parse(readFileSync(join(e.stateDir, "drills", readdirSync(join(e.stateDir, "drills")).sort().at(-1)!), "utf8"));
    expect(report.pitr).toHaveLength(1);
    const p = report.pitr[0];
    expect(p).toMatchObject({ cluster, databases: ["app"], result: "pass", failure: null });
    const target = Date.parse(p.target);
    expect(target).toBeGreaterThanOrEqual(Date.parse(p.window.from));
    expect(target).toBeLessThan(Date.parse(p.window.to));
    // Stopped at the target: the last replayed commit at or before it, a later one held back.
    if (p.reached) expect(Date.parse(p.reached)).toBeLessThanOrEqual(target);
    expect(Date.parse(p.nextCommit.replace(" ", "T").replace(/\+00$/, "Z"))).toBeGreaterThan(target);
    expect(p.continuity.segments).toBeGreaterThanOrEqual(5);
    expect(p.rpo.ok).toBe(true);
    expect(p.rpo.achievedSeconds).toBeLessThanOrEqual(60);
    expect(p.recoverySeconds).toBeGreaterThan(0);
    expect(p.tables[0]).toMatchObject({ database: "app", recovered: ["public.marker"], missing: [] });
    expect(p.checks).toEqual([{ database: "app", sql: "SELECT to_regclass('public.marker') IS NOT NULL", ok: true }]);
    expect(r.stderr).toMatch(/drill passed for .*; 1 cluster\(s\) recovered to a point in time/);
    expect(leftovers()).toEqual([]);
  }, 300_000);

  it("disaster: restore --cluster recovers the whole cluster (roles, every database) into a new data directory, to T or to the latest point, promoted and ready to start", async () => {
    // As on a new machine: a conf without the pitr section (the archive is found in the bucket).
    e.setOverrides({ RESTORABLE_PITR_SHIP_SECONDS: 12, RESTORABLE_PITR_CLUSTER: [], RESTORABLE_PITR_SOURCE: [], RESTORABLE_PITR_SLOT: [] });
    try {
      await disasterSteps();
    } finally {
      e.setOverrides({ RESTORABLE_PITR_SHIP_SECONDS: 12 });
    }
  }, 300_000);

  async function disasterSteps(): Promise<void> {
    const list = await e.run("restore", ["--list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(`point in time: cluster ${cluster} (databases none configured)`);
    const t = between(2);
    const dir = join(scratch, "dr-at");
    const r = await e.run("restore", ["--cluster", cluster, "--at", iso(t), "--data-dir", dir]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`Recovered cluster ${cluster.replace(/\./g, "\\.")} into ${dir}: asked for ${iso(t)}, reached \\S+ \\(the last replayed commit\\).*databases: app, other, postgres; now on timeline 2`));
    expect(existsSync(join(dir, "recovery.signal"))).toBe(false);
    expect(readdirSync(scratch).filter((n) => n.includes(".restorable-"))).toEqual([]);
    const q = await startRecovered(dir);
    expect((await q("app", "SELECT note FROM marker ORDER BY id")).split("\n")).toEqual(markers.filter((m) => m.committedMs <= t).map((m) => m.note));
    expect(await q("other", "SELECT x FROM keep")).toBe("42");
    expect(await q("postgres", "SELECT rolname FROM pg_roles WHERE rolname = 'app_owner'")).toBe("app_owner");
    expect(await q("postgres", "SELECT pg_is_in_recovery()")).toBe("f");
    // To the latest archived point: every marker.
    const dir2 = join(scratch, "dr-latest");
    const l = await e.run("restore", ["--cluster", cluster, "--at", "latest", "--data-dir", dir2]);
    expect(l.code, l.stderr.slice(-3000)).toBe(0);
    const q2 = await startRecovered(dir2);
    expect((await q2("app", "SELECT note FROM marker ORDER BY id")).split("\n")).toEqual(markers.map((m) => m.note));
    // Never into an existing cluster.
    const again = await e.run("restore", ["--cluster", cluster, "--at", "latest", "--data-dir", dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/FAILED at stage target: .* is not empty; refusing to recover into it/);
    expect(leftovers()).toEqual([]);
  }

  async function startRecovered(dir: string): Promise<(db: string, sql: string) => Promise<string>> {
    const port = await freePort();
    const sock = join(scratch, "s" + port);
    await runOk("mkdir", ["-p", sock]);
    await runOk("chown", ["postgres:", sock]);
    const r = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dir, "-l", join(sock, "log"), "-o", `-p ${port} -k ${sock} -c listen_addresses=''`, "-w", "-t", "60", "start"], { cwd: "/" });
    if (r.code !== 0) throw new Error(`the recovered cluster did not start: ${readFileSync(join(sock, "log"), "utf8").slice(-2000)}`);
    started.push(dir);
    return async (db, sql) => (await runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", sock, "-p", String(port), "-U", "postgres", "-d", db, "-c", sql])).stdout.trim();
  }

  /** A WAL segment as the archive holds it: its key, bytes and the sha256 it was stored with. */
  async function storedSegment(seg: string): Promise<{ seg: string; key: string; good: Buffer; sha: string }> {
    const key = `${walPrefix()}${seg}.zst`;
    const good = await e.get(key);
    const head = await e.aws(["s3api", "head-object", "--bucket", BUCKET, "--key", key]);
    expect(head.code, head.stderr).toBe(0);
    return { seg, key, good, sha: JSON.parse(head.stdout).Metadata.sha256 as string };
  }

  it("a corrupt WAL object fails the restore naming the segment; nothing is restored", async () => {
    const { seg, key, good, sha } = await storedSegment(markers[1]!.segment!);
    const bad = Buffer.from(good);
    const i = Math.floor(bad.length / 2);
    bad[i] = bad[i]! ^ 0xff;
    const file = join(scratch, "bad.zst");
    writeFileSync(file, bad);
    // Bit rot: other bytes under the same recorded sha256.
    await putWithSha(key, file, sha);
    try {
      const r = await e.run("restore", ["--database", "app", "--at", iso(between(3)), ...targetArgs(), "--target-database", "app_corrupt"]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage wal: WAL segment ${seg} of cluster .* cannot be used: corrupt: sha256 of .* is [0-9a-f]{64}, it was stored with ${sha}`));
      expect(await pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'app_corrupt'")).toBe("0");
      expect(leftovers()).toEqual([]);
    } finally {
      writeFileSync(file, good);
      await putWithSha(key, file, sha);
    }
  }, 180_000);

  it("a corrupt base backup (streamed into the new data directory as it downloads) fails at verify before any server starts on it; the directory is gone", async () => {
    const ls = await e.aws(["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", HOST + "/"]);
    expect(ls.code, ls.stderr).toBe(0);
    const key = (JSON.parse(ls.stdout).Contents as { Key: string }[]).map((o) => o.Key).find((k) => k.includes(`/base/${cluster}/`) && k.endsWith(".tar.zst"));
    expect(key, ls.stdout).toBeDefined();
    const good = await e.get(key!);
    const bad = Buffer.from(good);
    // Bit rot late in the object: most of the tar is already extracted when the stream ends.
    const i = Math.floor(bad.length * 0.9);
    bad[i] = bad[i]! ^ 0xff;
    const file = join(scratch, "bad-base.tar.zst");
    writeFileSync(file, bad);
    const put = async (f: string) => expect((await s3.aws(s3.admin, ["s3api", "put-object", "--bucket", BUCKET, "--key", key!, "--body", f])).code).toBe(0);
    await put(file);
    const dir = join(scratch, "dr-corrupt");
    try {
      const r = await e.run("restore", ["--cluster", cluster, "--at", "latest", "--data-dir", dir]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage verify: sha256 mismatch for s3://${BUCKET}/${key!.replace(/[.]/g, "\\.")}: the manifest says [0-9a-f]{64}, the downloaded object \\(${bad.length} bytes\\) has [0-9a-f]{64}`));
      expect(existsSync(dir)).toBe(false);
      expect(readdirSync(scratch).filter((n) => n.startsWith(".dr-corrupt"))).toEqual([]);
      expect(leftovers()).toEqual([]);
    } finally {
      writeFileSync(file, good);
      await put(file);
    }
  }, 180_000);

  it("a missing WAL object (a gap before T) fails the restore naming the segment", async () => {
    const { seg, key, good, sha } = await storedSegment(markers[1]!.segment!);
    const del = await s3.aws(s3.admin, ["s3api", "delete-object", "--bucket", BUCKET, "--key", key]);
    expect(del.code, del.stderr).toBe(0);
    try {
      const r = await e.run("restore", ["--database", "app", "--at", iso(between(3)), ...targetArgs(), "--target-database", "app_gap"]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage find: .*the archive has a gap: WAL segment ${seg} is missing`));
      // Before the gap the archive still recovers: up to marker 1's commit (the last one before
      // the gap; after it, the next commit is in the missing segment).
      const t = Math.floor(markers[0]!.committedMs / 1000) * 1000;
      const before = await e.run("restore", ["--database", "app", "--at", iso(t), ...targetArgs(), "--target-database", "app_gap"]);
      expect(before.code, before.stderr.slice(-2000)).toBe(0);
      expect(await pg.psql("SELECT count(*) FROM marker", { database: "app_gap" })).toBe("0");
      // The drill fails at continuity, naming the segment.
      const drill = await e.run("restore-drill");
      expect(drill.code).toBe(1);
      expect(drill.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage continuity: cluster .*: the WAL archive of cluster .* has a gap after the newest base backup \\(\\d{8}T\\d{6}Z\\): WAL segment ${seg} is missing`));
    } finally {
      const file = join(scratch, "good.zst");
      writeFileSync(file, good);
      await putWithSha(key, file, sha);
    }
  }, 180_000);

  it("after a disaster recovery the cluster runs on timeline 2: archiving resumes there without overwriting timeline 1, and a restore follows the new timeline", async () => {
    // The recovered cluster (to T between markers 2 and 3) replaces the source, on its port.
    const dir = join(scratch, "dr-at");
    archiver!.kill("SIGTERM");
    await new Promise((r) => archiver!.once("exit", r));
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dir, "-m", "fast", "-w", "stop"], { cwd: "/" });
    started.splice(started.indexOf(dir), 1);
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", pg.dataDir, "-m", "fast", "-w", "stop"], { cwd: "/" });
    const tl1Versions = async () => {
      const v = await s3.aws(s3.admin, ["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", `${walPrefix()}00000001`]);
      expect(v.code, v.stderr).toBe(0);
      return (JSON.parse(v.stdout).Versions as { Key: string; VersionId: string; ETag: string }[]).map((x) => `${x.Key} ${x.VersionId} ${x.ETag}`).sort();
    };
    const tl1 = await tl1Versions();
    expect(tl1.length).toBeGreaterThanOrEqual(5);
    const logDir = join(scratch, "tl2");
    await runOk("mkdir", ["-p", logDir]);
    await runOk("chown", ["postgres:", logDir]);
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dir, "-l", join(logDir, "log"), "-o", `-p ${pg.port} -k ${pg.socketDir} -c listen_addresses=127.0.0.1`, "-w", "-t", "60", "start"], { cwd: "/" });
    started.push(dir);
    expect(await pg.psql("SELECT string_agg(note, ',' ORDER BY id) FROM marker", { database: "app" })).toBe("marker-1,marker-2");
    // A new machine's archiver has an empty spool (this one's holds the old timeline's partial segment).
    rmSync(join(e.stateDir, "wal", cluster), { recursive: true, force: true });
    archiver = await fx.startArchiver();
    await pg.psql("INSERT INTO marker (note) VALUES ('marker-6')", { database: "app" });
    const m6 = Number(await pg.psql("SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint FROM marker WHERE note = 'marker-6'", { database: "app" }));
    await pg.psql("SELECT pg_switch_wal()");
    const seg6 = await waitFor("marker-6 to reach the archive", () => segmentHolding("marker-6"), 120_000, 1000);
    expect(seg6.startsWith("00000002")).toBe(true);
    expect((await e.list(walPrefix())).some((k) => k.key.endsWith("/00000002.history.zst"))).toBe(true);
    // Timeline 1's objects are all still there, unchanged: no new version of any of them.
    expect(await tl1Versions()).toEqual(tl1);
    // A restore to a second after marker-6 follows timeline 2 from the timeline-1 base backup:
    // markers 1, 2 and 6, not timeline 1's 3 to 5.
    const t = (Math.floor(m6 / 1000) + 1) * 1000;
    // A commit after T in the archive (the window ends at the last archived commit).
    await new Promise((r) => setTimeout(r, Math.max(0, t + 500 - Date.now())));
    await pg.psql("INSERT INTO marker (note) VALUES ('marker-after-t')", { database: "app" });
    await pg.psql("SELECT pg_switch_wal()");
    await waitFor("the later commit to reach the archive", () => segmentHolding("marker-after-t"), 120_000, 1000);
    const r = await e.run("restore", ["--database", "app", "--at", iso(t), ...targetArgs(), "--target-database", "app_tl2"]);
    const debug = async () => `${r.stderr.slice(-1500)}\n${(await e.run("restore", ["--list"])).stdout}\n${(await e.list(walPrefix())).map((k) => k.key.slice(walPrefix().length)).join(" ")}\nlater in ${await segmentHolding("marker-after-t")}, m6 in ${seg6}, T ${iso(t)}, m6 ${new Date(m6).toISOString()}`;
    expect(r.code, r.code === 0 ? "" : await debug()).toBe(0);
    expect(await pg.psql("SELECT string_agg(note, ',' ORDER BY id) FROM marker", { database: "app_tl2" })).toBe("marker-1,marker-2,marker-6");
  }, 300_000);

  async function putWithSha(key: string, file: string, sha: string): Promise<void> {
    const r = await s3.aws(s3.admin, ["s3api", "put-object", "--bucket", BUCKET, "--key", key, "--body", file, "--metadata", `sha256=${sha}`]);
    expect(r.code, r.stderr).toBe(0);
  }
});


describe.skipIf(!tools.ok || !ageTools.ok)("point-in-time restore of an age-encrypted archive", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let e: BackupEnv;
  let w: WalArchive | undefined;
  const keyDir = mkdtempSync(join(tmpdir(), "pitr-age-"));
  let key: AgeKey;
  const commits: number[] = [];

  beforeAll(async () => {
    [s3, pg] = await Promise.all([startS3Server(), startPostgres()]);
    await s3.createBucket(BUCKET, { versioning: true });
    const access = await hostBucketAccess(s3, BUCKET, HOST);
    key = await ageKey(keyDir, "pitr");
    await pg.psql("ALTER SYSTEM SET track_commit_timestamp = on");
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", pg.dataDir, "-l", pg.logFile, "-m", "fast", "-w", "-t", "60", "restart"], { cwd: "/" });
    await pg.psql("CREATE DATABASE app");
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "app" });
    e = createBackupEnv({
      s3: access,
      objectives: { rpo: "1m", rto: "1h" },
      pitr: {},
      ageRecipients: [key.recipient],
      postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }],
      drill: { runtime: "local" },
      extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12 },
    });
    w = walArchive(e, () => `${HOST}/wal/${e.host.pitr!.clusters[0]!.name}/`);
    await w.startReady();
    expect((await e.run("backup")).code).toBe(0);
    const base = await e.run("backup-base");
    expect(base.code, base.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 3000));
    for (let k = 1; k <= 5; k++) {
      // After m3 a hot-standby setting goes up on the primary (a parameter-change record in the
      // WAL): a recovery past it must restart its server with the new value, not stop there.
      if (k === 4) {
        await pg.psql("ALTER SYSTEM SET max_prepared_transactions = 300");
        await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", pg.dataDir, "-l", pg.logFile, "-m", "fast", "-w", "-t", "60", "restart"], { cwd: "/" });
      }
      await pg.psql(`INSERT INTO marker (note) VALUES ('m${k}')`, { database: "app" });
      await pg.psql("SELECT pg_switch_wal()");
      await new Promise((r) => setTimeout(r, 1500));
    }
    commits.push(...(await pg.psql("SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint FROM marker ORDER BY id", { database: "app" })).split("\n").map(Number));
    // The segment holding the last marker (the one before the current, after the last switch) is
    // off-site, encrypted like every WAL object.
    const cluster = e.host.pitr!.clusters[0]!.name;
    const last = prev(await pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())"));
    await waitFor(`${last} to reach the archive`, async () => (await e.list(`${HOST}/wal/${cluster}/`)).some((k) => k.key.endsWith(`/${last}.zst.age`)), 120_000, 1000);
    expect((await e.list(`${HOST}/wal/${cluster}/`)).every((k) => k.key.endsWith(".zst.age"))).toBe(true);
  }, 400_000);

  afterAll(async () => {
    await w?.stopAll();
    rmSync(keyDir, { recursive: true, force: true });
    e?.remove();
    await pg?.stop();
    await s3?.stop();
  });

  it("needs the identity, and with it recovers exactly the markers committed at or before T", async () => {
    const t = (Math.floor(commits[0]! / 1000) + 1) * 1000;
    expect(t).toBeLessThan(commits[1]!);
    const args = ["--database", "app", "--at", iso(t), "--target", `local:127.0.0.1:${pg.port}`, "--user", "postgres", "--target-database", "app_at"];
    const without = await e.run("restore", args);
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/FAILED at stage \w+: .*encrypted with age: give the identity file/);
    const r = await e.run("restore", [...args, "--identity", key.identityFile]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(await pg.psql("SELECT string_agg(note, ',' ORDER BY id) FROM marker", { database: "app_at" })).toBe("m1");
  }, 300_000);

  it("a hot-standby setting raised on the primary after the base backup: the recovery restarts its server with it and reaches T", async () => {
    const t = (Math.floor(commits[3]! / 1000) + 1) * 1000;
    expect(t).toBeLessThan(commits[4]!);
    const r = await e.run("restore", ["--database", "app", "--at", iso(t), "--target", `local:127.0.0.1:${pg.port}`, "--user", "postgres", "--target-database", "app_raised", "--identity", key.identityFile]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toMatch(/the WAL raises max_prepared_transactions = 300 on the primary: restarting the recovery server with it/);
    expect(await pg.psql("SELECT string_agg(note, ',' ORDER BY id) FROM marker", { database: "app_raised" })).toBe("m1,m2,m3,m4");
  }, 300_000);
});

/** The segment name before NAME (same timeline, 16 MiB segments). */
function prev(name: string): string {
  return walSegmentName(parseInt(name.slice(0, 8), 16), walSegmentPosition(name) - 1);
}
