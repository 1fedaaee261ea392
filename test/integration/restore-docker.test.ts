/**
 * Restore into Docker targets and the drill in runtime docker, for real: a private dockerd with the
 * locally built Postgres 15 image, docker-compose v1, Ceph radosgw, AWS CLI v2, PostgreSQL 15.
 *   - restore --globals / --database into a compose service (the configured source)
 *   - the real `backup` of that compose service (and `backup-volumes` of its volume), then
 *     `restore-drill` in a throwaway container (only the image's initdb/postgres binaries, network
 *     none, labelled, removed afterwards) and a throwaway volume
 *   - the drill killed halfway leaves no container and no temp dir
 *   - restore into a named container, and a Docker volume round trip through backup-volumes
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, type BackupEnv, type BucketAccess } from "../support/backup-env";
import {
  composeProject, ensurePostgresImage, ensureToolImage, startDockerd, startPostgresContainer, type ComposeProject,
  type Dockerd, type PgContainer,
} from "../support/docker";
import { fixtureGlobalsBackup, follow, fixturePostgresBackup, getObject, listKeys, processesMentioning } from "../support/drill-fixtures";
import { startPingServer, type PingServer } from "../support/pings";
import { loadSampleData, PG_BIN, SAMPLE_OWNER, sampleDataFacts, startPostgres, type PgCluster } from "../support/postgres";
import { DOCKER_ACCEPTED } from "../support/names";
import { freePort } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "psql", "pgbench", "radosgw", "ceph-mon", "ceph-osd", "/usr/bin/aws",
  "dockerd", "docker", "docker-compose", "debootstrap", "busybox", "zstd", "age", "jq", "flock", "curl",
);

const BUCKET = "docker-test";
const HOST = "dock";
const CHECK = "SELECT count(*) > 0 FROM users";

describe.skipIf(!tools.ok)("restore and restore-drill with Docker", () => {
  let s3: S3Server;
  let d: Dockerd;
  let src: PgCluster;
  let pings: PingServer;
  let access: BucketAccess;
  let image: string;
  let toolImage: string;
  let project: ComposeProject;
  let env: BackupEnv;
  const envs: BackupEnv[] = [];
  const counts = sampleDataFacts().counts;

  async function composePsql(sql: string, database = "app"): Promise<string> {
    const r = await project.compose(["exec", "-T", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", database, "-f", "-"], { input: sql });
    if (r.code !== 0) throw new Error(`psql in compose failed: ${r.stderr}`);
    return r.stdout.trim();
  }
  async function drillContainers(): Promise<string[]> {
    const r = await d.dockerOk(["ps", "-aq", "--filter", "label=restorable.drill"]);
    return r.stdout.split("\n").filter(Boolean);
  }

  beforeAll(async () => {
    [s3, d, src, pings] = await Promise.all([startS3Server(), startDockerd(), startPostgres(), startPingServer()]);
    [image, toolImage] = await Promise.all([ensurePostgresImage(d), ensureToolImage(d)]);
    await Promise.all([s3.createBucket(BUCKET, { versioning: true }), loadSampleData(src, "app")]);
    access = { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin };
    const dir = join(src.dataDir, "..", "compose");
    mkdirSync(dir);
    const port = await freePort();
    project = await composeProject(
      d,
      dir,
      `services:
  db:
    image: ${image}
    network_mode: host
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: app-secret
      POSTGRES_DB: app
      PGPORT: "${port}"
`,
    );
    await project.up();
    env = createBackupEnv({
      host: HOST,
      s3: access,
      postgres: [{ via: "compose", project: dir, service: "db", user: "app", database: "app" }],
      pgPasswords: { app: "app-secret" },
      volumes: ["uploads"],
      volumeImage: toolImage,
      drill: { runtime: "docker", image, checks: [CHECK] },
      pingUrl: pings.url,
      baseEnv: d.env,
    });
    envs.push(env);
  });

  afterAll(async () => {
    for (const e of envs) e.remove();
    await project?.down().catch(() => undefined);
    await Promise.all([d?.stop(), src?.stop(), s3?.stop(), pings?.stop()]);
  });

  it("restores the roles, then the database into the configured compose service", async () => {
    await fixtureGlobalsBackup({ bucket: access, host: HOST, date: new Date(Date.now() - 3600_000), pg: src });
    await fixturePostgresBackup({ bucket: access, host: HOST, date: new Date(Date.now() - 3600_000), pg: src, database: "app" });
    const g = await env.run("restore", ["--globals"]);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/into compose service db in .* as app/);
    expect(await composePsql(`SELECT count(*) FROM pg_roles WHERE rolname = '${SAMPLE_OWNER}'`)).toBe("1");

    const r = await env.run("restore", ["--database", "app"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/into database app on compose service db in .* as app; it exists and is empty/);
    for (const [t, n] of Object.entries(counts)) expect(await composePsql(`SELECT count(*) FROM ${t}`), t).toBe(String(n));
    expect(await composePsql("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.orders'::regclass")).toBe(SAMPLE_OWNER);
    expect(env.leftovers()).toEqual([]);
  });

  it("drills the real backups of the compose service and the volume (throwaway container and volume), and removes them", async () => {
    await composePsql("INSERT INTO public.users (name, email) VALUES ('drilled', 'drilled@example.com')");
    const b = await env.run("backup");
    expect(b.code, b.stderr).toBe(0);
    await d.dockerOk(["volume", "create", "uploads"]);
    await d.dockerOk(["run", "--rm", "--network", "none", "-v", "uploads:/data", toolImage, "sh", "-c", "echo drilled > /data/drilled.txt"]);
    const bv = await env.run("backup-volumes");
    expect(bv.code, bv.stderr).toBe(0);
    pings.clear();
    const r = await env.run("restore-drill");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/throwaway Postgres up in [\d.]+ s: throwaway container [0-9a-f]{12} \(restorable-test\/postgres:15\)/);
    await pings.waitFor("success", 10_000);
    expect(pings.of("fail")).toHaveLength(0);
    expect(await drillContainers()).toEqual([]);
    expect(env.leftovers()).toEqual([]);
    const key = (await listKeys(access, `${HOST}/drills/`)).map((k) => k.key).pop()!;
    const report = JSON.parse((await getObject(access, key)).toString("utf8")) as {
      result: string;
      throwaway: { runtime: string; image: string };
      databases: { database: string; tablesOk: boolean; checks: { ok: boolean }[]; rpo: { ok: boolean }; rto: { ok: boolean } }[];
      volumes: { volume: string; contentVerified: boolean; result: string }[];
    };
    expect(report.result).toBe("pass");
    expect(report.throwaway).toMatchObject({ runtime: "docker", image });
    expect(report.databases[0]).toMatchObject({ database: "app", tablesOk: true, checks: [{ ok: true }], rpo: { ok: true }, rto: { ok: true } });
    expect(report.volumes).toMatchObject([{ volume: "uploads", contentVerified: true, result: "pass" }]);
    expect((await d.dockerOk(["volume", "ls", "-q", "--filter", "label=restorable.drill"])).stdout.trim()).toBe("");
  });

  it("killed halfway in runtime docker leaves no container and no temp dir", async () => {
    const e = createBackupEnv({
      host: HOST,
      s3: access,
      postgres: [{ via: "compose", project: project.dir, service: "db", user: "app", database: "app" }],
      drill: { runtime: "docker", image, checks: ["SELECT pg_sleep(120) IS NOT NULL"] },
      pingUrl: pings.url,
      baseEnv: d.env,
    });
    envs.push(e);
    pings.clear();
    const child = e.spawn("restore-drill");
    const drilling = follow(child);
    await drilling.until(/verified sha256 of \S*\/postgres\//, 90_000);
    expect(await drillContainers()).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1500));
    child.kill("SIGTERM");
    expect(await drilling.exited).toBe(1);
    expect(failedLine(drilling)).toMatch(/FAILED at stage (restore|tables|checks): interrupted by SIGTERM/);
    await pings.waitFor("fail", 10_000);
    expect(await drillContainers()).toEqual([]);
    expect(e.leftovers()).toEqual([]);
    expect(processesMentioning(e.tmpDir)).toEqual([]);
  });

  it("restores into a named container (--target container:NAME) without owners", async () => {
    let c: PgContainer | undefined;
    try {
      c = await startPostgresContainer(d, { network: "none", user: "other", password: "other-pw", database: "other" });
      const r = await env.run("restore", ["--database", "app", "--target", `container:${c.name}`, "--user", "other", "--target-database", "copy", "--no-owner"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`into database copy on container ${c.name} as other; it does not exist yet`));
      expect(await c.psql("SELECT count(*) FROM public.users", { database: "copy" })).toBe(String(counts["public.users"]! + 1));
      expect(await c.psql("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'app.orders'::regclass", { database: "copy" })).toBe("other");
      const again = await env.run("restore", ["--database", "app", "--target", `container:${c.name}`, "--user", "other", "--target-database", "copy", "--no-owner"]);
      expect(again.code).toBe(1);
      expect(failedLine(again)).toMatch(/FAILED at stage target: database copy on container .* is not empty/);
    } finally {
      await c?.remove();
    }
  });

  it("every volume name the schema accepts: backup-volumes, restore-drill, then restore --volume into --target-volume", async () => {
    const e = createBackupEnv({ host: "vnames", s3: access, volumes: DOCKER_ACCEPTED, volumeImage: toolImage, baseEnv: d.env });
    envs.push(e);
    for (const v of DOCKER_ACCEPTED) {
      await d.dockerOk(["volume", "create", v]);
      await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${v}:/data`, toolImage, "sh", "-c", 'printf "%s" "$1" > /data/name', "sh", v]);
    }
    const b = await e.run("backup-volumes");
    expect(b.code, b.stderr).toBe(0);
    const drill = await e.run("restore-drill");
    expect(drill.code, drill.stderr).toBe(0);
    for (const v of DOCKER_ACCEPTED) expect(drill.stderr).toContain(`volume ${v}: all 2 entries of the listing restored identically`);
    for (const [i, v] of DOCKER_ACCEPTED.entries()) {
      const into = DOCKER_ACCEPTED[(i + 1) % DOCKER_ACCEPTED.length]!;
      const r = await e.run("restore", ["--volume", v, "--target-volume", into, "--force"]);
      expect(r.code, r.stderr).toBe(0);
      expect((await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${into}:/data:ro`, toolImage, "cat", "/data/name"])).stdout).toBe(v);
      // Put the target back as it was for the next round.
      await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${into}:/data`, toolImage, "sh", "-c", 'printf "%s" "$1" > /data/name', "sh", into]);
    }
    expect(e.leftovers()).toEqual([]);
  });

  it("volume round trip through backup-volumes; refuses a non-empty volume without --force", async () => {
    await d.dockerOk(["volume", "create", "uploads"]);
    const fill = [
      "mkdir -p /data/a/b /data/empty",
      "echo hello > '/data/a/b/file with spaces.txt'",
      "printf 'Zoë 日本\\n' > /data/unicode.txt",
      "dd if=/dev/urandom of=/data/a/blob bs=1k count=256 2>/dev/null",
      "chmod 600 /data/unicode.txt && chown 1234:5678 /data/a/blob",
    ].join(" && ");
    await d.dockerOk(["run", "--rm", "--network", "none", "-v", "uploads:/data", toolImage, "sh", "-c", fill]);
    const b = await env.run("backup-volumes");
    expect(b.code, b.stderr).toBe(0);

    const listing = async (vol: string) =>
      (await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${vol}:/data:ro`, toolImage, "sh", "-c",
        "cd /data && find . -exec stat -c '%n %a %u:%g %s' {} + | sort && find . -type f -exec sha256sum {} + | sort"])).stdout;
    const original = await listing("uploads");

    const r = await env.run("restore", ["--volume", "uploads", "--target-volume", "uploads_restored"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/into Docker volume uploads_restored .* it does not exist yet: it will be created/);
    expect(await listing("uploads_restored")).toBe(original);

    await d.dockerOk(["run", "--rm", "--network", "none", "-v", "uploads_restored:/data", toolImage, "sh", "-c", "echo extra > /data/extra && rm /data/unicode.txt"]);
    const changed = await listing("uploads_restored");
    const refused = await env.run("restore", ["--volume", "uploads", "--target-volume", "uploads_restored"]);
    expect(refused.code).toBe(1);
    expect(failedLine(refused)).toMatch(/FAILED at stage target: volume uploads_restored is not empty; refusing to restore into it without --force/);
    expect(await listing("uploads_restored")).toBe(changed);

    const forced = await env.run("restore", ["--volume", "uploads", "--target-volume", "uploads_restored", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await listing("uploads_restored")).toBe(original);
    expect(env.leftovers()).toEqual([]);
  });
});
