// Per-host credentials that can write and read only under `<host>/` and never delete.
//   aws: IAM user + inline policy (the plan's) + access key.
//   b2:  an application key without deleteFiles, scoped to the bucket and the `<host>/` prefix.
//   s3:  supplied as config secrets (restorable:s3Credentials.hosts.<host>); the store's own
//        admin applies the plan's policy (rendered by `npm run render`).
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { HostPlan, Plan } from "../plan";
import { B2ApplicationKey, type B2AccountKey } from "./b2";
import type { BackupBucket } from "./backup-bucket";

export interface S3KeyPair {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface HostCredentialsArgs {
  plan: Plan;
  host: HostPlan;
  bucket: BackupBucket;
  awsProvider?: aws.Provider;
  b2?: B2AccountKey;
  /** s3: the host's key pair from config (a secret). */
  suppliedKey?: pulumi.Output<S3KeyPair>;
}

export class HostCredentials extends pulumi.ComponentResource {
  public readonly accessKeyId: pulumi.Output<string>;
  /** Always a secret output. */
  public readonly secretAccessKey: pulumi.Output<string>;
  /** Resources the key depends on being in place (install waits for them). */
  public readonly ready: pulumi.Resource[];

  constructor(name: string, args: HostCredentialsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("restorable:index:HostCredentials", name, {}, opts);
    const { plan, host } = args;
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
        const key = new B2ApplicationKey(
          name,
          {
            ...args.b2,
            keyName: spec.keyName,
            bucketId: args.bucket.bucketId.apply((id) => {
              if (!id) throw new Error("B2 bucket has no id");
              return id;
            }),
            namePrefix: spec.namePrefix,
            capabilities: spec.capabilities,
          },
          { parent: this, dependsOn: [args.bucket.resource] },
        );
        this.accessKeyId = key.applicationKeyId;
        this.secretAccessKey = pulumi.secret(key.applicationKey);
        this.ready = [key];
        break;
      }
      case "s3": {
        if (!args.suppliedKey) throw new Error(`restorable:s3Credentials.hosts.${host.name}: is required for provider s3`);
        this.accessKeyId = pulumi.unsecret(args.suppliedKey.apply((k) => k.accessKeyId));
        this.secretAccessKey = pulumi.secret(args.suppliedKey.apply((k) => k.secretAccessKey));
        this.ready = [args.bucket.resource];
        break;
      }
    }
    this.registerOutputs({ accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey });
  }
}
