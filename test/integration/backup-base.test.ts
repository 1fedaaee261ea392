// backup-base (physical base backups for PITR) as rendered, against real services: PostgreSQL 15
// (local mode over TCP, and a container driven through `docker exec` like the official image),
// Ceph radosgw with the plan's least-privilege host key. Each base backup is then restored on its
// own: downloaded, checked against its manifest's sha256, extracted into a new data directory and
// started with plain PostgreSQL (no archive, no restore_command): the WAL it needs is inside.
import { createHash } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, hostBucketAccess, type BackupEnv, type BucketAccess } from "../support/backup-env";
import { startDockerd, startPostgresContainer, type Dockerd } from "../support/docker";
import { cleanLibpqEnv, loadSampleData, PG_BIN, sampleDataFacts, startPostgres, type PgCluster } from "../support/postgres";
import { freePort, run, runOk } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_basebackup", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws",
  "dockerd", "docker", "debootstrap", "zstd", "age", "age-keygen", "flock", "curl", "tar",
);

const BUCKET = "base-backups";
const HOST = "web-1";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface BaseManifest {
  format: number;
  kind: string;
  host: string;
  tier: string;
  stamp: string;
  cluster: string;
  serverVersion: string;
  systemIdentifier: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  walIncluded: boolean;
  walPrefix: string;
  dumpFormat: string;
  compression: string;
  encryption: string;
  object: { key: string; size: number; sha256: string };
}

/** LSN "0/5000028" -> a comparable number. */
const lsn = (s: string) => {
  const [hi, lo] = s.split("/");
  return parseInt(hi!, 16) * 2 ** 32 + parseInt(lo!, 16);
};

describe.skipIf(!tools.ok)("backup-base against real PostgreSQL, Docker and S3", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let d: Dockerd;
  let access: BucketAccess;
  const envs: BackupEnv[] = [];
  const dirs: string[] = [];
  const restored: { dataDir: string }[] = [];
  const facts = sampleDataFacts(1);

  beforeAll(async () => {
    [s3, pg, d] = await Promise.all([startS3Server(), startPostgres(), startDockerd()]);
    await Promise.all([loadSampleData(pg, "app"), s3.createBucket(BUCKET, { versioning: true })]);
    await pg.psql("CREATE DATABASE crm; CREATE ROLE noreplication LOGIN;");
    await pg.psql("CREATE TABLE marker (id int PRIMARY KEY, note text); INSERT INTO marker VALUES (1, 'before the base backup');", { database: "crm" });
    access = await hostBucketAccess(s3, BUCKET, HOST);
  }, 600_000);

  afterAll(async () => {
    for (const r of restored) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", r.dataDir, "-m", "immediate", "-w", "stop"]);
    for (const e of envs) e.remove();
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    await Promise.allSettled([pg?.stop(), d?.stop()]);
    await s3?.stop();
  });

  function newEnv(o: Omit<Parameters<typeof createBackupEnv>[0], "s3">): BackupEnv {
    const e = createBackupEnv({ s3: access, pitr: {}, ...o });
    envs.push(e);
    return e;
  }

  /** Download, verify against the manifest, decode (zstd, age) and extract into a new data dir. */
  async function extract(e: BackupEnv, m: BaseManifest, identity?: string): Promise<string> {
    const obj = await e.get(m.object.key);
    expect(obj.length).toBe(m.object.size);
    expect(sha256(obj)).toBe(m.object.sha256);
    const base = mkdtempSync(join(tmpdir(), "rbase-"));
    dirs.push(base);
    chmodSync(base, 0o755);
    const file = join(base, "obj");
    writeFileSync(file, obj);
    const dataDir = join(base, "data");
    mkdirSync(dataDir, { mode: 0o700 });
    const decode = identity ? `age -d -i ${identity} ${file} | zstd -d -q -c` : `zstd -d -q -c ${file}`;
    await runOk("bash", ["-o", "pipefail", "-c", `${decode} | tar -x -C ${dataDir}`]);
    await runOk("chown", ["-R", "postgres:postgres", base]);
    chmodSync(dataDir, 0o700);
    return dataDir;
  }

  /** Start PostgreSQL 15 on an extracted base backup (nothing else: no archive) and return a psql. */
  async function startRestored(dataDir: string, user = "postgres"): Promise<(sql: string, db: string) => Promise<string>> {
    const port = await freePort();
    const sock = join(dataDir, "..", "sock");
    mkdirSync(sock, { mode: 0o755 });
    chownSync(sock, Number((await runOk("id", ["-u", "postgres"])).stdout.trim()), 0);
    const r = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dataDir, "-l", join(dataDir, "..", "log"), "-o", `-p ${port} -k ${sock} -c listen_addresses=''`, "-w", "-t", "60", "start"]);
    if (r.code !== 0) throw new Error(`restored cluster did not start: ${r.stderr}\n${readFileSync(join(dataDir, "..", "log"), "utf8").slice(-3000)}`);
    restored.push({ dataDir });
    return async (sql, db) => (await runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", sock, "-p", String(port), "-U", user, "-d", db, "-c", sql], { env: cleanLibpqEnv() })).stdout.trim();
  }

  it("local mode, installed as rendered: one tar with its WAL, manifest last, and it restores on its own", async () => {
    const e = newEnv({ install: true, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }, { via: "local", host: "127.0.0.1", port: pg.port, database: "crm" }] });
    // Cron runs it on the pitr.baseBackup schedule.
    expect(e.rendered.crontab).toMatch(/^0 2 \* \* 0 .*\/backup-base' >>.*backup-base\.log' 2>&1$/m);
    // The cluster's first base backup: the monthly tier (lib.sh's tier rule).
    const r = await e.run("backup-base", [], { now: "2026-11-29T02:00:00Z", noConfigEnv: true });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    const keys = (await e.list(`${HOST}/`)).map((k) => k.key);
    const cluster = `127.0.0.1-${pg.port}`;
    const base = `${HOST}/monthly/base/${cluster}/20261129T020000Z`;
    // Two sources on one cluster: one base backup.
    expect(keys).toEqual([`${base}.manifest.json`, `${base}.tar.zst`]);

    const m = JSON.parse((await e.get(`${base}.manifest.json`)).toString()) as BaseManifest;
    const control = await runOk(`${PG_BIN}/pg_controldata`, ["-D", pg.dataDir]);
    const sysid = /Database system identifier:\s+(\d+)/.exec(control.stdout)![1];
    expect(m).toMatchObject({
      format: 1, kind: "base", host: HOST, tier: "monthly", stamp: "20261129T020000Z", cluster,
      systemIdentifier: sysid, timeline: 1, walIncluded: true, walPrefix: `${HOST}/wal/${cluster}/`,
      dumpFormat: "tar", compression: "zstd", encryption: "none",
    });
    expect(m.serverVersion).toMatch(/^15\.\d+/);
    expect(m.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(lsn(m.stopLsn)).toBeGreaterThan(lsn(m.startLsn));
    expect(e.leftovers()).toEqual([]);

    // Rows written after the base backup are not in it (it is a physical copy of that moment).
    await pg.psql("INSERT INTO marker VALUES (2, 'after the base backup');", { database: "crm" });
    const dataDir = await extract(e, m);
    expect(readFileSync(join(dataDir, "backup_label"), "utf8")).toMatch(new RegExp(`START WAL LOCATION: ${m.startLsn.replace("/", "\\/")} .*\\n`));
    const psql = await startRestored(dataDir);
    expect(await psql("SELECT string_agg(note, ',' ORDER BY id) FROM marker", "crm")).toBe("before the base backup");
    expect(Number(await psql("SELECT count(*) FROM app.orders", "app"))).toBe(facts.counts["app.orders"]);
    expect(await psql("SELECT pg_is_in_recovery()", "app")).toBe("f");
  }, 300_000);

  it("container mode (docker exec as the image's own socket allows) with age encryption", async () => {
    const c = await startPostgresContainer(d, { user: "app", database: "app" });
    try {
      await c.psql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 500);");
      const work = mkdtempSync(join(tmpdir(), "rage-"));
      dirs.push(work);
      const identity = join(work, "key.txt");
      await runOk("age-keygen", ["-o", identity]);
      const recipient = readFileSync(identity, "utf8").match(/public key: (age1\S+)/)![1]!;
      const e = newEnv({ postgres: [{ via: "container", container: c.name, user: "app", database: "app" }], ageRecipients: [recipient], baseEnv: d.env });
      const r = await e.run("backup-base", [], { now: "2026-11-30T02:00:00Z" });
      expect(r.stderr).not.toMatch(/FAILED/);
      expect(r.code).toBe(0);
      const base = `${HOST}/monthly/base/${c.name}/20261130T020000Z`;
      const m = JSON.parse((await e.get(`${base}.manifest.json`)).toString()) as BaseManifest;
      expect(m.object.key).toBe(`${base}.tar.zst.age`);
      expect(m.encryption).toBe("age");
      // The encrypted object reveals nothing of the tar.
      expect((await e.get(m.object.key)).includes(Buffer.from("backup_label"))).toBe(false);
      const dataDir = await extract(e, m, identity);
      // The container's cluster is PostgreSQL 15 too: the host's binaries start it.
      const psql = await startRestored(dataDir, "app");
      expect(await psql("SELECT count(*) FROM t", "app")).toBe("500");
    } finally {
      await c.remove();
    }
  }, 600_000);

  it("a user without REPLICATION fails at stage connect, naming what it needs, and uploads nothing", async () => {
    const e = newEnv({ postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, user: "noreplication", database: "crm" }] });
    const r = await e.run("backup-base", [], { now: "2026-11-28T02:00:00Z" });
    expect(r.code).toBe(1);
    expect(failedLine(r)).toMatch(/restorable backup-base: FAILED at stage connect: cluster 127\.0\.0\.1-\d+: no replication connection as noreplication \(it needs the REPLICATION attribute/);
    expect((await e.list(`${HOST}/`)).map((k) => k.key).filter((k) => k.includes("20261128T020000Z"))).toEqual([]);
    expect(e.leftovers()).toEqual([]);
  }, 120_000);

  it("refuses to run without a pitr section (exit 2)", async () => {
    const e = createBackupEnv({ s3: access, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "crm" }] });
    envs.push(e);
    const r = await e.run("backup-base", [], { now: "2026-11-28T02:00:00Z" });
    expect(r.code).toBe(2);
    expect(failedLine(r)).toMatch(/FAILED at stage config: PITR is not configured for host web-1/);
  }, 120_000);
});
