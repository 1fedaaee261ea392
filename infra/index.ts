// The stack program: read config -> build the plan -> build components -> export outputs.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEYS, ConfigError, NAMESPACE as NS, SECRET_KEYS, parseConfig, parseSecret, unknownKeyProblems } from "./config";
import { buildPlan } from "./plan";
import type { B2AccountKey } from "./components/b2";
import { BackupBucket } from "./components/backup-bucket";
import { ServerBackups } from "./components/server-backups";


/** Fail before any resource exists, with the ConfigError text (no stack trace). */
function fail(e: unknown): never {
  if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
  throw e;
}

function readPlan() {
  const config = new pulumi.Config(NS);
  const raw: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const v = config.getObject<unknown>(key);
    if (v !== undefined) raw[key] = v;
  }
  try {
    const unknown = unknownKeyProblems(Object.keys(pulumi.runtime.allConfig()));
    if (unknown.length) throw new ConfigError(unknown);
    return { config, plan: buildPlan(parseConfig(raw)) };
  } catch (e) {
    return fail(e);
  }
}

const { config, plan } = readPlan();

/** A secret config object, validated inside apply; undefined when not set. */
function secretKey<K extends (typeof SECRET_KEYS)[number]>(key: K) {
  const v = key === "sshPrivateKey" ? config.getSecret(key) : config.getSecretObject<unknown>(key);
  return v?.apply((value) => {
    try {
      return parseSecret(key, value);
    } catch (e) {
      return fail(e);
    }
  });
}

let awsProvider: aws.Provider | undefined;
let b2: B2AccountKey | undefined;
const s3Credentials = secretKey("s3Credentials");
// Checked before any resource exists: without it nothing can be installed on the hosts.
const sshPrivateKey =
  secretKey("sshPrivateKey") ??
  fail(new ConfigError([`${NS}:sshPrivateKey: is required to install on the hosts (pulumi config set --secret ${NS}:sshPrivateKey -- "$(cat KEYFILE)")`]));

switch (plan.provider) {
  case "aws":
    // Credentials and account come from the usual AWS provider config (aws:profile, env).
    awsProvider = new aws.Provider("storage", { region: plan.region });
    break;
  case "s3":
    if (!s3Credentials) fail(new ConfigError([`${NS}:s3Credentials: is required for provider s3 (one key per host under hosts.<name>)`]));
    awsProvider = new aws.Provider("storage", {
      region: plan.region,
      endpoints: [{ s3: plan.endpoint }],
      s3UsePathStyle: true,
      skipCredentialsValidation: true,
      skipRegionValidation: true,
      skipRequestingAccountId: true,
      skipMetadataApiCheck: true,
      accessKey: s3Credentials.apply((c) => c.admin?.accessKeyId ?? process.env.AWS_ACCESS_KEY_ID ?? ""),
      secretKey: pulumi.secret(s3Credentials.apply((c) => c.admin?.secretAccessKey ?? process.env.AWS_SECRET_ACCESS_KEY ?? "")),
    });
    break;
  case "b2": {
    const creds = secretKey("b2Credentials");
    const envId = process.env.B2_APPLICATION_KEY_ID;
    const envKey = process.env.B2_APPLICATION_KEY;
    if (creds) b2 = { keyId: pulumi.unsecret(creds.apply((c) => c.keyId)), key: pulumi.secret(creds.apply((c) => c.key)) };
    else if (envId && envKey) b2 = { keyId: envId, key: pulumi.secret(envKey) };
    else fail(new ConfigError([`${NS}:b2Credentials: is required for provider b2 ({ keyId, key } of a key that may create buckets and keys), or set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY`]));
    break;
  }
}

const bucket = new BackupBucket("backups", { plan, awsProvider, b2 });
const dbPasswords = secretKey("dbPasswords");

const servers = plan.hosts.map(
  (host) =>
    new ServerBackups(host.name, {
      plan,
      host,
      bucket,
      awsProvider,
      b2,
      // Checked inside apply so the error names the host whose key is missing.
      suppliedKey:
        plan.provider === "s3"
          ? s3Credentials!.apply((c) => c.hosts[host.name] ?? fail(new ConfigError([`${NS}:s3Credentials.hosts.${host.name}: is required for provider s3`])))
          : undefined,
      dbPasswords: dbPasswords?.apply((p) => p[host.name] ?? {}),
      sshPrivateKey,
    }),
);

// Outputs (contract): `pulumi stack output`.
export const provider = plan.provider;
export const bucketName = bucket.bucketName;
export const bucketEndpoint = bucket.endpoint;
export const bucketRegion = bucket.region;
export const offsite = plan.offsite;
export const retention = { ...plan.retention.counts, expiryDays: plan.retention.expiryDays };
export const policy = plan.summary;
export const hosts = Object.fromEntries(servers.map((s, i) => [plan.hosts[i]!.name, s.summary]));
