// Per-host credentials that can write and read only under `<host>/` and never delete.
//   aws: IAM user + inline policy (the plan's) + access key.
//   b2:  an application key without deleteFiles, scoped to the bucket and the `<host>/` prefix.
//   s3:  supplied as config secrets (restorable:s3Credentials.hosts.<host>); the store's own
//        admin applies the plan's policy (rendered by `npm run render`).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { HostPlan } from "../plan";
import { B2ApplicationKey, type B2AccountKey } from "./b2";
import type { BackupBucket } from "./backup-bucket";
import { hostOf, planOf, type PlanArgs } from "./deploy-values";

export interface S3KeyPair {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface HostCredentialsArgs {
  /** The config (Backups args without the secrets), or a Plan. */
  plan: PlanArgs;
  /** The host: its name in the config, or its HostPlan. */
  host: HostPlan | string;
  /**
   * The bucket, when this program creates it: the key waits for it. b2 needs it (the key is scoped
   * to its id) unless `b2BucketId` is given; aws and s3 name the bucket by its name and need neither.
   */
  bucket?: BackupBucket;
  /** b2 without `bucket`: the id of the existing bucket. */
  b2BucketId?: pulumi.Input<string>;
  awsProvider?: aws.Provider;
  b2?: B2AccountKey;
  /** s3: the host's key pair (kept a secret). */
  suppliedKey?: pulumi.Input<S3KeyPair>;
}

export class HostCredentials extends pulumi.ComponentResource {
  public readonly accessKeyId: pulumi.Output<string>;
  /** Always a secret output. */
  public readonly secretAccessKey: pulumi.Output<string>;
  /** Resources the key depends on being in place (install waits for them). */
  public readonly ready: pulumi.Resource[];

  constructor(name: string, args: HostCredentialsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("restorable:index:HostCredentials", name, {}, opts);
    const { plan } = planOf(args.plan);
    const host = hostOf(plan, args.host);
    switch (plan.provider) {
      case "aws": {
        const o = { parent: this, ...(args.awsProvider ? { provider: args.awsProvider } : {}) };
        const user = new aws.iam.User(name, { name: host.iamUserName, path: "/restorable/", forceDestroy: true }, o);
        const policy = new aws.iam.UserPolicy(
          name,
          { user: user.name, name: "restorable-backup-writer", policy: JSON.stringify(host.access.iamPolicy) },
          o,
        );
        const key = new aws.iam.AccessKey(name, { user: user.name }, { ...o, additionalSecretOutputs: ["secret"], dependsOn: [policy] });
        this.accessKeyId = key.id;
        this.secretAccessKey = pulumi.secret(key.secret);
        this.ready = [policy, key];
        break;
      }
      case "b2": {
        if (!args.b2) throw new Error("HostCredentials: provider b2 needs the B2 master key");
        const spec = host.access.b2;
        const bucketId = args.bucket?.bucketId ?? (args.b2BucketId !== undefined ? pulumi.output(args.b2BucketId) : undefined);
        if (!bucketId) throw new Error("HostCredentials: provider b2 needs the bucket (bucket or b2BucketId)");
        const key = new B2ApplicationKey(
          name,
          {
            ...args.b2,
            keyName: spec.keyName,
            bucketId: bucketId.apply((id) => {
              if (!id) throw new Error("B2 bucket has no id");
              return id;
            }),
            namePrefix: spec.namePrefix,
            capabilities: spec.capabilities,
          },
          { parent: this, dependsOn: args.bucket ? [args.bucket.resource] : [] },
        );
        this.accessKeyId = key.applicationKeyId;
        this.secretAccessKey = pulumi.secret(key.applicationKey);
        this.ready = [key];
        break;
      }
      case "s3": {
        if (!args.suppliedKey) throw new Error(`restorable:s3Credentials.hosts.${host.name}: is required for provider s3`);
        const supplied = pulumi.output(args.suppliedKey);
        this.accessKeyId = pulumi.unsecret(supplied.apply((k) => k.accessKeyId));
        this.secretAccessKey = pulumi.secret(supplied.apply((k) => k.secretAccessKey));
        this.ready = args.bucket ? [args.bucket.resource] : [];
        break;
      }
    }
    this.registerOutputs({ accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey });
  }
}
