/**
 * A real OpenSSH server on 127.0.0.1:<free port> for integration tests, with its own config,
 * host key, pid file and authorized keys in a temp dir (the machine's sshd config is not read),
 * and an ed25519 client key authorized for root and for non-root test users it creates
 * (`useradd -m`, then `usermod -p '*'`: a locked `!` password makes sshd refuse the account).
 * No AcceptEnv in the config: nothing may rely on passing environment variables over SSH.
 *
 * ssh(user, command, stdin?) runs the real `ssh` client (BatchMode, the key, a known_hosts file
 * filled by ssh-keyscan, no ~/.ssh/config) exactly as a remote.Command would run a command.
 * stop() is idempotent: kills the sshd it started (by pid), removes the test users (their home
 * and crontab too) and the temp dir, and /run/sshd when it created it. A process-exit hook does
 * the same for servers still running when the test process exits.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, run, runOk, waitFor, type RunResult, onProcessExit, processAlive } from "./proc";

export const SSHD_BIN = "/usr/sbin/sshd";
const RUN_SSHD_MARKER = "/run/sshd/.created-by-restorable-tests";

export interface SshUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** Created by the harness (removed by stop()). */
  created: boolean;
}

export interface Sshd {
  host: "127.0.0.1";
  port: number;
  dir: string;
  /** The client's private key (OpenSSH format), e.g. for a Pulumi connection's privateKey. */
  privateKey: string;
  /** Path of the client's private key file (0600). */
  keyPath: string;
  knownHostsPath: string;
  users: Record<string, SshUser>;
  /** `ssh` argv (without the command) that logs in as `user`. */
  sshArgs(user: string): string[];
  /** Run `command` (a shell text for the user's login shell) over SSH as `user`; never throws on a non-zero exit. */
  ssh(user: string, command: string, stdin?: string | Buffer, opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** Like ssh(), but throws with stderr when the command exits non-zero. */
  sshOk(user: string, command: string, stdin?: string | Buffer, opts?: { timeoutMs?: number }): Promise<RunResult>;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /**
   * Users that may log in. "root" is root; any other name is a non-root user created for the test
   * (a fresh name is safest: use testUserName()). Default ["root"].
   */
  users?: string[];
}

/** A fresh, unlikely-to-clash user name such as "rst-k3x9q". */
export function testUserName(prefix = "rst"): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = randomBytes(5);
  let s = "";
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return `${prefix}-${s}`;
}

// ---- process-exit cleanup -------------------------------------------------------------------

interface Live {
  pid: number;
  dir: string;
  createdUsers: string[];
  createdRunSshd: boolean;
}
const live = new Map<string, Live>();



function anySshdRunning(): boolean {
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, "utf8").trim() === "sshd" && processAlive(Number(e))) return true;
    } catch {
      /* gone */
    }
  }
  return false;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function removeUserSync(name: string): void {
  try {
    execFileSync("crontab", ["-r", "-u", name], { stdio: "ignore" });
  } catch {
    /* had none */
  }
  try {
    execFileSync("userdel", ["-f", "-r", name], { stdio: "ignore" });
  } catch {
    /* best effort: reported by stop() */
  }
}

function cleanupSync(l: Live): void {
  // Never signal pid <= 0 (that would be a process group or every process).
  if (l.pid > 0 && processAlive(l.pid)) {
    try {
      process.kill(l.pid, "SIGTERM");
    } catch {
      /* gone */
    }
    for (let i = 0; i < 50 && processAlive(l.pid); i++) sleepSync(100);
    if (processAlive(l.pid)) {
      try {
        process.kill(l.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
  for (const u of l.createdUsers) removeUserSync(u);
  rmSync(l.dir, { recursive: true, force: true });
  // /run/sshd (privilege separation) is shared by every sshd on the machine, including those of
  // other test processes: remove it only when we created it and no sshd runs any more.
  // A marker file says a test harness created it (whichever test process did).
  if (existsSync(RUN_SSHD_MARKER) && !anySshdRunning()) {
    try {
      rmSync(RUN_SSHD_MARKER, { force: true });
      if (readdirSync("/run/sshd").length === 0) rmdirSync("/run/sshd");
    } catch {
      /* in use or gone */
    }
  }
}

// ---- users ------------------------------------------------------------------------------------

function userExists(name: string): boolean {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function passwdEntry(name: string): { uid: number; gid: number; home: string } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no passwd entry for ${name}`);
  const f = line.split(":");
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? "/" };
}

// ---- the server -------------------------------------------------------------------------------

/** Stops what this module started when the test process exits (registered once). */
function cleanupAtExit(): void {
  for (const l of live.values()) cleanupSync(l);
  live.clear();
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<Sshd> {
  if (process.getuid?.() !== 0) throw new Error("startSshd: must run as root (it starts sshd and creates test users)");
  onProcessExit(cleanupAtExit);
  const names = [...new Set(opts.users ?? ["root"])];
  const dir = mkdtempSync(join(tmpdir(), "restorable-sshd-"));
  chmodSync(dir, 0o755);
  const createdRunSshd = !existsSync("/run/sshd");
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  if (createdRunSshd) writeFileSync(RUN_SSHD_MARKER, "");
  const state: Live = { pid: -1, dir, createdUsers: [], createdRunSshd };
  live.set(dir, state);

  try {
    const users: Record<string, SshUser> = {};
    for (const name of names) {
      let created = false;
      if (name !== "root") {
        if (userExists(name)) throw new Error(`startSshd: user ${name} already exists; use a fresh name (testUserName())`);
        await runOk("useradd", ["-m", "-s", "/bin/bash", name]);
        state.createdUsers.push(name);
        created = true;
        await runOk("usermod", ["-p", "*", name]);
      }
      users[name] = { name, ...passwdEntry(name), created };
    }

    const hostKey = join(dir, "ssh_host_ed25519_key");
    const keyPath = join(dir, "client_ed25519");
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "restorable-test-host", "-f", hostKey]);
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "restorable-test-client", "-f", keyPath]);
    chmodSync(keyPath, 0o600);
    const pub = readFileSync(`${keyPath}.pub`, "utf8");
    const akDir = join(dir, "authorized_keys");
    mkdirSync(akDir, { mode: 0o755 });
    for (const name of names) {
      writeFileSync(join(akDir, name), pub, { mode: 0o644 });
    }

    const port = await freePort();
    const config = join(dir, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        "AddressFamily inet",
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${akDir}/%u`,
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        // The temp dir lives under /tmp (mode 1777), which StrictModes would reject.
        "StrictModes no",
        `AllowUsers ${names.join(" ")}`,
        "PrintMotd no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    await runOk(SSHD_BIN, ["-t", "-f", config]);
    const log = join(dir, "sshd.log");
    // Detached: its own session, so a terminal's ^C reaches only the test process (whose exit
    // hook then stops it). -D keeps sshd in the foreground: child.pid is the daemon.
    const child = spawn(SSHD_BIN, ["-D", "-e", "-f", config, "-E", log], { detached: true, stdio: "ignore" });
    child.unref();
    if (child.pid === undefined) throw new Error("startSshd: could not spawn sshd");
    state.pid = child.pid;
    const pid = await waitFor(
      "sshd pid file",
      () => {
        try {
          const p = Number(readFileSync(join(dir, "sshd.pid"), "utf8").trim());
          return p > 0 ? p : undefined;
        } catch {
          return undefined;
        }
      },
      15_000,
    );
    state.pid = pid;

    const knownHostsPath = join(dir, "known_hosts");
    const scan = await waitFor(
      "ssh-keyscan",
      async () => {
        const r = await run("ssh-keyscan", ["-p", String(port), "-t", "ed25519", "127.0.0.1"]);
        return r.code === 0 && r.stdout.includes("ssh-ed25519") ? r.stdout : undefined;
      },
      15_000,
      200,
    );
    writeFileSync(knownHostsPath, scan, { mode: 0o644 });

    const sshArgs = (user: string): string[] => [
      "-F", "/dev/null",
      "-i", keyPath,
      "-p", String(port),
      "-o", "BatchMode=yes",
      "-o", "IdentitiesOnly=yes",
      "-o", "IdentityAgent=none",
      "-o", `UserKnownHostsFile=${knownHostsPath}`,
      "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "StrictHostKeyChecking=yes",
      "-o", "ConnectTimeout=10",
      "-o", "LogLevel=ERROR",
      `${user}@127.0.0.1`,
    ];
    const ssh = (user: string, command: string, stdin?: string | Buffer, o: { timeoutMs?: number } = {}): Promise<RunResult> =>
      run("ssh", [...sshArgs(user), command], { input: stdin ?? "", timeoutMs: o.timeoutMs ?? 300_000 });
    const sshOk = async (user: string, command: string, stdin?: string | Buffer, o: { timeoutMs?: number } = {}): Promise<RunResult> => {
      const r = await ssh(user, command, stdin, o);
      if (r.code !== 0) throw new Error(`ssh ${user}@127.0.0.1 exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`.trim());
      return r;
    };

    let stopped = false;
    return {
      host: "127.0.0.1",
      port,
      dir,
      privateKey: readFileSync(keyPath, "utf8"),
      keyPath,
      knownHostsPath,
      users,
      sshArgs,
      ssh,
      sshOk,
      async stop() {
        if (stopped) return;
        stopped = true;
        live.delete(dir);
        cleanupSync(state);
        const left = state.createdUsers.filter(userExists);
        if (left.length) throw new Error(`startSshd.stop: could not remove test users ${left.join(", ")}`);
      },
    };
  } catch (e) {
    live.delete(dir);
    cleanupSync(state);
    throw e;
  }
}
