import { spawn, type SpawnOptions } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, then stdin is closed. */
  input?: string | Buffer;
  /** Kill the process (SIGKILL) after this many ms. Default 10 minutes. */
  timeoutMs?: number;
  /** Run as this user (via `runuser -u USER --`). */
  user?: string;
}

/** Run a command without a shell; never throws on a non-zero exit (check `code`). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  let file = cmd;
  let argv = args;
  if (opts.user) {
    file = "runuser";
    argv = ["-u", opts.user, "--", cmd, ...args];
  }
  const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] };
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, spawnOpts);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => out.push(d));
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 600_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
    child.stdin!.on("error", () => undefined);
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Like run(), but throws with the command's stderr when it exits non-zero. */
export async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`.trim());
  }
  return r;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") return reject(new Error("no port"));
      srv.close(() => resolve(addr.port));
    });
  });
}

/** Poll until fn() returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** True while `pid` exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state is the field after "(comm)".
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** A process's parent, command name and state from /proc (undefined when it is gone). */
export function procInfo(pid: number): { ppid: number; comm: string; state: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const [state, ppid] = stat.slice(close + 2).split(" ");
    return { ppid: Number(ppid), comm, state: state! };
  } catch {
    return undefined;
  }
}

/** Live descendants of `root` (pid, parent and comm). */
export function descendants(root: number): { pid: number; ppid: number; comm: string }[] {
  const all = new Map<number, { ppid: number; comm: string; state: string }>();
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const info = procInfo(Number(e));
    if (info && info.state !== "Z") all.set(Number(e), info);
  }
  const out: { pid: number; ppid: number; comm: string }[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [pid, info] of all) {
      if (info.ppid === p) {
        out.push({ pid, ppid: p, comm: info.comm });
        queue.push(pid);
      }
    }
  }
  return out;
}

const exitCleanups = new Set<() => void>();
let exitHooked = false;

/**
 * Run `cleanup` (synchronous) when the test process exits, also on SIGINT/SIGTERM/SIGHUP, so no
 * daemon a harness started outlives it. A signal becomes an exit only when nobody else handles it.
 */
export function onProcessExit(cleanup: () => void): void {
  exitCleanups.add(cleanup);
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", () => {
    for (const fn of exitCleanups) {
      try {
        fn();
      } catch {
        /* keep cleaning up the rest */
      }
    }
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      if (process.listenerCount(sig) === 0) process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

/** Runs CMD ARGS with INPUT on stdin; its stdout, or an error naming the command and its stderr. */
export async function pipeInto(cmd: string, args: string[], input: Buffer, env?: NodeJS.ProcessEnv): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout!.on("data", (d: Buffer) => out.push(d));
    p.stderr!.on("data", (d: Buffer) => err.push(d));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${Buffer.concat(err).toString()}`))));
    p.stdin!.on("error", () => undefined);
    p.stdin!.end(input);
  });
}

/** zstd -d of an object's bytes. */
export const unzstd = (b: Buffer): Promise<Buffer> => pipeInto("zstd", ["-d", "-c", "-q"], b);
