// A TCP relay on loopback in front of a real server (radosgw): every byte passes unchanged, so
// SigV4 signatures, which cover the Host header the client sent, stay valid. A test can
//   - cut it (connections refused, open ones dropped) and restore it: an S3 outage without
//     touching the S3 server (down/up);
//   - bound its rate, shared by all connections and both directions: a slow link that makes a
//     stream last long enough to be seen (bytesPerSecond, setRate).
import { connect, createServer, type Server, type Socket } from "node:net";
import { freePort } from "./proc";

export interface TcpRelay {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Cuts the link: open connections dropped, new ones refused. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Bytes relayed so far (both directions). */
  bytes(): number;
  /** Changes the rate from now on (Infinity: unbounded). */
  setRate(bytesPerSecond: number): void;
  stop(): Promise<void>;
}

const PIECE = 16 * 1024;

/** Relays 127.0.0.1:<new port> to `target`'s host and port, unbounded unless `bytesPerSecond`. */
export async function tcpRelay(target: URL, opts: { bytesPerSecond?: number } = {}): Promise<TcpRelay> {
  const port = await freePort();
  let rate = opts.bytesPerSecond ?? Infinity;
  let nextFree = Date.now();
  let total = 0;
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** Copies `from` to `to`, each piece waiting for its slot on the shared link when rate-bound. */
  async function pump(from: Socket, to: Socket): Promise<void> {
    try {
      for await (const chunk of from as AsyncIterable<Buffer>) {
        for (let i = 0; i < chunk.length; i += PIECE) {
          const piece = chunk.subarray(i, i + PIECE);
          if (Number.isFinite(rate)) {
            const now = Date.now();
            nextFree = Math.max(now, nextFree) + (piece.length * 1000) / rate;
            if (nextFree - now > 1) await sleep(nextFree - now);
          }
          if (to.destroyed) return;
          total += piece.length;
          if (!to.write(piece)) await new Promise((r) => to.once("drain", r));
        }
      }
      to.end();
    } catch {
      to.destroy();
    }
  }

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = connect(Number(target.port), target.hostname);
        const drop = () => {
          client.destroy();
          upstream.destroy();
        };
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", drop);
        }
        void pump(client, upstream);
        void pump(upstream, client);
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  await listen();
  return {
    url: `http://127.0.0.1:${port}`,
    down: close,
    up: listen,
    bytes: () => total,
    setRate: (r: number) => {
      rate = r;
    },
    stop: close,
  };
}
