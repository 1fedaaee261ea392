// npm run bench -- --only pitr [--scale 50] [--probes 7] [--runs 3] [--rate 200] [--skip-load]
//
// On one pgbench database (scale --scale) in a real PostgreSQL 15 cluster and one Ceph radosgw
// (http for restorable, https for pgBackRest), in one run:
//  1. RPO achieved, with the default settings (objectives.rpo 1m: ship within 60 s): the rendered
//     wal-archiver runs; each probe commits a marker row, then polls the bucket until a WAL object
//     holds the row's bytes (a complete segment in the bucket: recoverable from it); the probe's
//     RPO is commit -> found. --probes probes at random offsets (0-10 s apart) on an idle server,
//     then as many under a steady pgbench write load (--rate transactions/s, 2 clients). Prints
//     median and worst of each.
//  2. The cost of archiving: CPU seconds of the archiver's process tree (the script, pg_receivewal,
//     zstd, curl, psql; /proc utime+stime, children included) and of the server's walsender
//     backend (the extra load on the database server), per GB of WAL written (pg_current_wal_lsn
//     before/after), over the load phase.
//  3. Backup time and bytes stored, --runs runs each, interleaved: a physical base backup
//     (backup-base: pg_basebackup -Ft -X fetch | zstd), the logical dump (backup: pg_dump -Fc |
//     zstd, globals), and pgBackRest 2.45 (Debian's pgbackrest, S3 repo on the same radosgw over
//     TLS, compress-type=zst, repo1-bundle=y, process-max=2, start-fast=y; a full backup, with
//     archive_mode=on and pgBackRest's archive-push turned on for this phase only).
// Prints; asserts nothing; never a test.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync, chownSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createBackupEnv } from "../support/backup-env";
import { cleanLibpqEnv, loadSampleData, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { run, runOk, waitFor } from "../support/proc";
import { startS3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const HZ = 100; // USER_HZ: /proc/<pid>/stat times are in clock ticks of 1/100 s on Linux

/** utime+stime+cutime+cstime (s) of pid and its live descendants (waited-for children are in cutime). */
function treeCpu(root: number): number {
  const children = new Map<number, number[]>();
  const cpu = new Map<number, number>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ppid = Number(f[1]);
      (children.get(ppid) ?? children.set(ppid, []).get(ppid)!).push(Number(e));
      cpu.set(Number(e), (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / HZ);
    } catch {
      /* gone */
    }
  }
  let total = 0;
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    total += cpu.get(p) ?? 0;
    queue.push(...(children.get(p) ?? []));
  }
  return total;
}

const lsnBytes = (s: string) => {
  const [hi, lo] = s.trim().split("/");
  return parseInt(hi!, 16) * 2 ** 32 + parseInt(lo!, 16);
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function unzstd(b: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn("zstd", ["-d", "-q", "-c"], { stdio: ["pipe", "pipe", "ignore"] });
    const out: Buffer[] = [];
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd exited ${code}`))));
    p.stdin.end(b);
  });
}

async function timed<T>(f: () => Promise<T>): Promise<{ s: number; v: T }> {
  const t = process.hrtime.bigint();
  const v = await f();
  return { s: Number(process.hrtime.bigint() - t) / 1e9, v };
}

export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      scale: { type: "string", default: "50" },
      probes: { type: "string", default: "7" },
      runs: { type: "string", default: "3" },
      rate: { type: "string", default: "200" },
      "skip-load": { type: "boolean", default: false },
    },
  });
  const scale = Number(values.scale);
  const probes = Number(values.probes);
  const runs = Number(values.runs);
  const rate = Number(values.rate);
  const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_receivewal", "pg_basebackup", "pgbench", "radosgw", "/usr/bin/aws", "zstd", "flock", "curl", "pgbackrest", "openssl", "runuser");
  if (!tools.ok) throw new Error(tools.reason);
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}`);

  const s3 = await startS3Server({ memstoreBytes: 6 * 2 ** 30, https: true });
  const pg = await startPostgres();
  const work = mkdtempSync(join(tmpdir(), "rbench-pitr-"));
  chmodSync(work, 0o755);
  let archiver: ChildProcess | undefined;
  let load: ChildProcess | undefined;
  try {
    await s3.createBucket("bench");
    const access = { endpoint: s3.endpoint, region: s3.region, bucket: "bench", creds: s3.admin };
    const db = "bench";
    const t0 = Date.now();
    await loadSampleData(pg, db, { pgbenchScale: scale });
    await pg.psql("CREATE TABLE rpo_probe (id serial PRIMARY KEY, note text NOT NULL)", { database: db });
    const size = Number(await pg.psql(`SELECT pg_database_size('${db}')`));
    console.log(`pgbench scale ${scale}: ${mb(size)} on disk (built in ${((Date.now() - t0) / 1000).toFixed(0)} s)`);

    // Default settings: objectives.rpo 1m -> each segment off-site within 60 s.
    const e = createBackupEnv({ s3: access, objectives: { rpo: "1m", rto: "1h" }, pitr: {}, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: db }], drill: { runtime: "local" } });
    const cluster = e.host.pitr!.clusters[0]!.name;
    const walPrefix = `web-1/wal/${cluster}/`;

    // ---- 1. RPO
    archiver = e.spawn("wal-archiver");
    let log = "";
    archiver.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20000)));
    archiver.stdout!.resume();
    await waitFor("the archiver to start", () => log.includes("archiving WAL of"), 60_000);
    const seen = new Map<string, Buffer>();
    /** Seconds from the commit of a marker to a WAL object in the bucket holding it. */
    const probe = async (label: string): Promise<number> => {
      const note = `rpo-probe-${label}-${Date.now()}`;
      await pg.psql(`INSERT INTO rpo_probe (note) VALUES ('${note}')`, { database: db });
      const committed = Date.now();
      const needle = Buffer.from(note);
      for (;;) {
        for (const { key } of await e.list(walPrefix)) {
          if (seen.has(key)) continue;
          seen.set(key, await unzstd(await e.get(key)));
          if (seen.get(key)!.includes(needle)) return (Date.now() - committed) / 1000;
        }
        // Segments already seen cannot change (never overwritten): only new keys are read.
        if (Date.now() - committed > 600_000) throw new Error(`probe ${label} not in the bucket after 10 min:\n${log.slice(-3000)}`);
        await sleep(250);
      }
    };
    const rpo = async (phase: string): Promise<number[]> => {
      const out: number[] = [];
      for (let k = 0; k < probes; k++) {
        await sleep(Math.random() * 10_000);
        out.push(await probe(`${phase}-${k}`));
      }
      console.log(`RPO ${phase.padEnd(5)} (${probes} probes): median ${median(out).toFixed(1)} s, worst ${Math.max(...out).toFixed(1)} s  [${out.map((x) => x.toFixed(1)).join(", ")}]`);
      return out;
    };
    await rpo("idle");

    // ---- 2. under load, with the cost of archiving
    if (!values["skip-load"]) {
      const walsender = async () => Number(await pg.psql("SELECT pid FROM pg_stat_replication LIMIT 1"));
      const lsn0 = lsnBytes(await pg.psql("SELECT pg_current_wal_lsn()"));
      const ws = await walsender();
      const cpu0 = treeCpu(archiver.pid!);
      const ws0 = treeCpu(ws);
      load = spawn("pgbench", ["-n", "-c", "2", "-j", "2", "-R", String(rate), "-T", "3600", db], {
        env: { ...cleanLibpqEnv(), PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: "postgres" },
        stdio: "ignore",
      });
      await sleep(5000);
      await rpo("load");
      load.kill("SIGINT");
      await new Promise((r) => load!.once("exit", r));
      load = undefined;
      const lsn1 = lsnBytes(await pg.psql("SELECT pg_current_wal_lsn()"));
      // Let the archiver ship the rest, then read the CPU it used.
      await sleep(70_000);
      const gb = (lsn1 - lsn0) / 1e9;
      const cpuArch = treeCpu(archiver.pid!) - cpu0;
      const cpuWs = (await walsender()) === ws ? treeCpu(ws) - ws0 : NaN;
      console.log(`WAL written under load: ${mb(lsn1 - lsn0)}; archiver CPU ${cpuArch.toFixed(1)} s = ${(cpuArch / gb).toFixed(1)} CPU s/GB of WAL; walsender backend (on the database server) ${cpuWs.toFixed(1)} s = ${(cpuWs / gb).toFixed(1)} CPU s/GB`);
    }
    archiver.kill("SIGTERM");
    await new Promise((r) => archiver!.once("exit", r));
    archiver = undefined;

    // ---- 3. backup time and bytes: base backup, dump, pgBackRest
    const repo = join(work, "pgbackrest");
    const conf = join(work, "pgbackrest.conf");
    writeFileSync(
      conf,
      [
        "[global]",
        "repo1-type=s3", "repo1-s3-bucket=bench", "repo1-s3-endpoint=127.0.0.1", `repo1-storage-port=${s3.httpsPort}`,
        "repo1-s3-uri-style=path", "repo1-storage-verify-tls=n", `repo1-s3-region=${s3.region}`,
        `repo1-s3-key=${s3.admin.accessKeyId}`, `repo1-s3-key-secret=${s3.admin.secretAccessKey}`,
        "repo1-path=/pgbackrest", "repo1-bundle=y", "repo1-retention-full=100",
        "compress-type=zst", "process-max=2", "start-fast=y", `lock-path=${repo}/lock`, `log-path=${repo}/log`, "log-level-console=warn",
        "[bench]", `pg1-path=${pg.dataDir}`, `pg1-port=${pg.port}`, `pg1-socket-path=${pg.socketDir}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const pgUid = Number((await runOk("id", ["-u", "postgres"])).stdout.trim());
    const pgGid = Number((await runOk("id", ["-g", "postgres"])).stdout.trim());
    chownSync(conf, pgUid, pgGid);
    await runOk("install", ["-d", "-o", "postgres", "-g", "postgres", repo, `${repo}/lock`, `${repo}/log`]);
    const pgbr = (a: string[]) => run("runuser", ["-u", "postgres", "--", "pgbackrest", `--config=${conf}`, "--stanza=bench", ...a], { cwd: "/", timeoutMs: 3_600_000 });
    await pg.psql(`ALTER SYSTEM SET archive_mode = on; ALTER SYSTEM SET archive_command = 'pgbackrest --config=${conf} --stanza=bench archive-push %p'`);
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", pg.dataDir, "-l", pg.logFile, "-m", "fast", "-w", "-t", "120", "restart"], { cwd: "/" });
    for (const step of [["stanza-create"], ["check"]]) {
      const r = await pgbr(step);
      if (r.code !== 0) throw new Error(`pgbackrest ${step[0]} failed: ${r.stderr}${r.stdout}`);
    }
    const bytesUnder = async (prefix: string) => {
      const r = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", "bench", "--prefix", prefix, "--output", "json"]);
      return ((JSON.parse(r.stdout || "{}").Contents ?? []) as { Size: number }[]).reduce((a, o) => a + o.Size, 0);
    };
    const res: Record<"base" | "dump" | "pgbackrest", { s: number; bytes: number }[]> = { base: [], dump: [], pgbackrest: [] };
    for (let r = 0; r < runs; r++) {
      const now = new Date(Date.UTC(2026, 10, 2 + r, 2, 0, 0)).toISOString().replace(/\.000Z$/, "Z");
      const stamp = now.replace(/[-:]/g, "");
      const b = await timed(() => e.run("backup-base", [], { now, timeoutMs: 3_600_000 }));
      if (b.v.code !== 0) throw new Error(`backup-base failed: ${b.v.stderr.slice(-2000)}`);
      const baseKeys = (await e.list("web-1/")).filter((o) => o.key.includes("/base/") && o.key.includes(stamp));
      res.base.push({ s: b.s, bytes: baseKeys.reduce((a, o) => a + o.size, 0) });
      const d = await timed(() => e.run("backup", [], { now, timeoutMs: 3_600_000 }));
      if (d.v.code !== 0) throw new Error(`backup failed: ${d.v.stderr.slice(-2000)}`);
      const dumpKeys = (await e.list("web-1/")).filter((o) => !o.key.includes("/base/") && !o.key.includes("/wal/") && o.key.includes(stamp));
      res.dump.push({ s: d.s, bytes: dumpKeys.reduce((a, o) => a + o.size, 0) });
      const before = await bytesUnder("pgbackrest/backup/");
      const p = await timed(() => pgbr(["backup", "--type=full"]));
      if (p.v.code !== 0) throw new Error(`pgbackrest backup failed: ${p.v.stderr}${p.v.stdout}`);
      res.pgbackrest.push({ s: p.s, bytes: (await bytesUnder("pgbackrest/backup/")) - before });
    }
    console.log(`backups of the ${mb(size)} database (${runs} runs each, interleaved; bytes stored in the bucket per backup):`);
    console.log("method                          time min  time median  bytes stored");
    const names = { base: "base backup (backup-base)", dump: "logical dump (backup)", pgbackrest: "pgBackRest full (zst, bundle)" } as const;
    for (const k of ["base", "dump", "pgbackrest"] as const) {
      const xs = res[k];
      console.log(`${names[k].padEnd(30)}  ${Math.min(...xs.map((x) => x.s)).toFixed(2).padStart(7)}s  ${median(xs.map((x) => x.s)).toFixed(2).padStart(10)}s  ${mb(median(xs.map((x) => x.bytes))).padStart(12)}`);
    }
    console.log(`pgBackRest's WAL archive during the phase: ${mb(await bytesUnder("pgbackrest/archive/"))} (not counted above)`);
    e.remove();
  } finally {
    load?.kill("SIGKILL");
    archiver?.kill("SIGTERM");
    await sleep(1000);
    rmSync(work, { recursive: true, force: true });
    await pg.stop();
    await s3.stop();
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
