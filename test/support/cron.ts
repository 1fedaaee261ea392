/**
 * The cron daemon for integration tests, and crontab snapshots.
 *
 * Debian's cron allows one instance machine-wide (/run/crond.pid). startCron() starts it in the
 * foreground (`cron -f -L 15`) in its own session when none runs; when one already runs that we
 * did not start (a developer machine, or another test process), it refuses clearly — unless
 * `reuseRunning: true`, where it uses that daemon and stop() leaves it alone. stop() stops only
 * the daemon it started, by its pid, and removes the pid file it left behind.
 *
 * snapshotCrontab(user) saves a user's crontab so a test can change it and put it back exactly
 * (no crontab before -> no crontab after).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, runOk, waitFor, onProcessExit, processAlive } from "./proc";

export const CRON_BIN = "/usr/sbin/cron";
const PID_FILES = ["/run/crond.pid", "/var/run/crond.pid"];

export interface CronDaemon {
  pid: number;
  /** True when this handle started the daemon (and stop() will stop it). */
  started: boolean;
  stop(): Promise<void>;
}


function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** The pid of a running cron daemon (from its pid file, or /proc), if any. */
export function runningCron(): number | undefined {
  for (const f of PID_FILES) {
    try {
      const pid = Number(readFileSync(f, "utf8").trim());
      if (pid > 0 && processAlive(pid) && /^(cron|crond)$/.test(comm(pid))) return pid;
    } catch {
      /* none */
    }
  }
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (/^(cron|crond)$/.test(comm(pid)) && processAlive(pid)) return pid;
  }
  return undefined;
}

let ours: { pid: number } | undefined;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function stopSync(pid: number): void {
  if (pid <= 0) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    /* gone */
  }
  for (let i = 0; i < 50 && processAlive(pid); i++) sleepSync(100);
  if (processAlive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  for (const f of PID_FILES) {
    try {
      if (Number(readFileSync(f, "utf8").trim()) === pid) rmSync(f, { force: true });
    } catch {
      /* none */
    }
  }
}


/** Stops what this module started when the test process exits (registered once). */
function cleanupAtExit(): void {
  if (ours) stopSync(ours.pid);
  ours = undefined;
}

export async function startCron(opts: { reuseRunning?: boolean } = {}): Promise<CronDaemon> {
  if (process.getuid?.() !== 0) throw new Error("startCron: must run as root");
  const existing = runningCron();
  if (existing !== undefined) {
    if (!opts.reuseRunning) {
      throw new Error(
        `startCron: a cron daemon (pid ${existing}) is already running and was not started by this test; ` +
          "only one may run machine-wide. Stop it (e.g. systemctl stop cron) or run the test where none runs.",
      );
    }
    return { pid: existing, started: false, stop: async () => undefined };
  }
  onProcessExit(cleanupAtExit);
  const child = spawn(CRON_BIN, ["-f", "-L", "15"], { detached: true, stdio: "ignore" });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error("startCron: could not spawn cron");
  ours = { pid };
  await waitFor(
    "cron pid file",
    () => PID_FILES.some((f) => {
      try {
        return Number(readFileSync(f, "utf8").trim()) === pid;
      } catch {
        return false;
      }
    }) || !processAlive(pid),
    10_000,
  );
  if (!processAlive(pid)) {
    ours = undefined;
    throw new Error("startCron: cron exited right after starting (another instance running?)");
  }
  let stopped = false;
  return {
    pid,
    started: true,
    async stop() {
      if (stopped) return;
      stopped = true;
      stopSync(pid);
      ours = undefined;
    },
  };
}

export interface CrontabSnapshot {
  user: string;
  /** The crontab's text, or undefined when the user had none. */
  content: string | undefined;
  /** Put the crontab back exactly as it was. */
  restore(): Promise<void>;
}

/** The user's crontab text (`crontab -l`), or undefined when there is none. */
export async function readCrontab(user: string): Promise<string | undefined> {
  const r = await run("crontab", ["-l", "-u", user]);
  if (r.code === 0) return r.stdout;
  if (/no crontab/i.test(r.stderr)) return undefined;
  throw new Error(`crontab -l -u ${user}: ${r.stderr}`);
}

/** Install `content` as the user's crontab (undefined: remove it). */
export async function writeCrontab(user: string, content: string | undefined): Promise<void> {
  if (content === undefined) {
    const r = await run("crontab", ["-r", "-u", user]);
    if (r.code !== 0 && !/no crontab/i.test(r.stderr)) throw new Error(`crontab -r -u ${user}: ${r.stderr}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "restorable-crontab-"));
  try {
    const f = join(dir, "crontab");
    writeFileSync(f, content);
    await runOk("crontab", ["-u", user, f]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Path of a user's crontab in Debian cron's spool (for byte-for-byte comparisons). */
export function spoolPath(user: string): string {
  return `/var/spool/cron/crontabs/${user}`;
}

export async function snapshotCrontab(user: string): Promise<CrontabSnapshot> {
  const content = await readCrontab(user);
  return {
    user,
    content,
    async restore() {
      const now = await readCrontab(user);
      if (now === content) return;
      await writeCrontab(user, content);
    },
  };
}
