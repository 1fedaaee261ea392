/**
 * A WAL-archived cluster for the point-in-time tests, for real: PostgreSQL 15 (local mode,
 * track_commit_timestamp on so the test knows each marker's commit time), Ceph radosgw with the
 * plan's least-privilege host key, the real wal-archiver (running) and one dump + one base backup.
 * The cluster holds databases app (table marker) and other (table keep = 42) and a role app_owner;
 * after the base backup five marker rows are committed, each in its own WAL segment, and the
 * fixture waits until every one of them is in the bucket.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackupEnv, hostBucketAccess, type BackupEnv, type BackupEnvOptions, type BucketAccess } from "./backup-env";
import { PG_BIN, startPostgres, type PgCluster, type StartPostgresOptions } from "./postgres";
import { runOk, waitFor } from "./proc";
import { startS3Server, type S3Server } from "./s3server";
import { keyHolding, walArchive, type WalArchive } from "./wal-archive";

/** What the fixture needs on the host (for requireTools). */
export const PITR_FIXTURE_TOOLS = [
  "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_waldump", "pg_receivewal", "pg_basebackup", "psql", "radosgw", "radosgw-admin",
  "/usr/bin/aws", "zstd", "flock", "curl", "tar", "jq",
];

/** A time (ms) as the whole-second ISO-8601 UTC text restore --at takes. */
export const isoSecond = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

export interface Marker { note: string; committedMs: number; segment?: string }

export interface ArchivedCluster {
  s3: S3Server;
  pg: PgCluster;
  access: BucketAccess;
  e: BackupEnv;
  /** The PITR cluster's name (the plan's). */
  cluster: string;
  markers: Marker[];
  /** A temp dir (mode 0755) removed by stop(). */
  scratch: string;
  /** The running wal-archiver (replace it with startArchiver()). */
  archiver: ChildProcess;
  /** Its stderr so far. */
  archiverErr(): string;
  /** Start a (new) wal-archiver and wait until it archives. */
  startArchiver(): Promise<ChildProcess>;
  /** The WAL segment in the bucket that holds `text` (undefined: none yet). */
  segmentHolding(text: string): Promise<string | undefined>;
  /** A whole second T (ms) with marker k committed at or before it and marker k+1 after it. */
  between(k: number): number;
  walPrefix(): string;
  /** Stops the archiver, PostgreSQL and radosgw, removes the env and scratch. */
  stop(): Promise<void>;
}

export async function archivedCluster(o: {
  bucket: string;
  host: string;
  drill?: BackupEnvOptions["drill"];
  baseEnv?: NodeJS.ProcessEnv;
  /** How the cluster is made (e.g. walSegmentMB for initdb --wal-segsize). */
  postgres?: StartPostgresOptions;
  /** Runs after the base backup, before the markers are committed (e.g. to write more WAL). */
  afterBaseBackup?: (pg: PgCluster) => Promise<void>;
}): Promise<ArchivedCluster> {
  const scratch = mkdtempSync(join(tmpdir(), "pitr-t-"));
  chmodSync(scratch, 0o755);
  const [s3, pg] = await Promise.all([startS3Server(), startPostgres(o.postgres)]);
  let w: WalArchive | undefined;
  let e: BackupEnv | undefined;
  const stop = async () => {
    await w?.stopAll();
    rmSync(scratch, { recursive: true, force: true });
    e?.remove();
    await pg.stop();
    await s3.stop();
  };
  try {
    await s3.createBucket(o.bucket, { versioning: true });
    const access = await hostBucketAccess(s3, o.bucket, o.host);
    // Commit timestamps: the test's ground truth for "committed at or before T".
    await pg.psql("ALTER SYSTEM SET track_commit_timestamp = on");
    await runOk("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", pg.dataDir, "-l", pg.logFile, "-m", "fast", "-w", "-t", "60", "restart"], { cwd: "/" });
    await pg.psql("CREATE DATABASE app");
    await pg.psql("CREATE DATABASE other");
    await pg.psql("CREATE ROLE app_owner LOGIN");
    await pg.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (42)", { database: "other" });
    await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "app" });
    e = createBackupEnv({
      s3: access,
      host: o.host,
      objectives: { rpo: "1m", rto: "1h" },
      pitr: {},
      postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }],
      drill: o.drill ?? { runtime: "local", checks: ["SELECT to_regclass('public.marker') IS NOT NULL"] },
      extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12 },
      baseEnv: o.baseEnv,
    });
    const env = e;
    const cluster = env.host.pitr!.clusters[0]!.name;
    const walPrefix = () => `${o.host}/wal/${cluster}/`;
    const archive = walArchive(env, walPrefix);
    w = archive;
    const startArchiver = async () => (await archive.startReady()).proc;
    await startArchiver();
    for (const job of ["backup", "backup-base"]) {
      const r = await env.run(job);
      if (r.code !== 0) throw new Error(`${job} failed: ${r.stderr.slice(-2000)}`);
    }
    await o.afterBaseBackup?.(pg);
    // Markers after the base backup (3 s: its end, rounded up, is before the first one), a
    // second and a half apart, each in its own WAL segment.
    await new Promise((r) => setTimeout(r, 3000));
    for (let k = 1; k <= 5; k++) {
      await pg.psql(`INSERT INTO marker (note) VALUES ('marker-${k}')`, { database: "app" });
      await pg.psql("SELECT pg_switch_wal()");
      await new Promise((r) => setTimeout(r, 1500));
    }
    const markers: Marker[] = [];
    const rows = (await pg.psql("SELECT note || '|' || (extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint FROM marker ORDER BY id", { database: "app" })).split("\n");
    for (const r of rows) {
      const [note, ms] = r.split("|");
      markers.push({ note: note!, committedMs: Number(ms) });
    }
    if (markers.length !== 5) throw new Error(`expected 5 markers, found ${rows.join(",")}`);
    const cache = new Map<string, Buffer>();
    const segmentHolding = async (text: string) =>
      (await keyHolding(env, walPrefix(), text, cache))?.slice(walPrefix().length).replace(/\.zst(\.age)?$/, "");
    // Every marker is in the bucket (and which segment holds it).
    await waitFor("the last marker to reach the archive", async () => {
      for (const m of markers) if (!m.segment) m.segment = await segmentHolding(m.note);
      return markers.every((m) => m.segment);
    }, 120_000, 1000);
    return {
      s3, pg, access, e: env, cluster, markers, scratch,
      get archiver() { return archive.archivers.at(-1)!.proc; },
      archiverErr: () => archive.archivers.at(-1)?.stderr() ?? "",
      startArchiver,
      segmentHolding,
      between(k) {
        const t = Math.floor(markers[k - 1]!.committedMs / 1000) + 1;
        if (t * 1000 >= markers[k]!.committedMs) throw new Error(`no whole second between marker ${k} and ${k + 1}`);
        return t * 1000;
      },
      walPrefix,
      stop,
    };
  } catch (x) {
    await stop();
    throw x;
  }
}
