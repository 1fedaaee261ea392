/**
 * Benchmark: point-in-time recovery (issues #10 and #11), ours against pgBackRest, side by side in
 * one run on the same pgbench database, the same PostgreSQL 15 source cluster and the same Ceph
 * radosgw (which serves pgBackRest over a second, https frontend: it talks to S3 over TLS only).
 * Real components throughout: scripts/backup-base.sh, backup.sh, wal-archiver.sh and restore.sh
 * through createBackupEnv, Debian's pgbackrest (install it: `apt-get install -y pgbackrest`).
 *
 * Measures, in this order of priority (--measure picks; the output says which were measured):
 *   backup   wall time and bytes stored (new keys in the bucket, the WAL archives not counted):
 *            backup-base (pg_basebackup | zstd | S3), backup (pg_dump -Fc | zstd | S3 plus the
 *            globals), `pgbackrest backup --type=full` (repo1-bundle=y, process-max=2, zst).
 *   restore  wall time from the command's start until the restored server answers a query and is
 *            out of recovery (`SELECT NOT pg_is_in_recovery()` on app):
 *              physical:   restore --cluster NAME --at latest --data-dir DIR, then pg_ctl start
 *              logical:    restore --globals then restore --database app into an empty, running
 *                          cluster (its initdb + start is printed apart, not counted)
 *              pgbackrest: pgbackrest restore --type=immediate --target-action=promote into an
 *                          empty dir, then pg_ctl start (it replays to consistency and promotes)
 *            Both restored clusters start with -c archive_mode=off (the source's pgBackRest
 *            archive_command must not write into the repository from a copy).
 *   rpo      seconds from a marker row's commit (client side, after INSERT returned) until a WAL
 *            object in the bucket holds it (polled every 0.5 s: list + download new objects), the
 *            archiver with its default settings (RESTORABLE_PITR_SHIP_SECONDS 60); --probes probes
 *            on the idle server, then as many under a steady pgbench write load (pgbench -N -R).
 *   cpu      CPU seconds of the archiver's process tree (wal-archiver, pg_receivewal, zstd, aws;
 *            from /proc/<pid>/stat: the root's utime+stime+cutime+cstime plus every live
 *            descendant's, so children already reaped count through their parent) per GB of WAL
 *            generated (pg_wal_lsn_diff) while under load, up to the last load probe in the bucket;
 *            also per minute on the idle server. The server's walsender is not counted.
 * Every figure comes with the machine's idle CPU share (/proc/stat) before it, measured over a
 * second while the bench is quiet (it waits up to 30 s for one of at least 80%), and during it
 * (which counts the bench's own work). The run warns when other work was running before a figure:
 * such figures are not comparable with another run. The restores run in --runs interleaved rounds
 * (default 3): best and median. Prints; asserts nothing; never a test.
 *
 * Usage: npm run bench -- --only pitr [--scale N (default 50)] [--probes N (default 3)]
 *        [--load-tps N (default 100)] [--measure backup,restore,rpo,cpu] [--runs N (default 3)]
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createBackupEnv, type BackupEnv } from "../support/backup-env";
import { cleanLibpqEnv, loadSampleData, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { descendants, freePort, procInfo, run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";
import { walArchive } from "../support/wal-archive";

const BUCKET = "bench-pitr";
const HOST = "web-1";
const STANZA = "bench";
const PARTS = ["backup", "restore", "rpo", "cpu"] as const;
type Part = (typeof PARTS)[number];

const secs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Idle share of all CPUs between two /proc/stat snapshots. */
function cpuSnapshot(): { idle: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
}
function idleSince(s: { idle: number; total: number }): string {
  const n = cpuSnapshot();
  const pct = (100 * (n.idle - s.idle)) / Math.max(1, n.total - s.total);
  return `${pct.toFixed(0)}% idle during`;
}
/** Below this idle share of the machine before a figure (nothing of the bench's running) the run
 * is flagged as taken on a busy machine. The share during a figure is printed too, but it counts
 * the bench's own work (a restore keeps both cores busy): only the share before says "others". */
const BUSY_BELOW_PCT = 80;
const quietShares: number[] = [];
/** After a sync, the machine's idle share over one second while the bench does nothing; waits up
 * to 30 s for a second of at least BUSY_BELOW_PCT, and records the best seen. */
async function quietShare(): Promise<number> {
  // The previous figure's dirty pages (a restore writes the whole data directory) are written out
  // first, so that their writeback does not land on the next figure's disk time.
  execFileSync("sync");
  let best = 0;
  for (let i = 0; i < 30 && best < BUSY_BELOW_PCT; i++) {
    const c = cpuSnapshot();
    await sleep(1000);
    const n = cpuSnapshot();
    best = Math.max(best, (100 * (n.idle - c.idle)) / Math.max(1, n.total - c.total));
  }
  quietShares.push(best);
  return best;
}

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** CPU seconds of a process tree: the root's own and reaped children's, plus every live descendant's. */
function treeCpuSeconds(root: number): number {
  let total = 0;
  for (const pid of [root, ...descendants(root).map((d) => d.pid)]) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8");
      const x = f.slice(f.lastIndexOf(")") + 2).split(" ");
      total += Number(x[11]) + Number(x[12]) + Number(x[13]) + Number(x[14]);
    } catch {
      /* gone */
    }
  }
  return total / CLK_TCK;
}

/** Keys and sizes of the whole bucket. */
async function bucketSizes(e: BackupEnv): Promise<Map<string, number>> {
  return new Map((await e.list("")).map((o) => [o.key, o.size]));
}
function newBytes(before: Map<string, number>, after: Map<string, number>, keep: (k: string) => boolean): { bytes: number; objects: number } {
  let bytes = 0;
  let objects = 0;
  for (const [k, s] of after) {
    if (before.has(k) || !keep(k)) continue;
    bytes += s;
    objects++;
  }
  return { bytes, objects };
}

async function asPostgres(cmd: string, args: string[], timeoutMs = 60 * 60_000): Promise<void> {
  await runOk("runuser", ["-u", "postgres", "--", cmd, ...args], { cwd: "/", env: cleanLibpqEnv(), timeoutMs });
}

/** Restored servers still to stop (also when the bench fails half-way). */
const restoredStops: (() => Promise<void>)[] = [];

/** A recovered data dir started on a free port; resolves once it answers out of recovery. */
async function startUntilQueryable(dir: string, scratch: string): Promise<{ stop: () => Promise<void>; psql: (sql: string) => Promise<string> }> {
  const port = await freePort();
  const sock = mkdtempSync(join(scratch, "sock-"));
  chmodSync(sock, 0o755);
  chownSync(sock, pgUid(), pgGid());
  const log = join(sock, "log");
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dir, "-m", "immediate", "-w", "-t", "60", "stop"], { cwd: "/" });
  };
  restoredStops.push(stop);
  const r = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dir, "-l", log, "-o", `-p ${port} -k ${sock} -c listen_addresses='' -c archive_mode=off`, "-w", "-t", "3600", "start"], { cwd: "/", timeoutMs: 3_700_000 });
  if (r.code !== 0) {
    await stop();
    throw new Error(`the restored cluster in ${dir} did not start: ${safeRead(log).slice(-2000)}`);
  }
  const psql = async (sql: string) => (await runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "app", "-c", sql], { env: cleanLibpqEnv() })).stdout.trim();
  try {
    await waitFor("the restored server to leave recovery", async () => {
      const q = await run(`${PG_BIN}/psql`, ["-XAtq", "-h", sock, "-p", String(port), "-U", "postgres", "-d", "app", "-c", "SELECT NOT pg_is_in_recovery()"], { env: cleanLibpqEnv() });
      return q.code === 0 && q.stdout.trim() === "t";
    }, 3_600_000, 50);
  } catch (x) {
    await stop();
    throw x;
  }
  return { stop, psql };
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "(no log)";
  }
}
let ids: { uid: number; gid: number } | undefined;
const pgIds = () => (ids ??= { uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) });
const pgUid = () => pgIds().uid;
const pgGid = () => pgIds().gid;

/** A directory owned by postgres, mode 0700 (or 0755). */
function pgDir(path: string, mode = 0o700): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  chownSync(path, pgUid(), pgGid());
  return path;
}

/** pgBackRest's config for the source cluster and the bucket (TLS frontend; see TEST-INFRA.md). */
function pgbackrestConf(s3: S3Server, pg: PgCluster, dir: string): string {
  const path = join(dir, "pgbackrest.conf");
  writeFileSync(
    path,
    [
      "[global]",
      "repo1-type=s3",
      "repo1-s3-endpoint=127.0.0.1",
      `repo1-storage-port=${s3.httpsPort}`,
      "repo1-s3-uri-style=path",
      "repo1-storage-verify-tls=n",
      `repo1-s3-region=${s3.region}`,
      `repo1-s3-bucket=${BUCKET}`,
      `repo1-s3-key=${s3.admin.accessKeyId}`,
      `repo1-s3-key-secret=${s3.admin.secretAccessKey}`,
      "repo1-path=/pgbackrest",
      "repo1-bundle=y",
      "repo1-retention-full=2",
      "compress-type=zst",
      "process-max=2",
      "start-fast=y",
      `log-path=${pgDir(join(dir, "log"))}`,
      `lock-path=${pgDir(join(dir, "lock"))}`,
      `spool-path=${pgDir(join(dir, "spool"))}`,
      "log-level-console=warn",
      "log-level-file=off",
      "",
      `[${STANZA}]`,
      `pg1-path=${pg.dataDir}`,
      `pg1-port=${pg.port}`,
      `pg1-socket-path=${pg.socketDir}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  chownSync(path, pgUid(), pgGid());
  return path;
}

export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      scale: { type: "string", default: "50" },
      probes: { type: "string", default: "3" },
      "load-tps": { type: "string", default: "100" },
      measure: { type: "string", default: PARTS.join(",") },
      runs: { type: "string", default: "3" },
    },
  });
  const scale = Number(values.scale);
  const probes = Number(values.probes);
  const loadTps = Number(values["load-tps"]);
  const runs = Number(values.runs);
  const measure = new Set(values.measure!.split(",").map((s) => s.trim()));
  for (const m of measure) if (!(PARTS as readonly string[]).includes(m)) throw new Error(`--measure takes ${PARTS.join(",")}, not ${m}`);
  if (!Number.isInteger(scale) || scale < 1 || !Number.isInteger(probes) || probes < 1 || !(loadTps > 0) || !Number.isInteger(runs) || runs < 1) {
    throw new Error("usage: npm run bench -- --only pitr [--scale N] [--probes N] [--load-tps N] [--measure backup,restore,rpo,cpu] [--runs N]");
  }
  const want = (p: Part) => measure.has(p);
  const tools = requireTools(`${PG_BIN}/initdb`, "pg_receivewal", "pg_basebackup", "pg_dump", "pgbench", "psql", "radosgw", "/usr/bin/aws", "zstd", "flock", "curl", "tar", "jq", "openssl", "pgbackrest");
  if (!tools.ok) throw new Error(`${tools.reason} (pgBackRest: apt-get install -y pgbackrest)`);

  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}; ${(await runOk("pgbackrest", ["version"])).stdout.trim()}`);
  const measured: string[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  let archiverStop: (() => Promise<void>) | undefined;
  let load: ChildProcess | undefined;
  const s3 = await startS3Server({ https: true, memstoreBytes: Math.max(2, Math.ceil((scale * 16e6 * 3) / 2 ** 30) + 1) * 2 ** 30 });
  cleanups.push(() => s3.stop());
  try {
    const pg = await startPostgres();
    cleanups.push(() => pg.stop());
    const scratch = mkdtempSync(join(tmpdir(), "rbench-pitr-"));
    chmodSync(scratch, 0o755);
    cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
    await s3.createBucket(BUCKET, { versioning: true });

    const t0 = Date.now();
    process.stderr.write(`bench pitr: loading pgbench scale ${scale} + sample schema...\n`);
    await loadSampleData(pg, "app", { pgbenchScale: scale });
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "app" });
    const dbBytes = Number(await pg.psql("SELECT pg_database_size('app')"));
    console.log(`database app: pgbench scale ${scale} + sample schema, ${mb(dbBytes)} on disk (built in ${((Date.now() - t0) / 1000).toFixed(0)} s)`);

    // pgBackRest archives the source too (it needs its own WAL archive for a consistent backup).
    const brDir = pgDir(join(scratch, "pgbackrest"));
    const brConf = pgbackrestConf(s3, pg, brDir);
    const br = (a: string[], timeoutMs?: number) => asPostgres("pgbackrest", [`--config=${brConf}`, `--stanza=${STANZA}`, ...a], timeoutMs);
    await pg.psql(`ALTER SYSTEM SET archive_mode = on; ALTER SYSTEM SET archive_command = 'pgbackrest --config=${brConf} --stanza=${STANZA} archive-push %p'`);
    await asPostgres(`${PG_BIN}/pg_ctl`, ["-D", pg.dataDir, "-l", pg.logFile, "-m", "fast", "-w", "-t", "120", "restart"]);
    await br(["stanza-create"]);
    await br(["check"]);

    // Ours: the real scripts, default archiver settings (RPO 15 min: ship every 60 s, the default).
    const e = createBackupEnv({
      host: HOST,
      s3: { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin },
      objectives: { rpo: "15m", rto: "1h" },
      pitr: {},
      postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }],
      drill: { runtime: "local" },
    });
    cleanups.push(() => e.remove());
    const cluster = e.host.pitr!.clusters[0]!.name;
    const walPrefix = `${HOST}/wal/${cluster}/`;
    const ship = /^RESTORABLE_PITR_SHIP_SECONDS='?(\d+)/m.exec(readFileSync(e.configPath, "utf8"))?.[1];
    console.log(`ours: cluster ${cluster}, RESTORABLE_PITR_SHIP_SECONDS=${ship} (rendered default), zstd level ${e.host.config.zstdLevel}; pgBackRest: repo1-bundle=y process-max=2 compress-type=zst, https frontend of the same radosgw`);
    const w = walArchive(e, () => walPrefix);
    const archiver = w.start();
    archiverStop = async () => {
      // A receiver that outlived its archiver (it should not) is stopped by its pid.
      const receivers = archiver.proc.pid ? descendants(archiver.proc.pid).filter((d) => d.comm === "pg_receivewal") : [];
      await w.stopAll();
      for (const r of receivers) if (procInfo(r.pid)?.comm === "pg_receivewal") process.kill(r.pid, "SIGTERM");
    };
    await w.withLog(waitFor("the archiver to start", () => archiver.stderr().includes("archiving WAL of 1 cluster(s)"), 120_000));

    // ---- backups (also needed for the restores) ------------------------------------------
    const backupRows: string[] = [];
    const timed = async (label: string, fn: () => Promise<void>, keep: (k: string) => boolean) => {
      const before = await bucketSizes(e);
      const quiet = await quietShare();
      const c = cpuSnapshot();
      const t = process.hrtime.bigint();
      await fn();
      const s = secs(t);
      const idle = idleSince(c);
      const n = newBytes(before, await bucketSizes(e), keep);
      backupRows.push(`${label.padEnd(34)} ${s.toFixed(2).padStart(8)} s  ${mb(n.bytes).padStart(10)}  ${String(n.objects).padStart(7)}  (${quiet.toFixed(0)}% idle before, ${idle})`);
      return { s, bytes: n.bytes };
    };
    const scriptOk = async (name: string, a: string[] = [], extra: NodeJS.ProcessEnv = {}) => {
      const r = await e.run(name, a, { timeoutMs: 60 * 60_000, env: extra });
      if (r.code !== 0) throw new Error(`${name} ${a.join(" ")} failed (${r.code}): ${r.stderr.slice(-3000)}`);
      return r;
    };
    const notWal = (k: string) => !k.startsWith(walPrefix) && !k.startsWith("pgbackrest/archive/");
    const bPhys = await timed("physical: backup-base", () => scriptOk("backup-base").then(() => undefined), notWal);
    const bLog = await timed("logical: backup (dump + globals)", () => scriptOk("backup").then(() => undefined), notWal);
    const bBr = await timed("pgbackrest: backup --type=full", () => br(["--type=full", "backup"]), notWal);
    // The pgBackRest backup is restorable now (it waited for its stop segment in its archive);
    // from here on only our archiver ships WAL, so the RPO and CPU figures are ours alone.
    await pg.psql("ALTER SYSTEM SET archive_command = '/bin/true'; SELECT pg_reload_conf()");
    if (want("backup")) {
      measured.push("backup");
      console.log("\n== backup: wall time and bytes stored (new keys in the bucket; WAL archives not counted)");
      console.log(`${"method".padEnd(34)} ${"wall".padStart(10)}  ${"stored".padStart(10)}  objects`);
      for (const r of backupRows) console.log(r);
      console.log(`ratios: physical/pgbackrest time ${(bPhys.s / bBr.s).toFixed(2)}, bytes ${(bPhys.bytes / bBr.bytes).toFixed(2)}; physical/logical time ${(bPhys.s / bLog.s).toFixed(2)}, bytes ${(bPhys.bytes / bLog.bytes).toFixed(2)}`);
    }

    // ---- restores --------------------------------------------------------------------------
    if (want("restore")) {
      const expectRows = String(scale * 100000);
      const check = async (psql: (sql: string) => Promise<string>) => ((await psql("SELECT count(*) FROM pgbench_accounts")) === expectRows ? "rows ok" : "ROW COUNT DIFFERS");
      type Round = { phys: number; physCmd: number; log: number; init: number; br: number; brCmd: number; notes: string[] };
      const rounds: Round[] = [];
      let reached: string | undefined;
      let replayed: string | undefined;
      // Interleaved rounds (physical, logical, pgBackRest, then again): a load that comes and
      // goes hits all three alike. Each round starts on a quiet machine when it can (quietShare).
      for (let i = 0; i < runs; i++) {
        const before = await quietShare();
        const notes: string[] = [];
        // physical
        let c = cpuSnapshot();
        const physDir = join(scratch, "phys");
        let t = process.hrtime.bigint();
        const pr = await scriptOk("restore", ["--cluster", cluster, "--at", "latest", "--data-dir", physDir]);
        const physCmd = secs(t);
        const phys = await startUntilQueryable(physDir, scratch);
        const tPhys = secs(t);
        notes.push(`physical ${await check(phys.psql)}, ${idleSince(c)}`);
        reached = /reached (.*?) \(the last replayed commit\)/.exec(pr.stdout)?.[1];
        replayed = /(\d+ WAL segment\(s\) from the archive, \S+ s)/.exec(pr.stdout)?.[1];
        await phys.stop();
        rmSync(physDir, { recursive: true, force: true });
        // logical
        const t1 = process.hrtime.bigint();
        const empty = await startPostgres();
        cleanups.push(() => empty.stop());
        const tInit = secs(t1);
        const beforeLog = await quietShare();
        c = cpuSnapshot();
        t = process.hrtime.bigint();
        const target = `local:127.0.0.1:${empty.port}`;
        await scriptOk("restore", ["--globals", "--target", target]);
        await scriptOk("restore", ["--database", "app", "--target", target]);
        const tLog = secs(t);
        notes.push(`logical ${(await empty.psql("SELECT count(*) FROM pgbench_accounts", { database: "app" })) === expectRows ? "rows ok" : "ROW COUNT DIFFERS"}, ${idleSince(c)}`);
        await empty.stop();
        // pgBackRest
        const beforeBr = await quietShare();
        c = cpuSnapshot();
        const brData = pgDir(join(scratch, "pgbr-data"));
        t = process.hrtime.bigint();
        await br([`--pg1-path=${brData}`, "--type=immediate", "--target-action=promote", "restore"]);
        const brCmd = secs(t);
        const brSrv = await startUntilQueryable(brData, scratch);
        const tBr = secs(t);
        notes.push(`pgbackrest ${await check(brSrv.psql)}, ${idleSince(c)}`);
        await brSrv.stop();
        rmSync(brData, { recursive: true, force: true });
        rounds.push({ phys: tPhys, physCmd, log: tLog, init: tInit, br: tBr, brCmd, notes: [`machine ${before.toFixed(0)}%/${beforeLog.toFixed(0)}%/${beforeBr.toFixed(0)}% idle before each`, ...notes] });
      }
      measured.push("restore");
      const best = (f: (r: Round) => number) => Math.min(...rounds.map(f));
      const med = (f: (r: Round) => number) => median(rounds.map(f));
      const fig = (f: (r: Round) => number) => `${best(f).toFixed(2).padStart(6)} s (median ${med(f).toFixed(2)})`;
      console.log(`\n== restore to queryable (command start until \`SELECT NOT pg_is_in_recovery()\` answers t on app): best of ${runs} interleaved rounds, median in parentheses`);
      console.log(`physical: restore --cluster --at latest + start  ${fig((r) => r.phys)}  (the restore command alone ${fig((r) => r.physCmd)})`);
      console.log(`logical: restore --globals + --database app       ${fig((r) => r.log)}  (the empty cluster's initdb + start, not counted: ${fig((r) => r.init)})`);
      console.log("  (the empty cluster is the harness's, fsync=off: that favours the logical path; pgBackRest's recovery runs with fsync on; ours with fsync off, then one syncfs before the command ends, so both are on disk when counted)");
      console.log(`pgbackrest: restore --type=immediate + start     ${fig((r) => r.br)}  (the restore command alone ${fig((r) => r.brCmd)})`);
      rounds.forEach((r, i) => console.log(`  round ${i + 1}: physical ${r.phys.toFixed(2)} s, logical ${r.log.toFixed(2)} s, pgbackrest ${r.br.toFixed(2)} s; ${r.notes.join("; ")}`));
      console.log(`physical restore reached ${reached ?? "?"} (the last replayed commit); ${replayed ?? "?"} of recovery`);
      console.log(`ratios (best; median): physical/pgbackrest ${(best((r) => r.phys) / best((r) => r.br)).toFixed(2)}; ${(med((r) => r.phys) / med((r) => r.br)).toFixed(2)}, physical/logical ${(best((r) => r.phys) / best((r) => r.log)).toFixed(2)}; ${(med((r) => r.phys) / med((r) => r.log)).toFixed(2)}`);
    }

    // ---- RPO and the archiver's CPU ---------------------------------------------------------
    if (want("rpo") || want("cpu")) {
      const lsn = async () => Number(await pg.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"));
      let k = 0;
      const probe = async (): Promise<{ latency: number; lsnAt: number }> => {
        const note = `rpo-probe-${++k}-${Date.now()}`;
        await pg.psql(`INSERT INTO marker (note) VALUES ('${note}')`, { database: "app" });
        const committed = Date.now();
        const lsnAt = await lsn();
        await w.reachesBucket(note, 15 * 60_000);
        return { latency: (Date.now() - committed) / 1000, lsnAt };
      };
      const pid = archiver.proc.pid!;
      // Idle server.
      await quietShare();
      let c = cpuSnapshot();
      let cpu0 = treeCpuSeconds(pid);
      let wall0 = Date.now();
      const idle: number[] = [];
      for (let i = 0; i < probes; i++) {
        idle.push((await probe()).latency);
        await sleep(3000 + 7000 * i);
      }
      const idleCpuPerMin = (treeCpuSeconds(pid) - cpu0) / ((Date.now() - wall0) / 60000);
      const idleShare = idleSince(c);
      // Steady write load.
      load = spawn(`${PG_BIN}/pgbench`, ["-n", "-N", "-c", "2", "-j", "1", "-R", String(loadTps), "-T", "86400", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "app"], { env: cleanLibpqEnv(), stdio: "ignore" });
      await sleep(5000);
      c = cpuSnapshot();
      cpu0 = treeCpuSeconds(pid);
      wall0 = Date.now();
      const lsn0 = await lsn();
      const loaded: number[] = [];
      let last = { latency: 0, lsnAt: lsn0 };
      for (let i = 0; i < probes; i++) {
        last = await probe();
        loaded.push(last.latency);
        if (i < probes - 1) await sleep(3000 + 7000 * i);
      }
      const cpuLoad = treeCpuSeconds(pid) - cpu0;
      const loadWall = (Date.now() - wall0) / 1000;
      const walBytes = last.lsnAt - lsn0;
      const loadShare = idleSince(c);
      load.kill("SIGTERM");
      load = undefined;
      if (want("rpo")) {
        measured.push("rpo");
        console.log(`\n== RPO achieved: commit of a marker row until a WAL object in the bucket holds it (ship every ${ship} s)`);
        console.log(`idle server:      median ${median(idle).toFixed(1)} s, worst ${Math.max(...idle).toFixed(1)} s  (${idle.map((x) => x.toFixed(1)).join(", ")}; ${idleShare})`);
        console.log(`pgbench -N -R ${loadTps}: median ${median(loaded).toFixed(1)} s, worst ${Math.max(...loaded).toFixed(1)} s  (${loaded.map((x) => x.toFixed(1)).join(", ")}; ${loadShare})`);
      }
      if (want("cpu")) {
        measured.push("cpu");
        const objs = (await e.list(walPrefix)).reduce((a, o) => a + o.size, 0);
        console.log("\n== archiving's extra load: CPU of the archiver's process tree (walsender not counted)");
        console.log(`under load: ${cpuLoad.toFixed(2)} CPU s over ${loadWall.toFixed(0)} s for ${mb(walBytes)} of WAL = ${(cpuLoad / (walBytes / 1e9)).toFixed(1)} CPU s per GB of WAL (${((100 * cpuLoad) / loadWall).toFixed(1)}% of one CPU; ${loadShare})`);
        console.log(`idle server: ${idleCpuPerMin.toFixed(2)} CPU s per minute; WAL archive now ${mb(objs)} in the bucket`);
      }
    }
  } finally {
    if (load) load.kill("SIGTERM");
    if (archiverStop) await archiverStop();
    for (const stop of restoredStops) await stop();
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((x: unknown) => console.error(`cleanup: ${x instanceof Error ? x.message : x}`));
    if (quietShares.length && Math.min(...quietShares) < BUSY_BELOW_PCT) {
      console.log(`\nWARNING: other work was running (as little as ${Math.min(...quietShares).toFixed(0)}% idle CPU before a figure, with the bench quiet): these figures are not comparable with another run`);
    }
    console.log(`\nmeasured: ${measured.length ? measured.join(", ") : "nothing"}${PARTS.filter((p) => !measured.includes(p)).length ? `; not measured: ${PARTS.filter((p) => !measured.includes(p)).join(", ")}` : ""}`);
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
