/**
 * `restore-drill` for real with runtime local (an initdb cluster in a temp dir): PostgreSQL 15,
 * Ceph radosgw, AWS CLI v2, age, a ping server. The pass case drills a backup made by the real
 * `backup` script; the fault matrix uses fixtures made the contract's way, one host prefix each.
 * Every fault: non-zero exit, the reason names the stage, the fail ping, a failed report, and
 * nothing left behind (no temp dir, no cluster process).
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, type BackupEnv, type BackupEnvOptions, type BucketAccess } from "../support/backup-env";
import {
  ageKey, aws, corruptObject, follow, fixtureGlobalsBackup, fixturePostgresBackup, getObject, listKeys, processesMentioning, putObject,
  type AgeKey, type Manifest,
} from "../support/drill-fixtures";
import { startPingServer, type PingServer } from "../support/pings";
import { createHash } from "node:crypto";
import { loadSampleData, PG_BIN, SAMPLE_OWNER, startPostgres, type PgCluster } from "../support/postgres";
import { run, waitFor, type RunResult } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "pgbench", "radosgw", "ceph-mon", "ceph-osd",
  "/usr/bin/aws", "zstd", "age", "age-keygen", "jq", "flock", "curl",
);

const BUCKET = "drill-test";
const CHECK = "SELECT count(*) > 0 FROM users";

interface Report {
  format: number;
  kind: string;
  host: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  throwaway: { runtime: string; image: string | null; setupSeconds: number | null };
  objectives: { rpoSeconds: number; rtoSeconds: number };
  databases: {
    database: string;
    objectKey: string | null;
    stamp: string;
    sha256Ok: boolean | null;
    restoreOk: boolean | null;
    tablesOk: boolean | null;
    tables: { expected: number; restored: number; missing: string[]; unexpected: string[] } | null;
    checks: { sql: string; ok: boolean; output?: string; error?: string }[];
    rpo: { achievedSeconds: number; targetSeconds: number; ok: boolean };
    rto: { achievedSeconds: number; targetSeconds: number; ok: boolean } | null;
    durations: Record<string, number>;
    result: string;
    failure: { stage: string; reason: string } | null;
  }[];
  globals: {
    stamp?: string; objectKey?: string | null; sha256Ok?: boolean | null; restoreOk?: boolean | null; roles?: number | null;
    rolePasswords?: boolean | null; result: string; failure: { stage: string; reason: string } | null;
  } | null;
  retention: {
    promise: { daily: number; weekly: number; monthly: number };
    items: { kind: string; name: string | null; covered: number; pending: number; missing: string[] }[];
    result: string;
    failure: { stage: string; reason: string } | null;
  } | null;
  olderPoints: {
    database: string; tier: string; stamp: string; manifestKey: string; chosenBecause: string; sha256Ok: boolean | null;
    restoreOk: boolean | null; tablesOk: boolean | null; checks: { sql: string; ok: boolean }[]; result: string;
    failure: { stage: string; reason: string } | null;
  }[];
  result: "pass" | "fail";
  failure: { stage: string; reason: string } | null;
}

describe.skipIf(!tools.ok)("restore-drill (runtime local)", () => {
  let s3: S3Server;
  let src: PgCluster;
  let pings: PingServer;
  let access: BucketAccess;
  let keys: { right: AgeKey; wrong: AgeKey };
  const envs: BackupEnv[] = [];
  const hoursAgo = (h: number) => new Date(Math.floor(Date.now() / 1000 - h * 3600) * 1000);

  function host(name: string, o: Partial<BackupEnvOptions> = {}): BackupEnv {
    const e = createBackupEnv({
      host: name,
      s3: access,
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
      drill: { runtime: "local", checks: [CHECK] },
      pingUrl: pings.url,
      ...o,
    });
    envs.push(e);
    return e;
  }
  /**
   * A database backup made the contract's way; every such host also gets a roles backup from at
   * most an hour ago (the drill restores the roles first, and the databases with their owners),
   * unless `roles: false`.
   */
  const backup = async (name: string, hours: number, o: Partial<Parameters<typeof fixturePostgresBackup>[0]> & { roles?: boolean } = {}) => {
    const { roles = true, ...rest } = o;
    if (roles) await fixtureGlobalsBackup({ bucket: access, host: name, date: hoursAgo(Math.min(hours, 1)), pg: src, encryptTo: rest.encryptTo });
    return fixturePostgresBackup({ bucket: access, host: name, date: hoursAgo(hours), pg: src, database: "app", ...rest });
  };

  async function drill(e: BackupEnv, args: string[] = []): Promise<RunResult> {
    pings.clear();
    const r = await e.run("restore-drill", args);
    await pings.waitFor(r.code === 0 ? "success" : "fail", 10_000);
    return r;
  }
  async function latestReport(e: BackupEnv): Promise<Report> {
    const name = e.host.name;
    const k = (await listKeys(access, `${name}/drills/`)).map((x) => x.key).sort().pop();
    expect(k, "a report in the bucket").toBeDefined();
    const report = JSON.parse((await getObject(access, k!)).toString("utf8")) as Report;
    const local = readdirSync(join(e.stateDir, "drills")).sort().pop()!;
    expect(JSON.parse(readFileSync(join(e.stateDir, "drills", local), "utf8"))).toEqual(report);
    return report;
  }
  function expectNothingLeft(e: BackupEnv): void {
    expect(e.leftovers()).toEqual([]);
    expect(processesMentioning(e.tmpDir)).toEqual([]);
  }
  async function expectFault(e: BackupEnv, r: RunResult, stage: string, reason: RegExp): Promise<Report> {
    expect(r.code, r.stderr).toBe(1);
    expect(failedLine(r)).toMatch(new RegExp(`restorable restore-drill: FAILED at stage ${stage}: `));
    expect(failedLine(r)).toMatch(reason);
    expect(pings.of("start")).toHaveLength(1);
    const fail = pings.of("fail");
    expect(fail).toHaveLength(1);
    expect(fail[0]!.body).toContain(`FAILED at stage ${stage}`);
    expect(pings.of("success")).toHaveLength(0);
    expectNothingLeft(e);
    const report = await latestReport(e);
    expect(report.result).toBe("fail");
    expect(report.failure?.stage).toBe(stage);
    return report;
  }

  beforeAll(async () => {
    [s3, src, pings] = await Promise.all([startS3Server(), startPostgres(), startPingServer()]);
    await s3.createBucket(BUCKET, { versioning: true });
    access = { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin };
    await loadSampleData(src, "app");
    const dir = join(src.dataDir, "..", "keys");
    mkdirSync(dir);
    keys = { right: await ageKey(dir, "right"), wrong: await ageKey(dir, "wrong") };
  });

  afterAll(async () => {
    for (const e of envs) e.remove();
    await Promise.all([src?.stop(), s3?.stop(), pings?.stop()]);
  });

  it("passes on a backup made by the real backup script: roles first, the database with its owners and grants", async () => {
    const owned = `SELECT tableowner = '${SAMPLE_OWNER}' FROM pg_tables WHERE tablename = 'pgbench_accounts'`;
    const e = host("pass", { drill: { runtime: "local", checks: [CHECK, owned] } });
    const b = await e.run("backup");
    expect(b.code, b.stderr).toBe(0);
    const r = await drill(e);
    expect(r.code, r.stderr).toBe(0);
    expect(pings.of("start")).toHaveLength(1);
    expect(pings.of("success")).toHaveLength(1);
    expect(pings.of("fail")).toHaveLength(0);
    expectNothingLeft(e);

    const report = await latestReport(e);
    expect(report).toMatchObject({ format: 1, kind: "restore-drill", host: "pass", result: "pass", failure: null });
    expect(report.throwaway).toMatchObject({ runtime: "local", image: null });
    expect(report.objectives).toEqual({ rpoSeconds: 86400, rtoSeconds: 3600 });
    expect(report.databases).toHaveLength(1);
    const d = report.databases[0]!;
    expect(d).toMatchObject({ database: "app", sha256Ok: true, restoreOk: true, tablesOk: true, result: "pass", failure: null });
    expect(d.objectKey).toMatch(/^pass\/(daily|weekly|monthly)\/postgres\/app\/\d{8}T\d{6}Z\.dump\.zst$/);
    expect(d.tables).toEqual({ expected: 7, restored: 7, missing: [], unexpected: [] });
    expect(d.checks).toEqual([{ sql: CHECK, ok: true }, { sql: owned, ok: true }]);
    expect(report.globals).toMatchObject({ result: "pass", failure: null, sha256Ok: true, restoreOk: true, rolePasswords: true });
    expect(report.globals!.roles).toBeGreaterThanOrEqual(2);
    expect(report.globals!.objectKey).toMatch(/^pass\/(daily|weekly|monthly)\/globals\/\d{8}T\d{6}Z\.sql\.zst$/);
    expect(d.rpo.ok).toBe(true);
    expect(d.rpo.targetSeconds).toBe(86400);
    expect(d.rpo.achievedSeconds).toBeGreaterThanOrEqual(0);
    expect(d.rto?.ok).toBe(true);
    expect(d.rto?.achievedSeconds).toBeGreaterThan(0);
    expect(Object.keys(d.durations).sort()).toEqual(["checks", "download", "restore", "tables", "verify"]);
    const sum = Object.values(d.durations).reduce((a, b) => a + b, 0);
    expect(d.rto!.achievedSeconds).toBeCloseTo(sum, 2);
    expect(Date.parse(report.finishedAt)).toBeGreaterThanOrEqual(Date.parse(report.startedAt));
  });

  it("runs as installed by pulumi up (rendered templates, config found at its rendered path)", async () => {
    const e = host("installed", { install: true });
    await backup("installed", 1);
    pings.clear();
    const r = await e.run("restore-drill", [], { noConfigEnv: true });
    expect(r.code, r.stderr).toBe(0);
    await pings.waitFor("success", 10_000);
    const list = await e.run("restore", ["--list"], { noConfigEnv: true });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^postgres app$/m);
    expectNothingLeft(e);
  });

  it("without a roles backup, the roles fail at find and a database whose owner is missing fails at restore", async () => {
    const e = host("noroles");
    await backup("noroles", 1, { roles: false });
    const r = await drill(e);
    const report = await expectFault(e, r, "find", /no manifest-backed backup of the roles \(globals\)/);
    expect(report.databases[0]).toMatchObject({ database: "app", sha256Ok: true, restoreOk: false, result: "fail", failure: { stage: "restore" } });
    expect(report.databases[0]!.failure!.reason).toMatch(new RegExp(`role "${SAMPLE_OWNER}" does not exist`));
  });

  it("a roles backup that does not restore fails the drill at the roles' restore stage", async () => {
    const e = host("badroles");
    await backup("badroles", 1);
    await fixtureGlobalsBackup({ bucket: access, host: "badroles", date: hoursAgo(0.5), pg: src });
    // Replace that newest roles object with SQL that fails (manifest fixed up to match it).
    const stampOf = (k: string) => k.slice(k.lastIndexOf("/") + 1);
    const keys = (await listKeys(access, "badroles/")).map((k) => k.key).filter((k) => k.includes("/globals/"));
    const newest = keys.filter((k) => k.endsWith(".manifest.json")).sort((a, b) => stampOf(a).localeCompare(stampOf(b))).pop()!;
    const m = JSON.parse((await getObject(access, newest)).toString("utf8")) as Manifest;
    const bad = (await run("bash", ["-c", "printf -- '--\\nCREATE ROLE x;\\nALTER ROLE no_such_role WITH LOGIN;\\n' | zstd -q -c | base64 -w0"])).stdout;
    const body = Buffer.from(bad, "base64");
    await putObject(access, m.object.key, body);
    m.object.size = body.length;
    m.object.sha256 = createHash("sha256").update(body).digest("hex");
    await putObject(access, newest, JSON.stringify(m));
    const r = await drill(e);
    const report = await expectFault(e, r, "restore", /restoring the roles from .* failed: .*no_such_role/);
    expect(report.globals).toMatchObject({ sha256Ok: true, restoreOk: false, result: "fail" });
    // The database still restores (its owner came from... nowhere: it fails too, on its own).
    expect(report.databases[0]!.failure?.stage).toBe("restore");
  });

  it("fails when there is no manifest-backed backup at all (nothing restored, nothing left behind)", async () => {
    const e = host("nobackup");
    const r = await drill(e);
    const report = await expectFault(e, r, "find", /no manifest-backed backup of the roles \(globals\) under s3:\/\/drill-test\/nobackup\//);
    expect(report.globals).toMatchObject({ result: "fail", failure: { stage: "find" } });
    expect(report.databases[0]).toMatchObject({ database: "app", result: "fail", failure: { stage: "find", reason: expect.stringMatching(/no manifest-backed backup of database app/) } });
    expect(report.throwaway.setupSeconds).toBeNull();
  });

  it("fails when the newest backup is older than the RPO, before downloading it", async () => {
    const e = host("stale", { objectives: { rpo: "24h", rto: "1h" } });
    await backup("stale", 30);
    const r = await drill(e);
    const report = await expectFault(e, r, "rpo", /the newest backup of app \(\d{8}T\d{6}Z, (daily|weekly|monthly)\) is 1d6h old, older than the RPO objective of 1d0h/);
    expect(report.databases[0]!.rpo).toMatchObject({ targetSeconds: 86400, ok: false });
    expect(report.databases[0]!.rpo.achievedSeconds).toBeGreaterThanOrEqual(30 * 3600);
    // The stale database is never downloaded; the (fresh) roles are still drilled.
    expect(report.databases[0]!.objectKey ?? null).toBeNull();
    expect(report.globals).toMatchObject({ result: "pass" });
  });

  it("fails when the restore takes longer than the RTO, reporting the achieved time against the objective", async () => {
    // An RTO of 0 s: any real restore takes longer (the config's schema would refuse it; the
    // rendered conf's number is what the scripts read).
    const e = host("slow", { extraConf: { RESTORABLE_RTO_SECONDS: 0 } });
    await backup("slow", 1);
    const r = await drill(e);
    const report = await expectFault(e, r, "rto", /restoring app took [0-9.]+ s \(download \+ verify \+ decrypt \+ restore \+ checks\), more than the RTO objective of 0s/);
    const d = report.databases[0]!;
    expect(d).toMatchObject({ sha256Ok: true, restoreOk: true, tablesOk: true, rto: { targetSeconds: 0, ok: false } });
    expect(d.rto!.achievedSeconds).toBeGreaterThan(0);
  });

  it("refuses an object corrupted after upload (sha256 mismatch)", async () => {
    const e = host("corrupt");
    const b = await backup("corrupt", 1);
    await corruptObject(access, b.objectKey);
    const r = await drill(e);
    const report = await expectFault(e, r, "verify", new RegExp(`sha256 mismatch for s3://drill-test/${b.objectKey}`));
    expect(report.databases[0]).toMatchObject({ sha256Ok: false, restoreOk: null, tablesOk: null });
  });

  it("never picks an upload without a manifest", async () => {
    const e = host("trunc");
    const half = await backup("trunc", 1, { withoutManifest: true });
    const r = await drill(e);
    await expectFault(e, r, "find", /no manifest-backed backup of database app/);

    const good = await backup("trunc", 2);
    const ok = await drill(e);
    expect(ok.code, ok.stderr).toBe(0);
    const report = await latestReport(e);
    expect(report.databases[0]!.objectKey).toBe(good.objectKey);
    expect(report.databases[0]!.objectKey).not.toBe(half.objectKey);
    expectNothingLeft(e);
  }, 400_000); // several drills / nine databases: room on a busy machine

  it("fails when a configured SQL check is not true, and reports each check", async () => {
    const bad = "SELECT count(*) > 1000000 FROM users";
    const e = host("check", { drill: { runtime: "local", checks: [CHECK, bad, "SELECT no_such_column FROM users"] } });
    await backup("check", 1);
    const r = await drill(e);
    const report = await expectFault(e, r, "checks", /check 2 \(SELECT count\(\*\) > 1000000 FROM users\) returned "f", not true/);
    const d = report.databases[0]!;
    expect(d).toMatchObject({ sha256Ok: true, restoreOk: true, tablesOk: true });
    expect(d.checks).toHaveLength(3);
    expect(d.checks[0]).toEqual({ sql: CHECK, ok: true });
    expect(d.checks[1]).toEqual({ sql: bad, ok: false, output: "f" });
    expect(d.checks[2]).toMatchObject({ ok: false });
    expect(d.checks[2]!.error).toMatch(/no_such_column/);
  });

  it("drills every configured database: each failing stage is reported on its own, the others still restore", async () => {
    await src.psql("CREATE DATABASE shop");
    await src.psql("CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 100) g", { database: "shop" });
    // One database per stage that can fail, in config order, between two that pass.
    const cases: [database: string, stage: string | null][] = [
      ["app", null], ["no-backup", "find"], ["stale", "rpo"], ["gone", "download"], ["corrupt-1", "verify"],
      ["not-a-dump", "restore"], ["ghost", "tables"], ["no-users", "checks"], ["app$2", null],
    ];
    const e = host("multi", {
      postgres: cases.map(([database]) => ({ via: "local" as const, host: src.socketDir, port: src.port, user: "postgres", database })),
    });
    const fx = (database: string, hours: number, o: Partial<Parameters<typeof fixturePostgresBackup>[0]> = {}) =>
      backup("multi", hours, { database, sourceDatabase: "app", ...o });
    await fx("app", 1);
    await fx("stale", 30);
    const gone = await fx("gone", 1);
    expect((await aws(access, ["s3", "rm", "--quiet", `s3://${BUCKET}/${gone.objectKey}`])).code).toBe(0);
    await corruptObject(access, (await fx("corrupt-1", 1)).objectKey);
    await fx("not-a-dump", 1, { notADump: "SELECT 1;\n" });
    await fx("ghost", 1, { editManifest: (m) => m.tables?.push({ schema: "public", name: "ghost", rows: 1 }) });
    await fx("no-users", 1, { sourceDatabase: "shop" });
    await fx("app$2", 1);

    const r = await drill(e);
    const report = await expectFault(e, r, "find", /no manifest-backed backup of database no-backup under s3:\/\/drill-test\/multi\//);
    expect(report.databases.map((d) => [d.database, d.failure?.stage ?? null])).toEqual(cases);
    expect(report.databases.map((d) => d.result)).toEqual(cases.map(([, stage]) => (stage ? "fail" : "pass")));
    const by = Object.fromEntries(report.databases.map((d) => [d.database, d]));
    for (const ok of ["app", "app$2"]) {
      expect(by[ok]).toMatchObject({ sha256Ok: true, restoreOk: true, tablesOk: true, checks: [{ sql: CHECK, ok: true }] });
      expect(by[ok]!.rto?.ok).toBe(true);
    }
    expect(by["gone"]!.failure!.reason).toMatch(/cannot download s3:\/\/drill-test\/multi\/.*\/postgres\/gone\//);
    expect(by["corrupt-1"]!.failure!.reason).toMatch(/sha256 mismatch/);
    expect(by["not-a-dump"]!.failure!.reason).toMatch(/is not a pg_dump custom-format archive/);
    expect(by["ghost"]!.failure!.reason).toMatch(/missing relative to the manifest: public\.ghost/);
    expect(by["no-users"]!.failure!.reason).toMatch(/check 1 \(SELECT count\(\*\) > 0 FROM users\) failed: .*users/);
    expect(r.stderr).toContain("app$2: passed");
  }, 400_000); // several drills / nine databases: room on a busy machine

  /** Roles and app restore points at these UTC times (for drills run at a fixed RESTORABLE_NOW). */
  async function pointsAt(name: string, at: [iso: string, tier: "daily" | "weekly" | "monthly"][]) {
    const out: Awaited<ReturnType<typeof fixturePostgresBackup>>[] = [];
    for (const [iso, tier] of at) {
      await fixtureGlobalsBackup({ bucket: access, host: name, date: new Date(iso), pg: src, tier });
      out.push(await fixturePostgresBackup({ bucket: access, host: name, date: new Date(iso), pg: src, database: "app", tier }));
    }
    return out;
  }
  const drillAt = async (e: BackupEnv, now: string) => {
    pings.clear();
    const r = await e.run("restore-drill", [], { now });
    await pings.waitFor(r.code === 0 ? "success" : "fail", 10_000);
    return r;
  };

  it("also proves one older restore point per tier: never proven first, then the least recently proven", async () => {
    // Wed 2026-11-18: the promise (2 days, 2 weeks, 2 months) is kept by exactly these points.
    const e = host("older", { retention: { daily: 2, weekly: 2, monthly: 2 } });
    const [, d17, d16, weekly, monthly] = await pointsAt("older", [
      ["2026-11-18T03:00:00Z", "daily"], ["2026-11-17T03:00:00Z", "daily"], ["2026-11-16T03:00:00Z", "daily"],
      ["2026-11-09T03:00:00Z", "weekly"], ["2026-10-01T03:00:00Z", "monthly"],
    ]);

    const first = await drillAt(e, "2026-11-18T06:00:00Z");
    expect(first.code, first.stderr).toBe(0);
    const r1 = await latestReport(e);
    expect(r1.olderPoints.map((p) => [p.tier, p.result, p.chosenBecause])).toEqual([
      ["daily", "pass", "never proven by a drill"], ["weekly", "pass", "never proven by a drill"], ["monthly", "pass", "never proven by a drill"],
    ]);
    expect([d17!.manifestKey, d16!.manifestKey]).toContain(r1.olderPoints[0]!.manifestKey);
    expect(r1.olderPoints[1]!.manifestKey).toBe(weekly!.manifestKey);
    expect(r1.olderPoints[2]!.manifestKey).toBe(monthly!.manifestKey);
    for (const p of r1.olderPoints) expect(p).toMatchObject({ database: "app", sha256Ok: true, restoreOk: true, tablesOk: true, checks: [{ sql: CHECK, ok: true }] });
    // The RTO stays the newest restore's; the audit found the promise kept.
    expect(r1.databases[0]!.rto?.ok).toBe(true);
    expect(r1.retention).toMatchObject({ result: "pass", promise: { daily: 2, weekly: 2, monthly: 2 } });

    const second = await drillAt(e, "2026-11-18T06:10:00Z");
    expect(second.code, second.stderr).toBe(0);
    const r2 = await latestReport(e);
    // The other daily was never proven; the weekly (the only one) was, by the first drill.
    expect(r2.olderPoints[0]!.manifestKey).not.toBe(r1.olderPoints[0]!.manifestKey);
    expect(r2.olderPoints[0]!.chosenBecause).toBe("never proven by a drill");
    expect(r2.olderPoints[1]!.chosenBecause).toBe(`the least recently proven (last proven by the drill of ${r1.startedAt})`);

    await corruptObject(access, monthly!.objectKey);
    const third = await drillAt(e, "2026-11-18T06:20:00Z");
    const r3 = await expectFault(e, third, "verify", new RegExp(`sha256 mismatch for s3://drill-test/${monthly!.objectKey}`));
    expect(r3.databases[0]!.result).toBe("pass");
    expect(r3.olderPoints.find((p) => p.tier === "monthly")).toMatchObject({ result: "fail", sha256Ok: false, failure: { stage: "verify" } });
    expectNothingLeft(e);
  }, 600_000); // three drills of four restores each

  it("retention audit: a promised restore point that is missing fails the drill at stage retention, naming it", async () => {
    // Wed 2026-11-18 with 3 days / 2 weeks / 3 months promised; the first backup is from September.
    const e = host("gaps", { retention: { daily: 3, weekly: 2, monthly: 3 } });
    await pointsAt("gaps", [["2026-11-18T03:00:00Z", "daily"], ["2026-11-16T03:00:00Z", "weekly"], ["2026-09-05T03:00:00Z", "monthly"]]);
    const r = await drillAt(e, "2026-11-18T06:00:00Z");
    const report = await expectFault(e, r, "retention", /the roles: no daily restore point for 2026-11-17 \(and 7 more missing; see the report's retention\)/);
    expect(report.databases[0]!.result).toBe("pass");
    const gaps = ["daily 2026-11-17", "daily 2026-11-15", "weekly week of 2026-11-09", "monthly 2026-10"];
    expect(report.retention!.items).toEqual([
      { kind: "globals", name: null, covered: 4, pending: 0, missing: gaps },
      { kind: "postgres", name: "app", covered: 4, pending: 0, missing: gaps },
    ]);
    expect(r.stderr).toContain("retention: database app: no restore point for daily 2026-11-17 daily 2026-11-15 weekly week of 2026-11-09 monthly 2026-10");
  });


  it("fails when a table of the manifest is missing after the restore", async () => {
    const e = host("ghost");
    await backup("ghost", 1, { editManifest: (m) => m.tables?.push({ schema: "public", name: "ghost", rows: 1 }) });
    const r = await drill(e);
    const report = await expectFault(e, r, "tables", /missing relative to the manifest: public\.ghost/);
    expect(report.databases[0]!.tables).toMatchObject({ expected: 8, restored: 7, missing: ["public.ghost"], unexpected: [] });
  });

  it("with the wrong age identity fails at decrypt; with the right one it passes", async () => {
    const e = host("enc", { extraConf: { RESTORABLE_AGE_IDENTITY: keys.wrong.identityFile } });
    await backup("enc", 1, { encryptTo: [keys.right.recipient] });
    const r = await drill(e);
    const report = await expectFault(e, r, "decrypt", /age could not decrypt .*\/globals\/.*\.sql\.zst\.age with identity .*wrong\.age-identity/);
    expect(report.databases[0]!.failure!.reason).toMatch(/age could not decrypt .*\.dump\.zst\.age with identity .*wrong\.age-identity/);

    const ok = await drill(e, ["--identity", keys.right.identityFile]);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await latestReport(e)).databases[0]).toMatchObject({ encryption: "age", sha256Ok: true, restoreOk: true });
    expectNothingLeft(e);
  });

  it("killed halfway (SIGTERM) leaves no cluster, process or temp dir behind", async () => {
    const e = host("kill", { drill: { runtime: "local", checks: ["SELECT pg_sleep(120) IS NOT NULL"] } });
    await backup("kill", 1);
    pings.clear();
    const child = e.spawn("restore-drill");
    const drilling = follow(child);
    // Halfway: the throwaway cluster is up and the restore has started.
    await drilling.until(/verified sha256 of \S*\/postgres\//, 90_000);
    expect(drilling.stderr).toMatch(/throwaway Postgres up/);
    expect(processesMentioning(e.tmpDir).length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1500));
    child.kill("SIGTERM");
    const code = await drilling.exited;
    expect(code).toBe(1);
    expect(drilling.stderr).toMatch(/FAILED at stage (restore|tables|checks): interrupted by SIGTERM/);
    await pings.waitFor("fail", 10_000);
    expectNothingLeft(e);
    expect((await latestReport(e)).result).toBe("fail");
  });

  it("killed with SIGKILL (no trap can run), its leftovers are removed by the next drill", async () => {
    const e = host("sigkill", { drill: { runtime: "local", checks: ["SELECT pg_sleep(2) IS NOT NULL"] } });
    await backup("sigkill", 1);
    const child = e.spawn("restore-drill");
    const drilling = follow(child);
    await drilling.until(/verified sha256 of \S*\/postgres\//, 90_000);
    child.kill("SIGKILL");
    await drilling.exited;
    // The cluster and the temp dir outlive the killed script.
    expect(e.leftovers().length).toBeGreaterThan(0);
    // Its orphaned children finish their step and let go of the lock.
    const lock = join(e.stateDir, "restore-drill.lock");
    await waitFor("the orphans to release the drill lock", async () => (await run("flock", ["-n", lock, "true"])).code === 0, 60_000, 200);
    const r = await drill(e);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removing the temp dir an interrupted drill left behind/);
    expectNothingLeft(e);
  });
});
