/**
 * Contract double of the Backblaze B2 native API, version v3 — the documented subset restorable
 * uses, served over real HTTP on 127.0.0.1 so the client in infra/components/b2/api.ts is exercised
 * end to end (fetch, headers, JSON, status codes) without the B2 cloud, which cannot be reached here.
 *
 * It is a *contract double*, not a simulator: request and response fields are the ones Backblaze
 * documents (https://www.backblaze.com/apidocs/ b2-authorize-account, b2-create-bucket,
 * b2-update-bucket, b2-list-buckets, b2-delete-bucket, b2-create-key, b2-delete-key, b2-list-keys;
 * Lifecycle Rules; Object Lock; Server-Side Encryption), and it enforces the rules those pages state
 * that matter to restorable:
 * - b2_authorize_account: GET `/b2api/v3/b2_authorize_account` with HTTP basic auth
 *   `applicationKeyId:applicationKey` (the account id works in place of the master key id);
 *   answers `{ accountId, authorizationToken, apiInfo: { storageApi: { apiUrl, downloadUrl,
 *   s3ApiUrl, capabilities, bucketId, bucketName, namePrefix, infoType, ... } } }`;
 *   a wrong id or key -> 401 `unauthorized`.
 * - Every other call: POST JSON to `<apiUrl>/b2api/v3/<call>` with the token in `Authorization`.
 *   The double's apiUrl has its own path prefix (`/api001`), so a client that ignores
 *   `apiInfo.storageApi.apiUrl` gets 404s. A missing/unknown token -> 401 `bad_auth_token`, an
 *   expired one -> 401 `expired_auth_token`, a token without the call's capability -> 401
 *   `unauthorized`.
 * - Buckets: names 6-63 characters of letters, digits and "-", not starting with "b2-", globally
 *   unique ignoring case (400 `duplicate_bucket_name`); bucketType allPrivate|allPublic;
 *   lifecycleRules: at most 100, fields fileNamePrefix (required) and the three days* fields
 *   (positive integers or null, not all null), no two rules whose prefixes overlap;
 *   defaultServerSideEncryption `{ mode: "SSE-B2", algorithm: "AES256" }` or `{ mode: "none" }`;
 *   fileLockEnabled (create, or update to true; never back to false); defaultRetention
 *   `{ mode, period: { duration, unit: "days"|"years" } }` only on update and only on a file-lock
 *   bucket; ifRevisionIs mismatch -> 409 `conflict`; every update bumps `revision`;
 *   b2_delete_bucket of a bucket holding any file version -> 400 `cannot_delete_non_empty_bucket`.
 *   Responses carry `defaultServerSideEncryption` and `fileLockConfiguration` wrapped in
 *   `{ isClientAuthorizedToRead, value }` (filtered by readBucketEncryption/readBucketRetentions).
 * - Keys: keyName 1-100 of letters, digits and "-"; capabilities non-empty and from the documented
 *   list; with bucketId only bucket-level capabilities; namePrefix requires bucketId (v3);
 *   b2_create_key is the only answer that contains `applicationKey`.
 *
 * Stricter than the service where the docs are silent: a request field outside the documented set
 * is refused with 400 `bad_request`, so the client cannot come to rely on undocumented parameters
 * (e.g. defaultRetention on b2_create_bucket). Message texts are the double's own; clients must
 * key on `status` + `code`, which are the documented ones.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";

export const B2_DOUBLE_CAPABILITIES = [
  "listKeys", "writeKeys", "deleteKeys", "listAllBucketNames", "listBuckets", "readBuckets", "writeBuckets",
  "deleteBuckets", "readBucketRetentions", "writeBucketRetentions", "readBucketEncryption", "writeBucketEncryption",
  "readBucketReplications", "writeBucketReplications", "readBucketNotifications", "writeBucketNotifications",
  "listFiles", "readFiles", "shareFiles", "writeFiles", "deleteFiles", "readFileLegalHolds", "writeFileLegalHolds",
  "readFileRetentions", "writeFileRetentions", "bypassGovernance",
] as const;

/** With bucketId set, b2_create_key accepts only these (v3 documentation). */
const BUCKET_LEVEL_CAPABILITIES = new Set([
  "listAllBucketNames", "listBuckets", "readBuckets", "readBucketEncryption", "writeBucketEncryption",
  "readBucketRetentions", "writeBucketRetentions", "readBucketNotifications", "writeBucketNotifications",
  "listFiles", "readFiles", "shareFiles", "writeFiles", "deleteFiles", "readFileLegalHolds", "writeFileLegalHolds",
  "readFileRetentions", "writeFileRetentions", "bypassGovernance",
]);

export interface DoubleLifecycleRule {
  fileNamePrefix: string;
  daysFromUploadingToHiding?: number | null;
  daysFromHidingToDeleting?: number | null;
  daysFromStartingToCancelingUnfinishedLargeFiles?: number | null;
}

export interface DoubleBucket {
  accountId: string;
  bucketId: string;
  bucketName: string;
  bucketType: string;
  bucketInfo: Record<string, string>;
  lifecycleRules: DoubleLifecycleRule[];
  sse: { mode: string | null; algorithm: string | null };
  fileLockEnabled: boolean;
  defaultRetention: { mode: string | null; period: { duration: number; unit: string } | null };
  revision: number;
  /** Fake file versions; a bucket with any cannot be deleted. */
  files: string[];
}

export interface DoubleKey {
  accountId: string;
  applicationKeyId: string;
  applicationKey: string;
  keyName: string;
  capabilities: string[];
  bucketId: string | null;
  namePrefix: string | null;
  expirationTimestamp: number | null;
}

export interface DoubleCall {
  op: string;
  status: number;
  /** The parsed JSON request body (b2_authorize_account has none; its credentials are not recorded). */
  body: Record<string, unknown> | undefined;
}

export interface B2Double {
  /** What the client passes as apiBase (the b2_authorize_account endpoint). */
  apiBase: string;
  /** `apiInfo.storageApi.apiUrl` the double hands out (same server, own path prefix). */
  apiUrl: string;
  accountId: string;
  masterKeyId: string;
  masterKey: string;
  state: { buckets: Map<string, DoubleBucket>; keys: Map<string, DoubleKey>; calls: DoubleCall[] };
  /** The next call of `op` (e.g. "b2_create_bucket") fails with this answer, once. */
  failNext(op: string, status: number, code: string, message: string, opts?: { retryAfterSeconds?: number }): void;
  /** Put a fake file version into a bucket (makes b2_delete_bucket refuse it). */
  addFile(bucketId: string, fileName: string): void;
  /** Reserve a bucket name as if another B2 account owned it. */
  takeNameElsewhere(bucketName: string): void;
  /** Expire every token handed out so far (next use -> 401 expired_auth_token). */
  expireTokens(): void;
  stop(): Promise<void>;
}

class Fail {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
  ) {}
}

const bad = (message: string) => new Fail(400, "bad_request", message);

function hex(n: number): string {
  return randomBytes(n).toString("hex");
}

function onlyFields(body: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw bad(`unknown field in request: ${k}`);
  }
}

function requireString(body: Record<string, unknown>, field: string): string {
  const v = body[field];
  if (typeof v !== "string" || v.length === 0) throw bad(`required field ${field} is missing or not a string`);
  return v;
}

function validateLifecycleRules(v: unknown): DoubleLifecycleRule[] {
  if (!Array.isArray(v)) throw bad("lifecycleRules must be an array");
  if (v.length > 100) throw bad("too many lifecycle rules (at most 100)");
  const days = ["daysFromUploadingToHiding", "daysFromHidingToDeleting", "daysFromStartingToCancelingUnfinishedLargeFiles"];
  const rules: DoubleLifecycleRule[] = [];
  for (const r of v) {
    if (r === null || typeof r !== "object" || Array.isArray(r)) throw bad("each lifecycle rule must be an object");
    const rule = r as Record<string, unknown>;
    for (const k of Object.keys(rule)) {
      if (k !== "fileNamePrefix" && !days.includes(k)) throw bad(`unknown lifecycle rule field: ${k}`);
    }
    if (typeof rule.fileNamePrefix !== "string") throw bad("lifecycle rule fileNamePrefix is required");
    for (const k of days) {
      const d = rule[k];
      if (d !== undefined && d !== null && !(typeof d === "number" && Number.isInteger(d) && d > 0)) {
        throw bad(`lifecycle rule ${k} must be a positive integer or null`);
      }
    }
    if (days.every((k) => rule[k] === undefined || rule[k] === null)) throw bad("lifecycle rule must set at least one days value");
    rules.push({ ...(rule as unknown as DoubleLifecycleRule) });
  }
  for (const a of rules) {
    for (const b of rules) {
      if (a !== b && a.fileNamePrefix.startsWith(b.fileNamePrefix)) {
        throw bad(`lifecycle rules for "${a.fileNamePrefix}" and "${b.fileNamePrefix}" apply to the same files`);
      }
    }
  }
  return rules;
}

function validateSse(v: unknown): { mode: string | null; algorithm: string | null } {
  const sse = v as { mode?: unknown; algorithm?: unknown } | null;
  if (sse === null || typeof sse !== "object") throw bad("defaultServerSideEncryption must be an object");
  if (sse.mode === "SSE-B2") {
    if (sse.algorithm !== undefined && sse.algorithm !== "AES256") throw bad("SSE-B2 algorithm must be AES256");
    return { mode: "SSE-B2", algorithm: "AES256" };
  }
  if (sse.mode === "none") return { mode: null, algorithm: null };
  throw bad(`defaultServerSideEncryption mode must be SSE-B2 or none, got ${JSON.stringify(sse.mode)}`);
}

function validateRetention(v: unknown): DoubleBucket["defaultRetention"] {
  const r = v as { mode?: unknown; period?: unknown } | null;
  if (r === null || typeof r !== "object") throw bad("defaultRetention must be an object");
  if (r.mode === null || r.mode === undefined) {
    if (r.period !== null && r.period !== undefined) throw bad("defaultRetention period requires a mode");
    return { mode: null, period: null };
  }
  if (r.mode !== "governance" && r.mode !== "compliance") throw bad(`defaultRetention mode must be governance or compliance`);
  const p = r.period as { duration?: unknown; unit?: unknown } | null | undefined;
  if (!p || typeof p !== "object") throw bad("defaultRetention with a mode requires a period");
  if (typeof p.duration !== "number" || !Number.isInteger(p.duration) || p.duration < 1) throw bad("period duration must be a positive integer");
  if (p.unit !== "days" && p.unit !== "years") throw bad("period unit must be days or years");
  return { mode: r.mode, period: { duration: p.duration, unit: p.unit } };
}

export async function startB2Double(): Promise<B2Double> {
  const accountId = hex(6);
  const masterKeyId = accountId; // B2: the account id can be used in place of the master key id
  const masterKey = `K000${hex(15)}`;
  const buckets = new Map<string, DoubleBucket>();
  const keys = new Map<string, DoubleKey>();
  const calls: DoubleCall[] = [];
  const takenElsewhere = new Set<string>();
  const tokens = new Map<string, { keyId: string; expired: boolean }>();
  const failures = new Map<string, Array<{ fail: Fail; retryAfterSeconds?: number }>>();
  const master: DoubleKey = {
    accountId,
    applicationKeyId: masterKeyId,
    applicationKey: masterKey,
    keyName: "master",
    capabilities: [...B2_DOUBLE_CAPABILITIES],
    bucketId: null,
    namePrefix: null,
    expirationTimestamp: null,
  };
  let counter = 0;
  let base = "";
  const API_PREFIX = "/api001";

  const keyFor = (token: string): DoubleKey => {
    const t = tokens.get(token);
    if (!t) throw new Fail(401, "bad_auth_token", "Invalid authorization token");
    if (t.expired) throw new Fail(401, "expired_auth_token", "Authorization token has expired");
    const k = t.keyId === masterKeyId ? master : keys.get(t.keyId);
    if (!k) throw new Fail(401, "bad_auth_token", "Invalid authorization token");
    return k;
  };
  const need = (k: DoubleKey, capability: string): void => {
    if (!k.capabilities.includes(capability)) throw new Fail(401, "unauthorized", `application key lacks the ${capability} capability`);
  };
  const needAccount = (body: Record<string, unknown>): void => {
    const a = requireString(body, "accountId");
    if (a !== accountId) throw bad(`Account ${a} does not exist`);
  };
  const bucketById = (id: unknown): DoubleBucket => {
    const b = typeof id === "string" ? buckets.get(id) : undefined;
    if (!b) throw bad(`Bucket id ${String(id)} does not exist`);
    return b;
  };
  const bucketJson = (b: DoubleBucket, k: DoubleKey): Record<string, unknown> => ({
    accountId: b.accountId,
    bucketId: b.bucketId,
    bucketName: b.bucketName,
    bucketType: b.bucketType,
    bucketInfo: b.bucketInfo,
    corsRules: [],
    defaultServerSideEncryption: k.capabilities.includes("readBucketEncryption")
      ? { isClientAuthorizedToRead: true, value: { algorithm: b.sse.algorithm, mode: b.sse.mode } }
      : { isClientAuthorizedToRead: false, value: null },
    fileLockConfiguration: k.capabilities.includes("readBucketRetentions")
      ? { isClientAuthorizedToRead: true, value: { defaultRetention: b.defaultRetention, isFileLockEnabled: b.fileLockEnabled } }
      : { isClientAuthorizedToRead: false, value: null },
    lifecycleRules: b.lifecycleRules,
    options: ["s3"],
    replicationConfiguration: { isClientAuthorizedToRead: true, value: null },
    revision: b.revision,
  });
  const keyJson = (k: DoubleKey): Record<string, unknown> => ({
    accountId: k.accountId,
    applicationKeyId: k.applicationKeyId,
    bucketId: k.bucketId,
    capabilities: k.capabilities,
    expirationTimestamp: k.expirationTimestamp,
    keyName: k.keyName,
    namePrefix: k.namePrefix,
    options: ["s3"],
  });

  const authorize = (req: IncomingMessage): Record<string, unknown> => {
    const h = req.headers.authorization ?? "";
    const m = /^Basic\s+(.+)$/i.exec(h);
    if (!m) throw new Fail(401, "bad_auth_token", "Authorization header with basic auth is required");
    const decoded = Buffer.from(m[1] ?? "", "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const id = colon < 0 ? decoded : decoded.slice(0, colon);
    const secret = colon < 0 ? "" : decoded.slice(colon + 1);
    const k = id === masterKeyId ? master : keys.get(id);
    if (!k || k.applicationKey !== secret) throw new Fail(401, "unauthorized", "invalid application key id or application key");
    const token = `4_${hex(20)}`;
    tokens.set(token, { keyId: k.applicationKeyId, expired: false });
    const restricted = k.bucketId !== null ? buckets.get(k.bucketId) : undefined;
    return {
      accountId,
      apiInfo: {
        groupsApi: null,
        storageApi: {
          absoluteMinimumPartSize: 5_000_000,
          apiUrl: `${base}${API_PREFIX}`,
          bucketId: k.bucketId,
          bucketName: restricted ? restricted.bucketName : null,
          capabilities: k.capabilities,
          downloadUrl: `${base}/download`,
          infoType: "storageApi",
          namePrefix: k.namePrefix,
          recommendedPartSize: 100_000_000,
          s3ApiUrl: `${base}/s3`,
        },
      },
      applicationKeyExpirationTimestamp: k.expirationTimestamp,
      authorizationToken: token,
    };
  };

  const handlers: Record<string, (body: Record<string, unknown>, k: DoubleKey) => Record<string, unknown>> = {
    b2_create_bucket(body, k) {
      need(k, "writeBuckets");
      onlyFields(body, ["accountId", "bucketName", "bucketType", "bucketInfo", "corsRules", "fileLockEnabled", "lifecycleRules", "replicationConfiguration", "defaultServerSideEncryption"]);
      needAccount(body);
      const name = requireString(body, "bucketName");
      if (name.length < 6 || name.length > 63 || !/^[A-Za-z0-9-]+$/.test(name) || /^b2-/i.test(name)) {
        throw bad(`Invalid bucketName: ${name}`);
      }
      if (body.bucketType !== "allPrivate" && body.bucketType !== "allPublic") throw bad(`Invalid bucketType: ${String(body.bucketType)}`);
      const lower = name.toLowerCase();
      if (takenElsewhere.has(lower) || [...buckets.values()].some((b) => b.bucketName.toLowerCase() === lower)) {
        throw new Fail(400, "duplicate_bucket_name", "Bucket name is already in use.");
      }
      if (buckets.size >= 100) throw new Fail(400, "too_many_buckets", "Account already has the maximum number of buckets");
      const rules = body.lifecycleRules === undefined ? [] : validateLifecycleRules(body.lifecycleRules);
      let sse: DoubleBucket["sse"] = { mode: null, algorithm: null };
      if (body.defaultServerSideEncryption !== undefined) {
        need(k, "writeBucketEncryption");
        sse = validateSse(body.defaultServerSideEncryption);
      }
      if (body.fileLockEnabled !== undefined && typeof body.fileLockEnabled !== "boolean") throw bad("fileLockEnabled must be a boolean");
      if (body.fileLockEnabled === true) need(k, "writeBucketRetentions");
      const b: DoubleBucket = {
        accountId,
        bucketId: `${hex(12)}`,
        bucketName: name,
        bucketType: body.bucketType,
        bucketInfo: (body.bucketInfo as Record<string, string> | undefined) ?? {},
        lifecycleRules: rules,
        sse,
        fileLockEnabled: body.fileLockEnabled === true,
        defaultRetention: { mode: null, period: null },
        revision: 1,
        files: [],
      };
      buckets.set(b.bucketId, b);
      return bucketJson(b, k);
    },

    b2_update_bucket(body, k) {
      need(k, "writeBuckets");
      onlyFields(body, ["accountId", "bucketId", "bucketType", "bucketInfo", "corsRules", "defaultRetention", "defaultServerSideEncryption", "lifecycleRules", "replicationConfiguration", "fileLockEnabled", "ifRevisionIs"]);
      needAccount(body);
      const b = bucketById(body.bucketId);
      if (body.ifRevisionIs !== undefined) {
        if (typeof body.ifRevisionIs !== "number") throw bad("ifRevisionIs must be a number");
        if (body.ifRevisionIs !== b.revision) {
          throw new Fail(409, "conflict", `bucket revision is ${b.revision}, not ${body.ifRevisionIs}`);
        }
      }
      // validate everything before changing anything
      const rules = body.lifecycleRules === undefined ? undefined : validateLifecycleRules(body.lifecycleRules);
      if (body.bucketType !== undefined && body.bucketType !== "allPrivate" && body.bucketType !== "allPublic") throw bad(`Invalid bucketType: ${String(body.bucketType)}`);
      let sse: DoubleBucket["sse"] | undefined;
      if (body.defaultServerSideEncryption !== undefined) {
        need(k, "writeBucketEncryption");
        sse = validateSse(body.defaultServerSideEncryption);
      }
      if (body.fileLockEnabled !== undefined) {
        if (typeof body.fileLockEnabled !== "boolean") throw bad("fileLockEnabled must be a boolean");
        need(k, "writeBucketRetentions");
        if (body.fileLockEnabled === false && b.fileLockEnabled) throw bad("file lock cannot be disabled once enabled");
      }
      const lockAfter = b.fileLockEnabled || body.fileLockEnabled === true;
      let retention: DoubleBucket["defaultRetention"] | undefined;
      if (body.defaultRetention !== undefined) {
        need(k, "writeBucketRetentions");
        if (!lockAfter) throw bad("defaultRetention requires a bucket with file lock enabled");
        retention = validateRetention(body.defaultRetention);
      }
      if (rules !== undefined) b.lifecycleRules = rules;
      if (typeof body.bucketType === "string") b.bucketType = body.bucketType;
      if (sse !== undefined) b.sse = sse;
      if (body.bucketInfo !== undefined) b.bucketInfo = body.bucketInfo as Record<string, string>;
      b.fileLockEnabled = lockAfter;
      if (retention !== undefined) b.defaultRetention = retention;
      b.revision += 1;
      return bucketJson(b, k);
    },

    b2_list_buckets(body, k) {
      need(k, "listBuckets");
      onlyFields(body, ["accountId", "bucketId", "bucketName", "bucketTypes"]);
      needAccount(body);
      let list = [...buckets.values()];
      if (typeof body.bucketId === "string") list = list.filter((b) => b.bucketId === body.bucketId);
      if (typeof body.bucketName === "string") list = list.filter((b) => b.bucketName === body.bucketName);
      if (k.bucketId !== null) {
        if (body.bucketId !== k.bucketId && (typeof body.bucketName !== "string" || buckets.get(k.bucketId)?.bucketName !== body.bucketName)) {
          throw new Fail(401, "unauthorized", "a key restricted to a bucket must name that bucket");
        }
      }
      if (body.bucketTypes !== undefined) {
        const t = body.bucketTypes;
        if (!Array.isArray(t) || t.length === 0 || (t.includes("all") && t.length > 1)) throw bad("invalid bucketTypes");
        if (!t.includes("all")) list = list.filter((b) => t.includes(b.bucketType));
      }
      list.sort((a, b) => a.bucketName.localeCompare(b.bucketName));
      return { buckets: list.map((b) => bucketJson(b, k)) };
    },

    b2_delete_bucket(body, k) {
      need(k, "deleteBuckets");
      onlyFields(body, ["accountId", "bucketId"]);
      needAccount(body);
      const b = bucketById(body.bucketId);
      if (b.files.length > 0) {
        throw new Fail(400, "cannot_delete_non_empty_bucket", "Cannot delete non-empty bucket");
      }
      buckets.delete(b.bucketId);
      return bucketJson(b, k);
    },

    b2_create_key(body, k) {
      need(k, "writeKeys");
      onlyFields(body, ["accountId", "capabilities", "keyName", "validDurationInSeconds", "bucketId", "namePrefix"]);
      needAccount(body);
      const keyName = body.keyName;
      if (typeof keyName !== "string" || !/^[A-Za-z0-9-]{1,100}$/.test(keyName)) throw bad(`Invalid keyName: ${String(keyName)}`);
      const caps = body.capabilities;
      if (!Array.isArray(caps) || caps.length === 0) throw bad("capabilities must be a non-empty array");
      for (const c of caps) {
        if (typeof c !== "string" || !(B2_DOUBLE_CAPABILITIES as readonly string[]).includes(c)) throw bad(`unknown capability: ${String(c)}`);
      }
      let bucketId: string | null = null;
      if (body.bucketId !== undefined && body.bucketId !== null) {
        bucketId = bucketById(body.bucketId).bucketId;
        for (const c of caps as string[]) {
          if (!BUCKET_LEVEL_CAPABILITIES.has(c)) throw bad(`capability ${c} is not allowed for a key restricted to a bucket`);
        }
      }
      let namePrefix: string | null = null;
      if (body.namePrefix !== undefined && body.namePrefix !== null) {
        if (typeof body.namePrefix !== "string") throw bad("namePrefix must be a string");
        if (bucketId === null) throw bad("namePrefix requires bucketId");
        namePrefix = body.namePrefix;
      }
      let expirationTimestamp: number | null = null;
      if (body.validDurationInSeconds !== undefined) {
        const d = body.validDurationInSeconds;
        if (typeof d !== "number" || !Number.isInteger(d) || d < 1 || d >= 1000 * 86400) throw bad("validDurationInSeconds out of range");
        expirationTimestamp = Date.now() + d * 1000;
      }
      counter += 1;
      const created: DoubleKey = {
        accountId,
        applicationKeyId: `000${accountId}${String(counter).padStart(10, "0")}`,
        applicationKey: `K000${hex(15)}`,
        keyName,
        capabilities: [...(caps as string[])],
        bucketId,
        namePrefix,
        expirationTimestamp,
      };
      keys.set(created.applicationKeyId, created);
      return { ...keyJson(created), applicationKey: created.applicationKey };
    },

    b2_delete_key(body, k) {
      need(k, "deleteKeys");
      onlyFields(body, ["applicationKeyId"]);
      const id = requireString(body, "applicationKeyId");
      const found = keys.get(id);
      if (!found) throw bad(`application key ${id} does not exist`);
      keys.delete(id);
      for (const t of tokens.values()) if (t.keyId === id) t.expired = true;
      return keyJson(found);
    },

    b2_list_keys(body, k) {
      need(k, "listKeys");
      onlyFields(body, ["accountId", "maxKeyCount", "startApplicationKeyId"]);
      needAccount(body);
      const max = body.maxKeyCount === undefined ? 100 : body.maxKeyCount;
      if (typeof max !== "number" || !Number.isInteger(max) || max < 1 || max > 10000) throw bad("maxKeyCount out of range");
      const all = [...keys.values()].sort((a, b) => a.applicationKeyId.localeCompare(b.applicationKeyId));
      const start = typeof body.startApplicationKeyId === "string" ? body.startApplicationKeyId : "";
      const from = all.filter((x) => x.applicationKeyId >= start);
      const page = from.slice(0, max);
      const next = from[max];
      return { keys: page.map(keyJson), nextApplicationKeyId: next ? next.applicationKeyId : null };
    },
  };

  const send = (res: ServerResponse, status: number, json: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(json);
    res.writeHead(status, { "Content-Type": "application/json;charset=UTF-8", "Cache-Control": "max-age=0, no-cache, no-store", ...headers });
    res.end(text);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", base);
      const auth = /^\/b2api\/v3\/(b2_authorize_account)$/.exec(url.pathname);
      const api = new RegExp(`^${API_PREFIX}/b2api/v3/(b2_[a-z_]+)$`).exec(url.pathname);
      const op = auth?.[1] ?? api?.[1];
      if (!op || (auth && req.method !== "GET") || (api && (req.method !== "POST" || !(op in handlers)))) {
        return send(res, 404, { status: 404, code: "not_found", message: `no such call: ${req.method} ${url.pathname}` });
      }
      let body: Record<string, unknown> | undefined;
      const record = (status: number): void => {
        calls.push({ op, status, body });
      };
      try {
        if (api) {
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            const parsed: unknown = text.length ? JSON.parse(text) : {};
            if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
            body = parsed as Record<string, unknown>;
          } catch {
            throw bad("request body is not a JSON object");
          }
        }
        const queued = failures.get(op);
        const injected = queued?.shift();
        if (injected) {
          record(injected.fail.status);
          const headers: Record<string, string> = injected.retryAfterSeconds !== undefined ? { "Retry-After": String(injected.retryAfterSeconds) } : {};
          return send(res, injected.fail.status, { status: injected.fail.status, code: injected.fail.code, message: injected.fail.message }, headers);
        }
        let out: Record<string, unknown>;
        if (auth) {
          out = authorize(req);
        } else {
          const k = keyFor(req.headers.authorization ?? "");
          const handler = handlers[op];
          if (!handler) throw new Fail(404, "not_found", op);
          out = handler(body ?? {}, k);
        }
        record(200);
        return send(res, 200, out);
      } catch (e) {
        const f = e instanceof Fail ? e : new Fail(500, "internal_error", String(e));
        record(f.status);
        return send(res, f.status, { status: f.status, code: f.code, message: f.message });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;

  return {
    apiBase: base,
    apiUrl: `${base}${API_PREFIX}`,
    accountId,
    masterKeyId,
    masterKey,
    state: { buckets, keys, calls },
    failNext(op, status, code, message, opts = {}) {
      const q = failures.get(op) ?? [];
      q.push({ fail: new Fail(status, code, message), ...(opts.retryAfterSeconds !== undefined ? { retryAfterSeconds: opts.retryAfterSeconds } : {}) });
      failures.set(op, q);
    },
    addFile(bucketId, fileName) {
      bucketById(bucketId).files.push(fileName);
    },
    takeNameElsewhere(bucketName) {
      takenElsewhere.add(bucketName.toLowerCase());
    },
    expireTokens() {
      for (const t of tokens.values()) t.expired = true;
    },
    stop() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
