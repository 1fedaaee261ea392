/**
 * A slow link in front of a real server: a TCP relay on loopback that passes every byte unchanged
 * (so SigV4 signatures, which cover the Host header the client sent, stay valid) at a bounded
 * rate, shared by all connections and both directions. Tests of progress reporting use it to make
 * a stream to or from radosgw last long enough to be seen, without changing what is streamed.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

export interface ThrottleRelay {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  /** Bytes relayed so far (both directions). */
  bytes(): number;
  /** Changes the rate from now on. */
  setRate(bytesPerSecond: number): void;
  stop(): Promise<void>;
}

const PIECE = 16 * 1024;

/** Relays 127.0.0.1:<new port> to `target` (host:port) at `bytesPerSecond`. */
export async function startThrottleRelay(target: { host: string; port: number }, bytesPerSecond: number): Promise<ThrottleRelay> {
  let nextFree = Date.now();
  let total = 0;
  const sockets = new Set<Socket>();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** Copies `from` to `to`, each piece waiting for its slot on the shared link. */
  async function pump(from: Socket, to: Socket): Promise<void> {
    try {
      for await (const chunk of from as AsyncIterable<Buffer>) {
        for (let i = 0; i < chunk.length; i += PIECE) {
          const piece = chunk.subarray(i, i + PIECE);
          const now = Date.now();
          nextFree = Math.max(now, nextFree) + (piece.length * 1000) / bytesPerSecond;
          if (nextFree - now > 1) await sleep(nextFree - now);
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

  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    void pump(client, upstream);
    void pump(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bytes: () => total,
    setRate: (r: number) => {
      bytesPerSecond = r;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
