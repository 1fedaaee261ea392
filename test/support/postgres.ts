/**
 * Real PostgreSQL 15 clusters for integration tests: each in its own temp dir, owned by the
 * `postgres` OS user (initdb/pg_ctl refuse root), listening on 127.0.0.1:<free port> and on a
 * unix socket in its own directory. stop() is idempotent, and every cluster still running when
 * the test process exits (normally or by SIGINT/SIGTERM) is stopped immediately.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, run, runOk, type RunResult, onProcessExit } from "./proc";

export const PG_BIN = "/usr/lib/postgresql/15/bin";

export interface PgCluster {
  host: "127.0.0.1";
  port: number;
  socketDir: string;
  dataDir: string;
  superuser: "postgres";
  /** How TCP connections authenticate ("trust", or "scram": scram-sha-256, wrong passwords fail). */
  auth: "trust" | "scram";
  /** The superuser's password ("" with trust auth). */
  superuserPassword: string;
  /** The server log file (pg_ctl -l). */
  logFile: string;
  /**
   * Env for libpq clients over TCP: PGHOST=127.0.0.1, PGPORT, PGUSER (default postgres),
   * PGDATABASE when given, PGPASSWORD when given (with scram auth and the superuser, the
   * superuser's password by default). PGPASSFILE/PGSERVICE etc. of the caller are removed.
   */
  env(extra?: { user?: string; database?: string; password?: string }): NodeJS.ProcessEnv;
  /** Run SQL with psql -XAtq -v ON_ERROR_STOP=1 over the unix socket (trust); throws on error. */
  psql(sql: string, opts?: { database?: string; user?: string }): Promise<string>;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** "trust" (default): everything trusted. "scram": the unix socket is trusted, TCP needs a scram-sha-256 password. */
  auth?: "trust" | "scram";
  /** WAL segment size in MB (initdb --wal-segsize: a power of two from 1 to 1024); default PostgreSQL's 16. */
  walSegmentMB?: number;
  /**
   * The WAL file the new cluster starts writing (pg_resetwal -l before its first start, 24 hex
   * digits, later than initdb's), e.g. one just before a log boundary ("...0000000000000FF8" with
   * 1 MB segments: 8 segments before log 1) so that a test crosses it quickly.
   */
  firstWalFile?: string;
}

/** libpq env vars a caller's environment must not leak into a test's clients. */
const LIBPQ_VARS = [
  "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGDATABASE", "PGSERVICE",
  "PGSERVICEFILE", "PGSSLMODE", "PGOPTIONS", "PGAPPNAME", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS",
];

export function cleanLibpqEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const k of LIBPQ_VARS) delete env[k];
  return env;
}

// ---- exit cleanup -------------------------------------------------------------------------

const live = new Map<string, { dataDir: string; base: string }>();


function stopSync(dataDir: string, base: string): void {
  try {
    if (existsSync(join(dataDir, "postmaster.pid"))) {
      execFileSync("runuser", ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", dataDir, "-m", "immediate", "-w", "-t", "30", "stop"], {
        stdio: "ignore",
        cwd: base,
      });
    }
  } catch {
    /* best effort */
  }
  try {
    rmSync(base, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

// ---- start --------------------------------------------------------------------------------

let pgUid: { uid: number; gid: number } | undefined;
function postgresUser(): { uid: number; gid: number } {
  if (!pgUid) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    pgUid = { uid, gid };
  }
  return pgUid;
}

/** Stops what this module started when the test process exits (registered once). */
function cleanupAtExit(): void {
  for (const c of live.values()) stopSync(c.dataDir, c.base);
  live.clear();
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgCluster> {
  const auth = opts.auth ?? "trust";
  const { uid, gid } = postgresUser();
  onProcessExit(cleanupAtExit);
  // A short base path: the socket path (.s.PGSQL.PORT) must stay under 107 bytes.
  const base = mkdtempSync(join(tmpdir(), "rpg-"));
  chmodSync(base, 0o755);
  chownSync(base, uid, gid);
  const dataDir = join(base, "data");
  const socketDir = join(base, "sock");
  mkdirSync(socketDir, { mode: 0o755 });
  chmodSync(socketDir, 0o755);
  chownSync(socketDir, uid, gid);
  const logFile = join(base, "postgres.log");
  const superuserPassword = auth === "scram" ? `pw-${randomBytes(12).toString("hex")}` : "";
  const asPg = { user: "postgres", cwd: base, env: cleanLibpqEnv() };

  let started = false;
  live.set(base, { dataDir, base });
  try {
    const initArgs = ["-D", dataDir, "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"];
    if (auth === "scram") {
      const pwfile = join(base, "pwfile");
      writeFileSync(pwfile, `${superuserPassword}\n`, { mode: 0o600 });
      chownSync(pwfile, uid, gid);
      initArgs.push("--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${pwfile}`);
    } else {
      initArgs.push("--auth=trust");
    }
    if (opts.walSegmentMB !== undefined) initArgs.push(`--wal-segsize=${opts.walSegmentMB}`);
    await runOk(`${PG_BIN}/initdb`, initArgs, asPg);
    rmSync(join(base, "pwfile"), { force: true });
    if (opts.firstWalFile !== undefined) {
      if (!/^[0-9A-F]{24}$/.test(opts.firstWalFile)) throw new Error(`firstWalFile "${opts.firstWalFile}" is not a WAL file name (24 hex digits)`);
      await runOk(`${PG_BIN}/pg_resetwal`, ["-l", opts.firstWalFile, "-D", dataDir], asPg);
    }

    // Ports are only free "a moment ago": retry with another one if the bind loses a race.
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      const o = [
        `-p ${port}`,
        `-k ${socketDir}`,
        "-c listen_addresses=127.0.0.1",
        "-c fsync=off",
        "-c full_page_writes=off",
        "-c synchronous_commit=off",
        "-c max_connections=50",
        "-c shared_buffers=32MB",
      ].join(" ");
      const r = await run(`${PG_BIN}/pg_ctl`, ["-D", dataDir, "-l", logFile, "-o", o, "-w", "-t", "60", "start"], asPg);
      if (r.code === 0) break;
      if (attempt >= 4) throw new Error(`pg_ctl start failed:\n${r.stderr}\n${r.stdout}\n${await readLog(logFile)}`);
    }
    started = true;

    let stopped = false;
    const cluster: PgCluster = {
      host: "127.0.0.1",
      port,
      socketDir,
      dataDir,
      superuser: "postgres",
      auth,
      superuserPassword,
      logFile,
      env(extra = {}) {
        const env = cleanLibpqEnv();
        env.PGHOST = "127.0.0.1";
        env.PGPORT = String(port);
        env.PGUSER = extra.user ?? "postgres";
        if (extra.database !== undefined) env.PGDATABASE = extra.database;
        const password = extra.password ?? (auth === "scram" && env.PGUSER === "postgres" ? superuserPassword : undefined);
        if (password !== undefined) env.PGPASSWORD = password;
        env.PGCONNECT_TIMEOUT = "10";
        return env;
      },
      async psql(sql, o = {}) {
        const env = cleanLibpqEnv();
        const r = await run(
          `${PG_BIN}/psql`,
          ["-XAtq", "-v", "ON_ERROR_STOP=1", "-h", socketDir, "-p", String(port), "-U", o.user ?? "postgres", "-d", o.database ?? "postgres", "-f", "-"],
          { env, input: sql },
        );
        if (r.code !== 0) throw new Error(`psql failed (exit ${r.code}): ${r.stderr.trim()}\nSQL: ${sql.slice(0, 500)}`);
        return r.stdout.replace(/\n$/, "");
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          if (existsSync(join(dataDir, "postmaster.pid"))) {
            const r = await run(`${PG_BIN}/pg_ctl`, ["-D", dataDir, "-m", "fast", "-w", "-t", "60", "stop"], asPg);
            if (r.code !== 0) await run(`${PG_BIN}/pg_ctl`, ["-D", dataDir, "-m", "immediate", "-w", "-t", "30", "stop"], asPg);
          }
        } finally {
          rmSync(base, { recursive: true, force: true });
          // Only now: if the process exits mid-stop, the exit hook still finishes the job.
          live.delete(base);
        }
      },
    };
    return cluster;
  } catch (e) {
    if (started || existsSync(join(dataDir, "postmaster.pid"))) stopSync(dataDir, base);
    else rmSync(base, { recursive: true, force: true });
    live.delete(base);
    throw e;
  }
}

async function readLog(file: string): Promise<string> {
  const r: RunResult = await run("tail", ["-n", "30", file]);
  return r.stdout;
}

// ---- sample data --------------------------------------------------------------------------

/** The role that owns the sample schema's objects (created by loadSampleData, cluster-wide). */
export const SAMPLE_OWNER = "sample_owner";
/** Its password (it can log in, so restored globals can be checked). */
export const SAMPLE_OWNER_PASSWORD = "sample-owner-pw";
/** Non-ASCII names present in public.users. */
export const SAMPLE_NON_ASCII = ["Zoë Ångström", "日本語テキスト", "Emoji 🎉🐘", "Ελληνικά", "Привет"] as const;
/** Rows in public.users: 1000 generated + the non-ASCII ones. */
export const SAMPLE_USERS = 1000 + SAMPLE_NON_ASCII.length;

/** What loadSampleData() creates, for assertions after a restore. */
export function sampleDataFacts(pgbenchScale = 1): {
  counts: Record<string, number>;
  tables: string[];
  views: string[];
  functions: string[];
  sequences: string[];
  extensions: string[];
  owner: string;
} {
  return {
    counts: {
      "public.pgbench_accounts": 100_000 * pgbenchScale,
      "public.pgbench_branches": pgbenchScale,
      "public.pgbench_tellers": 10 * pgbenchScale,
      "public.pgbench_history": 0,
      "public.users": SAMPLE_USERS,
      "app.orders": 2003,
      "app.audit_log": 3,
    },
    tables: [
      "app.audit_log",
      "app.orders",
      "public.pgbench_accounts",
      "public.pgbench_branches",
      "public.pgbench_history",
      "public.pgbench_tellers",
      "public.users",
    ],
    views: ["app.order_totals", "public.active_users"],
    functions: ["app.order_total(integer)", "public.user_count()", "public.email_hash(text)"],
    sequences: ["app.invoice_no"],
    extensions: ["citext", "pgcrypto"],
    owner: SAMPLE_OWNER,
  };
}

const SAMPLE_SQL = `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${SAMPLE_OWNER}') THEN
    CREATE ROLE ${SAMPLE_OWNER} LOGIN PASSWORD '${SAMPLE_OWNER_PASSWORD}';
  END IF;
END $$;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;
GRANT CREATE, USAGE ON SCHEMA public TO ${SAMPLE_OWNER};
CREATE SCHEMA app AUTHORIZATION ${SAMPLE_OWNER};
COMMENT ON SCHEMA app IS 'Anwendung – données de test 日本';

SET ROLE ${SAMPLE_OWNER};

CREATE TYPE app.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');

CREATE TABLE public.users (
  id         serial PRIMARY KEY,
  name       text NOT NULL,
  email      citext NOT NULL UNIQUE,
  active     boolean NOT NULL DEFAULT true,
  profile    jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.users IS 'Benutzer – 用户 – 👤';

INSERT INTO public.users (name, email, active, profile)
SELECT 'user ' || g, 'User' || g || '@Example.com', g % 10 <> 0, jsonb_build_object('n', g)
FROM generate_series(1, 1000) AS g;
INSERT INTO public.users (name, email, profile) VALUES
  ('${SAMPLE_NON_ASCII[0]}', 'zoe@example.com', '{"city": "Zürich"}'),
  ('${SAMPLE_NON_ASCII[1]}', 'nihongo@example.jp', '{"city": "東京"}'),
  ('${SAMPLE_NON_ASCII[2]}', 'emoji@example.com', '{"mood": "🙂"}'),
  ('${SAMPLE_NON_ASCII[3]}', 'ellinika@example.gr', '{}'),
  ('${SAMPLE_NON_ASCII[4]}', 'privet@example.ru', '{}');

CREATE SEQUENCE app.invoice_no START 1000;
SELECT setval('app.invoice_no', 4242);

CREATE TABLE app.orders (
  id         bigserial PRIMARY KEY,
  user_id    integer NOT NULL REFERENCES public.users(id),
  status     app.order_status NOT NULL DEFAULT 'new',
  amount     numeric(12,2) NOT NULL CHECK (amount >= 0),
  invoice    bigint NOT NULL DEFAULT nextval('app.invoice_no'),
  note       text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_idx ON app.orders (user_id);
INSERT INTO app.orders (user_id, status, amount, note)
SELECT 1 + (g % 1000), (ARRAY['new','paid','shipped','cancelled']::app.order_status[])[1 + g % 4], (g % 97) * 1.25,
       CASE WHEN g % 100 = 0 THEN 'Bestellung für Zoë – 注文 📦' END
FROM generate_series(1, 2000) AS g;

CREATE TABLE app.audit_log (
  id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event text NOT NULL,
  at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION app.order_total(uid integer) RETURNS numeric
  LANGUAGE sql STABLE AS $f$ SELECT coalesce(sum(amount), 0) FROM app.orders WHERE user_id = uid $f$;

CREATE FUNCTION public.user_count() RETURNS bigint
  LANGUAGE sql STABLE AS $f$ SELECT count(*) FROM public.users $f$;

CREATE FUNCTION public.email_hash(e text) RETURNS text
  LANGUAGE sql IMMUTABLE AS $f$ SELECT encode(public.digest(lower(e), 'sha256'), 'hex') $f$;

CREATE FUNCTION app.log_order() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO app.audit_log (event) VALUES ('order ' || NEW.id || ' ' || NEW.status);
  RETURN NEW;
END $f$;
CREATE TRIGGER orders_audit AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.log_order();
INSERT INTO app.orders (user_id, amount, note) VALUES (1, 9.99, 'ü'), (2, 19.99, '日本'), (3, 0, '🎉');

CREATE VIEW public.active_users AS SELECT id, name, email FROM public.users WHERE active;
CREATE VIEW app.order_totals AS
  SELECT u.id AS user_id, u.name, sum(o.amount) AS total, count(*) AS orders
  FROM public.users u JOIN app.orders o ON o.user_id = u.id GROUP BY u.id, u.name;

RESET ROLE;
ALTER TABLE public.pgbench_accounts OWNER TO ${SAMPLE_OWNER};
ALTER TABLE public.pgbench_branches OWNER TO ${SAMPLE_OWNER};
ALTER TABLE public.pgbench_tellers OWNER TO ${SAMPLE_OWNER};
ALTER TABLE public.pgbench_history OWNER TO ${SAMPLE_OWNER};
ANALYZE;
`;

/**
 * Load the realistic test dataset into `database` (created here; it must not exist yet):
 * pgbench tables (`pgbench -i -s scale`, default 1), plus the objects listed by sampleDataFacts():
 * schema `app` with an enum, a sequence, a trigger, views and functions; extensions pgcrypto and
 * citext; the role SAMPLE_OWNER owning the objects; `public.users` with non-ASCII text.
 * app.orders has 2003 rows after load (2000 + 3 trigger-audited).
 */
export async function loadSampleData(pg: PgCluster, database: string, opts: { pgbenchScale?: number } = {}): Promise<void> {
  const scale = opts.pgbenchScale ?? 1;
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`loadSampleData: use a plain lowercase database name, got ${database}`);
  await pg.psql(`CREATE DATABASE ${database}`);
  await runOk(`${PG_BIN}/pgbench`, ["-i", "-q", "-s", String(scale), "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", database], {
    env: cleanLibpqEnv(),
  });
  await pg.psql(SAMPLE_SQL, { database });
}
