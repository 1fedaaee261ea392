// npm run bench [-- --scale 70[,10]] [--runs 3] [--data pgbench|mixed] [--level N (zstd; default: the config default)]
//
// Builds a pgbench database (plus the sample schema) per scale (default 70: about 1 GB on disk;
// --data mixed replaces half of the pgbench rows by a table of less repetitive text and numbers,
// closer to application data: pgbench rows are blank-padded and compress ~100x)
// in a real PostgreSQL 15 cluster, starts Ceph radosgw, and in one run times, alternating:
//   seed:  pg_dump | gzip > <tmp file>, then aws s3 cp <tmp file> s3://…   (the seed's recipe)
//   ours:  scripts/backup.sh (rendered config; pg_dump -Fc -Z0 | zstd | aws s3 cp - …, manifests, globals)
//   floor: pg_dump -Fc -Z0 > /dev/null                                      (the dump alone)
// and prints wall-time ratios, peak memory (sum of RSS over the job's process tree, sampled every
// 25 ms; the server backend is not counted for any of them) and local temp disk used (bytes in
// the job's own temp/state dirs, sampled likewise). Prints; asserts nothing; never a test.
import { spawn } from "node:child_process";
import { cpus, totalmem } from "node:os";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createBackupEnv, filesUnder } from "../support/backup-env";
import { cleanLibpqEnv, loadSampleData, PG_BIN, startPostgres } from "../support/postgres";
import { startS3Server } from "../support/s3server";
import { requireTools } from "../support/tools";
import { descendants } from "../support/proc";

interface Sample {
  wallS: number;
  peakRssBytes: number;
  peakTempBytes: number;
  code: number | null;
}

function treeRss(root: number): number {
  let total = 0;
  for (const pid of [root, ...descendants(root).map((d) => d.pid)]) {
    try {
      const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      /* gone */
    }
  }
  return total;
}

function dirBytes(dirs: string[]): number {
  let total = 0;
  for (const d of dirs) for (const f of filesUnder(d)) total += f.size;
  return total;
}

/** Run a command, sampling its process tree's memory and the temp dirs' size. */
function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv, tempDirs: string[]): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    let peakRss = 0;
    let peakTemp = 0;
    const tick = () => {
      if (child.pid) peakRss = Math.max(peakRss, treeRss(child.pid));
      peakTemp = Math.max(peakTemp, dirBytes(tempDirs));
    };
    const timer = setInterval(tick, 25);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(timer);
      const wallS = Number(process.hrtime.bigint() - start) / 1e9;
      if (code !== 0) process.stderr.write(`${cmd} exited ${code}:\n${err}\n`);
      resolve({ wallS, peakRssBytes: peakRss, peakTempBytes: peakTemp, code });
    });
  });
}

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

export async function main(args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args, options: { scale: { type: "string", default: "70" }, runs: { type: "string", default: "3" }, data: { type: "string", default: "pgbench" }, level: { type: "string" } } });
  const level = values.level === undefined ? undefined : Number(values.level);
  const mixed = values.data === "mixed";
  if (!["pgbench", "mixed"].includes(values.data!)) throw new Error("--data must be pgbench or mixed");
  const scales = values.scale!.split(",").map(Number);
  const runs = Number(values.runs);
  if (scales.some((s) => !Number.isInteger(s) || s < 1) || !Number.isInteger(runs) || runs < 1) throw new Error("usage: npm run bench -- [--scale N[,M...]] [--runs N]");
  const tools = requireTools("/usr/lib/postgresql/15/bin/initdb", "pg_dump", "pgbench", "radosgw", "/usr/bin/aws", "zstd", "gzip", "flock", "curl");
  if (!tools.ok) throw new Error(tools.reason);

  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(`machine: ${cpus().length} x ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${process.platform} ${process.arch}, node ${process.version}`);
  const s3 = await startS3Server({ memstoreBytes: 6 * 2 ** 30 });
  const pg = await startPostgres();
  const work = mkdtempSync(join(tmpdir(), "rbench-"));
  try {
    await s3.createBucket("bench");
    const access = { endpoint: s3.endpoint, region: s3.region, bucket: "bench", creds: s3.admin };
    for (const scale of scales) {
      const db = `bench_${scale}`;
      const t0 = Date.now();
      await loadSampleData(pg, db, { pgbenchScale: mixed ? Math.max(1, Math.round(scale / 2)) : scale });
      if (mixed) {
        // About as large as the pgbench rows it replaces; compresses ~3x.
        await pg.psql(
          `CREATE TABLE public.events AS SELECT g AS id, md5(g::text) AS ref, now() - (g || ' s')::interval AS at,
             (random() * 10000)::numeric(12, 2) AS amount,
             'user ' || (g % 5000) || ' did ' || (ARRAY['login', 'logout', 'purchase', 'refund', 'view'])[1 + g % 5] || ' on item ' || (g::bigint * 7919 % 100000) || ' ' || md5((g % 997)::text) AS note
           FROM generate_series(1, ${scale * 21000}) AS g; ANALYZE public.events;`,
          { database: db },
        );
      }
      const size = Number(await pg.psql(`SELECT pg_database_size('${db}')`));
      console.log(`\nscale ${scale}${mixed ? " (mixed data)" : ""}: database ${db} is ${mb(size)} on disk (built in ${((Date.now() - t0) / 1000).toFixed(0)} s); ${runs} run(s) of each, interleaved`);

      const e = createBackupEnv({ s3: access, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: db }], ...(level === undefined ? {} : { zstdLevel: level }) });
      console.log(`ours: zstd level ${e.host.config.zstdLevel}`);
      const pgEnv = { ...cleanLibpqEnv(), PGHOST: "127.0.0.1", PGPORT: String(pg.port), PGUSER: "postgres" };
      const seedDir = mkdtempSync(join(work, "seed-"));
      const awsEnv = { ...s3.awsEnv(s3.admin), ...pgEnv, PATH: `/usr/bin:/bin:${process.env.PATH ?? ""}`, TMPDIR: seedDir };
      const results: Record<"seed" | "ours" | "floor", Sample[]> = { seed: [], ours: [], floor: [] };
      let oursObject = 0;
      let seedObject = 0;
      for (let r = 0; r < runs; r++) {
        const seedFile = join(seedDir, "x.sql.gz");
        results.floor.push(await measure("bash", ["-c", `${PG_BIN}/pg_dump -Fc -Z0 "$1" > /dev/null`, "floor", db], pgEnv, []));
        results.seed.push(
          await measure(
            "bash",
            ["-c", `set -euo pipefail; pg_dump "$1" | gzip > "$2"; aws --endpoint-url "$3" s3 cp --only-show-errors "$2" "s3://bench/seed/$4.sql.gz"; stat -c %s "$2" > "$2.size"; rm -f "$2"`, "seed", db, seedFile, s3.endpoint, `${db}-${r}`],
            awsEnv,
            [seedDir],
          ),
        );
        seedObject = Number(readFileSync(`${seedFile}.size`, "utf8"));
        const now = new Date(Date.UTC(2026, 10, 24, 3, 0, r + scale * 100)).toISOString().replace(/\.000Z$/, "Z");
        const [cmd, args] = ["bash", [e.scriptPath("backup")]] as const;
        results.ours.push(await measure(cmd, [...args], { ...e.env(), RESTORABLE_NOW: now }, [e.stateDir, e.tmpDir]));
        // The first run is the month's restore point (monthly), the others daily: look in every tier.
        const objs = await e.list("web-1/");
        oursObject = objs.find((o) => o.key.includes(`/postgres/${db}/${now.replace(/[-:]/g, "")}.dump.zst`))?.size ?? 0;
      }
      e.remove();
      rmSync(seedDir, { recursive: true, force: true });

      const wall = (k: keyof typeof results) => Math.min(...results[k].map((x) => x.wallS));
      const med = (k: keyof typeof results) => median(results[k].map((x) => x.wallS));
      const rss = (k: keyof typeof results) => Math.max(...results[k].map((x) => x.peakRssBytes));
      const tmp = (k: keyof typeof results) => Math.max(...results[k].map((x) => x.peakTempBytes));
      const failed = Object.entries(results).filter(([, xs]) => xs.some((x) => x.code !== 0));
      if (failed.length) console.log(`WARNING: failed runs: ${failed.map(([k]) => k).join(", ")}`);
      console.log("method  wall min  wall median  peak RSS (tree)  temp disk  object");
      for (const k of ["seed", "ours", "floor"] as const) {
        const obj = k === "seed" ? mb(seedObject) : k === "ours" ? mb(oursObject) : "-";
        console.log(`${k.padEnd(6)}  ${wall(k).toFixed(2).padStart(7)}s  ${med(k).toFixed(2).padStart(10)}s  ${mb(rss(k)).padStart(15)}  ${mb(tmp(k)).padStart(9)}  ${obj}`);
      }
      console.log(`ratios (min wall): ours/seed = ${(wall("ours") / wall("seed")).toFixed(2)} (target <= 0.5), ours/floor = ${(wall("ours") / wall("floor")).toFixed(2)} (target <= 1.3)`);
      console.log(`ratios (median):   ours/seed = ${(med("ours") / med("seed")).toFixed(2)}, ours/floor = ${(med("ours") / med("floor")).toFixed(2)}`);
      await pg.psql(`DROP DATABASE ${db}`);
    }
  } finally {
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


