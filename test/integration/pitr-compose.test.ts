// Disaster recovery of a whole WAL-archived cluster into a Docker Compose service's named volume,
// with a Docker image as the recovery server (issue 11), for real: a private dockerd with the
// locally built Postgres 15 image, docker-compose v1, Ceph radosgw, PostgreSQL 15 and the real
// wal-archiver (test/support/pitr-fixture.ts archives the cluster and commits the markers).
//   - the README's procedure, as written: `docker-compose up --no-start db`, `restore --cluster
//     NAME --at T --target-volume VOL`, `docker-compose up -d db` of the unchanged compose file:
//     exactly the markers committed at or before T, every database, the roles, a new timeline; the
//     volume's root owned by the image's postgres uid:gid with mode 0700 before compose touches it
//   - refusals lose nothing: a volume a running container uses, a non-empty volume without --force;
//     --force moves the old content into VOL.replaced-<stamp> (compared entry by entry)
//   - a host without PostgreSQL server binaries (hidden in a private mount namespace) recovers
//     into a data directory with the drill image, and restores one database to a time and drills
//     the archive with it
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  COMPOSE_BIN, composeProject, ensurePostgresImage, ensureToolImage, startDockerd, waitHealthy, type ComposeProject, type Dockerd,
} from "../support/docker";
import { archivedCluster, isoSecond, PITR_FIXTURE_TOOLS, type ArchivedCluster } from "../support/pitr-fixture";
import { freePort, run } from "../support/proc";
import { requireTools } from "../support/tools";

const tools = requireTools(...PITR_FIXTURE_TOOLS, "dockerd", "docker", "docker-compose", "debootstrap", "busybox", "unshare");
const BUCKET = "pitr-compose";
const HOST = "web-1";
const iso = isoSecond;

describe.skipIf(!tools.ok)("disaster recovery of a whole cluster into a compose service's volume, with the image as the recovery server", () => {
  let d: Dockerd;
  let fx: ArchivedCluster;
  let image: string;
  let toolImage: string;
  let project: ComposeProject;
  let vol: string;
  let owner: string;

  beforeAll(async () => {
    d = await startDockerd();
    [image, toolImage] = await Promise.all([ensurePostgresImage(d), ensureToolImage(d)]);
    fx = await archivedCluster({ bucket: BUCKET, host: HOST, baseEnv: d.env, drill: { runtime: "docker", image, checks: ["SELECT true"] } });
    owner = (await d.dockerOk(["run", "--rm", "--entrypoint", "sh", image, "-c", "echo $(id -u postgres):$(id -g postgres)"])).stdout.trim();
    // The user's compose file, as the README's procedure assumes it: the data in a named volume.
    project = await composeProject(
      d,
      join(fx.scratch, "app"),
      `services:
  db:
    image: ${image}
    network_mode: host
    environment:
      POSTGRES_PASSWORD: app-secret
      PGPORT: "${await freePort()}"
    volumes:
      - pgdata:/var/lib/postgresql/data
volumes:
  pgdata: {}
`,
    );
    vol = `${project.name}_pgdata`;
  }, 900_000);

  afterAll(async () => {
    await project?.down().catch(() => undefined);
    await fx?.stop();
    await d?.stop();
  });

  const restore = (args: string[]) => fx.e.run("restore", args, { timeoutMs: 10 * 60_000 });
  const psql = async (db: string, sql: string) => {
    const r = await project.compose(["exec", "-T", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", db, "-c", sql]);
    if (r.code !== 0) throw new Error(`psql in the compose service failed: ${r.stderr}`);
    return r.stdout.trim();
  };
  /** Every entry of a volume with owner and mode (and size and checksum of files). */
  const listing = async (v: string) =>
    (await d.dockerOk(["run", "--rm", "-v", `${v}:/d:ro`, toolImage, "sh", "-c", "cd /d && find . | sort | while read -r f; do s=$(stat -c '%u:%g %a' \"$f\"); c=-; [ -f \"$f\" ] && c=$(stat -c %s \"$f\")/$(md5sum <\"$f\" | cut -c1-32); echo \"$f $s $c\"; done"])).stdout;
  const recoveryContainers = async () => (await d.dockerOk(["ps", "-aq", "--filter", "label=restorable.recovery"])).stdout.trim();

  it("the README procedure: compose up --no-start, restore --cluster --at T --target-volume, compose up: exactly the markers committed at or before T, every database, the roles, a new timeline", async () => {
    const t = fx.between(2);
    // The README's commands, as written, in the project's directory (its .env names the project).
    const readme = (args: string[]) => run(COMPOSE_BIN, args, { cwd: project.dir, env: d.env, timeoutMs: 5 * 60_000 });
    const created = await readme(["up", "--no-start", "db"]);
    expect(created.code, created.stderr).toBe(0);
    expect((await d.dockerOk(["volume", "ls"])).stdout).toContain(vol);
    const dry = await restore(["--cluster", fx.cluster, "--at", iso(t), "--target-volume", vol, "--dry-run"]);
    expect(dry.code, dry.stderr.slice(-3000)).toBe(0);
    expect(dry.stdout).toContain(`in a container from ${image} (its PostgreSQL 15, as its postgres user ${owner})`);
    expect(dry.stdout).toMatch(new RegExp(`into Docker volume ${vol} \\(it exists and is empty; used by the stopped container\\(s\\) \\S+\\)`));
    const r = await restore(["--cluster", fx.cluster, "--at", iso(t), "--target-volume", vol]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`Recovered cluster \\S+ into Docker volume ${vol} \\(owned by ${owner}, mode 0700\\): asked for ${iso(t)}, reached \\S+ \\(the last replayed commit\\).*databases: app, other, postgres; now on timeline 2`));
    // Before compose (whose entrypoint would fix it) touches it: owned as the image expects.
    const before = (await listing(vol)).split("\n").filter(Boolean);
    expect(before[0]).toMatch(new RegExp(`^\\. ${owner} 700 `));
    expect(before.find((l) => l.startsWith("./PG_VERSION "))).toMatch(new RegExp(` ${owner} 600 `));
    expect(before.some((l) => l.startsWith("./recovery.signal "))).toBe(false);
    expect(before.filter((l) => !l.includes(` ${owner} `))).toEqual([]);
    expect(await recoveryContainers()).toBe("");
    expect(fx.e.leftovers().filter((f) => !f.includes("run.wal-archiver."))).toEqual([]);
    // docker-compose up -d db: the unchanged compose file starts on the recovered data.
    const up = await readme(["up", "-d", "db"]);
    expect(up.code, up.stderr).toBe(0);
    await waitHealthy(d, `${project.name}_db_1`);
    expect((await psql("app", "SELECT note FROM marker ORDER BY id")).split("\n")).toEqual(fx.markers.filter((m) => m.committedMs <= t).map((m) => m.note));
    expect(await psql("app", "SELECT count(*) FROM marker")).toBe("2");
    expect(await psql("other", "SELECT x FROM keep")).toBe("42");
    expect(await psql("postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")).toBe("app,other,postgres,template0,template1");
    expect(await psql("postgres", "SELECT rolname FROM pg_roles WHERE rolname = 'app_owner'")).toBe("app_owner");
    expect(await psql("postgres", "SELECT pg_is_in_recovery()")).toBe("f");
    expect(await psql("postgres", "SELECT timeline_id FROM pg_control_checkpoint()")).toBe("2");
    // It takes writes.
    await psql("app", "INSERT INTO marker (note) VALUES ('after-recovery')");
  }, 600_000);

  it("refusals lose nothing: a volume a running container uses, a non-empty volume without --force; --force moves its content into a new volume first", async () => {
    const running = await restore(["--cluster", fx.cluster, "--at", "latest", "--target-volume", vol]);
    expect(running.code).toBe(1);
    expect(running.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage target: volume ${vol} is in use by running container\\(s\\) \\S+: stop the service first`));
    expect(await psql("app", "SELECT string_agg(note, ',' ORDER BY id) FROM marker")).toBe("marker-1,marker-2,after-recovery");
    const stop = await project.compose(["stop", "db"]);
    expect(stop.code, stop.stderr).toBe(0);
    const old = await listing(vol);
    const nonEmpty = await restore(["--cluster", fx.cluster, "--at", "latest", "--target-volume", vol]);
    expect(nonEmpty.code).toBe(1);
    expect(nonEmpty.stderr.trim().split("\n").at(-1)).toMatch(new RegExp(`FAILED at stage target: volume ${vol} is not empty; refusing to recover into it without --force`));
    expect(await listing(vol)).toBe(old);
    const volumes = async () => (await d.dockerOk(["volume", "ls", "-q"])).stdout.split("\n").filter(Boolean).sort();
    const volsBefore = await volumes();
    const forced = await restore(["--cluster", fx.cluster, "--at", "latest", "--target-volume", vol, "--force"]);
    expect(forced.code, forced.stderr.slice(-3000)).toBe(0);
    const aside = /its previous content is in volume (\S+)\)/.exec(forced.stdout)?.[1];
    expect(aside, forced.stdout).toMatch(new RegExp(`^${vol}\\.replaced-\\d{8}T\\d{6}Z$`));
    expect(await volumes()).toEqual([...volsBefore, aside!].sort());
    // The old content, entry by entry (owners, modes, sizes, checksums), in the new volume.
    expect(await listing(aside!)).toBe(old);
    await project.up();
    expect(await psql("app", "SELECT string_agg(note, ',' ORDER BY id) FROM marker")).toBe(fx.markers.map((m) => m.note).join(","));
    expect(await recoveryContainers()).toBe("");
  }, 600_000);

  it("a host without PostgreSQL server binaries recovers into a data directory in a container from the drill image", async () => {
    const t = fx.between(3);
    const dir = join(fx.scratch, "dr-nobin");
    // A private mount namespace in which /usr/lib/postgresql is empty: no host server binaries.
    const r = await run("unshare", ["-m", "sh", "-c", 'mount -t tmpfs none /usr/lib/postgresql && exec bash "$@"', "sh", fx.e.scriptPath("restore"),
      "--cluster", fx.cluster, "--at", iso(t), "--data-dir", dir], { env: fx.e.env(), cwd: fx.e.dir, timeoutMs: 10 * 60_000 });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toContain(`this host has no PostgreSQL 15 server binaries: recovering in a container from ${image} (the drill image; --image IMG for another)`);
    expect(r.stdout).toMatch(new RegExp(`Recovered cluster \\S+ into ${dir} \\(owned by ${owner}, the postgres user of ${image}\\): asked for ${iso(t)}.*now on timeline 2`));
    expect(existsSync(join(dir, "recovery.signal"))).toBe(false);
    expect(readFileSync(join(dir, "PG_VERSION"), "utf8").trim()).toBe("15");
    // Started as that image's data directory.
    const name = "dr-nobin";
    await d.dockerOk(["run", "-d", "--name", name, "--network", "none", "-v", `${dir}:/var/lib/postgresql/data`, image]);
    try {
      const q = async (sql: string) => {
        for (let i = 0; ; i++) {
          const x = await d.docker(["exec", name, "psql", "-XAtq", "-U", "postgres", "-d", "app", "-c", sql]);
          if (x.code === 0) return x.stdout.trim();
          if (i > 100) throw new Error(x.stderr);
          await new Promise((res) => setTimeout(res, 200));
        }
      };
      expect((await q("SELECT note FROM marker ORDER BY id")).split("\n")).toEqual(fx.markers.filter((m) => m.committedMs <= t).map((m) => m.note));
    } finally {
      await d.docker(["rm", "-f", name]);
    }
    expect(await recoveryContainers()).toBe("");
  }, 600_000);
  it("a host without PostgreSQL server binaries: restore --database --at and the drill's point-in-time item run in containers from the drill image", async () => {
    // The same private mount namespace: no host server (or client) binaries.
    const noBin = (script: string, args: string[]) =>
      run("unshare", ["-m", "sh", "-c", 'mount -t tmpfs none /usr/lib/postgresql && exec bash "$@"', "sh", fx.e.scriptPath(script), ...args], { env: fx.e.env(), cwd: fx.e.dir, timeoutMs: 10 * 60_000 });
    const t = fx.between(2);
    const name = "pitr-target";
    await d.dockerOk(["run", "-d", "--name", name, "--network", "none", "-e", "POSTGRES_PASSWORD=target-secret", image]);
    try {
      await waitHealthy(d, name);
      const r = await noBin("restore", ["--database", "app", "--at", iso(t), "--target", `container:${name}`, "--target-database", "app_at"]);
      expect(r.code, r.stderr.slice(-3000)).toBe(0);
      expect(r.stderr).toContain(`this host has no PostgreSQL 15 server binaries: reading and recovering the archive of cluster ${fx.cluster} in containers from ${image} (the drill image)`);
      const got = await d.dockerOk(["exec", name, "psql", "-XAtq", "-U", "postgres", "-d", "app_at", "-c", "SELECT note FROM marker ORDER BY id"]);
      expect(got.stdout.trim().split("\n")).toEqual(fx.markers.filter((m) => m.committedMs <= t).map((m) => m.note));
    } finally {
      await d.docker(["rm", "-f", name]);
    }
    expect(await recoveryContainers()).toBe("");
    const drill = await noBin("restore-drill", []);
    expect(drill.code, drill.stderr.slice(-3000)).toBe(0);
    expect(drill.stderr).toMatch(/1 cluster\(s\) recovered to a point in time/);
    expect(await recoveryContainers()).toBe("");
    expect(fx.e.leftovers().filter((f) => !f.includes("run.wal-archiver."))).toEqual([]);
  }, 900_000);

  it("--image names the recovery image; a cluster without the role to connect as fails naming --user, nothing left behind; bad combinations are usage errors", async () => {
    const dir = join(fx.scratch, "dr-norole");
    const r = await restore(["--cluster", fx.cluster, "--at", "latest", "--data-dir", dir, "--image", image, "--user", "nosuch"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`in a container from ${image} (its PostgreSQL 15, as its postgres user ${owner})`);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/FAILED at stage recover: cluster \S+ has no role nosuch to connect as: give --user ROLE/);
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(fx.scratch).filter((n) => n.includes(".restorable-"))).toEqual([]);
    expect(await recoveryContainers()).toBe("");
    expect(fx.e.leftovers().filter((f) => !f.includes("run.wal-archiver."))).toEqual([]);
    for (const [args, msg] of [
      [["--data-dir", dir, "--target-volume", vol], /--cluster needs --data-dir DIR .* or --target-volume VOL .*, not both/],
      [["--data-dir", dir, "--force"], /--force is for --cluster --target-volume/],
      [["--target-volume", vol, "--image"], /--image needs an image/],
    ] as [string[], RegExp][]) {
      const u = await restore(["--cluster", fx.cluster, "--at", "latest", ...args]);
      expect(u.code, u.stderr).toBe(2);
      expect(u.stderr).toMatch(msg);
    }
    const notCluster = await restore(["--database", "app", "--image", image]);
    expect(notCluster.code).toBe(2);
    expect(notCluster.stderr).toMatch(/--image is for --cluster/);
  }, 300_000);
});
