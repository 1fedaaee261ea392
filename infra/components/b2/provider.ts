/**
 * Backblaze B2 buckets and application keys as Pulumi dynamic resources, through B2's native API
 * (./api.ts, v3). No Pulumi B2 provider exists, and driving B2 through the AWS provider's bucket
 * resource trips over S3 sub-APIs B2 does not implement (see /work/shared/DESIGN.md).
 *
 * Serialization: Pulumi's closure serializer copies the provider objects below (and everything
 * they reference: the helpers in this file and ./api.ts) into the state as `__provider` and runs
 * that copy in a separate provider process. So the provider functions use only ./api.ts and
 * globals; they never touch `pulumi` or other project modules, and capture no secret.
 *
 * Secrets: the dynamic-provider host tells the engine it does not accept secrets, so the engine
 * hands the provider plain values and, on the way back, marks every output whose input of the same
 * name was secret as secret again. `delete` and `read` only get the stored outputs, never the
 * inputs, so the master credentials (`keyId`, `key`) have to be kept in the outputs; the resource
 * classes pass `key` through `pulumi.secret` and list it in `additionalSecretOutputs`, so it is
 * encrypted in the state like the input copy. `applicationKey` likewise. The typed classes do not
 * expose `key`; the only secret they expose is B2ApplicationKey.applicationKey.
 */
import * as pulumi from "@pulumi/pulumi";
import * as b2 from "./api";

export type B2LifecycleRule = b2.B2LifecycleRule;

export interface B2FileLock {
  mode: "governance" | "compliance";
  /** Default retention of every new file version, in days. */
  days: number;
}

/** What the bucket provider receives (the resource class fills in apiBase and fileLock). */
export interface B2BucketInputs {
  apiBase: string;
  keyId: string;
  key: string;
  bucketName: string;
  lifecycleRules: B2LifecycleRule[];
  fileLock: B2FileLock | null;
}

/** What the bucket provider stores. keyId/key stay because delete/read only get these. */
export interface B2BucketOutputs extends B2BucketInputs {
  bucketId: string;
  accountId: string;
  revision: number;
  bucketType: string;
  defaultServerSideEncryption: { mode: string | null; algorithm: string | null } | null;
}

export interface B2ApplicationKeyInputs {
  apiBase: string;
  keyId: string;
  key: string;
  keyName: string;
  bucketId: string;
  namePrefix: string;
  capabilities: string[];
}

export interface B2ApplicationKeyOutputs extends B2ApplicationKeyInputs {
  applicationKeyId: string;
  /** The secret half of the new key. */
  applicationKey: string;
  accountId: string;
}

const SSE_B2: b2.B2ServerSideEncryption = { mode: "SSE-B2", algorithm: "AES256" };

// ---------------------------------------------------------------- helpers (serialized with the providers)

function normalizeRules(rules: readonly B2LifecycleRule[] | null | undefined): Required<B2LifecycleRule>[] {
  return [...(rules ?? [])]
    .map((r) => ({
      fileNamePrefix: r.fileNamePrefix,
      daysFromUploadingToHiding: r.daysFromUploadingToHiding ?? null,
      daysFromHidingToDeleting: r.daysFromHidingToDeleting ?? null,
      daysFromStartingToCancelingUnfinishedLargeFiles: r.daysFromStartingToCancelingUnfinishedLargeFiles ?? null,
    }))
    .sort((a, b) => (a.fileNamePrefix < b.fileNamePrefix ? -1 : a.fileNamePrefix > b.fileNamePrefix ? 1 : 0));
}

function sameRules(a: readonly B2LifecycleRule[] | null | undefined, b: readonly B2LifecycleRule[] | null | undefined): boolean {
  return JSON.stringify(normalizeRules(a)) === JSON.stringify(normalizeRules(b));
}

function sameLock(a: B2FileLock | null | undefined, b: B2FileLock | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.mode === b.mode && a.days === b.days;
}

function retentionOf(lock: B2FileLock): b2.B2DefaultRetention {
  return { mode: lock.mode, period: { duration: lock.days, unit: "days" } };
}

/** The bucket's file lock as our input shape; undefined when the key may not read it. */
function lockOf(bucket: b2.B2Bucket): B2FileLock | null | undefined {
  const cfg = bucket.fileLockConfiguration;
  if (!cfg || !cfg.isClientAuthorizedToRead || !cfg.value) return undefined;
  if (!cfg.value.isFileLockEnabled) return null;
  const r = cfg.value.defaultRetention;
  if (!r || !r.mode || !r.period) return { mode: "governance", days: 0 };
  const days = r.period.unit === "years" ? r.period.duration * 365 : r.period.duration;
  return { mode: r.mode, days };
}

function sseOf(bucket: b2.B2Bucket): B2BucketOutputs["defaultServerSideEncryption"] {
  const sse = bucket.defaultServerSideEncryption;
  if (!sse || !sse.isClientAuthorizedToRead || !sse.value) return null;
  return { mode: sse.value.mode ?? null, algorithm: sse.value.algorithm ?? null };
}

function bucketOutputs(inputs: B2BucketInputs, bucket: b2.B2Bucket): B2BucketOutputs {
  const lock = lockOf(bucket);
  return {
    apiBase: inputs.apiBase,
    keyId: inputs.keyId,
    key: inputs.key,
    bucketName: bucket.bucketName,
    lifecycleRules: normalizeRules(bucket.lifecycleRules),
    fileLock: lock === undefined ? (inputs.fileLock ?? null) : lock,
    bucketId: bucket.bucketId,
    accountId: bucket.accountId,
    revision: bucket.revision,
    bucketType: bucket.bucketType,
    defaultServerSideEncryption: sseOf(bucket),
  };
}

function connect(p: { apiBase?: string; keyId: string; key: string }): Promise<b2.B2Session> {
  return b2.authorizeAccount(p.keyId, p.key, p.apiBase || undefined);
}

/** Pulumi marks not-yet-known values with this sentinel during previews. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function known(v: unknown): boolean {
  return v !== UNKNOWN && v !== undefined;
}

function checkBucketName(name: unknown): string | undefined {
  if (!known(name)) return undefined;
  if (typeof name !== "string") return "must be a string";
  if (name.length < 6 || name.length > 63) return `"${name}" must be 6 to 63 characters long`;
  if (!/^[A-Za-z0-9-]+$/.test(name)) return `"${name}" may only contain letters, digits and "-"`;
  if (/^b2-/i.test(name)) return `"${name}" must not start with "b2-" (reserved by Backblaze)`;
  return undefined;
}

function positiveOrNull(v: unknown): boolean {
  return v === null || v === undefined || (typeof v === "number" && Number.isInteger(v) && v > 0);
}

function checkRules(rules: unknown): string[] {
  if (!known(rules)) return [];
  if (!Array.isArray(rules)) return ["must be a list of lifecycle rules"];
  const out: string[] = [];
  if (rules.length > 100) out.push(`B2 allows at most 100 lifecycle rules per bucket, got ${rules.length}`);
  const prefixes: string[] = [];
  rules.forEach((r: unknown, i: number) => {
    if (r === null || typeof r !== "object") {
      out.push(`[${i}] must be an object`);
      return;
    }
    const rule = r as Record<string, unknown>;
    if (typeof rule.fileNamePrefix !== "string") out.push(`[${i}].fileNamePrefix must be a string`);
    else prefixes.push(rule.fileNamePrefix);
    const days = ["daysFromUploadingToHiding", "daysFromHidingToDeleting", "daysFromStartingToCancelingUnfinishedLargeFiles"];
    for (const k of days) {
      if (!positiveOrNull(rule[k])) out.push(`[${i}].${k} must be a positive whole number of days or null`);
    }
    if (days.every((k) => rule[k] === null || rule[k] === undefined)) out.push(`[${i}] does nothing: every days* value is null`);
    for (const k of Object.keys(rule)) {
      if (k !== "fileNamePrefix" && !days.includes(k)) out.push(`[${i}].${k} is not a B2 lifecycle rule field`);
    }
  });
  for (let i = 0; i < prefixes.length; i++) {
    for (let j = 0; j < prefixes.length; j++) {
      const a = prefixes[i] as string;
      const b = prefixes[j] as string;
      if (i < j && (a.startsWith(b) || b.startsWith(a))) {
        out.push(`rules for "${a}" and "${b}" overlap; B2 refuses two rules that apply to the same files`);
      }
    }
  }
  return out;
}

function checkCredentials(news: Record<string, unknown>): Array<{ property: string; reason: string }> {
  const f: Array<{ property: string; reason: string }> = [];
  if (known(news.keyId) && (typeof news.keyId !== "string" || news.keyId.length === 0)) {
    f.push({ property: "keyId", reason: "the B2 application key id must be a non-empty string" });
  }
  if (known(news.key) && (typeof news.key !== "string" || news.key.length === 0)) {
    // never echo the value
    f.push({ property: "key", reason: "the B2 application key must be a non-empty string" });
  }
  return f;
}

/** Clearer text for the errors users will meet; keeps the B2Error (operation/status/code) intact. */
function explainCreateBucket(e: unknown, name: string, mine: b2.B2Bucket | undefined): unknown {
  if (!b2.isB2Error(e, "duplicate_bucket_name")) return e;
  const hint = mine
    ? `bucket "${name}" already exists in this B2 account (bucketId ${mine.bucketId}); adopt it with \`pulumi import\` or choose another name`
    : `bucket names are global across all B2 accounts and "${name}" is taken; choose another name`;
  return b2.b2Error(e.operation, e.status, e.code, e.b2Message, hint);
}

// ---------------------------------------------------------------- bucket provider

export const b2BucketProvider: pulumi.dynamic.ResourceProvider<B2BucketInputs, B2BucketOutputs> = {
  async check(_olds, news) {
    const n = news as unknown as Record<string, unknown>;
    const failures = checkCredentials(n);
    const nameProblem = checkBucketName(n.bucketName);
    if (nameProblem) failures.push({ property: "bucketName", reason: nameProblem });
    for (const reason of checkRules(n.lifecycleRules)) failures.push({ property: "lifecycleRules", reason });
    const lock = n.fileLock as Record<string, unknown> | null | undefined;
    if (lock !== undefined && lock !== null && known(lock)) {
      if (lock.mode !== "governance" && lock.mode !== "compliance") {
        failures.push({ property: "fileLock", reason: `mode must be "governance" or "compliance", got ${JSON.stringify(lock.mode)}` });
      }
      if (typeof lock.days !== "number" || !Number.isInteger(lock.days) || lock.days < 1) {
        failures.push({ property: "fileLock", reason: `days must be a positive whole number, got ${JSON.stringify(lock.days)}` });
      }
    }
    return { inputs: news, failures };
  },

  async diff(_id, olds, news) {
    const replaces: string[] = [];
    if (olds.bucketName !== news.bucketName) replaces.push("bucketName");
    // B2 can turn file lock on for an existing bucket (b2_update_bucket fileLockEnabled: true) but never off.
    if (olds.fileLock && !news.fileLock) replaces.push("fileLock");
    const changes =
      replaces.length > 0 ||
      !sameRules(olds.lifecycleRules, news.lifecycleRules) ||
      !sameLock(olds.fileLock, news.fileLock) ||
      (olds.apiBase ?? "") !== (news.apiBase ?? "") ||
      olds.keyId !== news.keyId ||
      olds.key !== news.key;
    return { changes, replaces, deleteBeforeReplace: false };
  },

  async create(inputs) {
    const s = await connect(inputs);
    let created: b2.B2Bucket;
    try {
      created = await b2.createBucket(s, {
        bucketName: inputs.bucketName,
        bucketType: "allPrivate",
        lifecycleRules: normalizeRules(inputs.lifecycleRules),
        defaultServerSideEncryption: SSE_B2,
        fileLockEnabled: Boolean(inputs.fileLock),
      });
    } catch (e) {
      const mine = b2.isB2Error(e, "duplicate_bucket_name")
        ? await b2.getBucket(s, { bucketName: inputs.bucketName }).catch(() => undefined)
        : undefined;
      throw explainCreateBucket(e, inputs.bucketName, mine);
    }
    let bucket = created;
    if (inputs.fileLock) {
      // b2_create_bucket has no defaultRetention; set it right away, or undo the create (it is empty).
      try {
        bucket = await b2.updateBucket(s, {
          bucketId: created.bucketId,
          ifRevisionIs: created.revision,
          defaultRetention: retentionOf(inputs.fileLock),
        });
      } catch (e) {
        await b2.deleteBucket(s, created.bucketId).catch(() => undefined);
        throw e;
      }
    }
    return { id: bucket.bucketId, outs: bucketOutputs(inputs, bucket) };
  },

  async update(id, olds, news) {
    const s = await connect(news);
    const params = (revision: number): b2.UpdateBucketParams => ({
      bucketId: id,
      ifRevisionIs: revision,
      lifecycleRules: normalizeRules(news.lifecycleRules),
      defaultServerSideEncryption: SSE_B2,
      ...(news.fileLock && !olds.fileLock ? { fileLockEnabled: true as const } : {}),
      ...(news.fileLock ? { defaultRetention: retentionOf(news.fileLock) } : {}),
    });
    let bucket: b2.B2Bucket;
    try {
      bucket = await b2.updateBucket(s, params(olds.revision));
    } catch (e) {
      if (!b2.isB2Error(e, "conflict")) throw e;
      // Changed outside Pulumi since the last refresh: converge to the program like any provider
      // would, but only against the revision we just read (a concurrent writer still wins the race).
      const live = await b2.getBucket(s, { bucketId: id });
      if (!live) throw b2.b2Error("b2_update_bucket", 400, "bad_request", `bucket ${id} (${olds.bucketName}) no longer exists`, "run `pulumi refresh`");
      bucket = await b2.updateBucket(s, params(live.revision));
    }
    return { outs: bucketOutputs(news, bucket) };
  },

  async read(id, props) {
    const p = props as B2BucketOutputs;
    const s = await connect(p);
    const bucket = await b2.getBucket(s, { bucketId: id });
    if (!bucket) return { id: "", props: {} as B2BucketOutputs };
    return { id, props: bucketOutputs(p, bucket) };
  },

  async delete(id, props) {
    const s = await connect(props);
    try {
      await b2.deleteBucket(s, id);
    } catch (e) {
      if (b2.isB2Error(e, "cannot_delete_non_empty_bucket")) {
        throw b2.b2Error(
          e.operation,
          e.status,
          e.code,
          e.b2Message,
          `bucket "${props.bucketName}" (${id}) still holds file versions and B2 only deletes empty buckets; ` +
            "the backups were left in place. Delete every file version first if you really mean to remove it",
        );
      }
      // Already gone (deleted outside Pulumi)? Then there is nothing left to do.
      if (b2.isB2Error(e) && e.status === 400 && !(await b2.getBucket(s, { bucketId: id }).catch(() => true))) return;
      throw e;
    }
  },
};

// ---------------------------------------------------------------- application key provider

function sameSet(a: readonly string[] | null | undefined, b: readonly string[] | null | undefined): boolean {
  return JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...(b ?? [])].sort());
}

export const b2ApplicationKeyProvider: pulumi.dynamic.ResourceProvider<B2ApplicationKeyInputs, B2ApplicationKeyOutputs> = {
  async check(_olds, news) {
    const n = news as unknown as Record<string, unknown>;
    const failures = checkCredentials(n);
    if (known(n.keyName) && (typeof n.keyName !== "string" || !/^[A-Za-z0-9-]{1,100}$/.test(n.keyName))) {
      failures.push({ property: "keyName", reason: `${JSON.stringify(n.keyName)}: B2 key names are 1-100 letters, digits and "-"` });
    }
    if (known(n.capabilities)) {
      const caps = n.capabilities;
      if (!Array.isArray(caps) || caps.length === 0) {
        failures.push({ property: "capabilities", reason: "must list at least one capability" });
      } else {
        for (const c of caps) {
          if (typeof c !== "string" || !b2.B2_CAPABILITIES.includes(c)) {
            failures.push({ property: "capabilities", reason: `${JSON.stringify(c)} is not a B2 capability` });
          }
        }
      }
    }
    if (known(n.namePrefix) && typeof n.namePrefix === "string" && n.namePrefix !== "" && known(n.bucketId) && !n.bucketId) {
      failures.push({ property: "bucketId", reason: "B2 requires bucketId when namePrefix is set" });
    }
    return { inputs: news, failures };
  },

  async diff(_id, olds, news) {
    // B2 keys are immutable: any change to what the key is replaces it. New master credentials
    // (keyId/key) only update what is stored for the later delete.
    const replaces: string[] = [];
    if (olds.keyName !== news.keyName) replaces.push("keyName");
    if (olds.bucketId !== news.bucketId) replaces.push("bucketId");
    if ((olds.namePrefix ?? "") !== (news.namePrefix ?? "")) replaces.push("namePrefix");
    if (!sameSet(olds.capabilities, news.capabilities)) replaces.push("capabilities");
    if ((olds.apiBase ?? "") !== (news.apiBase ?? "")) replaces.push("apiBase");
    const changes = replaces.length > 0 || olds.keyId !== news.keyId || olds.key !== news.key;
    return { changes, replaces, deleteBeforeReplace: false };
  },

  async create(inputs) {
    const s = await connect(inputs);
    const k = await b2.createKey(s, {
      keyName: inputs.keyName,
      capabilities: [...inputs.capabilities],
      bucketId: inputs.bucketId,
      ...(inputs.namePrefix ? { namePrefix: inputs.namePrefix } : {}),
    });
    return {
      id: k.applicationKeyId,
      outs: {
        apiBase: inputs.apiBase,
        keyId: inputs.keyId,
        key: inputs.key,
        keyName: k.keyName,
        bucketId: k.bucketId ?? inputs.bucketId,
        namePrefix: k.namePrefix ?? "",
        capabilities: k.capabilities,
        applicationKeyId: k.applicationKeyId,
        applicationKey: k.applicationKey,
        accountId: k.accountId,
      },
    };
  },

  async update(_id, olds, news) {
    // Only the stored master credentials changed (everything else replaces); check they work.
    await connect(news);
    return { outs: { ...olds, apiBase: news.apiBase, keyId: news.keyId, key: news.key } };
  },

  async read(id, props) {
    const p = props as B2ApplicationKeyOutputs;
    const s = await connect(p);
    const k = await b2.findKey(s, id);
    if (!k) return { id: "", props: {} as B2ApplicationKeyOutputs };
    return {
      id,
      props: {
        ...p,
        keyName: k.keyName,
        bucketId: k.bucketId ?? "",
        namePrefix: k.namePrefix ?? "",
        capabilities: k.capabilities,
        applicationKeyId: k.applicationKeyId,
        accountId: k.accountId,
      },
    };
  },

  async delete(id, props) {
    const s = await connect(props);
    try {
      await b2.deleteKey(s, id);
    } catch (e) {
      if (b2.isB2Error(e) && e.status === 400 && !(await b2.findKey(s, id).catch(() => true))) return;
      throw e;
    }
  },
};

// ---------------------------------------------------------------- resource classes

/** The account key the provider manages buckets and keys with. */
export interface B2AccountKey {
  /** b2_authorize_account endpoint; https://api.backblazeb2.com unless testing. */
  apiBase?: string;
  /** Master (or writeBuckets/deleteBuckets/…-capable) application key id. */
  keyId: pulumi.Input<string>;
  /** Its application key; always handled as a secret. */
  key: pulumi.Input<string>;
}

export interface B2BucketArgs extends B2AccountKey {
  bucketName: string;
  lifecycleRules: B2LifecycleRule[];
  fileLock?: B2FileLock;
}

/**
 * A private B2 bucket with SSE-B2 default encryption, the given lifecycle rules and, optionally,
 * file lock with a default retention. Lifecycle/retention changes update in place
 * (b2_update_bucket with ifRevisionIs); a new name or turning file lock off replaces it.
 * Components should set `retainOnDelete: true` so `pulumi destroy` never deletes backups.
 */
export class B2Bucket extends pulumi.dynamic.Resource {
  declare public readonly bucketId: pulumi.Output<string>;
  declare public readonly bucketName: pulumi.Output<string>;
  declare public readonly accountId: pulumi.Output<string>;
  declare public readonly revision: pulumi.Output<number>;

  constructor(name: string, args: B2BucketArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      b2BucketProvider,
      name,
      {
        apiBase: args.apiBase ?? b2.B2_DEFAULT_API_BASE,
        keyId: args.keyId,
        key: pulumi.secret(args.key),
        bucketName: args.bucketName,
        lifecycleRules: args.lifecycleRules,
        fileLock: args.fileLock ?? null,
        bucketId: undefined,
        accountId: undefined,
        revision: undefined,
      },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["key"] }),
      "restorable",
      "B2Bucket",
    );
  }
}

export interface B2ApplicationKeyArgs extends B2AccountKey {
  keyName: string;
  bucketId: pulumi.Input<string>;
  namePrefix: string;
  capabilities: string[];
}

/** A B2 application key restricted to one bucket and a name prefix. Any change replaces it. */
export class B2ApplicationKey extends pulumi.dynamic.Resource {
  declare public readonly applicationKeyId: pulumi.Output<string>;
  /** Secret. */
  declare public readonly applicationKey: pulumi.Output<string>;
  declare public readonly capabilities: pulumi.Output<string[]>;
  declare public readonly namePrefix: pulumi.Output<string>;
  declare public readonly bucketId: pulumi.Output<string>;

  constructor(name: string, args: B2ApplicationKeyArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      b2ApplicationKeyProvider,
      name,
      {
        apiBase: args.apiBase ?? b2.B2_DEFAULT_API_BASE,
        keyId: args.keyId,
        key: pulumi.secret(args.key),
        keyName: args.keyName,
        bucketId: args.bucketId,
        namePrefix: args.namePrefix,
        capabilities: args.capabilities,
        applicationKeyId: undefined,
        applicationKey: undefined,
      },
      pulumi.mergeOptions(opts, { additionalSecretOutputs: ["applicationKey", "key"] }),
      "restorable",
      "B2ApplicationKey",
    );
  }
}
