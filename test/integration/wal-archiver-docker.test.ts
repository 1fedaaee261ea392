// wal-archiver for a `via: compose` source (the product's main users: Postgres in Docker Compose),
// as rendered, against a real dockerd running the project's Postgres image, docker-compose v1 and
// Ceph radosgw with the plan's least-privilege host key. The receiver is a sidecar container from
// the database container's own image in its network namespace; nothing in the compose file or
// the image changes. Committed marker rows must reach the bucket on a quiet server, through a
// recreated database container and a SIGKILLed archiver (whose sidecar it leaves behind), with no
// gap; the configured password never shows in a process's argv or the sidecar's config; a base
// backup plus the archive recover every marker with plain PostgreSQL; pitr-uninstall removes the
// sidecar and drops the slot.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, hostBucketAccess, type BackupEnv, type BucketAccess } from "../support/backup-env";
import { composeProject, ensurePostgresImage, POSTGRES_IMAGE, startDockerd, startPostgresContainer, type ComposeProject, type Dockerd } from "../support/docker";
import { cleanLibpqEnv, PG_BIN } from "../support/postgres";
import { freePort, run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "psql", "radosgw", "radosgw-admin", "/usr/bin/aws",
  "dockerd", "docker", "docker-compose", "debootstrap", "zstd", "flock", "curl", "tar",
);

const BUCKET = "wal-docker";
const HOST = "web-1";
const PASSWORD = "s3cr3t-wal-pw";
const LABEL = "io.restorable.wal-spool";

interface Archiver {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

describe.skipIf(!tools.ok)("wal-archiver for a compose source: a sidecar from the database's own image", () => {
  let s3: S3Server;
  let d: Dockerd;
  let project: ComposeProject;
  let e: BackupEnv;
  let access: BucketAccess;
  let cluster: string;
  const archivers: Archiver[] = [];
  const dirs: string[] = [];
  const markers: string[] = [];
  let restoredDir: string | undefined;

  beforeAll(async () => {
    [s3, d] = await Promise.all([startS3Server(), startDockerd()]);
    await Promise.all([s3.createBucket(BUCKET, { versioning: true }), ensurePostgresImage(d)]);
    access = await hostBucketAccess(s3, BUCKET, HOST);
    const projectDir = mkdtempSync(join(tmpdir(), "rwd-"));
    dirs.push(projectDir);
    const port = await freePort();
    // The user's compose file as it is: nothing added for restorable (a named volume keeps the data
    // across a recreated container).
    project = await composeProject(
      d,
      projectDir,
      `version: "2.4"
services:
  db:
    image: ${POSTGRES_IMAGE}
    network_mode: host
    environment:
      PGPORT: "${port}"
      POSTGRES_USER: app
      POSTGRES_PASSWORD: ${PASSWORD}
      POSTGRES_DB: app
    volumes:
      - pgdata:/var/lib/postgresql/data
volumes:
  pgdata: {}
`,
    );
    await project.up();
    await psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)");
    e = createBackupEnv({
      s3: access,
      objectives: { rpo: "1m", rto: "1h" },
      pitr: {},
      // The test image (unlike the official one) asks for a password over TCP even from
      // 127.0.0.1: the sidecar gets it on its stdin.
      postgres: [{ via: "compose", project: projectDir, service: "db", user: "app", database: "app" }],
      pgPasswords: { app: PASSWORD },
      drill: { runtime: "local" },
      baseEnv: d.env,
      extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12, RESTORABLE_RPO_SECONDS: 10 },
    });
    cluster = e.host.pitr!.clusters[0]!.name;
  }, 900_000);

  afterAll(async () => {
    for (const a of archivers) if (a.proc.exitCode === null) a.proc.kill("SIGTERM");
    await Promise.all(archivers.map((a) => Promise.race([a.exited, new Promise((r) => setTimeout(r, 15_000))])));
    if (restoredDir) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", restoredDir, "-m", "immediate", "-w", "stop"]);
    await project?.down().catch(() => undefined);
    await d?.stop(); // removes any container left, sidecars included
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    e?.remove();
    await s3?.stop();
  });

  async function psql(sql: string): Promise<string> {
    const r = await project.compose(["exec", "-T", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app", "-f", "-"], { input: sql });
    if (r.code !== 0) throw new Error(`psql: ${r.stderr}`);
    return r.stdout.trim();
  }

  function start(): Archiver {
    const proc = e.spawn("wal-archiver");
    let err = "";
    proc.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    proc.stdout!.resume();
    const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
    const a = { proc, stderr: () => err, exited };
    archivers.push(a);
    return a;
  }

  async function withLog<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      let receiver = "";
      try {
        receiver = readFileSync(join(e.stateDir, "wal", `${cluster}.receiver.log`), "utf8").slice(-2000);
      } catch {
        /* none yet */
      }
      throw new Error(`${(err as Error).message}\n--- archiver stderr:\n${archivers.map((a) => a.stderr().slice(-3000)).join("\n---\n")}\n--- receiver log:\n${receiver}`);
    }
  }

  /** Running sidecar containers (ids) of this test's spool. */
  async function sidecars(): Promise<string[]> {
    const r = await d.dockerOk(["ps", "-q", "--no-trunc", "--filter", `label=${LABEL}=${join(e.stateDir, "wal", cluster)}`]);
    return r.stdout.split("\n").filter(Boolean);
  }

  const walPrefix = () => `${HOST}/wal/${cluster}/`;
  const fetched = new Map<string, Buffer>();
  async function reachesBucket(text: string, timeoutMs = 90_000): Promise<string> {
    return withLog(
      waitFor(
        `"${text}" to reach the bucket`,
        async () => {
          for (const { key } of await e.list(walPrefix())) {
            if (!fetched.has(key)) fetched.set(key, await unzstd(await e.get(key)));
            if (fetched.get(key)!.includes(Buffer.from(text))) return key;
          }
          return undefined;
        },
        timeoutMs,
        500,
      ),
    );
  }

  async function commitMarker(label: string): Promise<string> {
    const note = `marker-${label}-${Date.now()}`;
    await psql(`INSERT INTO marker (note) VALUES ('${note}')`);
    markers.push(note);
    return note;
  }

  async function expectNoGap(): Promise<void> {
    const names = (await e.list(walPrefix())).map((k) => k.key.slice(walPrefix().length).replace(/\.zst$/, "")).filter((n) => /^[0-9A-F]{24}$/.test(n));
    const nums = names.map((n) => parseInt(n.slice(8, 16), 16) * 256 + parseInt(n.slice(16), 16));
    expect(nums.length).toBeGreaterThan(0);
    for (let k = 1; k < nums.length; k++) expect(nums[k]! - nums[k - 1]!, `${names[k - 1]} -> ${names[k]}`).toBe(1);
  }

  it("takes a base backup through compose first (for the recovery at the end)", async () => {
    const r = await e.run("backup-base", [], { now: "2026-11-29T02:00:00Z" });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
  }, 180_000);

  it("a marker committed on a quiet server reaches the bucket through the sidecar; the password is in no argv and not in the sidecar's config", async () => {
    const a = start();
    await withLog(waitFor("the archiver to start", () => a.stderr().includes("archiving WAL of 1 cluster(s)"), 60_000));
    await withLog(waitFor("one sidecar", async () => (await sidecars()).length === 1, 60_000, 500));
    const [id] = await sidecars();
    const inspect = JSON.parse((await d.dockerOk(["inspect", id!])).stdout)[0];
    // From the database container's own image, in its network namespace, without capabilities.
    const db = (await project.compose(["ps", "-q", "db"])).stdout.trim();
    const dbInspect = JSON.parse((await d.dockerOk(["inspect", db])).stdout)[0];
    expect(inspect.Image).toBe(dbInspect.Image);
    expect(inspect.HostConfig.NetworkMode).toBe(`container:${dbInspect.Id}`);
    expect(inspect.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(inspect.HostConfig.ReadonlyRootfs).toBe(true);
    expect(JSON.stringify(inspect)).not.toContain(PASSWORD);
    expect(await psql("SELECT slot_name || ' ' || active FROM pg_replication_slots")).toMatch(/^restorable_\S+ true$/);
    const note = await commitMarker("quiet");
    await reachesBucket(note);
    for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
      try {
        expect(readFileSync(`/proc/${p}/cmdline`, "utf8")).not.toContain(PASSWORD);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT" && (err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      }
    }
    expect(a.stderr()).not.toMatch(/FAILED/);
    expect(a.proc.exitCode).toBeNull();
  }, 240_000);

  it("the database container is recreated: the sidecar is started again in the new one's namespace, no gap", async () => {
    const a = archivers.at(-1)!;
    const before = (await project.compose(["ps", "-q", "db"])).stdout.trim();
    await commitMarker("before-recreate");
    const r = await project.compose(["up", "-d", "--force-recreate", "--no-build", "db"]);
    expect(r.code, r.stderr).toBe(0);
    const after = (await project.compose(["ps", "-q", "db"])).stdout.trim();
    expect(after).not.toBe(before);
    await waitFor("the database to accept connections", async () => (await project.compose(["exec", "-T", "db", "pg_isready", "-q", "-h", "127.0.0.1"])).code === 0, 120_000, 500);
    await withLog(waitFor("the sidecar to be restarted", () => /pg_receivewal \(sidecar container\) exited .*restarting it/.test(a.stderr()), 90_000, 500));
    await withLog(
      waitFor("a sidecar in the new container's namespace", async () => {
        const ids = await sidecars();
        if (ids.length !== 1) return false;
        const mode = (await d.docker(["inspect", "-f", "{{.HostConfig.NetworkMode}}", ids[0]!])).stdout.trim();
        return mode.startsWith(`container:${after}`);
      }, 90_000, 500),
    );
    await reachesBucket(markers.at(-1)!);
    await reachesBucket(await commitMarker("after-recreate"));
    await expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 300_000);

  it("SIGKILL of the archiver leaves its sidecar running; the next archiver stops it and goes on with one, no gap", async () => {
    const a = archivers.at(-1)!;
    a.proc.kill("SIGKILL");
    await a.exited;
    const left = await sidecars();
    expect(left).toHaveLength(1);
    await commitMarker("after-kill");
    const b = start();
    await withLog(waitFor("the new archiver to start", () => b.stderr().includes("archiving WAL of"), 60_000));
    expect(b.stderr()).toContain(`stopped the receiver sidecar (container ${left[0]!.slice(0, 12)}) a previous archiver left running`);
    await withLog(waitFor("exactly one new sidecar", async () => {
      const ids = await sidecars();
      return ids.length === 1 && ids[0] !== left[0];
    }, 60_000, 500));
    await reachesBucket(markers.at(-1)!);
    await reachesBucket(await commitMarker("after-kill-2"));
    await expectNoGap();
  }, 300_000);

  it("the base backup plus the archived WAL recover every committed marker with plain PostgreSQL", async () => {
    await reachesBucket(markers.at(-1)!);
    const keys = (await e.list(`${HOST}/`)).map((k) => k.key).filter((k) => k.includes("/base/"));
    const m = JSON.parse((await e.get(keys.find((k) => k.endsWith(".manifest.json"))!)).toString()) as { object: { key: string } };
    const base = mkdtempSync(join(tmpdir(), "rwdr-"));
    dirs.push(base);
    chmodSync(base, 0o755);
    const dataDir = join(base, "data");
    const walDir = join(base, "wal");
    mkdirSync(dataDir, { mode: 0o700 });
    mkdirSync(walDir);
    writeFileSync(join(base, "base.tar.zst"), await e.get(m.object.key));
    await runOk("bash", ["-o", "pipefail", "-c", `zstd -d -q -c ${base}/base.tar.zst | tar -x -C ${dataDir}`]);
    for (const { key } of await e.list(walPrefix())) writeFileSync(join(walDir, key.slice(walPrefix().length).replace(/\.zst$/, "")), await unzstd(await e.get(key)));
    writeFileSync(join(dataDir, "recovery.signal"), "");
    writeFileSync(join(dataDir, "postgresql.auto.conf"), `restore_command = 'cp ${walDir}/%f %p'\nmax_slot_wal_keep_size = -1\n`, { flag: "a" });
    await runOk("chown", ["-R", "postgres:postgres", base]);
    chmodSync(dataDir, 0o700);
    const port = await freePort();
    const r = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dataDir, "-l", join(base, "log"), "-o", `-p ${port} -k ${base} -c listen_addresses=''`, "-w", "-t", "120", "start"]);
    if (r.code !== 0) throw new Error(`recovery did not start: ${readFileSync(join(base, "log"), "utf8").slice(-3000)}`);
    restoredDir = dataDir;
    const q = (sql: string) => runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", base, "-p", String(port), "-U", "app", "-d", "app", "-c", sql], { env: cleanLibpqEnv() });
    await waitFor("recovery to finish", async () => (await q("SELECT NOT pg_is_in_recovery()")).stdout.trim() === "t", 120_000, 500);
    expect((await q("SELECT note FROM marker ORDER BY id")).stdout.trim().split("\n")).toEqual(markers);
  }, 300_000);

  it("pitr-uninstall stops the archiver and its sidecar and drops the slot", async () => {
    const b = archivers.at(-1)!;
    expect(b.proc.exitCode).toBeNull();
    const r = await e.run("pitr-uninstall");
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(await b.exited).toBe(0);
    expect(await sidecars()).toEqual([]);
    expect(await psql("SELECT count(*) FROM pg_replication_slots")).toBe("0");
  }, 120_000);

  it("pitr-uninstall also removes a sidecar that a SIGKILLed archiver left behind", async () => {
    const a = start();
    await withLog(waitFor("the sidecar", async () => (await sidecars()).length === 1, 60_000, 500));
    a.proc.kill("SIGKILL");
    await a.exited;
    expect(await sidecars()).toHaveLength(1);
    const r = await e.run("pitr-uninstall");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopped the receiver sidecar \(container [0-9a-f]{12}\)/);
    expect(await sidecars()).toEqual([]);
    expect(await psql("SELECT count(*) FROM pg_replication_slots")).toBe("0");
  }, 180_000);

  it("a via: container source the same way: a marker reaches the bucket through the sidecar; TERM stops it", async () => {
    const c = await startPostgresContainer(d, { user: "app", password: PASSWORD, database: "app" });
    const e2 = createBackupEnv({
      s3: access,
      objectives: { rpo: "1m", rto: "1h" },
      pitr: {},
      postgres: [{ via: "container", container: c.name, user: "app", database: "app" }],
      pgPasswords: { app: PASSWORD },
      drill: { runtime: "local" },
      baseEnv: d.env,
      extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12, RESTORABLE_RPO_SECONDS: 10 },
    });
    dirs.push(e2.dir);
    const proc = e2.spawn("wal-archiver");
    let err = "";
    proc.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    proc.stdout!.resume();
    const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
    try {
      const prefix = `${HOST}/wal/${c.name}/`;
      const label = `label=${LABEL}=${join(e2.stateDir, "wal", c.name)}`;
      await waitFor("the sidecar", async () => (await d.dockerOk(["ps", "-q", "--filter", label])).stdout.trim() !== "", 60_000, 500).catch((x: Error) => {
        throw new Error(`${x.message}
${err.slice(-3000)}`);
      });
      await c.psql("CREATE TABLE marker (note text)");
      const note = `marker-container-${Date.now()}`;
      await c.psql(`INSERT INTO marker VALUES ('${note}')`);
      await waitFor(`"${note}" in the bucket`, async () => {
        for (const { key } of await e2.list(prefix)) if ((await unzstd(await e2.get(key))).includes(Buffer.from(note))) return true;
        return false;
      }, 90_000, 1000).catch((x: Error) => {
        throw new Error(`${x.message}
${err.slice(-3000)}`);
      });
      proc.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect((await d.dockerOk(["ps", "-aq", "--filter", label])).stdout.trim()).toBe("");
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      await c.remove();
    }
  }, 240_000);
});

async function unzstd(b: Buffer): Promise<Buffer> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    const p = spawn("zstd", ["-d", "-q", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    p.stdout.on("data", (x: Buffer) => out.push(x));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd exited ${code}`))));
    p.stdin.end(b);
  });
}
