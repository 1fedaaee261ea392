/**
 * A small client for the Backblaze B2 *native* API (version v3), just the calls restorable needs:
 * b2_authorize_account, b2_create_bucket, b2_update_bucket, b2_list_buckets, b2_delete_bucket,
 * b2_create_key, b2_delete_key, b2_list_keys.
 *
 * Request and response fields are the ones Backblaze documents for v3
 * (https://www.backblaze.com/apidocs/...):
 * - b2_authorize_account is a GET to `<apiBase>/b2api/v3/b2_authorize_account` with HTTP basic auth
 *   (`applicationKeyId:applicationKey`); v3 answers `{ accountId, authorizationToken,
 *   apiInfo: { storageApi: { apiUrl, downloadUrl, s3ApiUrl, capabilities, bucketId, bucketName,
 *   namePrefix, ... } } }`. Every other call is a POST of JSON to `<storageApi.apiUrl>/b2api/v3/<call>`
 *   with the token in the `Authorization` header.
 * - Errors are JSON `{ status, code, message }`; they become {@link B2Error}.
 * - 429 and 503 are retried with backoff (honouring `Retry-After`); 401 `expired_auth_token`
 *   re-authorizes once with the same credentials.
 *
 * This module is captured by Pulumi's closure serializer (the dynamic providers in provider.ts call
 * it), so it must stay self-contained: no imports, only globals (fetch, Buffer, setTimeout), no
 * `#private` fields, and no module-level Set/Map values (they are copied as empty objects).
 *
 * Secrets: the application key and the authorization token are never put into an error message, a
 * log line or a returned object other than the one the caller asked for (b2_create_key's
 * `applicationKey`). Messages coming back from the service are scrubbed of both as well.
 */

// Functions below use these private copies, never the exported names: tsc turns a reference to an
// exported const into `exports.NAME`, which Pulumi's closure serializer can drop when it sits in a
// template literal (seen with @pulumi/pulumi 3.270: the URL became /b2api/undefined/...).
const API_VERSION = "v3";
const DEFAULT_API_BASE = "https://api.backblazeb2.com";
export const B2_API_VERSION = API_VERSION;
export const B2_DEFAULT_API_BASE = DEFAULT_API_BASE;

/** A lifecycle rule exactly as b2_create_bucket / b2_update_bucket take and return it. */
/** B2's lifecycle rule, as the plan produces it (a type only: nothing is imported at run time). */
export type { B2LifecycleRule } from "../../plan/retention";
import type { B2LifecycleRule } from "../../plan/retention";

/** Default server-side encryption for a bucket (request shape). */
export interface B2ServerSideEncryption {
  mode: "SSE-B2" | "none";
  algorithm?: "AES256";
}

export type B2RetentionMode = "governance" | "compliance";

export interface B2RetentionPeriod {
  duration: number;
  unit: "days" | "years";
}

/** Default Object Lock ("file lock") retention of a bucket; `{ mode: null, period: null }` means none. */
export interface B2DefaultRetention {
  mode: B2RetentionMode | null;
  period: B2RetentionPeriod | null;
}

/** A field that B2 filters by the caller's capabilities (readBucketEncryption, readBucketRetentions). */
export interface B2Filtered<T> {
  isClientAuthorizedToRead: boolean;
  value: T | null;
}

/** A bucket as b2_create_bucket, b2_update_bucket, b2_list_buckets and b2_delete_bucket return it. */
export interface B2Bucket {
  accountId: string;
  bucketId: string;
  bucketName: string;
  bucketType: string;
  bucketInfo?: Record<string, string>;
  corsRules?: unknown[];
  lifecycleRules: B2LifecycleRule[];
  defaultServerSideEncryption?: B2Filtered<{ mode: string | null; algorithm?: string | null }>;
  fileLockConfiguration?: B2Filtered<{ defaultRetention: B2DefaultRetention; isFileLockEnabled: boolean | null }>;
  options?: string[];
  revision: number;
}

/** An application key as b2_list_keys and b2_delete_key return it (no secret). */
export interface B2Key {
  keyName: string;
  applicationKeyId: string;
  capabilities: string[];
  accountId: string;
  expirationTimestamp: number | null;
  bucketId: string | null;
  namePrefix: string | null;
  options?: string[];
}

/** b2_create_key's answer: the only time B2 ever returns the secret `applicationKey`. */
export interface B2CreatedKey extends B2Key {
  applicationKey: string;
}

/** The capability names b2_create_key accepts (v3 documentation). */
export const B2_CAPABILITIES: readonly string[] = [
  "listKeys",
  "writeKeys",
  "deleteKeys",
  "listAllBucketNames",
  "listBuckets",
  "readBuckets",
  "writeBuckets",
  "deleteBuckets",
  "readBucketRetentions",
  "writeBucketRetentions",
  "readBucketEncryption",
  "writeBucketEncryption",
  "readBucketReplications",
  "writeBucketReplications",
  "readBucketNotifications",
  "writeBucketNotifications",
  "listFiles",
  "readFiles",
  "shareFiles",
  "writeFiles",
  "deleteFiles",
  "readFileLegalHolds",
  "writeFileLegalHolds",
  "readFileRetentions",
  "writeFileRetentions",
  "bypassGovernance",
];

const UNAUTHORIZED_HINT = "check restorable:b2 key id/key and its capabilities";

/**
 * A failed B2 call: a plain `Error` (name "B2Error") whose `message` reads like
 * `b2_create_bucket failed (400 duplicate_bucket_name): Bucket name is already in use`.
 * `status` is 0 and `code` is "network_error" when no HTTP answer arrived.
 *
 * Made by {@link b2Error} and recognised by {@link isB2Error} rather than being a class: Pulumi's
 * closure serializer turns `class … extends Error` into a function whose instances lose `message`.
 */
export interface B2Error extends Error {
  readonly name: "B2Error";
  readonly operation: string;
  readonly status: number;
  readonly code: string;
  /** B2's own message text (scrubbed of secrets). */
  readonly b2Message: string;
}

export function b2Error(operation: string, status: number, code: string, b2Message: string, detail?: string): B2Error {
  let text = `${operation} failed (${status === 0 ? "" : `${status} `}${code}): ${b2Message}`;
  if (detail) text += ` — ${detail}`;
  if (status === 401 && code !== "expired_auth_token") text += ` — ${UNAUTHORIZED_HINT}`;
  const e = new Error(text);
  e.name = "B2Error";
  return Object.assign(e, { operation, status, code, b2Message }) as B2Error;
}

export function isB2Error(e: unknown, code?: string): e is B2Error {
  if (!(e instanceof Error) || e.name !== "B2Error") return false;
  const b = e as Partial<B2Error>;
  return typeof b.operation === "string" && typeof b.status === "number" && (code === undefined || b.code === code);
}

/** Tuning and test seams. Defaults suit the real service. */
export interface B2ClientOptions {
  /** Retries after a 429/503 (and, for idempotent calls, 408/500 and network errors). Default 4. */
  maxRetries?: number;
  /** First backoff delay in ms, doubled on each retry, when B2 sends no Retry-After. Default 1000. */
  retryBaseMs?: number;
  /** Upper bound for one backoff delay (also caps Retry-After). Default 30000. */
  retryMaxMs?: number;
  /** Per-request timeout in ms. Default 60000. */
  timeoutMs?: number;
}

/** What b2_authorize_account (v3) granted, plus the credentials kept out of sight for re-authorization. */
export interface B2Session {
  readonly accountId: string;
  /** `apiInfo.storageApi.apiUrl`: base URL of every call but b2_authorize_account. */
  readonly apiUrl: string;
  readonly downloadUrl: string | null;
  readonly s3ApiUrl: string | null;
  readonly capabilities: string[];
  readonly bucketId: string | null;
  readonly bucketName: string | null;
  readonly namePrefix: string | null;
  readonly apiBase: string;
  readonly options: B2ClientOptions;
  /** The current authorization token (a credential: never log it). */
  token(): string;
  /** Run b2_authorize_account again with the same credentials and swap in the new token. */
  reauthorize(): Promise<void>;
}

interface StorageApiInfo {
  apiUrl?: unknown;
  downloadUrl?: unknown;
  s3ApiUrl?: unknown;
  capabilities?: unknown;
  bucketId?: unknown;
  bucketName?: unknown;
  namePrefix?: unknown;
}

function scrub(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join("[redacted]");
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

function retryDelayMs(attempt: number, retryAfter: string | null, o: B2ClientOptions): number {
  const max = o.retryMaxMs ?? 30_000;
  if (retryAfter !== null && /^\d+$/.test(retryAfter.trim())) {
    return Math.min(Number(retryAfter.trim()) * 1000, max);
  }
  return Math.min((o.retryBaseMs ?? 1000) * 2 ** attempt, max);
}

interface RawResult {
  status: number;
  body: unknown;
  retryAfter: string | null;
}

/** One HTTP exchange; network failures and timeouts become a B2Error with status 0. */
async function exchange(
  operation: string,
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
  o: B2ClientOptions,
  secrets: Array<string | undefined>,
): Promise<RawResult> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(o.timeoutMs ?? 60_000) });
  } catch (e) {
    const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const why =
      err.name === "TimeoutError"
        ? `no answer within ${o.timeoutMs ?? 60_000} ms`
        : [err.message, err.cause?.code ?? err.cause?.message].filter(Boolean).join(": ");
    throw b2Error(operation, 0, "network_error", scrub(`${why} (${url})`, secrets));
  }
  const text = await res.text();
  let body: unknown = undefined;
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  return { status: res.status, body, retryAfter: res.headers.get("retry-after") };
}

function errorFrom(operation: string, r: RawResult, secrets: Array<string | undefined>): B2Error {
  const b = r.body;
  let code = "unknown";
  let message = `HTTP ${r.status}`;
  if (b !== null && typeof b === "object") {
    const j = b as { code?: unknown; message?: unknown };
    if (typeof j.code === "string") code = j.code;
    if (typeof j.message === "string" && j.message.length > 0) message = j.message;
  } else if (typeof b === "string" && b.trim().length > 0) {
    message = b.trim().slice(0, 200);
  }
  return b2Error(operation, r.status, code, scrub(message, secrets));
}

// A plain array, not a Set: Pulumi's closure serializer copies Sets/Maps as empty objects.
const IDEMPOTENT: readonly string[] = [
  "b2_authorize_account",
  "b2_list_buckets",
  "b2_list_keys",
  "b2_update_bucket",
  "b2_delete_bucket",
  "b2_delete_key",
];

/** Should this failure be retried (after a backoff) on the given attempt? */
function retryable(operation: string, e: B2Error): boolean {
  if (e.status === 429 || e.status === 503) return true;
  if (!IDEMPOTENT.includes(operation)) return false;
  return e.status === 0 || e.status === 408 || e.status === 500;
}

async function withRetries<T>(
  operation: string,
  o: B2ClientOptions,
  once: () => Promise<{ ok: true; value: T } | { ok: false; error: B2Error; retryAfter: string | null }>,
): Promise<T> {
  const max = o.maxRetries ?? 4;
  for (let attempt = 0; ; attempt++) {
    let r: { ok: true; value: T } | { ok: false; error: B2Error; retryAfter: string | null };
    try {
      r = await once();
    } catch (e) {
      if (!isB2Error(e)) throw e;
      r = { ok: false, error: e, retryAfter: null };
    }
    if (r.ok) return r.value;
    if (attempt >= max || !retryable(operation, r.error)) throw r.error;
    await sleep(retryDelayMs(attempt, r.retryAfter, o));
  }
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

/**
 * b2_authorize_account (v3). `apiBase` is the fixed authorization endpoint
 * (https://api.backblazeb2.com; a test double's URL in tests).
 */
export async function authorizeAccount(
  keyId: string,
  key: string,
  apiBase: string = DEFAULT_API_BASE,
  options: B2ClientOptions = {},
): Promise<B2Session> {
  const operation = "b2_authorize_account";
  const base = trimSlash(apiBase);
  const secrets = [key];
  const basic = Buffer.from(`${keyId}:${key}`, "utf8").toString("base64");
  const login = async (): Promise<{ accountId: string; token: string; storage: StorageApiInfo }> =>
    withRetries(operation, options, async () => {
      const r = await exchange(
        operation,
        `${base}/b2api/${API_VERSION}/b2_authorize_account`,
        { method: "GET", headers: { Authorization: `Basic ${basic}` } },
        options,
        secrets,
      );
      if (r.status !== 200) return { ok: false, error: errorFrom(operation, r, secrets), retryAfter: r.retryAfter };
      const b = (r.body ?? {}) as { accountId?: unknown; authorizationToken?: unknown; apiInfo?: { storageApi?: StorageApiInfo } };
      const storage = b.apiInfo?.storageApi;
      if (typeof b.accountId !== "string" || typeof b.authorizationToken !== "string" || !storage || typeof storage.apiUrl !== "string") {
        return {
          ok: false,
          error: b2Error(operation, r.status, "unexpected_response", "answer lacks accountId, authorizationToken or apiInfo.storageApi.apiUrl (is this the v3 API?)"),
          retryAfter: null,
        };
      }
      return { ok: true, value: { accountId: b.accountId, token: b.authorizationToken, storage } };
    });

  const first = await login();
  let token = first.token;
  const s = first.storage;
  const caps = Array.isArray(s.capabilities) ? s.capabilities.filter((c): c is string => typeof c === "string") : [];
  return {
    accountId: first.accountId,
    apiUrl: trimSlash(s.apiUrl as string),
    downloadUrl: str(s.downloadUrl),
    s3ApiUrl: str(s.s3ApiUrl),
    capabilities: caps,
    bucketId: str(s.bucketId),
    bucketName: str(s.bucketName),
    namePrefix: str(s.namePrefix),
    apiBase: base,
    options,
    token: () => token,
    reauthorize: async () => {
      token = (await login()).token;
    },
  };
}

/** POST a JSON body to one v3 call; retries 429/503, re-authorizes once on expired_auth_token. */
async function call<T>(s: B2Session, operation: string, body: Record<string, unknown>): Promise<T> {
  const url = `${s.apiUrl}/b2api/${API_VERSION}/${operation}`;
  let reauthorized = false;
  return withRetries<T>(operation, s.options, async () => {
    for (;;) {
      const token = s.token();
      const r = await exchange(
        operation,
        url,
        { method: "POST", headers: { Authorization: token, "Content-Type": "application/json" }, body: JSON.stringify(body) },
        s.options,
        [token],
      );
      if (r.status === 200) return { ok: true, value: r.body as T };
      const error = errorFrom(operation, r, [token]);
      if (error.status === 401 && error.code === "expired_auth_token" && !reauthorized) {
        reauthorized = true;
        await s.reauthorize();
        continue;
      }
      return { ok: false, error, retryAfter: r.retryAfter };
    }
  });
}

export interface CreateBucketParams {
  bucketName: string;
  bucketType: "allPrivate" | "allPublic";
  lifecycleRules?: B2LifecycleRule[];
  defaultServerSideEncryption?: B2ServerSideEncryption;
  fileLockEnabled?: boolean;
  bucketInfo?: Record<string, string>;
}

/** b2_create_bucket. (B2 takes no defaultRetention here: set it with {@link updateBucket}.) */
export function createBucket(s: B2Session, p: CreateBucketParams): Promise<B2Bucket> {
  const body: Record<string, unknown> = { accountId: s.accountId, bucketName: p.bucketName, bucketType: p.bucketType };
  if (p.bucketInfo !== undefined) body.bucketInfo = p.bucketInfo;
  if (p.lifecycleRules !== undefined) body.lifecycleRules = p.lifecycleRules;
  if (p.defaultServerSideEncryption !== undefined) body.defaultServerSideEncryption = p.defaultServerSideEncryption;
  if (p.fileLockEnabled !== undefined) body.fileLockEnabled = p.fileLockEnabled;
  return call<B2Bucket>(s, "b2_create_bucket", body);
}

export interface UpdateBucketParams {
  bucketId: string;
  /** Only update when the bucket's revision is still this one (409 conflict otherwise). */
  ifRevisionIs?: number;
  bucketType?: "allPrivate" | "allPublic";
  lifecycleRules?: B2LifecycleRule[];
  defaultServerSideEncryption?: B2ServerSideEncryption;
  defaultRetention?: B2DefaultRetention;
  /** Can only ever be set to true: B2 cannot turn file lock off again. */
  fileLockEnabled?: true;
}

/** b2_update_bucket: fields left undefined stay as they are; lifecycleRules replaces the whole list. */
export function updateBucket(s: B2Session, p: UpdateBucketParams): Promise<B2Bucket> {
  const body: Record<string, unknown> = { accountId: s.accountId, bucketId: p.bucketId };
  if (p.ifRevisionIs !== undefined) body.ifRevisionIs = p.ifRevisionIs;
  if (p.bucketType !== undefined) body.bucketType = p.bucketType;
  if (p.lifecycleRules !== undefined) body.lifecycleRules = p.lifecycleRules;
  if (p.defaultServerSideEncryption !== undefined) body.defaultServerSideEncryption = p.defaultServerSideEncryption;
  if (p.fileLockEnabled !== undefined) body.fileLockEnabled = p.fileLockEnabled;
  if (p.defaultRetention !== undefined) body.defaultRetention = p.defaultRetention;
  return call<B2Bucket>(s, "b2_update_bucket", body);
}

/** b2_list_buckets filtered to one bucket (by name or id); undefined when the account has no such bucket. */
export async function getBucket(s: B2Session, by: { bucketName: string } | { bucketId: string }): Promise<B2Bucket | undefined> {
  const body: Record<string, unknown> = { accountId: s.accountId, bucketTypes: ["all"], ...by };
  const r = await call<{ buckets?: B2Bucket[] }>(s, "b2_list_buckets", body);
  return (r.buckets ?? [])[0];
}

/** b2_delete_bucket. B2 refuses buckets that still hold any file version (400 cannot_delete_non_empty_bucket). */
export function deleteBucket(s: B2Session, bucketId: string): Promise<B2Bucket> {
  return call<B2Bucket>(s, "b2_delete_bucket", { accountId: s.accountId, bucketId });
}

export interface CreateKeyParams {
  keyName: string;
  capabilities: string[];
  /** Restrict the key to this bucket (v3: a single bucketId). */
  bucketId?: string;
  /** Restrict file access to names starting with this; v3 requires bucketId with it. */
  namePrefix?: string;
  validDurationInSeconds?: number;
}

/** b2_create_key. The answer holds the secret `applicationKey`: treat it as a secret from here on. */
export function createKey(s: B2Session, p: CreateKeyParams): Promise<B2CreatedKey> {
  const body: Record<string, unknown> = { accountId: s.accountId, capabilities: p.capabilities, keyName: p.keyName };
  if (p.bucketId !== undefined) body.bucketId = p.bucketId;
  if (p.namePrefix !== undefined) body.namePrefix = p.namePrefix;
  if (p.validDurationInSeconds !== undefined) body.validDurationInSeconds = p.validDurationInSeconds;
  return call<B2CreatedKey>(s, "b2_create_key", body);
}

/** b2_delete_key. */
export function deleteKey(s: B2Session, applicationKeyId: string): Promise<B2Key> {
  return call<B2Key>(s, "b2_delete_key", { applicationKeyId });
}

/** One page of b2_list_keys. */
export function listKeys(
  s: B2Session,
  p: { maxKeyCount?: number; startApplicationKeyId?: string } = {},
): Promise<{ keys: B2Key[]; nextApplicationKeyId: string | null }> {
  const body: Record<string, unknown> = { accountId: s.accountId };
  if (p.maxKeyCount !== undefined) body.maxKeyCount = p.maxKeyCount;
  if (p.startApplicationKeyId !== undefined) body.startApplicationKeyId = p.startApplicationKeyId;
  return call(s, "b2_list_keys", body);
}

/** Page through b2_list_keys for one key id; undefined when the account has no such key. */
export async function findKey(s: B2Session, applicationKeyId: string): Promise<B2Key | undefined> {
  let start: string | undefined = undefined;
  for (;;) {
    const page: { keys: B2Key[]; nextApplicationKeyId: string | null } = await listKeys(s, {
      maxKeyCount: 1000,
      ...(start !== undefined ? { startApplicationKeyId: start } : {}),
    });
    const hit = (page.keys ?? []).find((k) => k.applicationKeyId === applicationKeyId);
    if (hit) return hit;
    if (!page.nextApplicationKeyId) return undefined;
    start = page.nextApplicationKeyId;
  }
}
