// The backup bucket: private, versioned, encrypted at rest where the provider has it, with the
// plan's lifecycle rules and optional object lock. Every resource here is retained on delete:
// `pulumi destroy` never touches the bucket, its configuration or the backups in it.
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { B2Bucket, type B2AccountKey } from "./b2";
import { planOf, type PlanArgs } from "./deploy-values";

export interface BackupBucketArgs {
  /** The config (Backups args without the secrets: storage, retention and the host names matter), or a Plan. */
  plan: PlanArgs;
  /** aws and s3: the provider to create the bucket with (s3: pointed at the endpoint). */
  awsProvider?: aws.Provider;
  /** b2: the key that may create buckets and keys. */
  b2?: B2AccountKey;
}

export class BackupBucket extends pulumi.ComponentResource {
  public readonly bucketName: pulumi.Output<string>;
  /** B2 bucket id (b2 only; keys are scoped to it). */
  public readonly bucketId: pulumi.Output<string | undefined>;
  public readonly endpoint: pulumi.Output<string>;
  public readonly region: pulumi.Output<string>;
  /** The underlying bucket resource, for dependencies. */
  public readonly resource: pulumi.Resource;

  constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("restorable:index:BackupBucket", name, {}, opts);
    const { plan } = planOf(args.plan);
    const lock = plan.config.storage.objectLock;
    // Backups outlive the stack: destroy leaves the bucket and its settings as they are.
    const keep = { parent: this, retainOnDelete: true };

    if (plan.provider === "b2") {
      if (!args.b2) throw new Error("BackupBucket: provider b2 needs the B2 master key (restorable:b2Credentials)");
      const bucket = new B2Bucket(
        name,
        {
          ...args.b2,
          bucketName: plan.bucket,
          lifecycleRules: plan.lifecycle.b2,
          fileLock: lock ? { mode: lock.mode, days: lock.days } : undefined,
        },
        keep,
      );
      this.resource = bucket;
      this.bucketName = bucket.bucketName;
      this.bucketId = bucket.bucketId;
    } else {
      const providerOpts = args.awsProvider ? { provider: args.awsProvider } : {};
      const o = { ...keep, ...providerOpts };
      const bucket = new aws.s3.Bucket(name, { bucket: plan.bucket, objectLockEnabled: lock ? true : undefined, forceDestroy: false }, o);
      const versioning = new aws.s3.BucketVersioning(name, { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } }, o);
      if (plan.provider === "aws") {
        // Encryption at rest: AWS has it; many S3-compatible stores do not implement the API
        // (and encrypt at rest on their own, or not at all: see README).
        new aws.s3.BucketServerSideEncryptionConfiguration(
          name,
          { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }] },
          o,
        );
      }
      const pab = plan.publicAccessBlock;
      if (pab) {
        // Without this, a host key could publish its backups with an ACL at upload time.
        new aws.s3.BucketPublicAccessBlock(
          name,
          {
            bucket: bucket.id,
            blockPublicAcls: pab.BlockPublicAcls,
            ignorePublicAcls: pab.IgnorePublicAcls,
            blockPublicPolicy: pab.BlockPublicPolicy,
            restrictPublicBuckets: pab.RestrictPublicBuckets,
          },
          o,
        );
      }
      new aws.s3.BucketLifecycleConfiguration(
        name,
        {
          bucket: bucket.id,
          rules: plan.lifecycle.s3.Rules.map((r) => ({
            id: r.ID,
            status: r.Status,
            filter: { prefix: r.Filter.Prefix },
            expiration: r.Expiration
              ? "Days" in r.Expiration
                ? { days: r.Expiration.Days }
                : { expiredObjectDeleteMarker: r.Expiration.ExpiredObjectDeleteMarker }
              : undefined,
            noncurrentVersionExpiration: r.NoncurrentVersionExpiration ? { noncurrentDays: r.NoncurrentVersionExpiration.NoncurrentDays } : undefined,
            abortIncompleteMultipartUpload: r.AbortIncompleteMultipartUpload
              ? { daysAfterInitiation: r.AbortIncompleteMultipartUpload.DaysAfterInitiation }
              : undefined,
          })),
        },
        { ...o, dependsOn: [versioning] },
      );
      const lockCfg = plan.objectLock;
      if (lockCfg) {
        const retention = lockCfg.Rule.DefaultRetention;
        new aws.s3.BucketObjectLockConfiguration(
          name,
          { bucket: bucket.id, rule: { defaultRetention: { mode: retention.Mode, days: retention.Days } } },
          { ...o, dependsOn: [versioning] },
        );
      }
      this.resource = bucket;
      this.bucketName = bucket.bucket;
      this.bucketId = pulumi.output(undefined);
    }
    this.endpoint = pulumi.output(plan.endpoint);
    this.region = pulumi.output(plan.region);
    this.registerOutputs({ bucketName: this.bucketName, bucketId: this.bucketId, endpoint: this.endpoint, region: this.region });
  }
}
