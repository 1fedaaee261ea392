/**
 * A wall clock that jumps, for the process trees a test starts with `env` (libfaketime 0.9.10,
 * Debian's `faketime` package, preloaded): CLOCK_REALTIME (time(), gettimeofday(),
 * clock_gettime(): bash's $EPOCHSECONDS, `date`, curl's SigV4 date, pg_receivewal) is the true
 * time plus an offset read from a file on every call, so `set()` jumps it in every process of
 * the tree at once. What a real jump does not move stays true: CLOCK_MONOTONIC
 * (FAKETIME_DONT_FAKE_MONOTONIC), /proc/uptime (a file, not a call), and file mtimes, which the
 * kernel stamps on write (NO_FAKE_STAT: `stat` reports them as they are; a file written before a
 * jump keeps its old time, as it would).
 *
 * libfaketime 0.9.10 always shares a POSIX semaphore and shm object among the tree (it has no
 * switch to turn them off; FAKETIME_DISABLE_SHM came in 0.9.11). Left to itself, every process
 * whose environment lacks FAKETIME_SHARED creates a pair named after its pid and only removes it
 * when it exits normally: a bash that is the first creator even loses the clock setting (its
 * setenv() into bash's own variables hides the environment from libfaketime's later getenv()),
 * and pairs leaked by exec'd or killed processes break a later process with the same pid. So one
 * holder process (`cat`, reading a pipe from this test) creates the pair, every process of the
 * tree gets FAKETIME_SHARED pointing at it (none creates its own), and the holder removes it when
 * its stdin closes (`stop()`, or this test's process ending).
 */
import { spawn } from "node:child_process";
import { existsSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "./proc";

export const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

export interface FakeClock {
  /** Environment for the processes whose wall clock jumps (merge it into theirs). */
  env: NodeJS.ProcessEnv;
  /** From now on the wall clock of those processes is the true time plus `offsetSeconds`. */
  set(offsetSeconds: number): void;
  /** Ends the holder (which removes the shared semaphore and memory). After the processes. */
  stop(): Promise<void>;
}

/** A jumping wall clock whose offset file lives in `dir`; the offset starts at 0. */
export async function startFakeClock(dir: string): Promise<FakeClock> {
  const file = join(dir, "faketime-offset");
  const set = (offsetSeconds: number) => {
    // Written whole, then renamed: every call of every process reads the file.
    writeFileSync(`${file}.tmp`, `${offsetSeconds >= 0 ? "+" : ""}${Math.trunc(offsetSeconds)}\n`);
    renameSync(`${file}.tmp`, file);
  };
  set(0);
  const base: NodeJS.ProcessEnv = {
    LD_PRELOAD: LIBFAKETIME,
    FAKETIME_TIMESTAMP_FILE: file,
    FAKETIME_NO_CACHE: "1",
    FAKETIME_DONT_FAKE_MONOTONIC: "1",
    NO_FAKE_STAT: "1",
  };
  const started = Date.now();
  const holder = spawn("cat", [], { env: { PATH: "/usr/bin:/bin", ...base }, stdio: ["pipe", "ignore", "pipe"] });
  let err = "";
  holder.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => holder.on("close", () => r()));
  const sem = `/dev/shm/sem.faketime_sem_${holder.pid}`;
  const shm = `/dev/shm/faketime_shm_${holder.pid}`;
  const stop = async () => {
    holder.stdin!.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (holder.exitCode === null && holder.signalCode === null) holder.kill("SIGTERM");
  };
  try {
    await waitFor("libfaketime's shared semaphore and memory", () => existsSync(sem) && existsSync(shm) && holder.exitCode === null, 10_000);
    // A pair left by an earlier process with this pid is not the holder's (it would not remove it).
    if (statSync(sem).mtimeMs < started - 2000) throw new Error(`${sem} is older than its holder: a stale pair left by an earlier libfaketime process; remove it`);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}${err ? `\n${err}` : ""}`);
  }
  return { env: { ...base, FAKETIME_SHARED: `/faketime_sem_${holder.pid} /faketime_shm_${holder.pid}` }, set, stop };
}
