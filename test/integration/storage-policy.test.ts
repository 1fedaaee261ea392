// Acceptance: the storage the plan describes, applied to a real S3 server (Ceph radosgw).
// - The plan's lifecycle configuration (S3 API form) is accepted and reads back equal.
// - The plan's per-host IAM policy, applied as an RGW user policy (how per-host keys are scoped on
//   generic S3 stores), lets a host put/get/list under its own prefix and denies deletes (plain,
//   by version id, multi-delete), every other host's prefix, ACL changes and bucket
//   configuration changes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../infra/config";
import { buildPlan, objectKeys, type Plan } from "../../infra/plan";
import { awsErrorCode, startS3Server, type AwsResult, type S3Creds, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph", "setpriv", "/usr/bin/aws");

const BUCKET = "restorable-test";
const ALL_USERS = "uri=http://acs.amazonaws.com/groups/global/AllUsers";

function rawConfig(endpoint: string): unknown {
  return {
    storage: { provider: "s3", bucket: BUCKET, endpoint, region: "us-east-1", allowNotOffsite: true },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [
      { name: "web-1", ssh: { host: "203.0.113.10" }, postgres: [{ via: "local", database: "app" }] },
      { name: "web-2", ssh: { host: "203.0.113.11" }, postgres: [{ via: "local", database: "app" }] },
    ],
  };
}

/** Rules keyed by ID. RGW stores lifecycle rules in a map keyed by ID and returns them sorted by
 *  ID; rule order carries no meaning in S3 lifecycle configurations, so it is the only thing
 *  normalised here. Every field of every rule must read back exactly. */
function byId(cfg: { Rules: { ID: string }[] }): Record<string, unknown> {
  return Object.fromEntries(cfg.Rules.map((r) => [r.ID, r]));
}

function ok(r: AwsResult): string {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

/** The request was refused for lack of permission (not failed for some other reason). HEAD has
 *  no body, so the CLI reports its status code instead of an S3 error code. */
function expectDenied(r: AwsResult, what: string): void {
  expect(r.code, `${what} should be denied but succeeded: ${r.stdout}`).not.toBe(0);
  expect(["AccessDenied", "403"], `${what}: ${r.stderr.slice(-2000)}`).toContain(awsErrorCode(r));
}

describe.skipIf(!tools.ok)("plan's storage policy on a real S3 server (radosgw)", () => {
  let s3: S3Server;
  let plan: Plan;
  const keys: Record<string, S3Creds> = {};
  let work: string;
  /** A small regular file for --body (the CLI refuses /dev/null and other non-files). */
  let body: string;
  const now = new Date(Date.UTC(2026, 10, 24, 3, 0, 0));
  const dump = (host: string) => objectKeys(host, "daily", { kind: "postgres", database: "app" }, now, { compressed: true, encrypted: false });
  const web1 = dump("web-1");
  const web2 = dump("web-2");

  /** Every version and delete marker under a prefix, as the owner sees them. */
  async function versionsOf(prefix: string): Promise<{ versions: { Key: string; VersionId: string }[]; markers: unknown[] }> {
    const out = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", prefix])) || "{}");
    return { versions: out.Versions ?? [], markers: out.DeleteMarkers ?? [] };
  }

  async function anonymousStatus(key: string): Promise<number> {
    const res = await fetch(`${s3.endpoint}/${BUCKET}/${key.split("/").map(encodeURIComponent).join("/")}`);
    await res.arrayBuffer();
    return res.status;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "restorable-policy-"));
    body = join(work, "body.txt");
    writeFileSync(body, "not a backup\n");
    s3 = await startS3Server();
    plan = buildPlan(parseConfig(rawConfig(s3.endpoint)));
    expect(plan.bucket).toBe(BUCKET);
    await s3.createBucket(BUCKET, { versioning: true });
    // The bucket settings the component applies for provider s3 (plan.publicAccessBlock).
    expect(plan.publicAccessBlock).toBeDefined();
    ok(await s3.aws(s3.admin, ["s3api", "put-public-access-block", "--bucket", BUCKET, "--public-access-block-configuration", JSON.stringify(plan.publicAccessBlock)]));
    for (const h of plan.hosts) {
      // On generic S3 stores the operator creates one user per host and attaches the plan's policy.
      keys[h.name] = await s3.createUser(h.iamUserName);
      ok(await s3.aws(s3.admin, ["iam", "put-user-policy", "--user-name", h.iamUserName, "--policy-name", "restorable-backup-writer", "--policy-document", JSON.stringify(h.access.iamPolicy)]));
    }
  });
  afterAll(async () => {
    await s3?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("the plan's lifecycle configuration is accepted and reads back equal", async () => {
    const planned = plan.lifecycle.s3;
    // 2 hosts x (3 tiers + drills + housekeeping)
    expect(planned.Rules).toHaveLength(10);
    const put = await s3.aws(s3.admin, ["--debug", "s3api", "put-bucket-lifecycle-configuration", "--bucket", BUCKET, "--lifecycle-configuration", JSON.stringify(planned)]);
    expect(put.code, `RGW rejected the plan's lifecycle (${awsErrorCode(put)})`).toBe(0);
    const got = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "get-bucket-lifecycle-configuration", "--bucket", BUCKET])));
    expect(got.Rules).toHaveLength(planned.Rules.length);
    expect(byId(got)).toEqual(byId(planned));
  });

  it("a host key can put (also multipart from stdin), get and list under its own prefix", async () => {
    const k = keys["web-1"]!;
    const data = Buffer.alloc(12 * 1024 * 1024, "backup-bytes\n"); // > 8 MiB: multipart
    ok(await s3.aws(k, ["s3", "cp", "-", `s3://${BUCKET}/${web1.object}`], data));
    ok(await s3.aws(k, ["s3", "cp", "-", `s3://${BUCKET}/${web1.manifest}`], JSON.stringify({ format: 1 })));

    const listed = JSON.parse(ok(await s3.aws(k, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", plan.hosts[0]!.prefix])));
    expect((listed.Contents as { Key: string }[]).map((c) => c.Key).sort()).toEqual([web1.object, web1.manifest].sort());
    ok(await s3.aws(k, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/daily/postgres/", "--delimiter", "/"]));
    ok(await s3.aws(k, ["s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", "web-1/"]));

    const manifest = ok(await s3.aws(k, ["s3", "cp", `s3://${BUCKET}/${web1.manifest}`, "-"]));
    expect(JSON.parse(manifest)).toEqual({ format: 1 });
    const head = JSON.parse(ok(await s3.aws(k, ["s3api", "head-object", "--bucket", BUCKET, "--key", web1.object])));
    expect(head.ContentLength).toBe(data.length);

    // web-2 can do the same under its own prefix (used by the cross-host checks below).
    ok(await s3.aws(keys["web-2"]!, ["s3", "cp", "-", `s3://${BUCKET}/${web2.object}`], "web-2 dump"));
  });

  it("denies deleting backups: plain, by version id, and multi-delete; nothing is removed or hidden", async () => {
    const k = keys["web-1"]!;
    const before = await versionsOf("web-1/");
    const version = before.versions.find((v) => v.Key === web1.object)!.VersionId;

    expectDenied(await s3.aws(k, ["--debug", "s3api", "delete-object", "--bucket", BUCKET, "--key", web1.object]), "delete-object");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "delete-object", "--bucket", BUCKET, "--key", web1.object, `--version-id=${version}`]), "delete-object --version-id");
    const multi = await s3.aws(k, ["--debug", "s3api", "delete-objects", "--bucket", BUCKET, "--delete", JSON.stringify({ Objects: [{ Key: web1.object }, { Key: web1.manifest }, { Key: web1.object, VersionId: version }] })]);
    if (multi.code === 0) {
      // S3 may answer 200 with a per-key error list; then every key must have been refused.
      const out = JSON.parse(multi.stdout || "{}");
      expect(out.Deleted ?? []).toEqual([]);
      expect((out.Errors as { Code: string }[]).map((e) => e.Code)).toEqual(["AccessDenied", "AccessDenied", "AccessDenied"]);
    } else {
      expectDenied(multi, "delete-objects");
    }
    expectDenied(await s3.aws(k, ["--debug", "s3", "rm", "--recursive", `s3://${BUCKET}/web-1/`]), "s3 rm --recursive");

    const after = await versionsOf("web-1/");
    expect(after.markers).toEqual([]);
    expect(after.versions).toEqual(before.versions);
  });

  it("denies every other host's prefix and listing outside its own prefix", async () => {
    const k = keys["web-1"]!;
    expectDenied(await s3.aws(k, ["--debug", "s3api", "get-object", "--bucket", BUCKET, "--key", web2.object, "/dev/null"]), "get other host's object");
    expectDenied(await s3.aws(k, ["s3api", "head-object", "--bucket", BUCKET, "--key", web2.object]), "head other host's object");
    expectDenied(await s3.aws(k, ["--debug", "s3", "cp", "-", `s3://${BUCKET}/web-2/daily/postgres/app/evil.dump`], "x"), "put under other host's prefix");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-object", "--bucket", BUCKET, "--key", web2.object, "--body", body]), "overwrite other host's object");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-object", "--bucket", BUCKET, "--key", "stray-at-root", "--body", body]), "put outside any host prefix");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "delete-object", "--bucket", BUCKET, "--key", web2.object]), "delete other host's object");
    for (const prefix of ["web-2/", "web-", "", "web-10/"]) {
      const args = ["--debug", "s3api", "list-objects-v2", "--bucket", BUCKET, ...(prefix ? ["--prefix", prefix] : [])];
      expectDenied(await s3.aws(k, args), `list-objects-v2 --prefix '${prefix}'`);
    }
    expectDenied(await s3.aws(k, ["--debug", "s3api", "list-object-versions", "--bucket", BUCKET, "--prefix", "web-2/"]), "list-object-versions web-2/");
    // and the other way round
    expectDenied(await s3.aws(keys["web-2"]!, ["--debug", "s3api", "get-object", "--bucket", BUCKET, "--key", web1.manifest, "/dev/null"]), "web-2 reads web-1");
    expect((await versionsOf("web-2/")).versions.map((v) => v.Key)).toEqual([web2.object]);
  });

  it("denies object ACL changes (put-object-acl public-read), so backups stay private", async () => {
    const k = keys["web-1"]!;
    const version = (await versionsOf(web1.object)).versions[0]!.VersionId;
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-object-acl", "--bucket", BUCKET, "--key", web1.object, "--acl", "public-read"]), "put-object-acl public-read");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-object-acl", "--bucket", BUCKET, "--key", web1.object, `--version-id=${version}`, "--acl", "public-read"]), "put-object-acl --version-id");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-object-acl", "--bucket", BUCKET, "--key", web1.object, "--grant-read", ALL_USERS]), "put-object-acl --grant-read AllUsers");
    expect(await anonymousStatus(web1.object)).toBe(403);
    expect(await anonymousStatus(web1.manifest)).toBe(403);
  });

  it("denies bucket policy, lifecycle, versioning, ACL changes and bucket creation/deletion; the bucket is unchanged", async () => {
    const k = keys["web-1"]!;
    const publicPolicy = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: "*", Action: ["s3:GetObject"], Resource: [`arn:aws:s3:::${BUCKET}/*`] }],
    });
    const shortRetention = JSON.stringify({ Rules: [{ ID: "gone", Status: "Enabled", Filter: { Prefix: "" }, Expiration: { Days: 1 } }] });
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", publicPolicy]), "put-bucket-policy");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "delete-bucket-policy", "--bucket", BUCKET]), "delete-bucket-policy");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-bucket-lifecycle-configuration", "--bucket", BUCKET, "--lifecycle-configuration", shortRetention]), "put-bucket-lifecycle-configuration");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "delete-bucket-lifecycle", "--bucket", BUCKET]), "delete-bucket-lifecycle");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-bucket-versioning", "--bucket", BUCKET, "--versioning-configuration", "Status=Suspended"]), "put-bucket-versioning Suspended");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "put-bucket-acl", "--bucket", BUCKET, "--acl", "public-read"]), "put-bucket-acl");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "delete-bucket", "--bucket", BUCKET]), "delete-bucket");
    expectDenied(await s3.aws(k, ["--debug", "s3api", "create-bucket", "--bucket", "restorable-test-evil"]), "create-bucket");

    // The owner sees the bucket exactly as configured.
    const lc = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "get-bucket-lifecycle-configuration", "--bucket", BUCKET])));
    expect(byId(lc)).toEqual(byId(plan.lifecycle.s3));
    expect(JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "get-bucket-versioning", "--bucket", BUCKET]))).Status).toBe("Enabled");
    const pol = await s3.aws(s3.admin, ["--debug", "s3api", "get-bucket-policy", "--bucket", BUCKET]);
    expect(awsErrorCode(pol)).toBe("NoSuchBucketPolicy");
    const buckets = JSON.parse(ok(await s3.aws(s3.admin, ["s3api", "list-buckets"]))).Buckets as { Name: string }[];
    expect(buckets.map((b) => b.Name)).toEqual([BUCKET]);
  });

  // FINDING (reported): on radosgw a host key can still publish its own backups by setting a
  // canned ACL or grant *at upload time* (PutObject/CreateMultipartUpload/CopyObject with
  // x-amz-acl / x-amz-grant-*): RGW checks only s3:PutObject there, so the plan's Deny of
  // s3:PutObjectAcl does not apply (AWS would require s3:PutObjectAcl for these headers).
  it("a host key cannot make its backups public by setting an ACL at upload time", async () => {
    const k = keys["web-1"]!;
    const attempts: { what: string; key: string; args: string[]; input?: Buffer }[] = [
      { what: "put-object --acl public-read", key: "web-1/daily/acl-put", args: ["s3api", "put-object", "--body", body, "--acl", "public-read"] },
      { what: "put-object --grant-read AllUsers", key: "web-1/daily/acl-grant", args: ["s3api", "put-object", "--body", body, "--grant-read", ALL_USERS] },
      { what: "copy-object --acl public-read", key: "web-1/daily/acl-copy", args: ["s3api", "copy-object", "--copy-source", `${BUCKET}/${web1.manifest}`, "--acl", "public-read"] },
      { what: "multipart upload --acl public-read", key: "web-1/daily/acl-multipart", args: ["s3", "cp", "-", "--acl", "public-read"], input: Buffer.alloc(9 * 1024 * 1024, 1) },
    ];
    const publiclyReadable: Record<string, boolean> = {};
    for (const a of attempts) {
      const target = a.args[0] === "s3" ? [`s3://${BUCKET}/${a.key}`] : ["--bucket", BUCKET, "--key", a.key];
      // Refused or accepted: what matters is whether anyone can now read it without a key.
      await s3.aws(k, [...a.args.slice(0, a.args[0] === "s3" ? 3 : 2), ...target, ...a.args.slice(a.args[0] === "s3" ? 3 : 2)], a.input);
      publiclyReadable[a.what] = (await anonymousStatus(a.key)) === 200;
    }
    expect(publiclyReadable).toEqual(Object.fromEntries(attempts.map((a) => [a.what, false])));
  });
});
