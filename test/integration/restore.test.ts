/**
 * `restore` for real: PostgreSQL 15 clusters, Ceph radosgw, AWS CLI v2, age. The host is a real
 * rendered config (backup-env.ts); backups come from the real `backup` script (round trip) and,
 * for restore points in the past and for faults, from fixtures made the contract's way.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, type BackupEnv, type BucketAccess } from "../support/backup-env";
import {
  ageKey, corruptObject, fixtureGlobalsBackup, fixturePostgresBackup, listKeys, rowCounts, schemaDump,
  type AgeKey,
} from "../support/drill-fixtures";
import { loadSampleData, PG_BIN, SAMPLE_OWNER, sampleDataFacts, startPostgres, type PgCluster } from "../support/postgres";
import { run, runOk } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "pgbench", "radosgw", "ceph-mon", "ceph-osd",
  "/usr/bin/aws", "zstd", "age", "age-keygen", "jq", "flock", "curl", "shellcheck",
);

const HOST = "web-1";
const BUCKET = "restore-test";

describe.skipIf(!tools.ok)("restore", () => {
  let s3: S3Server;
  let src: PgCluster;
  let dst: PgCluster;
  let env: BackupEnv;
  let access: BucketAccess;
  let key: AgeKey;
  let otherKey: AgeKey;
  const dstTarget = () => `local:${dst.socketDir}:${dst.port}`;
  const restore = (args: string[], now?: string) => env.run("restore", args, now ? { now } : {});

  beforeAll(async () => {
    [s3, src, dst] = await Promise.all([startS3Server(), startPostgres(), startPostgres()]);
    await s3.createBucket(BUCKET, { versioning: true });
    access = { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin };
    await loadSampleData(src, "app");
    await src.psql("CREATE DATABASE hist; ");
    await src.psql("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('none');", { database: "hist" });
    env = createBackupEnv({
      host: HOST,
      s3: access,
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
    });
    mkdirSync(join(env.dir, "keys"));
    [key, otherKey] = await Promise.all([ageKey(join(env.dir, "keys"), "right"), ageKey(join(env.dir, "keys"), "wrong")]);
  });

  afterAll(async () => {
    env?.remove();
    await Promise.all([src?.stop(), dst?.stop(), s3?.stop()]);
  });

  it("passes shellcheck", async () => {
    const r = await run("shellcheck", ["-x", "restore.sh", "restore-drill.sh", "lib-restore.sh"], { cwd: join(__dirname, "../../scripts") });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("documents its CLI in --help", async () => {
    const r = await restore(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["--list", "--database", "--globals", "--volume", "--at", "--target", "--target-database", "--force", "--identity", "--fetch-only", "Exit codes"]) {
      expect(r.stdout).toContain(flag);
    }
    const bad = await restore(["--bogus"]);
    expect(bad.code).toBe(2);
  });

  it("round trip: backup, then restore roles and database into another server: same schema, same rows", async () => {
    const b = await env.run("backup");
    expect(b.code, b.stderr).toBe(0);
    const g = await restore(["--globals", "--target", dstTarget()]);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/^Will restore the globals/m);
    expect(g.stdout).toMatch(/^Restored the globals/m);
    const r = await restore(["--database", "app", "--target", dstTarget()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Will restore database app from s3:\/\/restore-test\/web-1\/(daily|weekly|monthly)\/postgres\/app\/\d{8}T\d{6}Z\.dump\.zst$/m);
    expect(r.stdout).toMatch(/it does not exist yet: it will be created/);
    expect(r.stdout).toMatch(/^Restored database app into app .* 7 tables, as listed in the manifest/m);

    expect(await schemaDump(dst, "app")).toBe(await schemaDump(src, "app"));
    const facts = sampleDataFacts();
    const tables = Object.keys(facts.counts);
    expect(await rowCounts(dst, "app", tables)).toEqual(await rowCounts(src, "app", tables));
    expect(await rowCounts(dst, "app", tables)).toEqual(facts.counts);
    expect(await dst.psql(`SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.users'::regclass`, { database: "app" })).toBe(SAMPLE_OWNER);
    expect(env.leftovers()).toEqual([]);
  });

  it("refuses a non-empty database without --force and changes nothing; --force replaces the backup's objects", async () => {
    await dst.psql("INSERT INTO public.users (name, email) VALUES ('after backup', 'after@example.com')", { database: "app" });
    const before = await schemaDump(dst, "app");
    const r = await restore(["--database", "app", "--target", dstTarget()]);
    expect(r.code).toBe(1);
    expect(failedLine(r)).toMatch(/FAILED at stage target: database app .* is not empty .* without --force/);
    expect(r.stdout).not.toContain("Restored");
    expect(await schemaDump(dst, "app")).toBe(before);
    expect(await dst.psql("SELECT count(*) FROM public.users WHERE name = 'after backup'", { database: "app" })).toBe("1");

    const f = await restore(["--database", "app", "--target", dstTarget(), "--force"]);
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toMatch(/is NOT empty .* --force/);
    expect(await dst.psql("SELECT count(*) FROM public.users WHERE name = 'after backup'", { database: "app" })).toBe("0");
    expect(await dst.psql("SELECT count(*) FROM public.users", { database: "app" })).toBe(String(sampleDataFacts().counts["public.users"]));
  });

  describe("restore points across tiers", () => {
    // marker value -> (date, tier): each fixture backup of "hist" carries its own marker.
    const points = [
      { v: "monthly-1", at: "2026-10-01T03:00:00Z", tier: "monthly" },
      { v: "weekly-1", at: "2026-10-04T03:00:00Z", tier: "weekly" },
      { v: "daily-1", at: "2026-10-05T03:00:00Z", tier: "daily" },
      { v: "weekly-2", at: "2026-10-11T03:00:00Z", tier: "weekly" },
      { v: "daily-2", at: "2026-10-12T03:00:00Z", tier: "daily" },
    ] as const;
    const NOW = "2026-10-12T12:00:00Z";

    beforeAll(async () => {
      for (const p of points) {
        await src.psql(`UPDATE marker SET v = '${p.v}'`, { database: "hist" });
        // Tiers given, not decided: this is the layout the first retention rule (Sundays weekly) made,
        // which restore reads all the same.
        await fixturePostgresBackup({ bucket: access, host: HOST, date: new Date(p.at), tier: p.tier, pg: src, database: "hist" });
      }
      // A newer upload that never got its manifest (interrupted run): truncated garbage.
      await src.psql(`UPDATE marker SET v = 'unfinished'`, { database: "hist" });
      const half = await fixturePostgresBackup({ bucket: access, host: HOST, date: new Date("2026-10-12T09:00:00Z"), tier: "daily", pg: src, database: "hist", withoutManifest: true });
      expect((await listKeys(access, `${HOST}/daily/postgres/hist/`)).map((k) => k.key)).toContain(half.objectKey);
    });

    it("--list shows manifest-backed restore points per tier with age and size", async () => {
      const r = await restore(["--list", "--database", "hist"], NOW);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.split("\n");
      const rows = lines.filter((l) => /^\s+(daily|weekly|monthly)\s+\d{8}T\d{6}Z/.test(l)).map((l) => l.trim().split(/\s+/));
      expect(rows.map((c) => `${c[0]} ${c[1]}`)).toEqual([
        "daily 20261012T030000Z",
        "daily 20261005T030000Z",
        "weekly 20261011T030000Z",
        "weekly 20261004T030000Z",
        "monthly 20261001T030000Z",
      ]);
      expect(rows[0]![3]).toBe("9h0m");
      expect(rows[4]![3]).toBe("11d9h");
      expect(rows[0]![4]).toMatch(/^\d+(\.\d)?$/);
      expect(r.stdout).not.toContain("20261012T090000Z");

      const j = await restore(["--list", "--json", "--database", "hist"], NOW);
      const items = j.stdout.trim().split("\n").map((l) => JSON.parse(l) as { stamp: string; tier: string; ageSeconds: number; size: number });
      expect(items).toHaveLength(5);
      expect(items.find((i) => i.stamp === "20261012T030000Z")).toMatchObject({ tier: "daily", ageSeconds: 9 * 3600 });
      expect(items.every((i) => i.size > 0)).toBe(true);
    });

    const cases = [
      { at: undefined, expect: "daily-2" },
      { at: "2026-10-11T12:00:00Z", expect: "weekly-2" },
      { at: "2026-10-10", expect: "daily-1" },
      { at: "20261004T030000Z", expect: "weekly-1" },
      { at: "2026-10-03 23:00", expect: "monthly-1" },
    ];
    for (const c of cases) {
      it(`--at ${c.at ?? "(newest)"} restores ${c.expect}`, async () => {
        const target = `hist_${c.expect.replace("-", "_")}`;
        const args = ["--database", "hist", "--target", dstTarget(), "--target-database", target];
        if (c.at) args.push("--at", c.at);
        const r = await restore(args, NOW);
        expect(r.code, r.stderr).toBe(0);
        expect(await dst.psql("SELECT v FROM marker", { database: target })).toBe(c.expect);
      });
    }

    it("--at before the oldest restore point fails and names the oldest", async () => {
      const r = await restore(["--database", "hist", "--target", dstTarget(), "--target-database", "hist_none", "--at", "2026-09-30"], NOW);
      expect(r.code).toBe(1);
      expect(failedLine(r)).toMatch(/FAILED at stage find: no restore point of database hist at or before 2026-09-30T23:59:59Z; the oldest is 20261001T030000Z/);
      expect(await dst.psql("SELECT count(*) FROM pg_database WHERE datname = 'hist_none'")).toBe("0");
    });
  });

  it("a corrupted object (sha256 mismatch) is refused before the target is touched", async () => {
    await src.psql("CREATE DATABASE corrupt", {});
    await src.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", { database: "corrupt" });
    const b = await fixturePostgresBackup({ bucket: access, host: HOST, date: new Date("2026-10-12T04:00:00Z"), pg: src, database: "corrupt" });
    await corruptObject(access, b.objectKey);
    const r = await restore(["--database", "corrupt", "--target", dstTarget()]);
    expect(r.code).toBe(1);
    expect(failedLine(r)).toMatch(new RegExp(`FAILED at stage verify: sha256 mismatch for s3://${BUCKET}/${b.objectKey}: the manifest says ${b.sha256}`));
    expect(r.stdout).not.toContain("Restored");
    expect(await dst.psql("SELECT count(*) FROM pg_database WHERE datname = 'corrupt'")).toBe("0");
    expect(env.leftovers()).toEqual([]);
  });

  it("decrypts with the right age identity; a wrong identity fails at decrypt and touches nothing", async () => {
    await src.psql("CREATE DATABASE secret", {});
    await src.psql("CREATE TABLE s AS SELECT 'classified'::text AS v", { database: "secret" });
    const b = await fixturePostgresBackup({ bucket: access, host: HOST, date: new Date("2026-10-12T05:00:00Z"), pg: src, database: "secret", encryptTo: [key.recipient] });
    expect(b.objectKey).toMatch(/\.dump\.zst\.age$/);

    const wrong = await restore(["--database", "secret", "--target", dstTarget(), "--identity", otherKey.identityFile]);
    expect(wrong.code).toBe(1);
    expect(failedLine(wrong)).toMatch(/FAILED at stage decrypt: age could not decrypt .* with identity .*wrong\.age-identity/);
    expect(await dst.psql("SELECT count(*) FROM pg_database WHERE datname = 'secret'")).toBe("0");

    const none = await restore(["--database", "secret", "--target", dstTarget()]);
    expect(failedLine(none)).toMatch(/FAILED at stage decrypt: .* is encrypted with age: give the identity file with --identity FILE/);

    const ok = await restore(["--database", "secret", "--target", dstTarget(), "--identity", key.identityFile]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(await dst.psql("SELECT v FROM s", { database: "secret" })).toBe("classified");
    // The identity's content never shows up in output.
    const secretLine = readFileSync(key.identityFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY"))!;
    expect(ok.stdout + ok.stderr + wrong.stdout + wrong.stderr).not.toContain(secretLine);
  });

  it("--fetch-only writes the verified, decrypted, decompressed dump and its manifest", async () => {
    const out = join(env.dir, "fetched");
    const r = await restore(["--database", "secret", "--fetch-only", out, "--identity", key.identityFile]);
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toEqual(["20261012T050000Z.secret.dump", "20261012T050000Z.secret.manifest.json"]);
    const toc = await runOk("pg_restore", ["-l", join(out, files[0]!)]);
    expect(toc.stdout).toContain("TABLE public s");
  });

  it("--dry-run says what it would do and does nothing", async () => {
    const r = await restore(["--database", "corrupt", "--target", dstTarget(), "--target-database", "dry", "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Will restore database corrupt/m);
    expect(r.stdout).toMatch(/^Dry run: nothing restored\.$/m);
    expect(await dst.psql("SELECT count(*) FROM pg_database WHERE datname = 'dry'")).toBe("0");
  });

  it("refuses a password on the command line and unknown databases", async () => {
    const r = await restore(["--database", "app", "--target", `postgresql://postgres:hunter2@127.0.0.1:${dst.port}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("contains a password");
    const u = await restore(["--database", "nope", "--target", dstTarget()]);
    expect(u.code).toBe(1);
    expect(failedLine(u)).toMatch(/FAILED at stage find: no manifest-backed backup of database nope/);
  });

  it("restores over a libpq URL target (password from PGPASSWORD, never argv)", async () => {
    const r = await env.run("restore", ["--database", "app", "--target", `postgresql://postgres@127.0.0.1:${dst.port}`, "--target-database", "app_url"]);
    expect(r.code, r.stderr).toBe(0);
    expect(await dst.psql("SELECT count(*) FROM app.orders", { database: "app_url" })).toBe("2003");
  });

  it("disaster procedure: a new machine with only the bucket credentials restores roles and database", async () => {
    // Exactly the README's steps: a hand-written restorable.conf, the key in the environment,
    // the scripts from a checkout of the repository, a fresh server.
    const b = await env.run("backup");
    expect(b.code, b.stderr).toBe(0);
    const fresh = await startPostgres();
    try {
      const dir = join(env.dir, "new-machine");
      mkdirSync(dir);
      writeFileSync(
        join(dir, "restorable.conf"),
        [`RESTORABLE_HOST=${HOST}`, `RESTORABLE_BUCKET=${BUCKET}`, `RESTORABLE_ENDPOINT=${access.endpoint}`, `RESTORABLE_REGION=${access.region}`,
          "RESTORABLE_S3_ADDRESSING_STYLE=path", `RESTORABLE_STATE_DIR=${join(dir, "state")}`, ""].join("\n"),
      );
      const base = env.env({
        RESTORABLE_CONFIG: join(dir, "restorable.conf"),
        AWS_ACCESS_KEY_ID: access.creds.accessKeyId,
        AWS_SECRET_ACCESS_KEY: access.creds.secretAccessKey,
      });
      const script = join(__dirname, "../../scripts/restore.sh");
      const sh = (args: string[]) => run("bash", [script, ...args], { env: base });
      const target = `local:${fresh.socketDir}:${fresh.port}`;

      const list = await sh(["--list"]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/^postgres app$/m);
      expect(list.stdout).toMatch(/^globals \(roles\)$/m);
      const roles = await sh(["--globals", "--target", target]);
      expect(roles.code, roles.stderr).toBe(0);
      const db = await sh(["--database", "app", "--target", target]);
      expect(db.code, db.stderr).toBe(0);
      expect(await fresh.psql("SELECT count(*) FROM app.orders", { database: "app" })).toBe("2003");
      expect(await fresh.psql(`SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.users'::regclass`, { database: "app" })).toBe(SAMPLE_OWNER);

      // And without the scripts at all: the README's manual steps (AWS CLI, sha256sum, zstd, pg_restore).
      const points = (await sh(["--list", "--json", "--database", "app"])).stdout.trim().split("\n");
      const manifestKey = (JSON.parse(points.pop()!) as { manifestKey: string }).manifestKey;
      const manual = await run("bash", ["-c", `set -euo pipefail
        cd "$(mktemp -d)"
        aws --endpoint-url "$EP" s3 cp --quiet "s3://$BUCKET/$MANIFEST" manifest.json
        key=$(jq -r .object.key manifest.json)
        aws --endpoint-url "$EP" s3 cp --quiet "s3://$BUCKET/$key" dump.zst
        echo "$(jq -r .object.sha256 manifest.json)  dump.zst" | sha256sum -c --quiet
        createdb -h "$PGH" -p "$PGP" -U postgres app_manual
        zstd -dc dump.zst | pg_restore -h "$PGH" -p "$PGP" -U postgres -d app_manual --single-transaction --exit-on-error
        cd / && rm -rf "$OLDPWD"`], {
        env: { ...base, EP: access.endpoint, BUCKET, MANIFEST: manifestKey, PGH: fresh.socketDir, PGP: String(fresh.port), AWS_DEFAULT_REGION: access.region },
      });
      expect(manual.code, manual.stderr).toBe(0);
      expect(await fresh.psql("SELECT count(*) FROM public.users", { database: "app_manual" })).toBe(String(sampleDataFacts().counts["public.users"]));
    } finally {
      await fresh.stop();
    }
  });

  it("a globals backup made by hand restores idempotently", async () => {
    await fixtureGlobalsBackup({ bucket: access, host: HOST, date: new Date("2026-10-12T06:00:00Z"), pg: src });
    const r = await restore(["--globals", "--target", dstTarget()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Restored the globals from 20261012T060000Z|^Restored the globals from \d{8}T\d{6}Z/m);
  });
});
