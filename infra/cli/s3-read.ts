// A read-only S3 client for the operator CLIs: ListObjectsV2 and GetObject, signed with AWS
// Signature Version 4 (node:crypto + fetch, no dependency).
//
// Why not the AWS CLI (which the host scripts use): `npm run status` reads every manifest and
// drill report of the fleet, hundreds of small objects; one `aws` process per object costs a
// Python start-up each (~0.4 s here), a signed fetch costs milliseconds and runs concurrently.
// The operator's machine then needs no AWS CLI, and the key stays in this process's memory
// (never argv, never a file). The same requests work against AWS S3, B2's S3-compatible API and
// generic S3 stores (tested against Ceph radosgw; the signer against AWS's published example).
import { createHash, createHmac } from "node:crypto";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3ReadOptions {
  endpoint: string;
  region: string;
  bucket: string;
  credentials: S3Credentials;
  /** Path-style (`endpoint/bucket/key`) rather than virtual-hosted (`bucket.endpoint/key`). */
  pathStyle: boolean;
  /** Parallel GETs (default 8). */
  concurrency?: number;
}

export interface ListedObject {
  key: string;
  size: number;
  lastModified: string;
}

/** An S3 error response (status + the XML Code), or a network failure (status 0). */
export class S3Error extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
  /** The store refused the key or its signature: an operator credentials problem. */
  get isCredentials(): boolean {
    return this.status === 401 || this.status === 403 || /^(InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|InvalidToken|ExpiredToken|Unauthorized)$/.test(this.code);
  }
}

const sha256hex = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");
const hmac = (key: string | Buffer, s: string) => createHmac("sha256", key).update(s).digest();

/** RFC 3986 encoding as SigV4 wants it (unreserved characters kept; `/` kept when a path). */
export function uriEncode(s: string, keepSlash = false): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export interface SignInput {
  method: string;
  host: string;
  /** Already encoded path (as sent). */
  path: string;
  query: Record<string, string>;
  /** Extra headers to sign (lowercase names). */
  headers?: Record<string, string>;
  payloadHash: string;
  region: string;
  service?: string;
  credentials: S3Credentials;
  /** 20130524T000000Z */
  amzDate: string;
}

/** SigV4 headers (authorization, x-amz-date, x-amz-content-sha256, token) for one request. */
export function signV4(i: SignInput): Record<string, string> {
  const service = i.service ?? "s3";
  const headers: Record<string, string> = { ...(i.headers ?? {}), host: i.host, "x-amz-content-sha256": i.payloadHash, "x-amz-date": i.amzDate };
  if (i.credentials.sessionToken) headers["x-amz-security-token"] = i.credentials.sessionToken;
  const names = Object.keys(headers).map((n) => n.toLowerCase()).sort();
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v.trim().replace(/\s+/g, " ");
  const canonicalQuery = Object.keys(i.query)
    .sort()
    .map((k) => `${uriEncode(k)}=${uriEncode(i.query[k]!)}`)
    .join("&");
  const canonicalRequest = [i.method, i.path, canonicalQuery, names.map((n) => `${n}:${lower[n]}\n`).join(""), names.join(";"), i.payloadHash].join("\n");
  const day = i.amzDate.slice(0, 8);
  const scope = `${day}/${i.region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", i.amzDate, scope, sha256hex(canonicalRequest)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${i.credentials.secretAccessKey}`, day), i.region), service), "aws4_request");
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  const out: Record<string, string> = { ...headers };
  delete out.host; // fetch sets it from the URL (the same value)
  out.authorization = `AWS4-HMAC-SHA256 Credential=${i.credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
  return out;
}

const EMPTY_SHA256 = sha256hex("");

function xmlDecode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e === "amp") return "&";
    if (e === "lt") return "<";
    if (e === "gt") return ">";
    if (e === "quot") return '"';
    if (e === "apos") return "'";
    return String.fromCodePoint(e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}
const tag = (xml: string, name: string) => {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? xmlDecode(m[1]!) : undefined;
};

export class S3Reader {
  private readonly base: URL;
  private readonly prefixPath: string;
  constructor(private readonly o: S3ReadOptions) {
    const ep = new URL(o.endpoint);
    if (o.pathStyle) {
      this.base = ep;
      this.prefixPath = `${ep.pathname.replace(/\/+$/, "")}/${uriEncode(o.bucket)}`;
    } else {
      this.base = new URL(`${ep.protocol}//${o.bucket}.${ep.host}`);
      this.prefixPath = ep.pathname.replace(/\/+$/, "");
    }
  }

  /** The request URL for a key ("" for the bucket) and query, encoded exactly as signed. */
  url(key: string, query: Record<string, string> = {}): { url: string; host: string; path: string } {
    const path = `${this.prefixPath}/${uriEncode(key, true)}`;
    const qs = Object.keys(query)
      .sort()
      .map((k) => `${uriEncode(k)}=${uriEncode(query[k]!)}`)
      .join("&");
    return { url: `${this.base.protocol}//${this.base.host}${path}${qs ? `?${qs}` : ""}`, host: this.base.host, path };
  }

  private async request(key: string, query: Record<string, string>): Promise<Buffer> {
    const { url, host, path } = this.url(key, query);
    const amzDate = new Date().toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
    const headers = signV4({ method: "GET", host, path, query, payloadHash: EMPTY_SHA256, region: this.o.region, credentials: this.o.credentials, amzDate });
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: "error", signal: AbortSignal.timeout(60_000) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new S3Error(`cannot reach ${this.o.endpoint}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, 0, "NetworkError");
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (!res.ok) {
      const text = body.toString("utf8");
      const code = tag(text, "Code") ?? `HTTP${res.status}`;
      const msg = tag(text, "Message");
      throw new S3Error(`${code}${msg ? `: ${msg}` : ""} (HTTP ${res.status} for s3://${this.o.bucket}/${key}${query["list-type"] ? ` listing prefix ${query.prefix ?? ""}` : ""})`, res.status, code);
    }
    return body;
  }

  /** Every current object under `prefix` (ListObjectsV2, all pages). */
  async list(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    for (;;) {
      const query: Record<string, string> = { "list-type": "2", prefix, "max-keys": "1000" };
      if (token) query["continuation-token"] = token;
      const xml = (await this.request("", query)).toString("utf8");
      for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const c = m[1]!;
        out.push({ key: tag(c, "Key") ?? "", size: Number(tag(c, "Size") ?? 0), lastModified: tag(c, "LastModified") ?? "" });
      }
      if (tag(xml, "IsTruncated") !== "true") break;
      token = tag(xml, "NextContinuationToken");
      if (!token) throw new S3Error(`listing ${prefix} is truncated but has no continuation token`, 200, "BadListing");
    }
    return out;
  }

  async get(key: string): Promise<Buffer> {
    return this.request(key, {});
  }

  /** GET many keys, at most `concurrency` at a time; results in the order of `keys`. */
  async getMany(keys: string[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array(keys.length);
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        out[i] = await this.get(keys[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 8, keys.length) }, worker));
    return out;
  }
}
