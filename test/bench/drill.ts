/**
 * Benchmark: the monthly restore drill, the seed's way against ours, as a ratio (target: ours
 * <= 0.6x the seed's wall time). Real components: PostgreSQL 15, Ceph radosgw, AWS CLI v2, and for
 * `--runtime docker` a private dockerd with the locally built Postgres image.
 *
 *   seed:  start a fresh Postgres (runtime local: initdb + pg_ctl with the default settings;
 *          docker: `docker run -e POSTGRES_PASSWORD=… image` and wait until ready), then
 *          `aws s3 cp s3://…/app.sql.gz`, `gunzip -c | psql`, `\dt` and `SELECT count(*) FROM users`,
 *          then stop and remove it — what the seed's README asks a person to do.
 *   ours:  `restore-drill` (list manifests, download + sha256 verify, zstd, pg_restore into a
 *          throwaway Postgres, table list vs manifest, the check, RPO/RTO, report upload, cleanup),
 *          on a backup made by the real `backup` script.
 * Both restore the same database (pgbench at --scale plus the sample schema). Each side runs
 * --runs times, alternating; the medians are compared. Timings are printed, never asserted.
 *
 * Usage: npx tsx test/bench/drill.ts [--scale N] [--runs N] [--runtime local|docker]
 * (defaults: --scale 50, about 750 MB and 5M rows in the database; --runs 3; --runtime local)
 * (or from another bench: import { main } from "./drill"; await main(["--scale", "10"]))
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackupEnv } from "../support/backup-env";
import { ensurePostgresImage, startDockerd, type Dockerd } from "../support/docker";
import { awsOk, q, type Bucket } from "../support/drill-fixtures";
import { cleanLibpqEnv, loadSampleData, PG_BIN, startPostgres } from "../support/postgres";
import { runOk, waitFor } from "../support/proc";
import { startS3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

export interface DrillBenchResult {
  runtime: "local" | "docker";
  scale: number;
  runs: number;
  dumpBytes: { seedSqlGz: number; oursDumpZst: number };
  seconds: { seed: number[]; ours: number[] };
  medians: { seed: number; ours: number };
  /** ours / seed (median wall time). */
  ratio: number;
  /** Stage durations (seconds) of our last drill, from its report. */
  oursStages: Record<string, number>;
}

function arg(args: string[], name: string, def: string): string {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const secs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

async function sh(script: string, env: NodeJS.ProcessEnv): Promise<void> {
  await runOk("bash", ["-c", `set -euo pipefail\n${script}`], { env, timeoutMs: 60 * 60_000 });
}

/** The seed's drill, runtime local: a default cluster as the postgres user, psql over its socket. */
async function seedLocal(bucket: Bucket, key: string, awsEnvVars: NodeJS.ProcessEnv): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "seed-"));
  const t0 = process.hrtime.bigint();
  try {
    await sh(
      `chown postgres: ${q(dir)}
runuser -u postgres -- ${PG_BIN}/initdb -D ${q(dir)}/data -U postgres --auth=trust >/dev/null
runuser -u postgres -- ${PG_BIN}/pg_ctl -D ${q(dir)}/data -l ${q(dir)}/log -o "-p 5432 -k ${dir} -c listen_addresses=''" -w start >/dev/null
/usr/bin/aws --endpoint-url ${q(bucket.endpoint)} s3 cp --quiet s3://${bucket.bucket}/${key} ${q(dir)}/app.sql.gz
psql -h ${q(dir)} -U postgres -d postgres -qc 'CREATE DATABASE app'
gunzip -c ${q(dir)}/app.sql.gz | psql -h ${q(dir)} -U postgres -d app -q >/dev/null 2>&1
psql -h ${q(dir)} -U postgres -d app -c '\\dt' >/dev/null
psql -h ${q(dir)} -U postgres -d app -Atc 'SELECT count(*) FROM users' >/dev/null
runuser -u postgres -- ${PG_BIN}/pg_ctl -D ${q(dir)}/data -m fast -w stop >/dev/null`,
      { ...cleanLibpqEnv(awsEnvVars) },
    );
    return secs(t0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The seed's drill, runtime docker: `docker run` the image the usual way, psql through docker exec. */
async function seedDocker(d: Dockerd, image: string, bucket: Bucket, key: string, awsEnvVars: NodeJS.ProcessEnv): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "seed-"));
  const name = `seed-${process.pid}-${Date.now()}`;
  const t0 = process.hrtime.bigint();
  try {
    await d.dockerOk(["run", "-d", "--name", name, "--network", "none", "-e", "POSTGRES_PASSWORD=seed", image]);
    // Ready = the final server (the entrypoint's temporary init server listens on the socket only).
    await waitFor("seed container ready", async () => (await d.docker(["exec", name, "pg_isready", "-q", "-h", "127.0.0.1"])).code === 0, 120_000, 100);
    await sh(
      `/usr/bin/aws --endpoint-url ${q(bucket.endpoint)} s3 cp --quiet s3://${bucket.bucket}/${key} ${q(dir)}/app.sql.gz
docker exec ${name} psql -U postgres -qc 'CREATE DATABASE app'
gunzip -c ${q(dir)}/app.sql.gz | docker exec -i ${name} psql -U postgres -d app -q >/dev/null 2>&1
docker exec ${name} psql -U postgres -d app -c '\\dt' >/dev/null
docker exec ${name} psql -U postgres -d app -Atc 'SELECT count(*) FROM users' >/dev/null`,
      { ...awsEnvVars, DOCKER_HOST: d.host, PATH: d.env.PATH },
    );
    await d.dockerOk(["rm", "-f", "-v", name]);
    return secs(t0);
  } finally {
    await d.docker(["rm", "-f", "-v", name]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(args: string[] = process.argv.slice(2)): Promise<DrillBenchResult> {
  const scale = Number(arg(args, "--scale", "50"));
  const runs = Number(arg(args, "--runs", "3"));
  const runtime = arg(args, "--runtime", "local") as "local" | "docker";
  const tools = requireTools(`${PG_BIN}/initdb`, "pg_dump", "psql", "pgbench", "radosgw", "/usr/bin/aws", "zstd", "gzip", "jq", ...(runtime === "docker" ? ["dockerd", "docker"] : []));
  if (!tools.ok) throw new Error(tools.reason);

  const [s3, src] = await Promise.all([startS3Server(), startPostgres()]);
  let d: Dockerd | undefined;
  const cleanups: (() => void)[] = [];
  try {
    let image = "";
    if (runtime === "docker") {
      d = await startDockerd();
      image = await ensurePostgresImage(d);
    }
    const bucket: Bucket = { bucket: "bench-drill", endpoint: s3.endpoint, region: s3.region, creds: s3.admin };
    await s3.createBucket(bucket.bucket);
    process.stderr.write(`bench drill: loading pgbench scale ${scale} + sample schema...\n`);
    await loadSampleData(src, "app", { pgbenchScale: scale });

    // The seed's backup: plain SQL, gzip (default level), one object.
    const seedKey = "seed/app.sql.gz";
    const work = mkdtempSync(join(tmpdir(), "bench-drill-"));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    await sh(`${PG_BIN}/pg_dump -h ${q(src.socketDir)} -p ${src.port} -U postgres app | gzip > ${q(work)}/app.sql.gz`, cleanLibpqEnv());
    const awsVars = s3.awsEnv(s3.admin);
    await awsOk(bucket, ["s3", "cp", "--quiet", join(work, "app.sql.gz"), `s3://${bucket.bucket}/${seedKey}`]);
    const seedSize = (await runOk("stat", ["-c", "%s", join(work, "app.sql.gz")])).stdout.trim();

    // Ours: the real backup script.
    const env = createBackupEnv({
      host: "bench",
      s3: { endpoint: s3.endpoint, region: s3.region, bucket: bucket.bucket, creds: s3.admin },
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
      drill: { runtime, image: image || "postgres:16", checks: ["SELECT count(*) > 0 FROM users"] },
      baseEnv: d?.env ?? process.env,
    });
    cleanups.push(() => env.remove());
    const b = await env.run("backup");
    if (b.code !== 0) throw new Error(`backup failed: ${b.stderr}`);
    const listing = await env.list("bench/");
    const ours = listing.find((k) => k.key.endsWith(".dump.zst"));

    const seed: number[] = [];
    const oursT: number[] = [];
    for (let i = 0; i < runs; i++) {
      const doSeed = async () => seed.push(runtime === "docker" ? await seedDocker(d!, image, bucket, seedKey, awsVars) : await seedLocal(bucket, seedKey, awsVars));
      const doOurs = async () => {
        const t0 = process.hrtime.bigint();
        const r = await env.run("restore-drill");
        const t = secs(t0);
        if (r.code !== 0) throw new Error(`restore-drill failed: ${r.stderr}`);
        oursT.push(t);
      };
      if (i % 2 === 0) {
        await doSeed();
        await doOurs();
      } else {
        await doOurs();
        await doSeed();
      }
      process.stderr.write(`bench drill: run ${i + 1}/${runs}: seed ${seed.at(-1)!.toFixed(2)} s, ours ${oursT.at(-1)!.toFixed(2)} s\n`);
    }
    const reports = readdirSync(join(env.stateDir, "drills")).sort();
    const last = JSON.parse(readFileSync(join(env.stateDir, "drills", reports.at(-1)!), "utf8")) as {
      throwaway: { setupSeconds: number };
      databases: { durations: Record<string, number> }[];
    };
    const oursStages = { setup: last.throwaway.setupSeconds, ...(last.databases[0]?.durations ?? {}) };
    const result: DrillBenchResult = {
      runtime,
      scale,
      runs,
      dumpBytes: { seedSqlGz: Number(seedSize), oursDumpZst: ours?.size ?? 0 },
      seconds: { seed, ours: oursT },
      medians: { seed: median(seed), ours: median(oursT) },
      ratio: median(oursT) / median(seed),
      oursStages,
    };
    console.log(
      `drill (runtime ${runtime}, pgbench scale ${scale}, ${runs} runs, median wall time): ` +
        `seed (aws s3 cp + gunzip | psql) ${result.medians.seed.toFixed(2)} s, ours (restore-drill) ${result.medians.ours.toFixed(2)} s, ` +
        `ratio ours/seed ${result.ratio.toFixed(2)}x (target <= 0.6x); dump ${(result.dumpBytes.seedSqlGz / 1048576).toFixed(1)} MiB .sql.gz vs ${(result.dumpBytes.oursDumpZst / 1048576).toFixed(1)} MiB .dump.zst`,
    );
    console.log(`drill stages (ours, last run, seconds; setup overlaps listing and download): ${Object.entries(oursStages).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ")}`);
    return result;
  } finally {
    for (const c of cleanups) c();
    await Promise.all([d?.stop(), src.stop(), s3.stop()]);
  }
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
