/**
 * A local HTTP server that records healthchecks.io-style pings:
 *   <url>/start  -> "start"      <url>        -> "success"     <url>/fail -> "fail"
 *   <url>/log    -> "log"        <url>/<n>    -> exit status n: 0 = "success", else "fail"
 * GET, HEAD and POST are accepted (the body, e.g. a log tail, is recorded as UTF-8). Any other
 * path answers 404 and is kept in `unmatched`, so a wrong URL shows up in the test.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type PingKind = "start" | "success" | "fail" | "log";

export interface Ping {
  kind: PingKind;
  /** The request path with query string, e.g. "/<uuid>/fail?rid=…". */
  path: string;
  method: string;
  body: string;
  /** Request headers (lower-case names). */
  headers: Record<string, string | string[] | undefined>;
  /** For "/<n>" pings: the exit status n. */
  exitStatus?: number;
  at: Date;
}

export interface PingServer {
  /** http://127.0.0.1:PORT/<uuid> — the ping URL to configure. */
  url: string;
  uuid: string;
  /** Every recorded ping, in arrival order. */
  pings: Ping[];
  /** Requests to other paths (answered 404). */
  unmatched: { method: string; path: string; body: string; at: Date }[];
  /** Pings of one kind, in order. */
  of(kind: PingKind): Ping[];
  /**
   * Resolve with the first ping of `kind` with index >= `after` in `pings` (default 0: any,
   * including already recorded ones); reject after timeoutMs (default 30 s).
   */
  waitFor(kind: PingKind, timeoutMs?: number, after?: number): Promise<Ping>;
  /** Forget recorded pings. */
  clear(): void;
  /** Make the next `n` requests answer with this status (e.g. 500) — for "ping failure must not fail the job". */
  failNext(n: number, status?: number): void;
  stop(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

export async function startPingServer(): Promise<PingServer> {
  const uuid = randomUUID();
  const pings: Ping[] = [];
  const unmatched: PingServer["unmatched"] = [];
  const waiters = new Set<() => void>();
  let failing = 0;
  let failStatus = 500;

  const notify = () => {
    for (const w of [...waiters]) w();
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const path = req.url ?? "/";
      const method = req.method ?? "GET";
      const at = new Date();
      if (failing > 0) {
        failing--;
        res.writeHead(failStatus, { "content-type": "text/plain" }).end("error\n");
        return;
      }
      const pathname = path.split("?")[0]!.replace(/\/+$/, "");
      const prefix = `/${uuid}`;
      let kind: PingKind | undefined;
      let exitStatus: number | undefined;
      if (["GET", "HEAD", "POST"].includes(method)) {
        if (pathname === prefix) kind = "success";
        else if (pathname.startsWith(`${prefix}/`)) {
          const rest = pathname.slice(prefix.length + 1);
          if (rest === "start" || rest === "fail" || rest === "log") kind = rest;
          else if (/^\d{1,3}$/.test(rest) && Number(rest) <= 255) {
            exitStatus = Number(rest);
            kind = exitStatus === 0 ? "success" : "fail";
          }
        }
      }
      if (!kind) {
        unmatched.push({ method, path, body, at });
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      const ping: Ping = { kind, path, method, body, headers: { ...req.headers }, at };
      if (exitStatus !== undefined) ping.exitStatus = exitStatus;
      pings.push(ping);
      res.writeHead(200, { "content-type": "text/plain" }).end("OK");
      notify();
    });
  };

  const server = createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let stopped = false;

  const ps: PingServer = {
    url: `http://127.0.0.1:${port}/${uuid}`,
    uuid,
    pings,
    unmatched,
    of: (kind) => pings.filter((p) => p.kind === kind),
    waitFor(kind, timeoutMs = 30_000, after = 0) {
      const find = () => pings.slice(after).find((p) => p.kind === kind);
      const now = find();
      if (now) return Promise.resolve(now);
      return new Promise<Ping>((resolve, reject) => {
        const check = () => {
          const p = find();
          if (p) {
            done();
            resolve(p);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no "${kind}" ping within ${timeoutMs} ms; got: ${JSON.stringify(pings.map((p) => p.kind))}, unmatched: ${JSON.stringify(unmatched.map((u) => `${u.method} ${u.path}`))}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
      });
    },
    clear() {
      pings.length = 0;
      unmatched.length = 0;
    },
    failNext(n, status = 500) {
      failing = n;
      failStatus = status;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return ps;
}
