// A TCP relay on loopback that a test can cut (connections refused, open ones dropped) and
// restore: an S3 outage without touching the S3 server.
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { freePort } from "./proc";

/** A TCP relay to the S3 server that the test can cut (connections refused) and restore. */
export async function tcpRelay(target: URL): Promise<{ url: string; down(): Promise<void>; up(): Promise<void>; stop(): Promise<void> }> {
  const port = await freePort();
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((c) => {
        const u = createConnection({ host: target.hostname, port: Number(target.port) });
        sockets.add(c).add(u);
        c.pipe(u).pipe(c);
        const drop = () => { c.destroy(); u.destroy(); sockets.delete(c); sockets.delete(u); };
        c.on("error", drop).on("close", drop);
        u.on("error", drop).on("close", drop);
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
  return { url: `http://127.0.0.1:${port}`, down: close, up: listen, stop: close };
}
