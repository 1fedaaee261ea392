/**
 * AWS S3's upload rule for buckets with object lock, put in front of a real S3 server.
 *
 * AWS refuses a PutObject (and, stricter here, an UploadPart) into a bucket with a default
 * object-lock retention unless it carries Content-MD5 or an x-amz-checksum-* header (400
 * InvalidRequest, "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests
 * with Object Lock parameters"). radosgw 16 does not enforce that rule (it checks a Content-MD5
 * that is sent, BadDigest, but accepts uploads without one), so a test on radosgw alone could not
 * show that the scripts' uploads would pass on AWS. This proxy forwards every request unchanged
 * (the Host header too, so SigV4 signatures stay valid), refuses such an upload the AWS way, and
 * records what each request carried.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxiedRequest {
  method: string;
  /** Path without the query, e.g. /bucket/web-1/daily/postgres/app/…dump.zst */
  path: string;
  query: string;
  /** An object upload (PutObject or UploadPart), the requests the rule is about. */
  upload: boolean;
  /** The integrity header it carried, if any. */
  integrity: "content-md5" | "x-amz-checksum" | null;
  /** Answered 400 InvalidRequest by the proxy (never reached the server). */
  refused: boolean;
  /** Status the client got. */
  status: number;
}

export interface LockRuleProxy {
  /** http://127.0.0.1:PORT: use it as the S3 endpoint. */
  endpoint: string;
  requests: ProxiedRequest[];
  stop(): Promise<void>;
}

const REFUSAL = "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters";

/** PutObject (PUT /bucket/key, no sub-resource) or UploadPart (PUT …?partNumber&uploadId), not CopyObject. */
function isUpload(req: IncomingMessage, path: string, query: URLSearchParams): boolean {
  if (req.method !== "PUT" || req.headers["x-amz-copy-source"]) return false;
  if (!/^\/[^/]+\/.+/.test(path)) return false; // bucket-level requests
  const keys = [...query.keys()].filter((k) => k !== "x-id");
  return keys.length === 0 || (keys.includes("partNumber") && keys.includes("uploadId"));
}

export async function startLockRuleProxy(upstream: string): Promise<LockRuleProxy> {
  const up = new URL(upstream);
  const requests: ProxiedRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const upload = isUpload(req, url.pathname, url.searchParams);
    const h = req.headers;
    const integrity = h["content-md5"] ? "content-md5" : Object.keys(h).some((k) => k.startsWith("x-amz-checksum-")) ? "x-amz-checksum" : null;
    const rec: ProxiedRequest = { method: req.method ?? "", path: decodeURIComponent(url.pathname), query: url.search, upload, integrity, refused: false, status: 0 };
    requests.push(rec);
    if (upload && integrity === null) {
      rec.refused = true;
      rec.status = 400;
      req.resume();
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRequest</Code><Message>${REFUSAL}</Message></Error>`;
      res.writeHead(400, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), connection: "close" });
      res.end(body);
      return;
    }
    const headers = { ...h };
    delete headers.expect; // node already answered 100-continue to the client; not signed
    const fwd = request(
      { host: up.hostname, port: up.port, method: req.method, path: req.url, headers },
      (upRes) => {
        rec.status = upRes.statusCode ?? 0;
        res.writeHead(rec.status, upRes.headers);
        upRes.pipe(res);
      },
    );
    fwd.on("error", (e) => {
      rec.status = 502;
      if (!res.headersSent) res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(fwd);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
