// The backup scripts as rendered, against real services: PostgreSQL 15 clusters, Ceph radosgw with
// a least-privilege host key (the plan's own IAM policy), dockerd with a locally built Postgres
// image driven by docker-compose v1 (the seed's `compose exec -T db pg_dump`), `docker exec`, a
// named volume, and a local ping server. Every backup is then restored with plain tools.
import { createHash } from "node:crypto";
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, filesUnder, hostBucketAccess, type BackupEnv, type BucketAccess } from "../support/backup-env";
import { composeProject, ensurePostgresImage, ensureToolImage, POSTGRES_IMAGE, startDockerd, startPostgresContainer, TOOL_IMAGE, type ComposeProject, type Dockerd } from "../support/docker";
import type { Tier } from "../../infra/config/schema";
import { heldPoints, hostIamPolicy, tierFor, type BackupKind } from "../../infra/plan";
import { putObject, type Manifest } from "../support/drill-fixtures";
import { startPingServer, type PingServer } from "../support/pings";
import { cleanLibpqEnv, loadSampleData, PG_BIN, SAMPLE_NON_ASCII, SAMPLE_OWNER, SAMPLE_OWNER_PASSWORD, sampleDataFacts, startPostgres, type PgCluster } from "../support/postgres";
import { freePort, pipeInto, run, runOk, unzstd } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  "/usr/lib/postgresql/15/bin/initdb", "pg_dump", "pg_restore", "psql", "pgbench", "radosgw", "radosgw-admin", "/usr/bin/aws",
  "dockerd", "docker", "docker-compose", "debootstrap", "zstd", "age", "age-keygen", "flock", "curl", "busybox",
);

const BUCKET = "backups";
const HOST = "web-1";
const TS_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ restorable (backup|backup-volumes): /;

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** pg_dump 15.14+ brackets a plain dump with \\restrict <random key>; the key differs per run. */
const unrestrict = (s: string) => s.replace(/^\\(un)?restrict .*$/gm, "\\restrict KEY");

/** Schema-only dump with the host's pg_dump 15 (over TCP, or a PgCluster's env). */
async function schemaOnly(env: NodeJS.ProcessEnv, database: string): Promise<string> {
  const r = await runOk(`${PG_BIN}/pg_dump`, ["--schema-only", "-d", database], { env });
  return unrestrict(r.stdout);
}

async function exactCounts(q: (sql: string) => Promise<string>, tables: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) out[t] = Number(await q(`SELECT count(*) FROM ${t}`));
  return out;
}

describe.skipIf(!tools.ok)("backup scripts against real PostgreSQL, Docker and S3", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let target: PgCluster;
  let pings: PingServer;
  let d: Dockerd;
  let hostKey: BucketAccess["creds"];
  let access: BucketAccess;
  const envs: BackupEnv[] = [];
  const dirs: string[] = [];
  const facts = sampleDataFacts(1);

  beforeAll(async () => {
    [s3, pg, target, pings, d] = await Promise.all([startS3Server(), startPostgres(), startPostgres(), startPingServer(), startDockerd()]);
    await Promise.all([loadSampleData(pg, "app"), ensurePostgresImage(d), ensureToolImage(d), s3.createBucket(BUCKET, { versioning: true })]);
    // The host's key: exactly the plan's least-privilege policy (no delete, list only its prefix).
    access = await hostBucketAccess(s3, BUCKET, HOST);
    hostKey = access.creds;
  });

  afterAll(async () => {
    for (const e of envs) e.remove();
    for (const x of dirs) rmSync(x, { recursive: true, force: true });
    await Promise.allSettled([pings?.stop(), pg?.stop(), target?.stop(), d?.stop()]);
    await s3?.stop();
  });

  function newEnv(o: Omit<Parameters<typeof createBackupEnv>[0], "s3">): BackupEnv {
    const e = createBackupEnv({ s3: access, pingUrl: pings.url, ...o });
    envs.push(e);
    return e;
  }

  async function manifestAt(e: BackupEnv, key: string): Promise<Manifest> {
    return JSON.parse((await e.get(key)).toString("utf8")) as Manifest;
  }

  /**
   * The tier the plan's rule (tierFor) gives a run at `now` for each item, from what the bucket
   * holds before the run: the tests of this file share the bucket, so it depends on which ran before.
   */
  async function planTiers<K extends string>(e: BackupEnv, now: string, items: Record<K, BackupKind>): Promise<Record<K, Tier>> {
    const keys = (await e.list(`${HOST}/`)).map((k) => k.key);
    const out = {} as Record<K, Tier>;
    for (const [name, what] of Object.entries(items) as [K, BackupKind][]) out[name] = tierFor(new Date(now), heldPoints(keys, HOST, what));
    return out;
  }

  it("the host key really is least-privilege (it cannot delete)", async () => {
    await s3.aws(s3.admin, ["s3api", "put-object", "--bucket", BUCKET, "--key", `${HOST}/probe`, "--body", "/dev/null"]);
    const del = await s3.aws(hostKey, ["s3api", "delete-object", "--bucket", BUCKET, "--key", `${HOST}/probe`]);
    expect(del.code).not.toBe(0);
  });

  it("local mode, installed as rendered: dump, globals, manifests; restores with plain pg_restore to an identical schema", async () => {
    const e = newEnv({ install: true, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }] });
    const before = pings.pings.length;
    // No RESTORABLE_CONFIG: the installed scripts find the config at the rendered path. The 1st of a month: monthly tier.
    const r = await e.run("backup", [], { now: "2026-11-01T03:00:00Z", noConfigEnv: true });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    for (const line of r.stderr.trim().split("\n")) expect(line).toMatch(TS_LINE);
    expect(r.stdout).toBe("");

    const keys = (await e.list(`${HOST}/`)).map((k) => k.key);
    const base = `${HOST}/monthly/postgres/app/20261101T030000Z`;
    const gbase = `${HOST}/monthly/globals/20261101T030000Z`;
    expect(keys).toEqual(expect.arrayContaining([`${base}.dump.zst`, `${base}.manifest.json`, `${gbase}.sql.zst`, `${gbase}.manifest.json`]));

    // The manifest (contract) describes exactly the uploaded bytes.
    const m = await manifestAt(e, `${base}.manifest.json`);
    expect(m).toMatchObject({
      format: 1, kind: "postgres", host: HOST, tier: "monthly", stamp: "20261101T030000Z", createdAt: "2026-11-01T03:00:00Z",
      database: "app", source: { via: "local", host: "127.0.0.1", port: pg.port, user: "postgres" }, dumpFormat: "custom",
      compression: "zstd", encryption: "none", object: { key: `${base}.dump.zst` },
    });
    expect(m.serverVersion).toMatch(/^15\.\d+$/);
    expect(m.durationSeconds).toBeGreaterThan(0);
    const dump = await e.get(`${base}.dump.zst`);
    expect(m.object.size).toBe(dump.length);
    expect(m.object.sha256).toBe(sha256(dump));
    expect(m.tables!.map((t) => `${t.schema}.${t.name}`)).toEqual(facts.tables);
    expect(m.tables!.find((t) => t.name === "pgbench_accounts")!.rows).toBe(100_000);
    const gm = await manifestAt(e, `${gbase}.manifest.json`);
    expect(gm).toMatchObject({ kind: "globals", dumpFormat: "sql", tier: "monthly", object: { key: `${gbase}.sql.zst` } });
    const globals = await e.get(`${gbase}.sql.zst`);
    expect(gm.object.sha256).toBe(sha256(globals));

    // Pings: start, then success with the log.
    const mine = pings.pings.slice(before);
    expect(mine.map((p) => p.kind)).toEqual(["start", "success"]);
    expect(mine[1]!.body).toMatch(/database app: done/);
    // Nothing left behind: no run directory, nothing in TMPDIR.
    expect(e.leftovers()).toEqual([]);

    // Restore into a fresh cluster with plain tools: globals first (recreates the owner role), then pg_restore.
    const globalsSql = (await unzstd(globals)).toString("utf8");
    expect(globalsSql).toContain(`CREATE ROLE ${SAMPLE_OWNER}`);
    await run(`${PG_BIN}/psql`, ["-X", "-q", "-h", target.socketDir, "-p", String(target.port), "-U", "postgres", "-d", "postgres", "-f", "-"], { input: globalsSql, env: cleanLibpqEnv() });
    expect(await target.psql(`SELECT rolcanlogin AND rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '${SAMPLE_OWNER}'`)).toBe("t");
    await target.psql("CREATE DATABASE app");
    const plain = await unzstd(dump);
    expect(plain.subarray(0, 5).toString()).toBe("PGDMP");
    await pipeInto(`${PG_BIN}/pg_restore`, ["--exit-on-error", "-h", target.socketDir, "-p", String(target.port), "-U", "postgres", "-d", "app"], plain, cleanLibpqEnv());

    expect(await schemaOnly(target.env({ database: "app" }), "app")).toBe(await schemaOnly(pg.env({ database: "app" }), "app"));
    const tables = facts.tables;
    const src = await exactCounts((q) => pg.psql(q, { database: "app" }), tables);
    expect(await exactCounts((q) => target.psql(q, { database: "app" }), tables)).toEqual(src);
    expect(src).toEqual(facts.counts);
    const names = "SELECT string_agg(name, '|' ORDER BY id) FROM public.users WHERE name !~ '^user '";
    expect(await target.psql(names, { database: "app" })).toBe(SAMPLE_NON_ASCII.join("|"));
    expect(await target.psql("SELECT last_value FROM app.invoice_no", { database: "app" })).toBe(await pg.psql("SELECT last_value FROM app.invoice_no", { database: "app" }));
    // The role from the globals file owns the restored objects and can log in.
    expect(await target.psql("SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'orders'", { database: "app" })).toBe(SAMPLE_OWNER);
    const login = await run(`${PG_BIN}/psql`, ["-XAtq", "-h", target.socketDir, "-p", String(target.port), "-U", SAMPLE_OWNER, "-d", "app", "-c", "SELECT public.user_count()"], { env: { ...cleanLibpqEnv(), PGPASSWORD: SAMPLE_OWNER_PASSWORD } });
    expect(login.stdout.trim()).toBe(String(facts.counts["public.users"]));

    // The crontab line itself, in cron's bare environment (no HOME, PATH=/usr/bin:/bin), appends to its log.
    const line = e.rendered.crontab.split("\n").find((l) => l.includes(`${e.scriptsDir}/backup'`))!;
    const command = line.split(" ").slice(5).join(" ").replace(/\\%/g, "%");
    const cron = await run("/bin/sh", ["-c", command], { env: { PATH: "/usr/bin:/bin", SHELL: "/bin/sh", LOGNAME: "root" }, cwd: "/" });
    expect(cron.code).toBe(0);
    const log = readFileSync(join(e.stateDir, "backup.log"), "utf8");
    expect(log).toMatch(/restorable backup: done in /);
    expect(log).not.toMatch(/FAILED/);
  });

  it("the seed's path: docker-compose exec -T db pg_dump (compose v1), and docker exec -i for a container", async () => {
    const projectDir = mkdtempSync(join(tmpdir(), "rbc-"));
    dirs.push(projectDir);
    const port = await freePort();
    const compose: ComposeProject = await composeProject(
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
      POSTGRES_PASSWORD: app-secret
      POSTGRES_DB: app
`,
    );
    await compose.up();
    try {
      // Fill the containerized server with the sample data (roles + database), through the compose service.
      const exec = (args: string[], input: string | Buffer) => compose.compose(["exec", "-T", "db", ...args], { input });
      const g = await runOk(`${PG_BIN}/pg_dumpall`, ["--globals-only", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres"], { env: cleanLibpqEnv() });
      await exec(["psql", "-q", "-U", "app", "-d", "app"], g.stdout);
      const appSql = await runOk(`${PG_BIN}/pg_dump`, ["-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "app"], { env: cleanLibpqEnv() });
      const load = await exec(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app"], appSql.stdout);
      expect(load.code, load.stderr).toBe(0);
      const other = await exec(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", "app"], "CREATE DATABASE other; \\c other\nCREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT g, 'ü ' || g FROM generate_series(1, 500) g; ANALYZE t;");
      expect(other.code, other.stderr).toBe(0);
      const ps = await d.dockerOk(["ps", "-q", "--filter", `label=com.docker.compose.project=${compose.name}`, "--filter", "label=com.docker.compose.service=db"]);
      const containerId = ps.stdout.trim();
      const nameOut = await d.dockerOk(["inspect", "--format", "{{.Name}}", containerId]);
      const container = nameOut.stdout.trim().replace(/^\//, "");

      const e = newEnv({
        baseEnv: d.env,
        postgres: [
          { via: "compose", project: projectDir, service: "db", user: "app", database: "app" },
          { via: "container", container, user: "app", database: "other" },
        ],
        // Handed to docker through the environment (`-e PGPASSWORD`), never argv.
        pgPasswords: { app: "app-secret", other: "app-secret" },
      });
      const before = pings.pings.length;
      const tiers = await planTiers(e, "2026-11-24T03:00:00Z", {
        app: { kind: "postgres", database: "app" }, other: { kind: "postgres", database: "other" }, globals: { kind: "globals" },
      });
      const r = await e.run("backup", [], { now: "2026-11-24T03:00:00Z" });
      expect(r.stderr).not.toMatch(/FAILED/);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/using docker-compose \(v1\)/);
      expect(pings.pings.slice(before).map((p) => p.kind)).toEqual(["start", "success"]);

      const a = await manifestAt(e, `${HOST}/${tiers.app}/postgres/app/20261124T030000Z.manifest.json`);
      expect(a.tier).toBe(tiers.app);
      expect(a.source).toEqual({ via: "compose", project: projectDir, service: "db", user: "app" });
      expect(a.tables!.map((t) => `${t.schema}.${t.name}`)).toEqual(facts.tables);
      // The first backup of "other" ever: its month's restore point, though a Tuesday.
      expect(tiers.other).toBe("monthly");
      const o = await manifestAt(e, `${HOST}/monthly/postgres/other/20261124T030000Z.manifest.json`);
      expect(o.tier).toBe("monthly");
      expect(o.source).toEqual({ via: "container", container, user: "app" });
      expect(o.tables).toEqual([{ schema: "public", name: "t", rows: 500 }]);
      const gm = await manifestAt(e, `${HOST}/${tiers.globals}/globals/20261124T030000Z.manifest.json`);
      expect(gm.kind).toBe("globals");

      // Restore with plain tools into a fresh cluster of the same image (same server version):
      // the globals (roles), then pg_restore from the pipe. Same schema, same rows.
      const dump = await e.get(a.object.key);
      expect(sha256(dump)).toBe(a.object.sha256);
      const fresh = await startPostgresContainer(d, { user: "app", password: "other-secret", database: "app" });
      try {
        const inFresh = (args: string[], input: Buffer | string) => d.docker(["exec", "-i", fresh.name, ...args], { input });
        const gsql = await unzstd(await e.get(gm.object.key));
        await inFresh(["psql", "-q", "-U", "app", "-d", "postgres"], gsql);
        const restored = await inFresh(["pg_restore", "--exit-on-error", "-U", "app", "-d", "app"], await unzstd(dump));
        expect(restored.code, restored.stderr).toBe(0);
        const schemaIn = async (name: string) => unrestrict((await d.dockerOk(["exec", name, "pg_dump", "--schema-only", "-U", "app", "app"])).stdout);
        expect(await schemaIn(fresh.name)).toBe(await schemaIn(container));
        const srcCounts = await exactCounts(async (q) => (await d.dockerOk(["exec", container, "psql", "-XAtq", "-U", "app", "-d", "app", "-c", q])).stdout.trim(), facts.tables);
        expect(await exactCounts((q) => fresh.psql(q), facts.tables)).toEqual(srcCounts);
        expect(srcCounts).toEqual(facts.counts);
      } finally {
        await fresh.remove();
      }

      const other2 = await unzstd(await e.get(o.object.key));
      await target.psql("CREATE DATABASE from_container");
      await pipeInto(`${PG_BIN}/pg_restore`, ["--exit-on-error", "--no-owner", "-h", target.socketDir, "-p", String(target.port), "-U", "postgres", "-d", "from_container"], other2, cleanLibpqEnv());
      expect(await target.psql("SELECT count(*), min(note) FROM t", { database: "from_container" })).toBe("500|ü 1");
      // The password never appeared in a log line.
      expect(r.stderr).not.toContain("app-secret");
    } finally {
      await compose.down();
    }
  });

  it("backup-volumes: a named volume, tarred read-only in a throwaway container, unpacks to identical files and modes", async () => {
    const volume = "uploads";
    await d.dockerOk(["volume", "create", volume]);
    const setup = [
      "set -e; cd /data",
      "mkdir -p 'dir with space/nested' private",
      "printf 'hello\\n' > plain.txt; chmod 0644 plain.txt",
      "printf '#!/bin/sh\\necho hi\\n' > run.sh; chmod 0755 run.sh",
      "printf 'secret\\n' > private/key; chmod 0600 private/key; chmod 0700 private",
      "printf 'Grüße 日本\\n' > 'dir with space/nested/ünïcödé ✓.txt'; chmod 0640 'dir with space/nested/ünïcödé ✓.txt'",
      ": > empty; chmod 0444 empty",
      "head -c 3000000 /dev/urandom > random.bin",
      "ln -s plain.txt link-to-plain",
      "chown 1234:2345 plain.txt",
    ].join("; ");
    await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${volume}:/data`, TOOL_IMAGE, "sh", "-c", setup]);
    const inside = await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${volume}:/data:ro`, TOOL_IMAGE, "sh", "-c", "cd /data && find . -mindepth 1 | sort | while read -r f; do if [ -L \"$f\" ]; then echo \"$f link $(readlink \"$f\")\"; elif [ -d \"$f\" ]; then echo \"$f dir $(stat -c %a \"$f\")\"; else echo \"$f file $(stat -c '%a %u %g' \"$f\") $(sha256sum < \"$f\" | cut -d' ' -f1)\"; fi; done"]);

    const e = newEnv({ baseEnv: d.env, volumes: [volume], volumeImage: TOOL_IMAGE });
    const before = pings.pings.length;
    // The volume's first backup: monthly, though a Sunday (the first rule made Sundays weekly).
    const r = await e.run("backup-volumes", [], { now: "2026-11-29T03:00:00Z" });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    for (const line of r.stderr.trim().split("\n")) expect(line).toMatch(TS_LINE);
    expect(pings.pings.slice(before).map((p) => p.kind)).toEqual(["start", "success"]);
    const m = await manifestAt(e, `${HOST}/monthly/volumes/${volume}/20261129T030000Z.manifest.json`);
    expect(m).toMatchObject({ kind: "volume", volume, dumpFormat: "tar", compression: "zstd", tier: "monthly", source: { via: "docker", volume, image: TOOL_IMAGE } });
    const obj = await e.get(m.object.key);
    expect(sha256(obj)).toBe(m.object.sha256);
    expect(obj.length).toBe(m.object.size);

    const out = mkdtempSync(join(tmpdir(), "rbv-"));
    dirs.push(out);
    await pipeInto("tar", ["-x", "-p", "--numeric-owner", "-f", "-", "-C", out], await unzstd(obj));
    const lines: string[] = [];
    const walk = (rel: string) => {
      for (const n of readdirSync(join(out, rel)).sort()) {
        const r2 = rel ? `${rel}/${n}` : n;
        const p = join(out, r2);
        const st = lstatSync(p);
        if (st.isSymbolicLink()) lines.push(`./${r2} link ${readlinkSync(p)}`);
        else if (st.isDirectory()) lines.push(`./${r2} dir ${(st.mode & 0o7777).toString(8)}`);
        else lines.push(`./${r2} file ${(st.mode & 0o7777).toString(8)} ${st.uid} ${st.gid} ${sha256(readFileSync(p))}`);
        if (st.isDirectory()) walk(r2);
      }
    };
    walk("");
    const sortLines = (x: string[]) => [...x].sort();
    expect(sortLines(lines)).toEqual(sortLines(inside.stdout.trim().split("\n")));
    expect(lines.some((l) => l.includes("private/key file 600"))).toBe(true);
    expect(lines.some((l) => l.startsWith("./plain.txt file 644 1234 2345"))).toBe(true);
    // The stream never landed in container logs or temp files, and the container is gone.
    expect(e.leftovers()).toEqual([]);
    expect((await d.dockerOk(["ps", "-aq"])).stdout.trim()).toBe("");
  });

  it("backup-volumes: a missing volume fails at preflight, is not created, and leaves no manifest", async () => {
    const e = newEnv({ baseEnv: d.env, volumes: ["does-not-exist"], volumeImage: TOOL_IMAGE });
    const before = pings.pings.length;
    const r = await e.run("backup-volumes", [], { now: "2026-11-24T04:00:00Z" });
    expect(r.code).toBe(1);
    expect(failedLine(r)).toMatch(/restorable backup-volumes: FAILED at stage preflight: volume does-not-exist: docker volume does-not-exist does not exist/);
    expect(pings.pings.slice(before).map((p) => p.kind)).toEqual(["start", "fail"]);
    expect((await d.docker(["volume", "inspect", "does-not-exist"])).code).not.toBe(0);
    expect((await e.list(`${HOST}/daily/volumes/does-not-exist/`)).length).toBe(0);
  });

  it("encryption: with age recipients the object is unreadable without the identity and decrypts to the dump", async () => {
    const keyDir = mkdtempSync(join(tmpdir(), "rage-"));
    dirs.push(keyDir);
    const identity = join(keyDir, "id.txt");
    const other = join(keyDir, "other.txt");
    await runOk("age-keygen", ["-o", identity]);
    await runOk("age-keygen", ["-o", other]);
    const recipient = (await runOk("age-keygen", ["-y", identity])).stdout.trim();
    chmodSync(identity, 0o600);

    const e = newEnv({ postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }], ageRecipients: [recipient] });
    const tiers = await planTiers(e, "2026-11-29T05:00:00Z", { app: { kind: "postgres", database: "app" }, globals: { kind: "globals" } });
    const r = await e.run("backup", [], { now: "2026-11-29T05:00:00Z" });
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    const m = await manifestAt(e, `${HOST}/${tiers.app}/postgres/app/20261129T050000Z.manifest.json`);
    expect(m.encryption).toBe("age");
    expect(m.object.key).toBe(`${HOST}/${tiers.app}/postgres/app/20261129T050000Z.dump.zst.age`);
    const obj = await e.get(m.object.key);
    expect(sha256(obj)).toBe(m.object.sha256);
    expect(obj.subarray(0, 21).toString()).toBe("age-encryption.org/v1");
    expect(obj.includes(Buffer.from("pgbench_accounts"))).toBe(false);
    await expect(pipeInto("zstd", ["-d", "-c", "-q"], obj)).rejects.toThrow();
    await expect(pipeInto("age", ["-d", "-i", other], obj)).rejects.toThrow();
    const plain = await unzstd(await pipeInto("age", ["-d", "-i", identity], obj));
    expect(plain.subarray(0, 5).toString()).toBe("PGDMP");
    const list = await pipeInto(`${PG_BIN}/pg_restore`, ["--list"], plain);
    expect(list.toString()).toMatch(/TABLE DATA public users/);
    // Globals are encrypted too.
    const gm = await manifestAt(e, `${HOST}/${tiers.globals}/globals/20261129T050000Z.manifest.json`);
    expect(gm.object.key.endsWith(".sql.zst.age")).toBe(true);
    const g = await unzstd(await pipeInto("age", ["-d", "-i", identity], await e.get(gm.object.key)));
    expect(g.toString()).toContain(`CREATE ROLE ${SAMPLE_OWNER}`);
  });

  it("streams: no temp file of the dump at any moment (state dir and TMPDIR stay tiny while the upload runs); a failing ping server fails nothing", async () => {
    const e = newEnv({ postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: "app" }] });
    pings.failNext(1000, 503);
    const tiers = await planTiers(e, "2026-11-24T06:00:00Z", { app: { kind: "postgres", database: "app" } });
    const child = e.spawn("backup", [], { now: "2026-11-24T06:00:00Z" });
    let stderr = "";
    child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    let maxBytes = 0;
    let samples = 0;
    const done = new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      const files = [...filesUnder(e.stateDir), ...filesUnder(e.tmpDir)];
      maxBytes = Math.max(maxBytes, ...files.map((f) => f.size), 0);
      samples++;
      await new Promise((r) => setTimeout(r, 20));
    }
    pings.failNext(0);
    expect(await done).toBe(0);
    expect(stderr).toMatch(/warning: start ping failed/);
    expect(stderr).toMatch(/warning: success ping failed/);
    expect(stderr).not.toContain(pings.uuid);
    expect(samples).toBeGreaterThan(5);
    const m = await manifestAt(e, `${HOST}/${tiers.app}/postgres/app/20261124T060000Z.manifest.json`);
    expect(m.object.size).toBeGreaterThan(50_000);
    // The largest file ever seen locally is a small bookkeeping file, far below the dump's size.
    expect(maxBytes).toBeLessThan(16_384);
  });
  describe("retention rule: the tier follows what the bucket holds", () => {
    // Its own database, so what the other tests stored does not matter.
    const DB = "ledger";
    const runAt = async (e: BackupEnv, now: string) => {
      const r = await e.run("backup", [], { now });
      expect(r.stderr).not.toMatch(/FAILED/);
      expect(r.code).toBe(0);
      const keys = (await e.list(`${HOST}/`)).map((k) => k.key);
      const stamp = now.replace(/[-:]/g, "");
      const mine = keys.filter((k) => k.endsWith(`/postgres/${DB}/${stamp}.manifest.json`));
      expect(mine).toHaveLength(1);
      const m = await manifestAt(e, mine[0]!);
      expect(mine[0]).toBe(`${HOST}/${m.tier}/postgres/${DB}/${stamp}.manifest.json`);
      return m.tier;
    };

    it("a run on the 2nd after a missed 1st (which left a dump without manifest) is the month's restore point; the week's first is weekly whatever the weekday", async () => {
      await pg.psql(`CREATE DATABASE ${DB}`);
      await pg.psql("CREATE TABLE entries (id int PRIMARY KEY); INSERT INTO entries SELECT generate_series(1, 100)", { database: DB });
      const e = newEnv({ postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: DB }] });
      // Monday 30 November: the database's first backup, November's restore point.
      expect(await runAt(e, "2026-11-30T03:00:00Z")).toBe("monthly");
      // Tuesday 1 December: the run was interrupted after the data object, before the manifest.
      const orphan = `${HOST}/monthly/postgres/${DB}/20261201T030000Z.dump.zst`;
      await putObject(access, orphan, "the first part of an upload");
      expect((await e.list(`${HOST}/monthly/postgres/${DB}/`)).map((k) => k.key)).toContain(orphan);
      // Wednesday 2 December: no December restore point yet (a dump without manifest is none).
      expect(await runAt(e, "2026-12-02T03:00:00Z")).toBe("monthly");
      // Thursday: this week already has a monthly restore point (two, in fact): daily.
      expect(await runAt(e, "2026-12-03T03:00:00Z")).toBe("daily");
      // The next week's first run, a Tuesday (Monday missed): weekly. Then daily again.
      expect(await runAt(e, "2026-12-08T23:59:59Z")).toBe("weekly");
      expect(await runAt(e, "2026-12-09T00:00:30Z")).toBe("daily");
      // Sunday 13 December belongs to the same ISO week: daily; Monday 14 starts a new one.
      expect(await runAt(e, "2026-12-13T03:00:00Z")).toBe("daily");
      expect(await runAt(e, "2026-12-14T03:00:00Z")).toBe("weekly");
    });

    it("the same stamp again: a daily restore point after the monthly, then refused at preflight (backup and backup-volumes), nothing overwritten", async () => {
      const db = `${DB}_again`;
      await pg.psql(`CREATE DATABASE ${db}`);
      await d.dockerOk(["volume", "create", "again"]);
      const e = newEnv({ baseEnv: d.env, volumes: ["again"], volumeImage: TOOL_IMAGE, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: db }] });
      const now = "2026-10-07T03:00:00Z";
      const stamp = "20261007T030000Z";
      // The month's first is monthly; the same stamp again is daily (the week has its monthly one).
      for (const tier of ["monthly", "daily"]) {
        for (const job of ["backup", "backup-volumes"]) {
          const r = await e.run(job, [], { now });
          expect(r.code, r.stderr).toBe(0);
        }
        const keys = (await e.list(`${HOST}/${tier}/`)).map((k) => k.key);
        for (const item of [`postgres/${db}`, "globals", "volumes/again"]) expect(keys).toContain(`${HOST}/${tier}/${item}/${stamp}.manifest.json`);
      }
      const before = await e.list(`${HOST}/daily/`);
      const b = await e.run("backup", [], { now });
      expect(b.code).toBe(1);
      expect(failedLine(b)).toMatch(new RegExp(`restorable backup: FAILED at stage preflight: (database ${db}|globals): s3://${BUCKET}/${HOST}/daily/\\S+/${stamp}\\.manifest\\.json already exists: a backup with stamp ${stamp} is already in the bucket \\(and 1 more failure`));
      expect(b.stderr).not.toMatch(/dumping to/);
      const v = await e.run("backup-volumes", [], { now });
      expect(v.code).toBe(1);
      expect(failedLine(v)).toMatch(new RegExp(`FAILED at stage preflight: volume again: s3://${BUCKET}/${HOST}/daily/volumes/again/${stamp}\\.manifest\\.json already exists`));
      expect(await e.list(`${HOST}/daily/`)).toEqual(before);
      await d.dockerOk(["volume", "rm", "again"]);
    });

    it("a listing the key may not make fails the run at stage preflight, before anything is dumped or uploaded", async () => {
      const host = "web-2";
      const noList = await hostBucketAccess(s3, BUCKET, host);
      // The plan's policy without its ListOwnPrefix statement: put and get still allowed, list denied.
      const policy = hostIamPolicy(BUCKET, host);
      policy.Statement = policy.Statement.filter((st) => st.Sid !== "ListOwnPrefix");
      const put = await s3.aws(s3.admin, ["iam", "put-user-policy", "--user-name", host, "--policy-name", "restorable", "--policy-document", JSON.stringify(policy)]);
      expect(put.code, put.stderr).toBe(0);
      await putObject(noList, `${host}/probe`, "the key may still write");
      const e = createBackupEnv({ s3: noList, host, pingUrl: pings.url, postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, database: DB }] });
      envs.push(e);
      const before = pings.pings.length;
      const r = await e.run("backup", [], { now: "2026-12-02T03:00:00Z" });
      expect(r.code).toBe(1);
      expect(failedLine(r)).toMatch(new RegExp(`restorable backup: FAILED at stage preflight: cannot list s3://${BUCKET}/${host}/monthly/ at .* \\(the listing decides the tier\\): .*403`));
      expect(r.stderr).not.toMatch(/dumping to/);
      expect(pings.pings.slice(before).map((p) => p.kind)).toEqual(["start", "fail"]);
      const all = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", `${host}/`, "--query", "Contents[].Key", "--output", "json"]);
      expect(JSON.parse(all.stdout || "null")).toEqual([`${host}/probe`]);
      expect(e.leftovers()).toEqual([]);
    });
  });
});
