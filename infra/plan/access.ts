// Least-privilege access per host: write and read only under `<host>/`, never delete.
import { hostPrefix } from "./layout";

export interface IamStatement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Action: string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}
export interface IamPolicy {
  Version: "2012-10-17";
  Statement: IamStatement[];
}

/** Actions a host key is denied even if some other policy were to allow them. */
export const DENIED_ACTIONS = [
  "s3:DeleteObject",
  "s3:DeleteObjectVersion",
  "s3:DeleteObjectTagging",
  "s3:DeleteObjectVersionTagging",
  "s3:PutObjectAcl",
  "s3:PutObjectVersionAcl",
  "s3:PutObjectRetention",
  "s3:PutObjectLegalHold",
  "s3:BypassGovernanceRetention",
  "s3:PutBucketPolicy",
  "s3:DeleteBucketPolicy",
  "s3:PutBucketAcl",
  "s3:PutLifecycleConfiguration",
  "s3:PutBucketVersioning",
  "s3:PutBucketObjectLockConfiguration",
  "s3:DeleteBucket",
];

/**
 * IAM policy for one host's key (AWS IAM user policy; radosgw user policy for S3-compatible
 * stores that support it). Put/get and multipart upload under `<host>/*`, list only with a
 * `<host>/` prefix, and an explicit deny of every delete, ACL, retention and bucket-config change.
 */
export function hostIamPolicy(bucket: string, host: string): IamPolicy {
  const prefix = hostPrefix(host);
  const bucketArn = `arn:aws:s3:::${bucket}`;
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReadWriteOwnPrefix",
        Effect: "Allow",
        Action: ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
        Resource: `${bucketArn}/${prefix}*`,
      },
      {
        Sid: "ListOwnPrefix",
        Effect: "Allow",
        Action: ["s3:ListBucket", "s3:ListBucketVersions"],
        Resource: bucketArn,
        Condition: { StringLike: { "s3:prefix": [prefix, `${prefix}*`] } },
      },
      {
        Sid: "NeverDeleteOrReconfigure",
        Effect: "Deny",
        Action: DENIED_ACTIONS,
        Resource: [bucketArn, `${bucketArn}/*`],
      },
    ],
  };
}

/** B2 application key capabilities for a host: no deleteFiles, no bucket or key management. */
export const B2_HOST_CAPABILITIES = ["listBuckets", "listFiles", "readFiles", "writeFiles"] as const;

export interface B2KeySpec {
  keyName: string;
  namePrefix: string;
  capabilities: string[];
}

export function b2HostKey(bucket: string, host: string): B2KeySpec {
  return {
    // B2 key names: letters, digits, hyphens, up to 100 chars.
    keyName: `restorable-${bucket}-${host}`.slice(0, 100),
    namePrefix: hostPrefix(host),
    capabilities: [...B2_HOST_CAPABILITIES],
  };
}

/** S3 PublicAccessBlockConfiguration (as `aws s3api put-public-access-block` takes it). */
export interface PublicAccessBlock {
  BlockPublicAcls: boolean;
  IgnorePublicAcls: boolean;
  BlockPublicPolicy: boolean;
  RestrictPublicBuckets: boolean;
}

/**
 * Why: a host key allowed s3:PutObject can attach a public ACL at upload time (RGW checks only
 * s3:PutObject for `put-object --acl public-read`, multipart and copy), so denying
 * s3:PutObjectAcl in the key's policy is not enough. Ignoring public ACLs on the bucket is.
 * aws: all four on. s3: BlockPublicAcls off, because some stores (radosgw 16) then refuse every
 * upload; IgnorePublicAcls makes any such ACL ineffective. b2: buckets are allPrivate and B2 has
 * no object ACLs.
 */
export function publicAccessBlockFor(provider: "aws" | "s3" | "b2", enabled: boolean): PublicAccessBlock | undefined {
  if (provider === "b2") return undefined;
  if (provider === "aws") return { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };
  if (!enabled) return undefined;
  return { BlockPublicAcls: false, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true };
}
