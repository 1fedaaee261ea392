/**
 * storage.objectLock on a real S3 server: Ceph radosgw 16 implements S3 Object Lock in governance
 * and compliance mode, and its lifecycle engine honours it. The buckets are made the way
 * BackupBucket makes them for provider s3 (versioning, public access block, the plan's lifecycle
 * rules, the plan's default retention); the host keys hold exactly the plan's IAM policy.
 *
 * - every upload the scripts make (streamed multipart tarball, single-PUT dump, roles, manifests,
 *   drill report) goes through a proxy that applies AWS's rule for such buckets (Content-MD5 or an
 *   x-amz-checksum-* header on every PutObject/UploadPart), which radosgw itself does not enforce;
 * - a host key cannot delete a version, bypass governance retention or shorten a lock; its
 *   overwrite only adds a version and the old one stays readable and locked;
 * - in compliance mode not even the bucket owner can delete a locked version or shorten its lock;
 *   in governance mode the owner can, with the bypass header only;
 * - restore and restore-drill work unchanged on a locked bucket;
 * - the plan's lifecycle rules and the lock together, at debug speed (`rgw lc debug interval`):
 *   current versions become delete markers on schedule, locked noncurrent versions stay until
 *   their lock ends and are removed by the next lifecycle pass after that.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Plan } from "../../infra/plan";
import { createBackupEnv, hostBucketAccess, type BackupEnv, type BackupEnvOptions, type BucketAccess } from "../support/backup-env";
import { ensureToolImage, startDockerd, TOOL_IMAGE, type Dockerd } from "../support/docker";
import { fixturePostgresBackup, rowCounts, schemaDump } from "../support/drill-fixtures";
import { loadSampleData, PG_BIN, sampleDataFacts, startPostgres, type PgCluster } from "../support/postgres";
import { waitFor, type RunResult } from "../support/proc";
import { startLockRuleProxy, type LockRuleProxy } from "../support/s3-lock-proxy";
import { awsErrorCode, startS3Server, type AwsResult, type S3Creds, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "pgbench", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin",
  "monmaptool", "ceph", "setpriv", "/usr/bin/aws", "zstd", "jq", "flock", "curl", "dockerd", "docker", "busybox",
);

const GOV = "locked-gov";
const COMP = "locked-comp";
const LC = "locked-lc";
const LOCK_DAYS = 7;
const DAY_MS = 86_400_000;
/** One lifecycle "day" on the lifecycle server, in seconds (rgw lc debug interval). */
const LC_DAY = 10; // s per lifecycle "day": room for the fixtures to be made and checked before the first expiry, also on a busy machine
const CHECK = "SELECT count(*) > 0 FROM users";

interface Version {
  Key: string;
  VersionId: string;
  IsLatest: boolean;
}
interface Versions {
  versions: Version[];
  markers: Version[];
}

function ok(r: AwsResult | RunResult): string {
  expect(r.code, r.stderr.slice(-2000)).toBe(0);
  return r.stdout;
}

function expectDenied(r: AwsResult, what: string): void {
  expect(r.code, `${what} should be refused but succeeded: ${r.stdout}`).not.toBe(0);
  expect(awsErrorCode(r), `${what}: ${r.stderr.slice(-2000)}`).toBe("AccessDenied");
}

/**
 * The bucket as BackupBucket creates it for provider s3 (infra/components/backup-bucket.ts), with
 * the AWS CLI: object lock enabled at creation, versioning, public access block, the plan's
 * lifecycle rules and the plan's default retention; plus, for radosgw, the owner's bucket policy.
 */
async function createPlannedBucket(s3: S3Server, plan: Plan): Promise<void> {
  expect(plan.objectLock, "the plan has an object lock").toBeDefined();
  const b = plan.bucket;
  ok(await s3.aws(s3.admin, ["s3api", "create-bucket", "--bucket", b, "--object-lock-enabled-for-bucket"]));
  ok(await s3.aws(s3.admin, ["s3api", "put-bucket-versioning", "--bucket", b, "--versioning-configuration", "Status=Enabled"]));
  // radosgw: an object belongs to its uploader (ACL), so the bucket owner can neither read nor
  // manage a host key's uploads. On AWS the account owns every object of a new bucket
  // (BucketOwnerEnforced). This policy gives the admin key those rights here, so that every
  // refusal below is the lock's and not an ACL's (operators of Ceph need it too: README). It
  // comes before the public access block: radosgw 16 refuses any bucket policy once
  // BlockPublicPolicy is on.
  const owner = { Effect: "Allow", Principal: { AWS: ["arn:aws:iam:::user/owner"] }, Action: ["s3:*"], Resource: [`arn:aws:s3:::${b}`, `arn:aws:s3:::${b}/*`] };
  ok(await s3.aws(s3.admin, ["s3api", "put-bucket-policy", "--bucket", b, "--policy", JSON.stringify({ Version: "2012-10-17", Statement: [owner] })]));
  ok(await s3.aws(s3.admin, ["s3api", "put-public-access-block", "--bucket", b, "--public-access-block-configuration", JSON.stringify(plan.publicAccessBlock)]));
  ok(await s3.aws(s3.admin, ["s3api", "put-bucket-lifecycle-configuration", "--bucket", b, "--lifecycle-configuration", JSON.stringify(plan.lifecycle.s3)]));
  ok(await s3.aws(s3.admin, ["s3api", "put-object-lock-configuration", "--bucket", b, "--object-lock-configuration", JSON.stringify(plan.objectLock)]));
  const got = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "get-object-lock-configuration", "--bucket", b])));
  expect(got.ObjectLockConfiguration).toEqual(plan.objectLock);
}

async function versionsOf(s3: S3Server, bucket: string, prefix: string): Promise<Versions> {
  const out = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "list-object-versions", "--bucket", bucket, "--prefix", prefix])) || "{}");
  return { versions: out.Versions ?? [], markers: out.DeleteMarkers ?? [] };
}

async function lockOf(s3: S3Server, bucket: string, key: string, versionId: string): Promise<{ mode: string; until: number }> {
  const h = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "head-object", "--bucket", bucket, "--key", key, `--version-id=${versionId}`])));
  return { mode: h.ObjectLockMode, until: Date.parse(h.ObjectLockRetainUntilDate) };
}

async function getVersion(s3: S3Server, creds: S3Creds, bucket: string, key: string, versionId: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "rol-"));
  try {
    ok(await s3.aws(creds, ["s3api", "get-object", "--bucket", bucket, "--key", key, `--version-id=${versionId}`, join(dir, "o")]));
    return readFileSync(join(dir, "o"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe.skipIf(!tools.ok)("object lock on a real S3 server (radosgw)", () => {
  let s3: S3Server;
  let lcS3: S3Server;
  let proxy: LockRuleProxy;
  let src: PgCluster;
  let dst: PgCluster;
  let d: Dockerd;
  const envs: BackupEnv[] = [];
  let gov: BackupEnv;
  let comp: BackupEnv;
  let govKey: BucketAccess;
  let compKey: BucketAccess;

  async function lockedHost(server: S3Server, bucket: string, host: string, o: Partial<BackupEnvOptions>, viaProxy: boolean): Promise<{ env: BackupEnv; access: BucketAccess }> {
    const access = await hostBucketAccess(server, bucket, host);
    const env = createBackupEnv({
      host,
      s3: viaProxy ? { ...access, endpoint: proxy.endpoint } : access,
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
      drill: { runtime: "local", checks: [CHECK] },
      baseEnv: d.env,
      ...o,
    });
    envs.push(env);
    await createPlannedBucket(server, env.plan);
    return { env, access };
  }

  beforeAll(async () => {
    [s3, lcS3, src, dst, d] = await Promise.all([startS3Server(), startS3Server({ lcDebugInterval: LC_DAY }), startPostgres(), startPostgres(), startDockerd()]);
    proxy = await startLockRuleProxy(s3.endpoint);
    await Promise.all([loadSampleData(src, "app"), ensureToolImage(d)]);
    // A volume whose tarball is larger than the CLI's 8 MiB multipart threshold even after zstd.
    await d.dockerOk(["volume", "create", "uploads"]);
    await d.dockerOk(["run", "--rm", "--network", "none", "-v", "uploads:/data", TOOL_IMAGE, "sh", "-c", "head -c 12000000 /dev/urandom > /data/random.bin; echo hello > /data/plain.txt"]);
    ({ env: gov, access: govKey } = await lockedHost(s3, GOV, "web-1", { objectLock: { mode: "governance", days: LOCK_DAYS }, volumes: ["uploads"], volumeImage: TOOL_IMAGE }, true));
    ({ env: comp, access: compKey } = await lockedHost(s3, COMP, "web-2", { objectLock: { mode: "compliance", days: LOCK_DAYS } }, true));
  });

  afterAll(async () => {
    for (const e of envs) e.remove();
    await proxy?.stop();
    await Promise.all([s3?.stop(), lcS3?.stop(), src?.stop(), dst?.stop(), d?.stop()]);
  });

  it("the proxy applies AWS's rule: an upload without Content-MD5 or a checksum is refused", async () => {
    const res = await fetch(`${proxy.endpoint}/${GOV}/web-1/probe`, { method: "PUT", body: "no digest" });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>InvalidRequest</Code>");
    expect(proxy.requests.at(-1)).toMatchObject({ method: "PUT", upload: true, integrity: null, refused: true });
    expect((await versionsOf(s3, GOV, "web-1/probe")).versions).toEqual([]);
  });

  it("a bucket made with the plan's lock accepts every upload the scripts make, each with Content-MD5; each version is locked", async () => {
    proxy.requests.length = 0;
    const started = Date.now();
    ok(await gov.run("backup"));
    ok(await gov.run("backup-volumes"));
    ok(await comp.run("backup"));

    const uploads = proxy.requests.filter((r) => r.upload);
    expect(proxy.requests.filter((r) => r.refused || r.status >= 300)).toEqual([]);
    expect(uploads.filter((r) => r.integrity !== "content-md5")).toEqual([]);
    // every kind of upload the scripts make went through: the AWS CLI's multipart parts (the
    // tarball in several, each dump in one) and curl's single PUTs (roles, manifests)
    const tar = uploads.filter((r) => r.path.includes("/volumes/uploads/") && r.path.endsWith(".tar.zst"));
    expect(tar.filter((r) => r.query.includes("partNumber=")).length).toBeGreaterThanOrEqual(2);
    expect(uploads.filter((r) => r.path.endsWith(".dump.zst"))).toHaveLength(2); // one part each (the CLI streams stdin as multipart)
    expect(uploads.filter((r) => r.path.includes("/globals/") && r.path.endsWith(".sql.zst"))).toHaveLength(2);
    expect(uploads.filter((r) => r.path.endsWith(".manifest.json"))).toHaveLength(5);
    expect(uploads.filter((r) => r.path.includes("/volumes/uploads/") && r.path.includes(".listing.zst"))).not.toHaveLength(0); // the volume's listing

    for (const [bucket, host, mode] of [[GOV, "web-1", "GOVERNANCE"], [COMP, "web-2", "COMPLIANCE"]] as const) {
      const { versions, markers } = await versionsOf(s3, bucket, `${host}/`);
      expect(markers).toEqual([]);
      expect(versions.length).toBe(bucket === GOV ? 7 : 4); // web-1: dump, roles, tarball, listing + 3 manifests
      for (const v of versions) {
        const lock = await lockOf(s3, bucket, v.Key, v.VersionId);
        expect(lock.mode, v.Key).toBe(mode);
        expect(lock.until, v.Key).toBeGreaterThanOrEqual(started + LOCK_DAYS * DAY_MS - 60_000);
        expect(lock.until, v.Key).toBeLessThanOrEqual(Date.now() + LOCK_DAYS * DAY_MS + 60_000);
      }
    }
  });

  it("the host key cannot delete a version, bypass governance retention, shorten a lock or lift it", async () => {
    const before = await versionsOf(s3, GOV, "web-1/");
    const dump = before.versions.find((v) => v.Key.endsWith(".dump.zst"))!;
    const args = (...more: string[]) => ["--debug", "s3api", ...more];
    const soon = new Date(Date.now() + 60_000).toISOString();
    const k = govKey.creds;
    expectDenied(await s3.aws(k, args("delete-object", "--bucket", GOV, "--key", dump.Key, `--version-id=${dump.VersionId}`)), "delete a version");
    expectDenied(await s3.aws(k, args("delete-object", "--bucket", GOV, "--key", dump.Key, `--version-id=${dump.VersionId}`, "--bypass-governance-retention")), "delete a version, bypassing governance");
    expectDenied(await s3.aws(k, args("delete-object", "--bucket", GOV, "--key", dump.Key)), "delete (a delete marker)");
    expectDenied(
      await s3.aws(k, args("put-object-retention", "--bucket", GOV, "--key", dump.Key, `--version-id=${dump.VersionId}`, "--bypass-governance-retention", "--retention", JSON.stringify({ Mode: "GOVERNANCE", RetainUntilDate: soon }))),
      "shorten the lock, bypassing governance",
    );
    expectDenied(await s3.aws(k, args("put-object-legal-hold", "--bucket", GOV, "--key", dump.Key, `--version-id=${dump.VersionId}`, "--legal-hold", "Status=ON")), "legal hold");
    expectDenied(await s3.aws(k, args("put-object-lock-configuration", "--bucket", GOV, "--object-lock-configuration", JSON.stringify({ ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 1 } } }))), "change the bucket's default retention");
    const after = await versionsOf(s3, GOV, "web-1/");
    expect(after).toEqual(before);
    expect((await lockOf(s3, GOV, dump.Key, dump.VersionId)).until).toBeGreaterThan(Date.now() + (LOCK_DAYS - 1) * DAY_MS);
  });

  it("a host key's overwrite only adds a version: the old one stays readable (with the manifest's sha256) and locked", async () => {
    const list = await comp.list("web-2/");
    const dumpKey = list.find((o) => o.key.endsWith(".dump.zst"))!.key;
    const manifest = JSON.parse((await comp.get(dumpKey.replace(/\.dump\.zst$/, ".manifest.json"))).toString("utf8"));
    const [original] = (await versionsOf(s3, COMP, dumpKey)).versions;
    ok(await s3.aws(compKey.creds, ["s3", "cp", "-", `s3://${COMP}/${dumpKey}`], "ransomware was here\n"));

    const { versions } = await versionsOf(s3, COMP, dumpKey);
    expect(versions).toHaveLength(2);
    expect(versions.find((v) => v.IsLatest)!.VersionId).not.toBe(original!.VersionId);
    expect((await comp.get(dumpKey)).toString()).toBe("ransomware was here\n");
    const old = await getVersion(s3, compKey.creds, COMP, dumpKey, original!.VersionId); // the host key can read it back
    expect(sha256(old)).toBe(manifest.object.sha256);
    expect(old.length).toBe(manifest.object.size);
    for (const v of versions) expect((await lockOf(s3, COMP, dumpKey, v.VersionId)).mode).toBe("COMPLIANCE");
  });

  it("compliance: not even the bucket owner can delete a locked version or shorten its lock; a plain delete only adds a marker", async () => {
    const before = await versionsOf(s3, COMP, "web-2/");
    const v = before.versions.find((x) => x.Key.endsWith(".manifest.json"))!;
    const soon = new Date(Date.now() + 60_000).toISOString();
    const a = s3.admin;
    expectDenied(await s3.aws(a, ["--debug", "s3api", "delete-object", "--bucket", COMP, "--key", v.Key, `--version-id=${v.VersionId}`]), "owner deletes a version");
    expectDenied(await s3.aws(a, ["--debug", "s3api", "delete-object", "--bucket", COMP, "--key", v.Key, `--version-id=${v.VersionId}`, "--bypass-governance-retention"]), "owner deletes a version, bypass header");
    expectDenied(
      await s3.aws(a, ["--debug", "s3api", "put-object-retention", "--bucket", COMP, "--key", v.Key, `--version-id=${v.VersionId}`, "--bypass-governance-retention", "--retention", JSON.stringify({ Mode: "COMPLIANCE", RetainUntilDate: soon })]),
      "owner shortens a compliance lock",
    );
    expectDenied(
      await s3.aws(a, ["--debug", "s3api", "put-object-retention", "--bucket", COMP, "--key", v.Key, `--version-id=${v.VersionId}`, "--bypass-governance-retention", "--retention", JSON.stringify({ Mode: "GOVERNANCE", RetainUntilDate: new Date(Date.now() + 30 * DAY_MS).toISOString() })]),
      "owner turns compliance into governance",
    );
    expect(await versionsOf(s3, COMP, "web-2/")).toEqual(before);

    ok(await s3.aws(a, ["s3api", "delete-object", "--bucket", COMP, "--key", v.Key]));
    const after = await versionsOf(s3, COMP, "web-2/");
    expect(after.versions.map((x) => x.VersionId).sort()).toEqual(before.versions.map((x) => x.VersionId).sort());
    expect(after.markers.map((m) => m.Key)).toEqual([v.Key]);
    expect((await getVersion(s3, a, COMP, v.Key, v.VersionId)).length).toBeGreaterThan(0);
  });

  it("governance: the bucket owner can delete a locked version only with the bypass header", async () => {
    // A probe object uploaded by the host key (the backups in this bucket are restored below).
    const key = "web-1/probe/governance.txt";
    const v = JSON.parse(ok(await s3.aws(govKey.creds, ["s3api", "put-object", "--bucket", GOV, "--key", key, "--content-md5", createHash("md5").update("").digest("base64")])));
    expect((await lockOf(s3, GOV, key, v.VersionId)).mode).toBe("GOVERNANCE");
    expectDenied(await s3.aws(s3.admin, ["--debug", "s3api", "delete-object", "--bucket", GOV, "--key", key, `--version-id=${v.VersionId}`]), "owner deletes without the bypass header");
    expect((await versionsOf(s3, GOV, key)).versions).toHaveLength(1);
    ok(await s3.aws(s3.admin, ["s3api", "delete-object", "--bucket", GOV, "--key", key, `--version-id=${v.VersionId}`, "--bypass-governance-retention"]));
    expect(await versionsOf(s3, GOV, key)).toEqual({ versions: [], markers: [] });
  });

  it("restore and restore-drill work unchanged on the locked bucket (the drill's report upload too)", async () => {
    const points = ok(await gov.run("restore", ["--list", "--json"])).trim().split("\n").map((l) => JSON.parse(l) as { kind: string; name: string | null });
    expect(points.map((p) => `${p.kind} ${p.name ?? "-"}`).sort()).toEqual(["globals -", "postgres app", "volume uploads"]);

    ok(await gov.run("restore", ["--globals", "--target", `local:${dst.socketDir}:${dst.port}`]));
    ok(await gov.run("restore", ["--database", "app", "--target", `local:${dst.socketDir}:${dst.port}`]));
    expect(await schemaDump(dst, "app")).toBe(await schemaDump(src, "app"));
    const tables = Object.keys(sampleDataFacts().counts);
    expect(await rowCounts(dst, "app", tables)).toEqual(await rowCounts(src, "app", tables));

    ok(await gov.run("restore", ["--volume", "uploads", "--target-volume", "uploads-restored"]));
    const sums = async (vol: string) => (await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${vol}:/data:ro`, TOOL_IMAGE, "sh", "-c", "cd /data && sha256sum random.bin plain.txt"])).stdout;
    expect(await sums("uploads-restored")).toBe(await sums("uploads"));

    proxy.requests.length = 0;
    ok(await gov.run("restore-drill"));
    const reports = await gov.list("web-1/drills/");
    expect(reports).toHaveLength(1);
    expect(JSON.parse((await gov.get(reports[0]!.key)).toString("utf8")).result).toBe("pass");
    const reportPut = proxy.requests.filter((r) => r.upload && r.path.includes("/drills/"));
    expect(reportPut.map((r) => [r.integrity, r.status])).toEqual([["content-md5", 200]]);
    const v = (await versionsOf(s3, GOV, reports[0]!.key)).versions[0]!;
    expect((await lockOf(s3, GOV, v.Key, v.VersionId)).mode).toBe("GOVERNANCE");
  });

  it(
    "lifecycle + lock at debug speed: current versions become delete markers on schedule; locked noncurrent versions stay until their lock ends",
    async () => {
      // retention daily 4 -> the daily tier expires after 4 lifecycle days (4 * LC_DAY s), noncurrent
      // versions 1 day later. 4, not fewer: making and listing both fixtures took more than 2 days
      // (20 s) on a loaded machine, and A had expired before the first check.
      const { env, access } = await lockedHost(lcS3, LC, "lc-1", { objectLock: { mode: "governance", days: 1 }, retention: { daily: 4, weekly: 1, monthly: 1 } }, false);
      expect(env.plan.retention.expiryDays.daily).toBe(4);
      const day = (h: number) => new Date(Math.floor(Date.now() / 1000 - h * 3600) * 1000);
      // Two manifest-backed daily backups, uploaded with the host key. B keeps the plan's lock
      // (1 real day); A's lock is shortened by the owner (governance bypass) to end soon.
      const a = await fixturePostgresBackup({ bucket: access, host: "lc-1", date: day(2), tier: "daily", pg: src, database: "app" });
      const b = await fixturePostgresBackup({ bucket: access, host: "lc-1", date: day(1), tier: "daily", pg: src, database: "app" });
      const aEnds = Date.now() + 8 * LC_DAY * 1000;
      const aKeys = [a.objectKey, a.manifestKey];
      const bKeys = [b.objectKey, b.manifestKey];
      for (const key of aKeys) {
        const [v] = (await versionsOf(lcS3, LC, key)).versions;
        ok(await lcS3.aws(lcS3.admin, ["s3api", "put-object-retention", "--bucket", LC, "--key", key, `--version-id=${v!.VersionId}`, "--bypass-governance-retention", "--retention", JSON.stringify({ Mode: "GOVERNANCE", RetainUntilDate: new Date(aEnds).toISOString() })]));
      }
      const points = async () => ok(await env.run("restore", ["--list", "--json"])).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).stamp as string);
      expect((await points()).sort()).toEqual([a.manifest.stamp, b.manifest.stamp].sort());
      const bVersions = (await versionsOf(lcS3, LC, "lc-1/daily/")).versions.filter((v) => bKeys.includes(v.Key));
      expect(bVersions).toHaveLength(2);

      // 1. On schedule, every current version becomes a delete marker (the lock does not stop that):
      //    no restore point is left, but no version is gone.
      await waitFor("delete markers on every daily object", async () => {
        const { markers } = await versionsOf(lcS3, LC, "lc-1/daily/");
        return markers.filter((m) => m.IsLatest).length === 4;
      }, 180_000, 1000);
      expect(await points()).toEqual([]);
      const mid = await versionsOf(lcS3, LC, "lc-1/daily/");
      expect(mid.versions.every((v) => !v.IsLatest)).toBe(true);
      if (Date.now() < aEnds) expect(mid.versions.map((v) => v.Key).sort()).toEqual([...aKeys, ...bKeys].sort());

      // 2. A's versions go once their lock has ended (the noncurrent rule, next lifecycle pass), and
      //    then the housekeeping rule removes their now-expired delete markers. B's versions, still
      //    locked, stay through all those passes, readable with the host key, bytes unchanged.
      await waitFor("A's versions and markers removed", async () => {
        const now = await versionsOf(lcS3, LC, "lc-1/daily/");
        return [...now.versions, ...now.markers].every((v) => !aKeys.includes(v.Key));
      }, 240_000, 1000);
      expect(Date.now()).toBeGreaterThanOrEqual(aEnds);
      const end = await versionsOf(lcS3, LC, "lc-1/daily/");
      expect(end.versions.map((v) => v.VersionId).sort()).toEqual(bVersions.map((v) => v.VersionId).sort());
      expect(end.markers.map((m) => m.Key).sort()).toEqual([...bKeys].sort());
      for (const v of end.versions) expect((await lockOf(lcS3, LC, v.Key, v.VersionId)).until).toBeGreaterThan(Date.now());
      const bDump = end.versions.find((v) => v.Key === b.objectKey)!;
      expect(sha256(await getVersion(lcS3, access.creds, LC, bDump.Key, bDump.VersionId))).toBe(b.sha256);
    },
    480_000,
  );
});
