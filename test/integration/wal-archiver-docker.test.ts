// wal-archiver for a compose service, against real services: dockerd with the locally built
// Postgres 15 image run by docker-compose v1 in its own network namespace (network_mode: none,
// like a bridge network it has its own loopback; password auth over TCP, trust on the socket),
// Ceph radosgw, the plan's least-privilege host key. pg_receivewal runs in a sidecar from the
// database's own image that joins the database container's network namespace; nothing is
// installed in or changed about the compose file or the image. Committed marker rows must reach
// the bucket, the sidecar must hold no secret where docker shows it and run without
// capabilities, a database container restart and a SIGKILL of the archiver must end without a
// gap, `restore --cluster` must recover every marker from the bucket, and pitr-uninstall must
// leave no container and no slot.
import { readFileSync, readdirSync, mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, hostBucketAccess, type BackupEnv } from "../support/backup-env";
import { composeProject, ensurePostgresImage, POSTGRES_IMAGE, startDockerd, type ComposeProject, type Dockerd } from "../support/docker";
import { startPingServer, type PingServer } from "../support/pings";
import { cleanLibpqEnv, PG_BIN } from "../support/postgres";
import { freePort, run, runOk, waitFor } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";
import { walArchive, type WalArchive } from "../support/wal-archive";

const tools = requireTools("dockerd", "/usr/bin/docker", "docker-compose", "debootstrap", "/usr/lib/postgresql/15/bin/initdb", "radosgw", "radosgw-admin", "/usr/bin/aws", "zstd", "flock", "curl", "tar");

const BUCKET = "wal-archive-docker";
const HOST = "web-1";
const PASSWORD = "s3cret-Ünïcode 'quoted' pass";

describe.skipIf(!tools.ok)("wal-archiver for a compose service: pg_receivewal in a sidecar from the database's image", () => {
  let d: Dockerd;
  let s3: S3Server;
  let pings: PingServer;
  let compose: ComposeProject;
  let e: BackupEnv;
  let w: WalArchive;
  let cluster: string;
  let restoredDir: string | undefined;
  const dirs: string[] = [];
  const markers: string[] = [];
  const walPrefix = () => `${HOST}/wal/${cluster}/`;

  beforeAll(async () => {
    [d, s3, pings] = await Promise.all([startDockerd(), startS3Server(), startPingServer()]);
    await ensurePostgresImage(d);
    await s3.createBucket(BUCKET, { versioning: true });
    const access = await hostBucketAccess(s3, BUCKET, HOST);
    const projectDir = mkdtempSync(join(tmpdir(), "rwd-"));
    dirs.push(projectDir);
    compose = await composeProject(
      d,
      projectDir,
      `version: "2.4"
services:
  db:
    image: ${POSTGRES_IMAGE}
    network_mode: none
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: "${PASSWORD}"
      POSTGRES_DB: app
    volumes:
      - dbdata:/var/lib/postgresql/data
volumes:
  dbdata: {}
`,
    );
    await compose.up();
    await sql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)");
    e = createBackupEnv({
      s3: access,
      baseEnv: d.env,
      pingUrl: pings.url,
      objectives: { rpo: "1m", rto: "1h" },
      pitr: {},
      postgres: [{ via: "compose", project: projectDir, service: "db", user: "app", database: "app" }],
      pgPasswords: { app: PASSWORD },
      drill: { runtime: "local" },
      // Ship within 12 s (a round every 2 s), an RPO of 10 s for the alarm.
      extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12, RESTORABLE_RPO_SECONDS: 10 },
    });
    cluster = e.host.pitr!.clusters[0]!.name;
    w = walArchive(e, walPrefix);
  }, 900_000);

  afterAll(async () => {
    await w?.stopAll();
    if (d) for (const id of await sidecars()) await d.docker(["rm", "-f", id]);
    if (restoredDir) await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", restoredDir, "-m", "immediate", "-w", "stop"]);
    await compose?.down();
    e?.remove();
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    await Promise.allSettled([pings?.stop(), d?.stop()]);
    await s3?.stop();
  }, 120_000);

  /** psql in the database container (over its socket), as the app user. */
  async function sql(q: string): Promise<string> {
    const r = await compose.compose(["exec", "-T", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app", "-c", q]);
    if (r.code !== 0) throw new Error(`psql in the compose service failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  async function commitMarker(label: string): Promise<string> {
    const note = `marker-${label}-${Date.now()}`;
    await sql(`INSERT INTO marker (note) VALUES ('${note}')`);
    markers.push(note);
    return note;
  }

  /** The receiver containers of this test's spool (running or not). */
  async function sidecars(): Promise<string[]> {
    const r = await d.dockerOk(["ps", "-aq", "--no-trunc", "--filter", `label=io.restorable.wal-spool=${join(e.stateDir, "wal", cluster)}`]);
    return r.stdout.split("\n").filter(Boolean);
  }

  const started = () => (w.archivers.at(-1)!.stderr().match(/receiver started in a container/g) ?? []).length;

  it("a base backup through docker-compose exec (pg_basebackup inside the container)", async () => {
    const r = await e.run("backup-base", [], { now: "2026-11-29T02:00:00Z" });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
  }, 300_000);

  it("a committed marker reaches the bucket through the sidecar; the sidecar holds no secret and runs without capabilities", async () => {
    const a = await w.startReady({}, 120_000);
    expect(a.stderr()).toMatch(/setting max_slot_wal_keep_size = 4096MB/);
    expect(await sql("SELECT slot_name FROM pg_replication_slots")).toMatch(/^restorable_/);
    await w.reachesBucket(await commitMarker("first"), 90_000);
    const ids = await sidecars();
    expect(ids).toHaveLength(1);
    const info = JSON.parse((await d.dockerOk(["inspect", ids[0]!])).stdout)[0];
    const db = (await compose.compose(["ps", "-q", "db"])).stdout.trim();
    expect(info.HostConfig.NetworkMode).toBe(`container:${db}`);
    expect(info.Image).toBe(JSON.parse((await d.dockerOk(["inspect", db])).stdout)[0].Image);
    expect(info.HostConfig.CapDrop).toContain("ALL");
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    // The password went over the sidecar's stdin: not in docker's state, argv or any log.
    expect(JSON.stringify(info)).not.toContain(PASSWORD);
    for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
      let args = "";
      try {
        args = readFileSync(`/proc/${p}/cmdline`, "utf8");
      } catch {
        continue;
      }
      expect(args, `argv of pid ${p}`).not.toContain(PASSWORD);
    }
    expect(a.stderr()).not.toContain(PASSWORD);
    expect(a.stderr()).not.toMatch(/FAILED/);
  }, 300_000);

  it("the database container restarts: the receiver comes back in its new network namespace, no gap", async () => {
    const a = w.archivers.at(-1)!;
    const before = started();
    const r = await compose.compose(["restart", "db"]);
    expect(r.code, r.stderr).toBe(0);
    await w.withLog(waitFor("a new receiver container", () => started() > before, 120_000, 500));
    await w.reachesBucket(await commitMarker("after-restart"), 90_000);
    await w.expectNoGap();
    expect(a.proc.exitCode).toBeNull();
  }, 300_000);

  it("SIGKILL of the archiver: the next one removes the receiver container it left and goes on, no gap", async () => {
    const a = w.archivers.at(-1)!;
    await commitMarker("before-kill");
    a.proc.kill("SIGKILL");
    await a.exited;
    // The killed archiver's receiver container still runs.
    expect(await sidecars()).toHaveLength(1);
    const b = w.start();
    await w.withLog(waitFor("the new archiver to start", () => b.stderr().includes("archiving WAL of"), 120_000));
    expect(b.stderr()).toMatch(/removing the receiver container [0-9a-f]{12} a previous archiver left running/);
    await w.reachesBucket(markers.at(-1)!, 90_000);
    await w.reachesBucket(await commitMarker("after-kill"), 90_000);
    expect(await sidecars()).toHaveLength(1);
    await w.expectNoGap();
  }, 300_000);

  it("restore --cluster recovers every committed marker from the bucket (base backup + archived WAL)", async () => {
    await w.reachesBucket(markers.at(-1)!);
    const base = mkdtempSync(join(tmpdir(), "rwdr-"));
    dirs.push(base);
    chmodSync(base, 0o755);
    const dataDir = join(base, "data");
    const r = await e.run("restore", ["--cluster", cluster, "--at", "latest", "--data-dir", dataDir], { timeoutMs: 200_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    await runOk("chown", ["postgres:postgres", base]); // its log and socket
    const port = await freePort();
    const st = await run("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dataDir, "-l", join(base, "log"), "-o", `-p ${port} -k ${base} -c listen_addresses=''`, "-w", "-t", "120", "start"]);
    if (st.code !== 0) throw new Error(`the recovered cluster did not start: ${readFileSync(join(base, "log"), "utf8").slice(-3000)}`);
    restoredDir = dataDir;
    const q = await runOk(`${PG_BIN}/psql`, ["-XAtq", "-h", base, "-p", String(port), "-U", "app", "-d", "app", "-c", "SELECT note FROM marker ORDER BY id"], { env: cleanLibpqEnv() });
    expect(q.stdout.trim().split("\n")).toEqual(markers);
  }, 300_000);

  it("pitr-uninstall (pulumi destroy) stops the archiver, removes its receiver container and drops the slot", async () => {
    const a = w.archivers.at(-1)!;
    const r = await e.run("pitr-uninstall");
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(await a.exited).toBe(0);
    expect(await sidecars()).toEqual([]);
    expect(await sql("SELECT count(*) FROM pg_replication_slots")).toBe("0");
  }, 120_000);
});
