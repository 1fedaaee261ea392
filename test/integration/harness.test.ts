/**
 * Proves the shared test harness for real: PostgreSQL clusters with the sample dataset, a private
 * dockerd with the locally built Postgres and tool images, docker-compose v1, named volumes, the
 * ping server — and that stopping leaves no process, mount or temp dir behind.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  composeProject, ensurePostgresImage, ensureToolImage, pidsMentioning, startDockerd, waitHealthy,
  type ComposeProject, type Dockerd,
} from "../support/docker";
import { startPingServer, type PingServer } from "../support/pings";
import {
  loadSampleData, PG_BIN, SAMPLE_NON_ASCII, SAMPLE_OWNER, sampleDataFacts, startPostgres, type PgCluster,
} from "../support/postgres";
import { freePort, run, runOk } from "../support/proc";
import { requireTools } from "../support/tools";

/** Temp dirs of everything this file started, to prove nothing outlives stop(). */
const startedDirs: string[] = [];

function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`));
}

const pgTools = requireTools(`${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "psql", "pg_dump", "pgbench");

describe.skipIf(!pgTools.ok)("PostgreSQL clusters", () => {
  let a: PgCluster | undefined;
  let b: PgCluster | undefined;
  let s: PgCluster | undefined;

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop(), s?.stop()]);
  });

  it("runs two clusters at once, each with the sample dataset", async () => {
    [a, b] = await Promise.all([startPostgres(), startPostgres()]);
    startedDirs.push(a.socketDir.replace(/\/sock$/, ""), b.socketDir.replace(/\/sock$/, ""));
    expect(a.port).not.toBe(b.port);
    await Promise.all([loadSampleData(a, "app"), loadSampleData(b, "shop", { pgbenchScale: 2 })]);

    for (const [pg, db, scale] of [[a, "app", 1], [b, "shop", 2]] as const) {
      const facts = sampleDataFacts(scale);
      for (const [table, rows] of Object.entries(facts.counts)) {
        expect(await pg.psql(`SELECT count(*) FROM ${table}`, { database: db }), `${db}: ${table}`).toBe(String(rows));
      }
      const tables = await pg.psql(
        "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname IN ('public','app') ORDER BY 1",
        { database: db },
      );
      expect(tables.split("\n")).toEqual(facts.tables);
      const views = await pg.psql("SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname IN ('public','app') ORDER BY 1", { database: db });
      expect(views.split("\n")).toEqual(facts.views);
      const exts = await pg.psql("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1", { database: db });
      expect(exts.split("\n")).toEqual(facts.extensions);
      for (const fn of facts.functions) {
        expect(await pg.psql(`SELECT to_regprocedure('${fn}') IS NOT NULL`, { database: db }), fn).toBe("t");
      }
      expect(await pg.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'users'", { database: db })).toBe(SAMPLE_OWNER);
      expect(await pg.psql("SELECT nextval('app.invoice_no') > 4242", { database: db })).toBe("t");
      expect(await pg.psql("SELECT public.user_count()", { database: db })).toBe(String(facts.counts["public.users"]));
      const names = (await pg.psql("SELECT name FROM public.users WHERE name !~ '^user [0-9]+$' ORDER BY id", { database: db })).split("\n");
      expect(names).toEqual([...SAMPLE_NON_ASCII]);
      expect(await pg.psql("SELECT server_encoding = 'UTF8' FROM (SELECT current_setting('server_encoding') AS server_encoding) s")).toBe("t");
    }
    // The clusters are independent: each has only its own database.
    expect(await a.psql("SELECT datname FROM pg_database WHERE datname IN ('app','shop')")).toBe("app");
    expect(await b.psql("SELECT datname FROM pg_database WHERE datname IN ('app','shop')")).toBe("shop");
  });

  it("env() drives libpq clients over TCP, and pg_dump/pg_restore round-trip the dataset", async () => {
    const pg = a!;
    const dump = await run("pg_dump", ["-Fc", "-d", "app"], { env: pg.env() });
    expect(dump.code, dump.stderr).toBe(0);
    // pg_restore -l stops reading after the TOC (drain the pipe, or pg_dump dies of SIGPIPE), and it
    // reads a pipe only as stdin (a <(...) path fails: "did not find magic string in file header").
    const list = await runOk("bash", ["-c", "set -o pipefail; pg_dump -Fc -d app | { pg_restore -l; cat >/dev/null; } | grep -c 'TABLE DATA'"], { env: pg.env() });
    expect(Number(list.stdout.trim())).toBe(sampleDataFacts(1).tables.length);
    await pg.psql("CREATE DATABASE app_copy");
    await runOk("bash", ["-c", "set -o pipefail; pg_dump -Fc -d app | pg_restore -d app_copy"], { env: pg.env() });
    expect(await pg.psql("SELECT count(*) FROM public.users WHERE name = 'Emoji 🎉🐘'", { database: "app_copy" })).toBe("1");
    expect(await pg.psql("SELECT count(*) FROM pgbench_accounts", { database: "app_copy" })).toBe("100000");
  });

  it("scram auth accepts the right password and rejects a wrong or missing one over TCP", async () => {
    s = await startPostgres({ auth: "scram" });
    startedDirs.push(s.socketDir.replace(/\/sock$/, ""));
    await s.psql("CREATE ROLE alice LOGIN PASSWORD 'correct horse'; CREATE DATABASE alicedb OWNER alice");

    const ok = await run("psql", ["-XAtc", "SELECT current_user"], { env: s.env({ user: "alice", database: "alicedb", password: "correct horse" }) });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe("alice");

    const wrong = await run("psql", ["-XAtc", "SELECT 1"], { env: s.env({ user: "alice", database: "alicedb", password: "battery staple" }) });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/password authentication failed for user "alice"/);

    const none = await run("psql", ["-XAtc", "SELECT 1", "-w"], { env: s.env({ user: "alice", database: "alicedb" }) });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/password|authentication/i);

    // The superuser's password is the default for env() in scram mode.
    const su = await run("psql", ["-XAtc", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"], { env: s.env() });
    expect(su.stdout.trim()).toBe("t");
  });

  it("stop() is idempotent and leaves no server process or temp dir", async () => {
    const pg = (await startPostgres()) as PgCluster;
    const base = pg.socketDir.replace(/\/sock$/, "");
    startedDirs.push(base);
    expect(pidsMentioning(pg.dataDir).length).toBeGreaterThan(0);
    await pg.stop();
    await pg.stop();
    expect(pidsMentioning(pg.dataDir)).toEqual([]);
    expect(existsSync(base)).toBe(false);
    const r = await run("psql", ["-XAtc", "SELECT 1"], { env: pg.env() });
    expect(r.code).not.toBe(0);
  });
});

const dockerTools = requireTools("dockerd", "/usr/bin/docker", "docker-compose", "debootstrap", "busybox", "psql", "pg_restore");

describe.skipIf(!dockerTools.ok)("dockerd, images and compose", () => {
  let d: Dockerd | undefined;
  let pgImage = "";
  let toolImage = "";
  let project: ComposeProject | undefined;
  let projectDir = "";

  beforeAll(async () => {
    d = await startDockerd();
    startedDirs.push(d.dir);
    pgImage = await ensurePostgresImage(d);
    toolImage = await ensureToolImage(d);
  });

  afterAll(async () => {
    await project?.down().catch(() => undefined);
    await d?.stop();
    if (projectDir) rmSync(projectDir, { recursive: true, force: true });
  });

  it("starts a private daemon that leaves the host's networking alone", async () => {
    const info = await d!.dockerOk(["info", "--format", "{{.DockerRootDir}} {{.ServerVersion}}"]);
    expect(info.stdout.trim().split(" ")[0]).toBe(join(d!.dir, "data"));
    const nets = await d!.dockerOk(["network", "ls", "--format", "{{.Name}}"]);
    expect(nets.stdout.split("\n").filter(Boolean).sort()).toEqual(["host", "none"]);
    expect(d!.env.DOCKER_HOST).toBe(d!.host);
    expect(d!.env.PATH!.split(":")[0]).toBe("/usr/bin");
    const which = await runOk("sh", ["-c", "command -v docker"], { env: d!.env });
    expect(which.stdout.trim()).toBe("/usr/bin/docker");
  });

  it("runs the Postgres image like the official one: env honoured, pg_dump via docker exec -i, password auth over TCP", async () => {
    const port = await freePort();
    const name = "pgtest";
    await d!.dockerOk([
      "run", "-d", "--name", name, "--network", "host",
      "-e", `PGPORT=${port}`, "-e", "POSTGRES_USER=app", "-e", "POSTGRES_PASSWORD=s3cret", "-e", "POSTGRES_DB=appdb",
      pgImage,
    ]);
    await waitHealthy(d!, name);
    const sql = "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'Zoë'), (2, '日本語');";
    const ins = await d!.docker(["exec", "-i", name, "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "appdb"], { input: sql });
    expect(ins.code, ins.stderr).toBe(0);

    const who = await d!.dockerOk(["exec", name, "sh", "-c", "id -un postgres && command -v pg_dump && echo $PGDATA"]);
    expect(who.stdout.split("\n")).toEqual(["postgres", "/usr/lib/postgresql/15/bin/pg_dump", "/var/lib/postgresql/data", ""]);

    // Plain and custom-format dumps stream out through docker exec -i.
    const plain = await d!.docker(["exec", "-i", name, "pg_dump", "-U", "app", "appdb"]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain("CREATE TABLE public.users");
    expect(plain.stdout).toContain("Zoë");
    const custom = await runOk("bash", ["-c", `set -o pipefail; docker exec -i ${name} pg_dump -Fc -Z0 -U app appdb | pg_restore -f - | grep -c 日本語`], { env: d!.env });
    expect(custom.stdout.trim()).toBe("1");

    // TCP: password required and checked (network host: the port is on the host's 127.0.0.1).
    const tcp = { PGHOST: "127.0.0.1", PGPORT: String(port), PGUSER: "app", PGDATABASE: "appdb" };
    const good = await run("psql", ["-XAtc", "SELECT count(*) FROM users"], { env: { ...process.env, ...tcp, PGPASSWORD: "s3cret" } });
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout.trim()).toBe("2");
    const bad = await run("psql", ["-XAtc", "SELECT 1"], { env: { ...process.env, ...tcp, PGPASSWORD: "nope" } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/password authentication failed/);

    // Uninitialised data dir without a password: refuses to start, like the official image.
    const nopw = await d!.docker(["run", "--rm", "--network", "none", pgImage]);
    expect(nopw.code).not.toBe(0);
    expect(nopw.stderr).toMatch(/POSTGRES_PASSWORD is not set/);
    await d!.dockerOk(["rm", "-f", "-v", name]);
  });

  it("runs a compose project whose db service answers `docker-compose exec -T db pg_dump -U app app`", async () => {
    const port = await freePort();
    projectDir = mkdtempSync(join(tmpdir(), "rcompose-"));
    project = await composeProject(
      d!,
      projectDir,
      `services:
  db:
    image: ${pgImage}
    network_mode: host
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: app-pw
      POSTGRES_DB: app
      PGPORT: "${port}"
    volumes:
      - dbdata:/var/lib/postgresql/data
volumes:
  dbdata: {}
`,
    );
    await project.up();
    const seed = await project.compose(["exec", "-T", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "app"], {
      input: "CREATE TABLE users (id serial PRIMARY KEY, name text); INSERT INTO users (name) VALUES ('Zoë'), ('🎉');",
    });
    expect(seed.code, seed.stderr).toBe(0);
    // As a backup script runs it: in the project dir, no -p/-f (the project name comes from .env).
    const dump = await run("docker-compose", ["exec", "-T", "db", "pg_dump", "-U", "app", "app"], { cwd: projectDir, env: d!.env });
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdout).toContain("CREATE TABLE public.users");
    expect(dump.stdout).toContain("🎉");
    // The named volume belongs to the project.
    const vols = await d!.dockerOk(["volume", "ls", "-q", "--filter", `label=com.docker.compose.project=${project.name}`]);
    expect(vols.stdout.trim()).toBe(`${project.name}_dbdata`);
    await project.down();
    const left = await d!.dockerOk(["ps", "-aq", "--filter", `label=com.docker.compose.project=${project.name}`]);
    expect(left.stdout.trim()).toBe("");
  });

  it("reads a named volume through the tool image: docker run --rm -v vol:/data:ro IMG tar -C /data -cf - .", async () => {
    await d!.dockerOk(["volume", "create", "uploads"]);
    await d!.dockerOk([
      "run", "--rm", "--network", "none", "-v", "uploads:/data", toolImage, "sh", "-c",
      "mkdir -p /data/img/sub && echo hello > /data/a.txt && printf 'Zoë' > '/data/img/ünïcode name.txt' && head -c 100000 /dev/urandom > /data/img/sub/blob.bin",
    ]);
    const tar = await runOk("bash", ["-c", `set -o pipefail; docker run --rm --network none -v uploads:/data:ro ${toolImage} tar -C /data -cf - . | tar -tf - | sort`], { env: d!.env });
    expect(tar.stdout.split("\n").filter(Boolean)).toEqual(["./", "./a.txt", "./img/", "./img/sub/", "./img/sub/blob.bin", "./img/ünïcode name.txt"]);
    const content = await runOk("bash", ["-c", `set -o pipefail; docker run --rm -v uploads:/data:ro ${toolImage} tar -C /data -cf - . | tar -xOf - './img/ünïcode name.txt'`], { env: d!.env });
    expect(content.stdout).toBe("Zoë");
    // Read-only really is read-only.
    const w = await d!.docker(["run", "--rm", "-v", "uploads:/data:ro", toolImage, "touch", "/data/x"]);
    expect(w.code).not.toBe(0);
  });

  it("stop() removes its containers, daemon processes, mounts and temp dir (idempotently)", async () => {
    // A running container at stop time must not survive it.
    await d!.dockerOk(["run", "-d", "--name", "sleeper", "--network", "none", toolImage, "sleep", "3600"]);
    const dir = d!.dir;
    expect(pidsMentioning(dir).length).toBeGreaterThanOrEqual(2); // dockerd + containerd (+ shim)
    await d!.stop();
    await d!.stop();
    expect(pidsMentioning(dir)).toEqual([]);
    expect(mountsUnder(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    const sleepers = await run("pgrep", ["-f", "^sleep 3600$"]);
    expect(sleepers.stdout.trim()).toBe("");
  });
});

const pingTools = requireTools("curl");

describe.skipIf(!pingTools.ok)("ping server", () => {
  let p: PingServer | undefined;
  afterAll(async () => {
    await p?.stop();
  });

  it("records start, success, fail (with the log tail) and log pings, by GET and POST", async () => {
    p = await startPingServer();
    expect(p.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]{36}$/);
    const curl = (args: string[]) => runOk("curl", ["-fsS", "-m", "10", "--retry", "3", ...args]);
    await curl([`${p.url}/start`]);
    await curl(["--data-raw", "dump ok: 3 tables", p.url]);
    const tail = "line 1\npg_dump: error: connection failed – Zoë 🎉\n";
    await runOk("curl", ["-fsS", "-m", "10", "--data-binary", "@-", `${p.url}/fail`], { input: tail });
    await curl(["-X", "POST", "--data-raw", "progress", `${p.url}/log`]);
    await curl([`${p.url}/0`]);
    await curl([`${p.url}/3`]);
    expect(p.pings.map((x) => x.kind)).toEqual(["start", "success", "fail", "log", "success", "fail"]);
    expect(p.pings[0]!.method).toBe("GET");
    expect(p.of("success")[0]!.body).toBe("dump ok: 3 tables");
    expect(p.of("fail")[0]!.body).toBe(tail);
    expect(p.of("fail")[1]!.exitStatus).toBe(3);
    expect((await p.waitFor("log")).body).toBe("progress");

    // Wrong URLs are not pings: 404, kept aside.
    const wrong = await run("curl", ["-fsS", "-m", "10", `${p.url.replace(/[0-9a-f]{12}$/, "000000000000")}/start`]);
    expect(wrong.code).not.toBe(0);
    expect(p.unmatched).toHaveLength(1);
  });

  it("waitFor resolves on a later ping and rejects after its timeout", async () => {
    const after = p!.pings.length;
    const waiting = p!.waitFor("start", 10_000, after);
    await runOk("curl", ["-fsS", "-m", "10", `${p!.url}/start`]);
    expect((await waiting).kind).toBe("start");
    await expect(p!.waitFor("start", 50, p!.pings.length)).rejects.toThrow(/no "start" ping/);
    await p!.stop();
    await p!.stop();
    const r = await run("curl", ["-fsS", "-m", "5", p!.url]);
    expect(r.code).not.toBe(0);
  });
});

describe.skipIf(!pgTools.ok && !dockerTools.ok)("after everything stopped", () => {
  it("no postgres, dockerd, containerd or shim process of this file's harness remains", async () => {
    expect(startedDirs.length).toBeGreaterThan(0);
    for (const dir of startedDirs) {
      expect(pidsMentioning(dir), dir).toEqual([]);
      expect(existsSync(dir), dir).toBe(false);
    }
  });
});
