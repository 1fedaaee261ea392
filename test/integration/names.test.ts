/**
 * Every name the config schema accepts works in the disaster path, safely quoted; every name it
 * refuses is refused by restore and restore-drill too, with the rule it breaks (exit 2, the
 * contract's last line). Real PostgreSQL 15 (source and target clusters), Ceph radosgw, AWS CLI.
 * The name tables are test/support/names.ts; Docker volume names run in restore-docker.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, NAME_RULES, parseConfig } from "../../infra/config";
import { backupEnvConfig, createBackupEnv, type BackupEnv, type BucketAccess } from "../support/backup-env";
import { DOCKER_ACCEPTED, DOCKER_REFUSED, PG_ACCEPTED, PG_REFUSED } from "../support/names";
import { PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "radosgw", "ceph-mon", "ceph-osd",
  "/usr/bin/aws", "zstd", "jq", "flock", "curl",
);

const BUCKET = "names-test";
const ident = (n: string) => `"${n.replace(/"/g, '""')}"`;
const literal = (n: string) => `'${n.replace(/'/g, "''")}'`;
const TS_LINE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z restorable (restore|restore-drill): FAILED at stage usage: /;
const lastLine = (s: string) => s.trimEnd().split("\n").pop() ?? "";
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The schema's verdict on a database / role / volume name: undefined when accepted, else the message. */
function schemaProblem(field: "database" | "user" | "volume", name: string): string | undefined {
  const raw = backupEnvConfig({ s3: { endpoint: "http://127.0.0.1:1", region: "us-east-1", bucket: BUCKET, creds: { accessKeyId: "a", secretAccessKey: "b" } } }, "/tmp/x");
  const host = raw.hosts[0]!;
  host.postgres = [{ via: "local", database: field === "database" ? name : "app", user: field === "user" ? name : "postgres" }];
  host.volumes = field === "volume" ? [name] : [];
  try {
    parseConfig(raw);
    return undefined;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.message;
  }
}

describe("the name tables match the schema", () => {
  it.each(PG_ACCEPTED)("database and role name %j is accepted", (n) => {
    expect(schemaProblem("database", n)).toBeUndefined();
    expect(schemaProblem("user", n)).toBeUndefined();
  });
  it.each(PG_REFUSED)("database and role name %j is refused with the rule", (n) => {
    expect(schemaProblem("database", n)).toContain(`postgres[0].database: ${NAME_RULES.pg.rule}`);
    expect(schemaProblem("user", n)).toContain(`postgres[0].user: ${NAME_RULES.pg.rule}`);
  });
  it.each(DOCKER_ACCEPTED)("volume name %j is accepted", (n) => expect(schemaProblem("volume", n)).toBeUndefined());
  it.each(DOCKER_REFUSED)("volume name %j is refused with the rule", (n) => {
    expect(schemaProblem("volume", n)).toContain(`volumes[0]: ${NAME_RULES.docker.rule}`);
  });
});

describe.skipIf(!tools.ok)("restore and restore-drill take every accepted name, and refuse the others", () => {
  let s3: S3Server;
  let src: PgCluster;
  let dst: PgCluster;
  let env: BackupEnv;
  let access: BucketAccess;
  // Database i is backed up as role user(i) and restored into target(i) as role via(i): every
  // accepted name appears as database, role, target database and connecting role.
  const n = PG_ACCEPTED.length;
  const db = (i: number) => PG_ACCEPTED[i % n]!;
  const user = (i: number) => PG_ACCEPTED[(i + 1) % n]!;
  const target = (i: number) => PG_ACCEPTED[(i + 3) % n]!;
  const via = (i: number) => PG_ACCEPTED[(i + 5) % n]!;

  beforeAll(async () => {
    [s3, src, dst] = await Promise.all([startS3Server(), startPostgres(), startPostgres()]);
    await s3.createBucket(BUCKET, { versioning: true });
    access = { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin };
    for (const pg of [src, dst]) {
      for (const r of PG_ACCEPTED) await pg.psql(`CREATE ROLE ${ident(r)} LOGIN SUPERUSER`);
    }
    for (let i = 0; i < n; i++) {
      await src.psql(`CREATE DATABASE ${ident(db(i))} OWNER ${ident(user(i))}`);
      await src.psql(`CREATE TABLE ${ident(`t-${i}`)} (name text); INSERT INTO ${ident(`t-${i}`)} VALUES (${literal(db(i))})`, { database: db(i), user: user(i) });
    }
    env = createBackupEnv({
      host: "names",
      s3: access,
      postgres: PG_ACCEPTED.map((_, i) => ({ via: "local" as const, host: src.socketDir, port: src.port, user: user(i), database: db(i) })),
      drill: { runtime: "local", checks: ["SELECT count(*) = 1 FROM pg_class WHERE relname LIKE 't-%'"] },
    });
    const b = await env.run("backup");
    expect(b.code, b.stderr).toBe(0);
  });

  afterAll(async () => {
    env?.remove();
    await Promise.all([src?.stop(), dst?.stop(), s3?.stop()]);
  });

  it.each(PG_ACCEPTED.map((_, i) => i))("restore --database / --target-database / --user with accepted names (#%i)", async (i) => {
    const list = await env.run("restore", ["--list", "--json", "--database", db(i)]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.trim().split("\n").map((l) => JSON.parse(l).name)).toEqual([db(i)]);

    const r = await env.run("restore", ["--database", db(i), "--target", `local:${dst.socketDir}:${dst.port}`, "--target-database", target(i), "--user", via(i)]);
    expect(r.code, r.stderr).toBe(0);
    expect(await dst.psql(`SELECT name FROM ${ident(`t-${i}`)}`, { database: target(i) })).toBe(db(i));
    // Restored with owners: the database's objects belong to the role that owned them.
    expect(await dst.psql(`SELECT tableowner FROM pg_tables WHERE tablename = ${literal(`t-${i}`)}`, { database: target(i) })).toBe(user(i));
    expect(env.leftovers()).toEqual([]);
  });

  it("restore-drill drills every database with an accepted name, and one picked by --database", async () => {
    const r = await env.run("restore-drill");
    expect(r.code, r.stderr).toBe(0);
    const reports = readdirSync(join(env.stateDir, "drills")).sort();
    const report = JSON.parse(readFileSync(join(env.stateDir, "drills", reports.pop()!), "utf8")) as { databases: { database: string; result: string }[] };
    expect(report.databases.map((d) => [d.database, d.result])).toEqual(PG_ACCEPTED.map((d) => [d, "pass"]));

    const one = await env.run("restore-drill", ["--database", "app$1"]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).toContain("drill passed for the roles, 1 database(s) and 0 older restore point(s)");
  });

  const refusals: [string, string[], string, string][] = [];
  for (const bad of PG_REFUSED) {
    refusals.push(["restore", ["--database", bad], "--database", bad]);
    refusals.push(["restore", ["--database", "my-app", "--target-database", bad], "--target-database", bad]);
    refusals.push(["restore", ["--database", "my-app", "--user", bad], "--user", bad]);
    refusals.push(["restore-drill", ["--database", bad], "--database", bad]);
  }
  for (const bad of DOCKER_REFUSED) {
    refusals.push(["restore", ["--volume", bad], "--volume", bad]);
    refusals.push(["restore", ["--volume", "app-uploads", "--target-volume", bad], "--target-volume", bad]);
  }
  it.each(refusals)("%s %j: exit 2 naming the rule, nothing executed", async (script, args, flag, bad) => {
    const rule = flag.includes("volume") ? NAME_RULES.docker.rule : NAME_RULES.pg.rule;
    // (scripts run in env.dir: an injected `touch PWNED` would leave the file there)
    const r = await env.run(script, args);
    expect(r.code, r.stderr).toBe(2);
    const last = lastLine(r.stderr);
    expect(last).toMatch(TS_LINE);
    expect(last).toMatch(new RegExp(`${reEscape(flag)} ${reEscape(`"${bad}"`)}: ${reEscape(rule)} \\(see ${script} --help\\)$`));
    expect(existsSync(join(env.dir, "PWNED"))).toBe(false);
  });
});
