// The product: one component that gives a set of servers their off-site backups.
//
//   import { Backups } from "restorable";
//   new Backups("prod", { storage, objectives, hosts: [{ name: "web-1", ssh: { host: server.ipv4Address } }], sshPrivateKey });
//
// Args are the stack config without the namespace (./backups-args.ts); the stack program
// (infra/index.ts) is one user: it reads Pulumi.<stack>.yaml into these args. Inside: the storage
// provider (aws/s3), the bucket (BackupBucket), and per host its scoped key and install
// (ServerBackups). Values from other resources are resolved around the pure plan
// (./deploy-values.ts): the construction plan decides the resources, the resolved one fills them.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseConfig, parseSecret, type S3Credentials } from "../config";
import { buildPlan, type Plan, type TierExpiry } from "../plan";
import type { B2AccountKey } from "./b2";
import { BackupBucket } from "./backup-bucket";
import type { BackupsArgs } from "./backups-args";
import { fail, resolvedPlan, splitDeployValues, type MessageStyle } from "./deploy-values";
import { ServerBackups, type HostSummary } from "./server-backups";

export const BACKUPS_TYPE = "restorable:index:Backups";

export interface BackupsOptions extends pulumi.ComponentResourceOptions {
  /**
   * For the stack program: the config namespace the messages name keys with ("restorable" gives
   * "restorable:hosts[0].ssh.port: ..."). Default none: keys as in the args ("hosts[0].ssh.port: ...").
   */
  configNamespace?: string;
  /**
   * For the stack program: the children keep the names and URNs they had as top-level resources
   * before Backups existed (aliases to the stack; hosts' resources named after the host alone,
   * the provider "storage"). Otherwise each host's resources are named "<name>-<host>".
   */
  aliasChildrenToStack?: boolean;
}

/** `pulumi stack output retention`. */
export interface RetentionSummary {
  daily: number;
  weekly: number;
  monthly: number;
  expiryDays: TierExpiry;
}

type SecretKey = "sshPrivateKey" | "b2Credentials" | "s3Credentials" | "dbPasswords";

export class Backups extends pulumi.ComponentResource {
  /** The plan from the args (stand-ins where a value is known only at deploy time: see plan.deferred). */
  public readonly plan: Plan;
  /** The plan with every deploy-time value resolved (what the resources are filled from). */
  public readonly deployPlan: pulumi.Output<Plan>;
  public readonly bucket: BackupBucket;
  public readonly servers: ServerBackups[];
  /** aws and s3: the provider the bucket and keys are created with. */
  public readonly awsProvider?: aws.Provider;

  // Outputs: what `pulumi stack output` shows for the stack program (contract).
  public readonly provider: Plan["provider"];
  public readonly bucketName: pulumi.Output<string>;
  public readonly bucketEndpoint: pulumi.Output<string>;
  public readonly bucketRegion: pulumi.Output<string>;
  public readonly offsite: boolean;
  public readonly retention: RetentionSummary;
  /** Human summary of the policy; a value known only at deploy time reads "<known after deploy>". */
  public readonly policy: string[];
  /** By host name: prefix, schedules, install paths, the key id. */
  public readonly hosts: Record<string, HostSummary>;

  constructor(name: string, args: BackupsArgs, opts: BackupsOptions = {}) {
    const { configNamespace, aliasChildrenToStack, ...resourceOpts } = opts;
    super(BACKUPS_TYPE, name, {}, resourceOpts);
    const style: MessageStyle = { namespace: configNamespace };
    const ns = configNamespace ? `${configNamespace}:` : "";
    // Texts below already say the key as the caller's user writes it.
    const problem = (text: string): never => {
      throw new pulumi.RunError(new ConfigError([text]).message);
    };
    const child = (oldName?: string): pulumi.CustomResourceOptions => ({
      parent: this,
      ...(aliasChildrenToStack ? { aliases: [{ ...(oldName ? { name: oldName } : {}), parent: pulumi.rootStackResource }] } : {}),
    });

    const { sshPrivateKey, b2Credentials, s3Credentials, dbPasswords, ...config } = args ?? ({} as BackupsArgs);
    let plan: Plan;
    let split: ReturnType<typeof splitDeployValues>;
    try {
      split = splitDeployValues(config as Record<string, unknown>, style);
      plan = buildPlan(parseConfig(split.raw), { deferred: split.deployValues.map((d) => d.path) });
    } catch (e) {
      fail(e, style);
    }
    this.plan = plan;
    this.deployPlan = resolvedPlan(split, plan, style);

    /** A secret arg, validated when it resolves; undefined when not given. */
    const secret = <K extends SecretKey>(key: K, v: pulumi.Input<unknown> | undefined) =>
      v === undefined
        ? undefined
        : pulumi.secret(pulumi.output(v)).apply((value) => {
            try {
              return parseSecret(key, value);
            } catch (e) {
              return fail(e, style);
            }
          });

    // Checked before any resource exists: without it nothing can be installed on the hosts.
    const sshKey =
      secret("sshPrivateKey", sshPrivateKey) ??
      problem(`${ns}sshPrivateKey: is required to install on the hosts${ns ? ` (pulumi config set --secret ${ns}sshPrivateKey -- "$(cat KEYFILE)")` : ""}`);
    const s3Creds = secret("s3Credentials", s3Credentials) as pulumi.Output<S3Credentials> | undefined;

    let b2: B2AccountKey | undefined;
    switch (plan.provider) {
      case "aws":
        // Credentials and account come from the usual AWS provider config (aws:profile, env).
        this.awsProvider = new aws.Provider(`${name}-storage`, { region: plan.region }, child("storage"));
        break;
      case "s3":
        if (!s3Creds) problem(`${ns}s3Credentials: is required for provider s3 (one key per host under hosts.<name>)`);
        this.awsProvider = new aws.Provider(
          `${name}-storage`,
          {
            region: plan.region,
            endpoints: [{ s3: plan.endpoint }],
            s3UsePathStyle: true,
            skipCredentialsValidation: true,
            skipRegionValidation: true,
            skipRequestingAccountId: true,
            skipMetadataApiCheck: true,
            accessKey: s3Creds!.apply((c) => c.admin?.accessKeyId ?? process.env.AWS_ACCESS_KEY_ID ?? ""),
            secretKey: pulumi.secret(s3Creds!.apply((c) => c.admin?.secretAccessKey ?? process.env.AWS_SECRET_ACCESS_KEY ?? "")),
          },
          child("storage"),
        );
        break;
      case "b2": {
        const creds = secret("b2Credentials", b2Credentials);
        const envId = process.env.B2_APPLICATION_KEY_ID;
        const envKey = process.env.B2_APPLICATION_KEY;
        if (creds) b2 = { keyId: pulumi.unsecret(creds.apply((c) => c.keyId)), key: pulumi.secret(creds.apply((c) => c.key)) };
        else if (envId && envKey) b2 = { keyId: envId, key: pulumi.secret(envKey) };
        else problem(`${ns}b2Credentials: is required for provider b2 ({ keyId, key } of a key that may create buckets and keys), or set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY`);
        break;
      }
    }

    const awsProvider = this.awsProvider;
    this.bucket = new BackupBucket(name, { plan, awsProvider, b2 }, child());
    const passwords = secret("dbPasswords", dbPasswords);
    this.servers = plan.hosts.map(
      (host) =>
        new ServerBackups(
          // Prefixed, so two Backups in one program do not collide; the stack program keeps the
          // names its resources always had.
          aliasChildrenToStack ? host.name : `${name}-${host.name}`,
          {
            plan,
            deployPlan: this.deployPlan,
            host,
            bucket: this.bucket,
            awsProvider,
            b2,
            // Checked when it resolves, so the error names the host whose key is missing.
            suppliedKey:
              plan.provider === "s3"
                ? s3Creds!.apply((c) => c.hosts[host.name] ?? problem(`${ns}s3Credentials.hosts.${host.name}: is required for provider s3`))
                : undefined,
            dbPasswords: passwords?.apply((p) => p[host.name] ?? {}),
            sshPrivateKey: sshKey,
          },
          child(),
        ),
    );

    this.provider = plan.provider;
    this.bucketName = this.bucket.bucketName;
    this.bucketEndpoint = this.bucket.endpoint;
    this.bucketRegion = this.bucket.region;
    this.offsite = plan.offsite;
    this.retention = { ...plan.retention.counts, expiryDays: plan.retention.expiryDays };
    this.policy = plan.summary;
    this.hosts = Object.fromEntries(this.servers.map((s, i) => [plan.hosts[i]!.name, s.summary]));
    this.registerOutputs({
      provider: this.provider,
      bucketName: this.bucketName,
      bucketEndpoint: this.bucketEndpoint,
      bucketRegion: this.bucketRegion,
      offsite: this.offsite,
      retention: this.retention,
      policy: this.policy,
      hosts: this.hosts,
    });
  }
}
