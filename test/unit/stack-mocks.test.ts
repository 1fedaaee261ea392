// Wiring of infra/index.ts under pulumi.runtime.setMocks: which resources exist for each
// provider, their inputs, parents, and that secrets stay secret. The Pulumi engine and the
// clouds cannot run here; what the resources do to a real bucket is tested in
// test/integration/storage-policy.test.ts against a real S3 server.
import { describe, expect, it, vi } from "vitest";

vi.setConfig({ testTimeout: 60_000 });
import type * as PulumiModule from "@pulumi/pulumi";
import { isSecretValue, outputValue, parentType, startMocks, type Registered } from "../support/pulumi-mocks";

const HOSTS = [
  { name: "web-1", ssh: { host: "203.0.113.10" }, postgres: [{ via: "compose", project: "/srv/app", service: "db", user: "app", database: "app" }], volumes: ["uploads"] },
  { name: "db-2", ssh: { host: "203.0.113.11", user: "backup" }, postgres: [{ via: "local", database: "ledger" }] },
];

const STORAGE = {
  b2: { provider: "b2", bucket: "acme-prod-backups", region: "us-west-002" },
  aws: { provider: "aws", bucket: "acme-prod-backups", region: "eu-central-1", objectLock: { mode: "governance", days: 7 } },
  s3: { provider: "s3", bucket: "acme-prod-backups", endpoint: "https://s3.eu-central-003.example.net", region: "eu-central-003" },
} as const;

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

function secretsFor(provider: keyof typeof STORAGE): Record<string, unknown> {
  const base: Record<string, unknown> = { sshPrivateKey: SSH_KEY, dbPasswords: { "db-2": { ledger: "pg-secret" } } };
  if (provider === "b2") base.b2Credentials = { keyId: "0021234567890ab0000000001", key: "K002-master-secret" };
  if (provider === "s3") {
    base.s3Credentials = {
      admin: { accessKeyId: "ADMINKEY", secretAccessKey: "admin-secret" },
      hosts: { "web-1": { accessKeyId: "WEB1KEY", secretAccessKey: "web1-secret" }, "db-2": { accessKeyId: "DB2KEY", secretAccessKey: "db2-secret" } },
    };
  }
  return base;
}

async function runStack(provider: keyof typeof STORAGE, extra: Record<string, unknown> = {}, withoutSecrets: string[] = []) {
  const config: Record<string, string> = {};
  const plain = { storage: STORAGE[provider], objectives: { rpo: "24h", rto: "1h" }, hosts: HOSTS, ...extra };
  for (const [k, v] of Object.entries(plain)) config[`restorable:${k}`] = JSON.stringify(v);
  const secrets = secretsFor(provider);
  for (const k of withoutSecrets) delete secrets[k];
  for (const [k, v] of Object.entries(secrets)) config[`restorable:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  const { pulumi, registered: captured, outputsOf, settle } = await startMocks({
    config,
    secretKeys: Object.keys(secrets).map((k) => `restorable:${k}`),
    state: (type, name, inputs) => {
      if (type === "aws:iam/accessKey:AccessKey") return { secret: `secret-of-${name}` };
      if (type.endsWith(":B2Bucket")) return { bucketId: "b2-bucket-id-1", accountId: "acct", revision: 1 };
      if (type.endsWith(":B2ApplicationKey")) return { applicationKeyId: `keyid-${name}`, applicationKey: `appkey-${name}` };
      if (type === "command:remote:Command") return { stdout: "", stderr: "" };
      return { ...inputs };
    },
  });
  const stack = await import("../../infra/index");
  const hosts = await outputValue(pulumi, stack.hosts as unknown as PulumiModule.Input<Record<string, any>>); // eslint-disable-line @typescript-eslint/no-explicit-any
  await settle();
  return { pulumi, stack, captured, hosts, outputsOf };
}

const value = outputValue;
type Captured = Registered;
const byType = (c: Captured[], type: string) => c.filter((r) => r.type === type);

describe.each(["b2", "aws", "s3"] as const)("stack program with provider %s and two hosts", (provider) => {
  it("creates the bucket component, one ServerBackups + HostCredentials per host, parented", async () => {
    const { captured } = await runStack(provider);
    expect(byType(captured, "restorable:index:BackupBucket").map((r) => r.name)).toEqual(["backups"]);
    expect(byType(captured, "restorable:index:ServerBackups").map((r) => r.name)).toEqual(["web-1", "db-2"]);
    const creds = byType(captured, "restorable:index:HostCredentials");
    expect(creds.map((r) => r.name)).toEqual(["web-1", "db-2"]);
    for (const c of creds) expect(parentType(c)).toBe("restorable:index:ServerBackups");
    const installs = byType(captured, "restorable:index:HostInstall");
    expect(installs.map((r) => r.name)).toEqual(["web-1", "db-2"]);
    for (const i of installs) expect(parentType(i)).toBe("restorable:index:ServerBackups");
    // Each host's install command waits for that host's credentials (key and policy in place).
    const commands = captured.filter((r) => r.type === "command:remote:Command");
    expect(commands.length).toBeGreaterThanOrEqual(4);
  });

  it("exports the contract outputs", async () => {
    const { pulumi, stack, hosts } = await runStack(provider);
    expect(stack.provider).toBe(provider);
    expect(await value(pulumi, stack.bucketName)).toBe("acme-prod-backups");
    expect(await value(pulumi, stack.bucketEndpoint)).toMatch(/^https:\/\//);
    expect(Object.keys(hosts)).toEqual(["web-1", "db-2"]);
    expect(hosts["web-1"]).toMatchObject({ prefix: "web-1/", backupCron: "0 3 * * *", drillCron: "0 5 1 * *", scriptsDir: "/opt/restorable" });
    expect(typeof hosts["db-2"].keyId).toBe("string");
    expect(hosts["db-2"].keyId.length).toBeGreaterThan(0);
    expect(stack.policy.join("\n")).toMatch(/7 days, 4 weeks and 12 months/);
  });
});

describe("aws wiring", () => {
  it("bucket, versioning, encryption, public access block, lifecycle and object lock, all retained on destroy", async () => {
    const { captured } = await runStack("aws");
    const types = ["Bucket", "BucketVersioning", "BucketServerSideEncryptionConfiguration", "BucketPublicAccessBlock", "BucketLifecycleConfiguration", "BucketObjectLockConfiguration"];
    for (const t of types) {
      const rs = captured.filter((r) => r.type.endsWith(`:${t}`) && r.type.startsWith("aws:s3/"));
      expect(rs, t).toHaveLength(1);
      expect(rs[0]!.retainOnDelete, `${t} retained on delete`).toBe(true);
      expect(parentType(rs[0]!)).toBe("restorable:index:BackupBucket");
    }
    const bucket = captured.find((r) => r.type === "aws:s3/bucket:Bucket")!;
    expect(bucket.inputs).toMatchObject({ bucket: "acme-prod-backups", objectLockEnabled: true, forceDestroy: false });
    const versioning = captured.find((r) => r.type.endsWith(":BucketVersioning"))!;
    expect(versioning.inputs.versioningConfiguration).toEqual({ status: "Enabled" });
    const lock = captured.find((r) => r.type.endsWith(":BucketObjectLockConfiguration"))!;
    expect(lock.inputs.rule).toEqual({ defaultRetention: { mode: "GOVERNANCE", days: 7 } });
  });

  it("lifecycle rules per host and tier, with noncurrent expiry and multipart abort", async () => {
    const { captured } = await runStack("aws");
    const lc = captured.find((r) => r.type.endsWith(":BucketLifecycleConfiguration"))!;
    const rules = lc.inputs.rules as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const expiring = Object.fromEntries(rules.filter((r) => r.expiration?.days).map((r) => [r.filter.prefix, r.expiration.days]));
    expect(expiring).toEqual({
      "web-1/daily/": 7, "web-1/weekly/": 28, "web-1/monthly/": 366, "web-1/drills/": 366,
      "db-2/daily/": 7, "db-2/weekly/": 28, "db-2/monthly/": 366, "db-2/drills/": 366,
    });
    for (const r of rules.filter((r) => r.expiration?.days)) expect(r.noncurrentVersionExpiration).toEqual({ noncurrentDays: 1 });
    const housekeeping = rules.filter((r) => r.abortIncompleteMultipartUpload);
    expect(housekeeping.map((r) => r.filter.prefix)).toEqual(["web-1/", "db-2/"]);
    for (const r of housekeeping) expect(r.expiration).toEqual({ expiredObjectDeleteMarker: true });
  });

  it("one IAM user + inline policy scoped to the host prefix + access key (secret) per host", async () => {
    const { captured } = await runStack("aws");
    const policies = byType(captured, "aws:iam/userPolicy:UserPolicy");
    expect(policies).toHaveLength(2);
    for (const [i, host] of ["web-1", "db-2"].entries()) {
      const doc = JSON.parse(policies[i]!.inputs.policy as string);
      const allow = doc.Statement.find((s: { Sid: string }) => s.Sid === "ReadWriteOwnPrefix");
      expect(allow.Resource).toBe(`arn:aws:s3:::acme-prod-backups/${host}/*`);
      expect(allow.Action).not.toContain("s3:DeleteObject");
      const deny = doc.Statement.find((s: { Effect: string }) => s.Effect === "Deny");
      expect(deny.Action).toEqual(expect.arrayContaining(["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"]));
      expect(parentType(policies[i]!)).toBe("restorable:index:HostCredentials");
    }
    const keys = byType(captured, "aws:iam/accessKey:AccessKey");
    expect(keys).toHaveLength(2);
    for (const k of keys) expect(k.additionalSecretOutputs).toContain("secret");
  });

  it.each(["aws", "b2", "s3"] as const)("%s: each host's secret key is a secret output, the key id is not", async (provider) => {
    const { outputsOf } = await runStack(provider);
    for (const host of ["web-1", "db-2"]) {
      const out = outputsOf("restorable:index:HostCredentials", host);
      expect(isSecretValue(out.secretAccessKey), `${host} secretAccessKey`).toBe(true);
      expect(isSecretValue(out.accessKeyId), `${host} accessKeyId`).toBe(false);
    }
  });
});

describe("b2 wiring", () => {
  it("a B2 bucket via the native API with the plan's rules, retained on destroy, and a scoped key per host", async () => {
    const { captured } = await runStack("b2");
    const dyn = captured.filter((r) => r.type.endsWith(":B2Bucket") || r.type.endsWith(":B2ApplicationKey"));
    const bucket = dyn.find((r) => r.type.endsWith(":B2Bucket"))!;
    expect(bucket.name).toBe("backups");
    expect(bucket.retainOnDelete).toBe(true);
    const rules = (await Promise.resolve(bucket.inputs.lifecycleRules)) as Array<Record<string, unknown>>;
    expect(rules).toContainEqual({ fileNamePrefix: "web-1/weekly/", daysFromUploadingToHiding: 28, daysFromHidingToDeleting: 1, daysFromStartingToCancelingUnfinishedLargeFiles: 2 });
    expect(rules).toHaveLength(8);
    const keys = dyn.filter((r) => "keyName" in r.inputs);
    expect(keys.map((k) => k.inputs.namePrefix)).toEqual(["web-1/", "db-2/"]);
    for (const k of keys) {
      expect(k.inputs.capabilities).not.toContain("deleteFiles");
      expect(k.inputs.capabilities).toEqual(expect.arrayContaining(["writeFiles", "readFiles", "listFiles"]));
      expect(k.additionalSecretOutputs).toContain("applicationKey");
      expect(parentType(k)).toBe("restorable:index:HostCredentials");
    }
  });
});

describe("s3 (S3-compatible) wiring", () => {
  it("uses an explicit aws.Provider at the endpoint, path style, no AWS-only sub-APIs", async () => {
    const { captured } = await runStack("s3");
    const prov = captured.find((r) => r.type === "pulumi:providers:aws")!;
    // Provider inputs reach the engine as strings (JSON for objects).
    for (const k of ["s3UsePathStyle", "skipCredentialsValidation", "skipRequestingAccountId", "skipRegionValidation"]) expect(String(prov.inputs[k]), k).toBe("true");
    expect(JSON.parse(prov.inputs.endpoints as string)).toEqual([{ s3: "https://s3.eu-central-003.example.net" }]);
    // No server-side-encryption API on generic stores; the public access block ignores public ACLs.
    expect(captured.some((r) => r.type.endsWith(":BucketServerSideEncryptionConfiguration"))).toBe(false);
    const pab = captured.find((r) => r.type.endsWith(":BucketPublicAccessBlock"))!;
    expect(pab.inputs).toMatchObject({ ignorePublicAcls: true, blockPublicPolicy: true, restrictPublicBuckets: true, blockPublicAcls: false });
    expect(captured.some((r) => r.type.endsWith(":BucketLifecycleConfiguration"))).toBe(true);
    expect(byType(captured, "aws:iam/user:User")).toHaveLength(0);
  });

  it("exports only the supplied key ids, never the secrets", async () => {
    const { hosts } = await runStack("s3");
    expect(hosts["web-1"].keyId).toBe("WEB1KEY");
    expect(hosts["db-2"].keyId).toBe("DB2KEY");
    expect(JSON.stringify(hosts)).not.toMatch(/secret/);
  });

});

describe("bad config fails before any resource exists", () => {
  it("names the key", async () => {
    await expect(runStack("aws", { retention: { daily: 0 } })).rejects.toThrow(/restorable:retention\.daily: must be at least 1/);
  });
  it("a missing SSH key names restorable:sshPrivateKey", async () => {
    await expect(runStack("aws", {}, ["sshPrivateKey"])).rejects.toThrow(/restorable:sshPrivateKey: is required to install on the hosts/);
  });
  it("refuses unknown restorable: keys", async () => {
    await expect(runStack("aws", { retension: { daily: 7 } })).rejects.toThrow(/restorable:retension: unknown key/);
  });
});
