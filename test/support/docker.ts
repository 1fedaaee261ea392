/**
 * A private dockerd per test process (own data-root, exec-root, socket and pidfile in a temp dir;
 * --iptables=false --bridge=none so the host's networking is untouched), plus locally built
 * images (no registry is reachable): a Postgres 15 image that behaves like the official `postgres`
 * image where it matters, and a tiny busybox tool image.
 *
 * Built images are cached as `docker save` tarballs keyed by a content hash of their build inputs
 * under ${XDG_CACHE_HOME:-~/.cache}/restorable-test/ and `docker load`ed into each fresh daemon.
 * Concurrent test processes share one build through a lock directory; tarballs are written to a
 * temp name and renamed into place.
 *
 * stop() is idempotent: removes all containers of the daemon, stops dockerd (and the containerd it
 * manages), unmounts anything left under the temp dir and deletes it. A process-exit hook does the
 * same synchronously for daemons still running when the test process exits.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync,
  renameSync, rmSync, statSync, symlinkSync, copyFileSync, writeFileSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, run, type RunOptions, type RunResult, waitFor, onProcessExit, processAlive } from "./proc";

/** The Debian docker 20.10 client (a newer client may shadow it at /usr/local/bin). */
export const DOCKER_BIN = "/usr/bin/docker";
export const COMPOSE_BIN = "/usr/bin/docker-compose";
export const POSTGRES_IMAGE = "restorable-test/postgres:15";
export const TOOL_IMAGE = "restorable-test/busybox:1";
export const DEBIAN_IMAGE = "restorable-test/debian:bookworm";

export interface Dockerd {
  /** unix:///…/docker.sock */
  host: string;
  /** process.env with DOCKER_HOST set, DOCKER_CONFIG private, PATH with /usr/bin first. */
  env: NodeJS.ProcessEnv;
  /** The temp dir holding data-root, exec-root, socket, pidfile, log. */
  dir: string;
  pid: number;
  /** Run /usr/bin/docker against this daemon; never throws on a non-zero exit. */
  docker(args: string[], opts?: Omit<RunOptions, "env"> & { env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  /** Like docker(), but throws with stderr on a non-zero exit. */
  dockerOk(args: string[], opts?: Omit<RunOptions, "env"> & { env?: NodeJS.ProcessEnv }): Promise<RunResult>;
  stop(): Promise<void>;
}

// ---- process-exit cleanup -----------------------------------------------------------------

interface LiveDaemon {
  dir: string;
  pid: number;
  host: string;
}
const live = new Map<string, LiveDaemon>();



/** Pids (not zombies) whose command line mentions `needle` (e.g. a daemon's temp dir). */
export function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
      if (cmd.includes(needle) && processAlive(pid)) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

function mountsUnder(dir: string): string[] {
  const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  const mps: string[] = [];
  for (const l of lines) {
    const mp = l.split(" ")[4];
    if (mp && (mp === dir || mp.startsWith(dir + "/"))) mps.push(mp.replace(/\\040/g, " "));
  }
  return mps.sort((a, b) => b.length - a.length);
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function dockerEnv(host: string, dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES"]) delete env[k];
  env.DOCKER_HOST = host;
  env.DOCKER_CONFIG = join(dir, "client-config");
  env.DOCKER_BUILDKIT = "0";
  env.COMPOSE_DOCKER_CLI_BUILD = "0";
  env.PATH = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", ...(process.env.PATH ?? "").split(":").filter((p) => p && !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].includes(p))].join(":");
  return env;
}

function stopDaemonSync(d: LiveDaemon): void {
  const env = dockerEnv(d.host, d.dir);
  try {
    if (d.pid > 0 && processAlive(d.pid)) {
      const ids = execFileSync(DOCKER_BIN, ["ps", "-aq"], { env, timeout: 15_000, stdio: ["ignore", "pipe", "ignore"] })
        .toString()
        .split("\n")
        .filter(Boolean);
      if (ids.length) execFileSync(DOCKER_BIN, ["rm", "-f", "-v", ...ids], { env, timeout: 60_000, stdio: "ignore" });
    }
  } catch {
    /* best effort */
  }
  if (d.pid > 0) {
    try {
      process.kill(d.pid, "SIGTERM");
    } catch {
      /* gone */
    }
    for (let i = 0; i < 150 && processAlive(d.pid); i++) sleepSync(100);
  }
  for (const pid of pidsMentioning(d.dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < 50 && pidsMentioning(d.dir).length; i++) sleepSync(100);
  for (const mp of mountsUnder(d.dir)) {
    try {
      execFileSync("umount", ["-l", mp], { stdio: "ignore" });
    } catch {
      /* best effort */
    }
  }
  try {
    rmSync(d.dir, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

// ---- dockerd ------------------------------------------------------------------------------

export interface StartDockerdOptions {
  /** Put the data-root (images, containers, volumes) on a private tmpfs (default true: fast). */
  tmpfs?: boolean;
  /** Size limit of that tmpfs (default "8g"; pages are only used when written). */
  tmpfsSize?: string;
}

/** Stops what this module started when the test process exits (registered once). */
function cleanupAtExit(): void {
  for (const d of live.values()) stopDaemonSync(d);
  live.clear();
}

export async function startDockerd(opts: StartDockerdOptions = {}): Promise<Dockerd> {
  const tmpfs = opts.tmpfs ?? process.env.RESTORABLE_TEST_DOCKER_TMPFS !== "0";
  const tmpfsSize = opts.tmpfsSize ?? "8g";
  onProcessExit(cleanupAtExit);
  // Short path: containerd's sockets live under the exec-root (unix socket paths max 107 bytes).
  const dir = mkdtempSync(join(tmpdir(), "rdk-"));
  chmodSync(dir, 0o755);
  const sock = join(dir, "docker.sock");
  const host = `unix://${sock}`;
  const env = dockerEnv(host, dir);
  mkdirSync(env.DOCKER_CONFIG!, { recursive: true });
  writeFileSync(join(env.DOCKER_CONFIG!, "config.json"), "{}\n");
  const state: LiveDaemon = { dir, pid: 0, host };
  live.set(dir, state); // from here on, the exit hook cleans up whatever exists
  const dataRoot = join(dir, "data");
  mkdirSync(dataRoot);
  if (tmpfs) {
    // Image layers are ~12k small files: on this VM's disk `docker load` spends ~10 s creating
    // them, on tmpfs ~2 s. RAM is plentiful; the mount is removed by stop() / the exit hook.
    const m = await run("mount", ["-t", "tmpfs", "-o", `size=${tmpfsSize},mode=0711`, "restorable-dockerd", dataRoot]);
    if (m.code !== 0) {
      stopDaemonSync(state);
      live.delete(dir);
      throw new Error(`mount tmpfs for dockerd data-root: ${m.stderr}`);
    }
  }
  const logFile = join(dir, "dockerd.log");
  const logFd = openSync(logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(
      "/usr/sbin/dockerd",
      [
        "--data-root", dataRoot,
        "--exec-root", join(dir, "exec"),
        "-H", host,
        "--pidfile", join(dir, "docker.pid"),
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--bridge=none",
        "--storage-driver=overlay2",
        "--log-driver=json-file",
        "--userland-proxy=false",
      ],
      // Own session: a terminal's ^C reaches only the test process, whose exit hook then stops it.
      { detached: true, stdio: ["ignore", logFd, logFd], env: { ...process.env, DOCKER_HOST: "" } },
    );
  } finally {
    closeSync(logFd);
  }
  child.unref();
  let exited = false;
  let spawnError: Error | undefined;
  const exitedP = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
    child.once("error", (e) => {
      spawnError = e;
      exited = true;
      resolve();
    });
  });
  const pid = child.pid ?? 0;
  state.pid = pid;

  const docker = (args: string[], opts: Omit<RunOptions, "env"> & { env?: NodeJS.ProcessEnv } = {}) =>
    run(DOCKER_BIN, args, { ...opts, env: opts.env ?? env });
  const dockerOk = async (args: string[], opts: Omit<RunOptions, "env"> & { env?: NodeJS.ProcessEnv } = {}) => {
    const r = await docker(args, opts);
    if (r.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout}`.trim());
    return r;
  };

  let stopped = false;
  const d: Dockerd = {
    host,
    env,
    dir,
    pid,
    docker,
    dockerOk,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        if (!exited) {
          const ps = await docker(["ps", "-aq"], { timeoutMs: 30_000 });
          const ids = ps.stdout.split("\n").filter(Boolean);
          if (ids.length) await docker(["rm", "-f", "-v", ...ids], { timeoutMs: 120_000 });
          try {
            if (pid > 0) process.kill(pid, "SIGTERM");
          } catch {
            /* gone */
          }
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([exitedP, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
          clearTimeout(timer);
        }
        // Whatever is left (dockerd, its containerd, shims): kill it.
        for (const p of pidsMentioning(dir)) {
          try {
            process.kill(p, "SIGKILL");
          } catch {
            /* gone */
          }
        }
        await waitFor("dockerd processes to exit", () => pidsMentioning(dir).length === 0, 10_000).catch(() => undefined);
        for (const mp of mountsUnder(dir)) await run("umount", ["-l", mp]);
        rmSync(dir, { recursive: true, force: true });
      } finally {
        live.delete(dir);
      }
    },
  };

  try {
    await waitFor(
      "dockerd to answer",
      async () => {
        if (exited) throw new Error(`dockerd exited${spawnError ? ` (${spawnError.message})` : ""}:\n${readFileSync(logFile, "utf8").slice(-3000)}`);
        const r = await docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 10_000 });
        return r.code === 0;
      },
      60_000,
      100,
    );
  } catch (e) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-3000) : "";
    await d.stop();
    throw new Error(`${String(e)}\n${log}`);
  }
  return d;
}

// ---- images -------------------------------------------------------------------------------

function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const dir = join(base, "restorable-test");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Debian apt sources of this machine for the suite (deb822 and one-line formats). */
export function debianSources(suite = "bookworm"): { uri: string; suites: string[]; components: string[] }[] {
  const files: string[] = [];
  if (existsSync("/etc/apt/sources.list")) files.push("/etc/apt/sources.list");
  if (existsSync("/etc/apt/sources.list.d")) {
    for (const f of readdirSync("/etc/apt/sources.list.d").sort()) {
      if (f.endsWith(".list") || f.endsWith(".sources")) files.push(join("/etc/apt/sources.list.d", f));
    }
  }
  const out: { uri: string; suites: string[]; components: string[] }[] = [];
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    if (f.endsWith(".sources")) {
      for (const para of text.split(/\n\s*\n/)) {
        const fields: Record<string, string> = {};
        for (const line of para.split("\n")) {
          if (line.startsWith("#")) continue;
          const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
          if (m) fields[m[1]!.toLowerCase()] = m[2]!.trim();
        }
        if ((fields.enabled ?? "yes") === "no") continue;
        if (!(fields.types ?? "").split(/\s+/).includes("deb")) continue;
        for (const uri of (fields.uris ?? "").split(/\s+/).filter(Boolean)) {
          out.push({ uri, suites: (fields.suites ?? "").split(/\s+/).filter(Boolean), components: (fields.components ?? "").split(/\s+/).filter(Boolean) });
        }
      }
    } else {
      for (const raw of text.split("\n")) {
        const line = raw.replace(/#.*/, "").trim();
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
        if (m) out.push({ uri: m[1]!, suites: [m[2]!], components: m[3]!.split(/\s+/).filter(Boolean) });
      }
    }
  }
  return out
    .map((s) => ({ ...s, suites: s.suites.filter((x) => x === suite || x.startsWith(`${suite}-`) || x.startsWith(`${suite}/`)) }))
    .filter((s) => s.suites.length > 0 && s.components.includes("main"))
    .map((s) => ({ ...s, components: ["main"] }));
}

/** The mirror for debootstrap: the first source carrying the plain suite. */
function debianMirror(suite = "bookworm"): string {
  const s = debianSources(suite).find((x) => x.suites.includes(suite));
  return s?.uri ?? "http://deb.debian.org/debian";
}

function sourcesList(suite = "bookworm"): string {
  const srcs = debianSources(suite);
  if (srcs.length === 0) return `deb ${debianMirror(suite)} ${suite} main\n`;
  return srcs.map((s) => s.suites.map((x) => `deb ${s.uri} ${x} ${s.components.join(" ")}\n`).join("")).join("");
}

function hashOf(inputs: unknown): string {
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
}

async function imageExists(d: Dockerd, tag: string): Promise<boolean> {
  return (await d.docker(["image", "inspect", "--format", "{{.Id}}", tag])).code === 0;
}

function lockHolderAlive(lockDir: string): boolean {
  try {
    const [host, pid] = readFileSync(join(lockDir, "owner"), "utf8").trim().split(" ");
    if (host !== hostId()) return true; // another machine (shared cache): trust its lock
    return processAlive(Number(pid));
  } catch {
    // Owner file not written yet: fresh lock unless it is old.
    try {
      return Date.now() - statSync(lockDir).mtimeMs < 30_000;
    } catch {
      return false;
    }
  }
}

function hostId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

/**
 * Make `tag` available in `d`: load the cached tarball for `key`, or build it with `build` (once
 * across concurrent processes), save it to the cache atomically and keep it loaded.
 */
async function cachedImage(d: Dockerd, name: string, tag: string, key: string, build: () => Promise<void>, timeoutMs = 15 * 60_000): Promise<void> {
  if (await imageExists(d, tag)) return;
  const dir = cacheDir();
  const tarball = join(dir, `${name}-${key}.tar`);
  const lockDir = join(dir, `${name}-${key}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(tarball)) {
      const r = await d.docker(["load", "-q", "-i", tarball], { timeoutMs: 10 * 60_000 });
      if (r.code === 0 && (await imageExists(d, tag))) return;
      // Corrupt or foreign tarball: drop it and build again.
      rmSync(tarball, { force: true });
    }
    let locked = false;
    try {
      mkdirSync(lockDir);
      locked = true;
    } catch {
      if (!lockHolderAlive(lockDir)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
    }
    if (locked) {
      try {
        writeFileSync(join(lockDir, "owner"), `${hostId()} ${process.pid}\n`);
        if (existsSync(tarball)) continue; // someone finished between our check and the lock
        await build();
        if (!(await imageExists(d, tag))) throw new Error(`building ${tag} did not produce the image`);
        const tmp = join(dir, `.${name}-${key}.tar.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
        try {
          const r = await d.docker(["save", "-o", tmp, tag], { timeoutMs: 10 * 60_000 });
          if (r.code !== 0) throw new Error(`docker save ${tag}: ${r.stderr}`);
          renameSync(tmp, tarball);
        } finally {
          rmSync(tmp, { force: true });
        }
        pruneStale(dir, name, key);
        return;
      } finally {
        rmSync(lockDir, { recursive: true, force: true });
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for another process to build ${tag} (lock ${lockDir})`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Drop tarballs of `name` built from other inputs (older recipes) once they are a day old. */
function pruneStale(dir: string, name: string, key: string): void {
  for (const f of readdirSync(dir)) {
    const m = new RegExp(`^\\.?${name}-([0-9a-f]{16})\\.tar`).exec(f);
    if (!m || m[1] === key) continue;
    try {
      if (Date.now() - statSync(join(dir, f)).mtimeMs > 24 * 3600_000) rmSync(join(dir, f), { force: true });
    } catch {
      /* raced with another process */
    }
  }
}

const DEBIAN_RECIPE = 1;

function debianKey(): string {
  return hashOf({ recipe: DEBIAN_RECIPE, mirror: debianMirror(), sources: sourcesList(), arch: process.arch });
}

/** A Debian bookworm minbase image (debootstrap + docker import), apt sources as on this machine. */
export async function ensureDebianImage(d: Dockerd): Promise<string> {
  await cachedImage(d, "debian-bookworm", DEBIAN_IMAGE, debianKey(), async () => {
    const work = mkdtempSync(join(tmpdir(), "rdeb-"));
    const rootfs = join(work, "rootfs");
    try {
      const r = await run("debootstrap", ["--variant=minbase", "bookworm", rootfs, debianMirror()], { timeoutMs: 15 * 60_000 });
      if (r.code !== 0) {
        const log = existsSync(join(rootfs, "debootstrap/debootstrap.log")) ? readFileSync(join(rootfs, "debootstrap/debootstrap.log"), "utf8").slice(-3000) : "";
        throw new Error(`debootstrap failed (exit ${r.code}):\n${r.stderr.slice(-3000)}\n${log}`);
      }
      writeFileSync(join(rootfs, "etc/apt/sources.list"), sourcesList());
      rmSync(join(rootfs, "var/cache/apt/archives"), { recursive: true, force: true });
      mkdirSync(join(rootfs, "var/cache/apt/archives/partial"), { recursive: true });
      rmSync(join(rootfs, "var/lib/apt/lists"), { recursive: true, force: true });
      mkdirSync(join(rootfs, "var/lib/apt/lists/partial"), { recursive: true });
      const imp = await pipeTarInto(d, rootfs, ["import", "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "-c", 'CMD ["bash"]', "-", DEBIAN_IMAGE]);
      if (imp.code !== 0) throw new Error(`docker import failed: ${imp.stderr}`);
    } finally {
      for (const mp of mountsUnder(work)) await run("umount", ["-l", mp]);
      rmSync(work, { recursive: true, force: true });
    }
  });
  return DEBIAN_IMAGE;
}

/** `tar -C dir -c . | docker <args>` with both exit codes checked. */
async function pipeTarInto(d: Dockerd, dir: string, args: string[]): Promise<RunResult> {
  return run("bash", ["-c", 'set -o pipefail; dir=$1; shift; tar --numeric-owner -C "$dir" -c . | "$DOCKER_BIN" "$@"', "bash", dir, ...args], {
    env: { ...d.env, DOCKER_BIN },
    timeoutMs: 10 * 60_000,
  });
}

/** Entrypoint modelled on the official image's docker-entrypoint.sh (the parts that matter). */
export const POSTGRES_ENTRYPOINT = `#!/bin/bash
# restorable-test stand-in for the official postgres image's entrypoint.
# Honours POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD,
# POSTGRES_INITDB_ARGS, PGDATA and PGPORT; runs /docker-entrypoint-initdb.d/*.sh|*.sql on an empty
# data dir; TCP uses password auth (scram-sha-256), the local socket is trusted.
set -Eeuo pipefail

if [ "\${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "\${POSTGRES_USER:=postgres}"
  : "\${POSTGRES_DB:=$POSTGRES_USER}"
  auth="\${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "\${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo 'error: database is uninitialized and POSTGRES_PASSWORD is not set' >&2
    echo '       (set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust)' >&2
    exit 1
  fi
  pwargs=()
  if [ -n "\${POSTGRES_PASSWORD:-}" ]; then
    pwfile="$(mktemp)"
    printf '%s\\n' "$POSTGRES_PASSWORD" > "$pwfile"
    pwargs=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086
  initdb -D "$PGDATA" --username="$POSTGRES_USER" "\${pwargs[@]}" -E UTF8 --locale=C.UTF-8 \\
    --auth-local=trust --auth-host="$auth" \${POSTGRES_INITDB_ARGS:-}
  [ -n "\${pwfile:-}" ] && rm -f "$pwfile"
  printf 'host all all all %s\\n' "$auth" >> "$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\\n" >> "$PGDATA/postgresql.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w -t 60 start
  psql=(psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ]; then
    "\${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; "\${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) echo "running $f"; gunzip -c "$f" | "\${psql[@]}" --dbname "$POSTGRES_DB" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w -t 60 stop
  echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
`;

export const POSTGRES_DOCKERFILE = (base: string) => `FROM ${base}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PG_MAJOR=15
# Slimmed for fast \`docker load\`: no JIT (LLVM), docs, man pages or translations.
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \\
 && mkdir -p /etc/postgresql-common \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \\
 && apt-get update \\
 && apt-get install -y --no-install-recommends postgresql-15 \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* \\
 && rm -rf /usr/lib/*/libLLVM-*.so* /usr/lib/*/libz3.so* /usr/lib/postgresql/15/lib/llvmjit*.so \\
           /usr/lib/postgresql/15/lib/bitcode /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \\
 && mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql \\
 && chown postgres:postgres /var/lib/postgresql /var/lib/postgresql/data /var/run/postgresql \\
 && chmod 3777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
HEALTHCHECK --interval=1s --timeout=5s --retries=120 CMD pg_isready -q -h 127.0.0.1 || exit 1
CMD ["postgres"]
`;

const POSTGRES_RECIPE = 1;

/**
 * The Postgres 15 image (built once, then loaded from the cache). Like the official image:
 * binaries on PATH, a `postgres` user, POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB/PGDATA honoured
 * on an empty data dir; postgres runs in the foreground on all addresses, port $PGPORT (default
 * 5432), password auth over TCP, trust on the local socket. A HEALTHCHECK turns healthy once the
 * final server accepts TCP connections.
 */
export async function ensurePostgresImage(d: Dockerd): Promise<string> {
  const key = hashOf({ recipe: POSTGRES_RECIPE, base: debianKey(), dockerfile: POSTGRES_DOCKERFILE(DEBIAN_IMAGE), entrypoint: POSTGRES_ENTRYPOINT });
  await cachedImage(d, "postgres15", POSTGRES_IMAGE, key, async () => {
    await ensureDebianImage(d);
    const ctx = mkdtempSync(join(tmpdir(), "rpgimg-"));
    try {
      writeFileSync(join(ctx, "Dockerfile"), POSTGRES_DOCKERFILE(DEBIAN_IMAGE));
      writeFileSync(join(ctx, "docker-entrypoint.sh"), POSTGRES_ENTRYPOINT, { mode: 0o755 });
      const r = await d.docker(["build", "--network", "host", "-t", POSTGRES_IMAGE, ctx], { timeoutMs: 15 * 60_000 });
      if (r.code !== 0) throw new Error(`docker build ${POSTGRES_IMAGE} failed:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
  });
  return POSTGRES_IMAGE;
}

/** A tiny image: static busybox with all applets (tar, sh, gzip, sha256sum, ...) in /bin. */
export async function ensureToolImage(d: Dockerd): Promise<string> {
  if (await imageExists(d, TOOL_IMAGE)) return TOOL_IMAGE;
  const busybox = "/bin/busybox";
  const bb = existsSync(busybox) ? busybox : "/usr/bin/busybox";
  const work = mkdtempSync(join(tmpdir(), "rbb-"));
  try {
    const bin = join(work, "bin");
    mkdirSync(bin);
    mkdirSync(join(work, "tmp"), { mode: 0o1777 });
    chmodSync(join(work, "tmp"), 0o1777);
    for (const sub of ["etc", "data", "root"]) mkdirSync(join(work, sub));
    writeFileSync(join(work, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
    writeFileSync(join(work, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    copyFileSync(bb, join(bin, "busybox"));
    chmodSync(join(bin, "busybox"), 0o755);
    const applets = execFileSync(bb, ["--list"]).toString().split("\n").filter((a) => a && a !== "busybox");
    for (const a of applets) symlinkSync("busybox", join(bin, a));
    const r = await pipeTarInto(d, work, ["import", "-c", "ENV PATH=/bin", "-c", 'CMD ["sh"]', "-", TOOL_IMAGE]);
    if (r.code !== 0) throw new Error(`docker import ${TOOL_IMAGE} failed: ${r.stderr}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return TOOL_IMAGE;
}

// ---- convenience: a Postgres container ------------------------------------------------------

export interface PgContainer {
  name: string;
  /** TCP port on 127.0.0.1 (network "host"), or the port inside the container (network "none"). */
  port: number;
  user: string;
  password: string;
  database: string;
  /** docker exec -i <name> psql -XAtq -v ON_ERROR_STOP=1 -U user -d database; throws on error. */
  psql(sql: string, opts?: { database?: string; user?: string }): Promise<string>;
  remove(): Promise<void>;
}

/** Wait until the container's HEALTHCHECK says healthy (throws if it exits first). */
export async function waitHealthy(d: Dockerd, container: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    `container ${container} to become healthy`,
    async () => {
      const r = await d.docker(["inspect", "--format", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", container]);
      const [status, health] = r.stdout.trim().split(" ");
      if (r.code !== 0) throw new Error(r.stderr.trim());
      if (status === "exited" || status === "dead") {
        const logs = await d.docker(["logs", "--tail", "50", container]);
        throw new Error(`container ${container} ${status}:\n${logs.stdout}${logs.stderr}`);
      }
      return health === "healthy" || (health === "none" && status === "running");
    },
    timeoutMs,
    200,
  );
}

/**
 * Run the Postgres image detached (`--network host` by default, on a free port) and wait until
 * it accepts TCP connections.
 */
export async function startPostgresContainer(
  d: Dockerd,
  opts: { name?: string; user?: string; password?: string; database?: string; port?: number; network?: "host" | "none"; volume?: string; env?: Record<string, string> } = {},
): Promise<PgContainer> {
  const image = await ensurePostgresImage(d);
  const name = opts.name ?? `rpg-${randomBytes(4).toString("hex")}`;
  const network = opts.network ?? "host";
  const port = opts.port ?? (network === "host" ? await freePort() : 5432);
  const user = opts.user ?? "app";
  const password = opts.password ?? "app-secret";
  const database = opts.database ?? user;
  const args = ["run", "-d", "--name", name, "--network", network, "-e", `PGPORT=${port}`, "-e", `POSTGRES_USER=${user}`, "-e", `POSTGRES_PASSWORD=${password}`, "-e", `POSTGRES_DB=${database}`];
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push("-e", `${k}=${v}`);
  if (opts.volume) args.push("-v", `${opts.volume}:/var/lib/postgresql/data`);
  await d.dockerOk([...args, image]);
  await waitHealthy(d, name);
  return {
    name,
    port,
    user,
    password,
    database,
    async psql(sql, o = {}) {
      const r = await d.docker(["exec", "-i", name, "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", o.user ?? user, "-d", o.database ?? database, "-f", "-"], { input: sql });
      if (r.code !== 0) throw new Error(`psql in ${name} failed (exit ${r.code}): ${r.stderr.trim()}`);
      return r.stdout.replace(/\n$/, "");
    },
    async remove() {
      await d.docker(["rm", "-f", "-v", name]);
    },
  };
}

// ---- docker-compose (v1) ------------------------------------------------------------------

export interface ComposeProject {
  dir: string;
  /** The unique project name (also written to <dir>/.env as COMPOSE_PROJECT_NAME). */
  name: string;
  /** docker-compose up -d, then wait until every container with a healthcheck is healthy. */
  up(): Promise<void>;
  /** docker-compose down -v --remove-orphans (idempotent). */
  down(): Promise<void>;
  /** Run docker-compose with the project's name and file, in dir. Never throws on exit codes. */
  compose(args: string[], opts?: Omit<RunOptions, "env" | "cwd">): Promise<RunResult>;
}

/**
 * Write docker-compose.yml into `dir` (created) and drive it with Debian's docker-compose 1.29
 * against `d`. The unique project name is also put in `<dir>/.env` (COMPOSE_PROJECT_NAME), so a
 * plain `cd dir && docker-compose exec -T db ...` (as a backup script runs it) finds the project.
 * Use `network_mode: host` for services: the daemon runs with --bridge=none.
 */
export async function composeProject(d: Dockerd, dir: string, yaml: string): Promise<ComposeProject> {
  mkdirSync(dir, { recursive: true });
  const name = `rt${randomBytes(5).toString("hex")}`;
  writeFileSync(join(dir, "docker-compose.yml"), yaml);
  const envFile = join(dir, ".env");
  const prev = existsSync(envFile) ? readFileSync(envFile, "utf8").split("\n").filter((l) => l && !l.startsWith("COMPOSE_PROJECT_NAME=")) : [];
  writeFileSync(envFile, [...prev, `COMPOSE_PROJECT_NAME=${name}`, ""].join("\n"));
  const compose = (args: string[], opts: Omit<RunOptions, "env" | "cwd"> = {}) =>
    run(COMPOSE_BIN, ["-p", name, "-f", join(dir, "docker-compose.yml"), ...args], { timeoutMs: 10 * 60_000, ...opts, cwd: dir, env: d.env });
  let isUp = false;
  return {
    dir,
    name,
    compose,
    async up() {
      isUp = true;
      const r = await compose(["up", "-d", "--no-build"]);
      if (r.code !== 0) throw new Error(`docker-compose up failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
      const ps = await d.dockerOk(["ps", "-aq", "--filter", `label=com.docker.compose.project=${name}`]);
      for (const id of ps.stdout.split("\n").filter(Boolean)) await waitHealthy(d, id);
    },
    async down() {
      if (!isUp) return;
      const r = await compose(["down", "-v", "--remove-orphans", "--timeout", "10"]);
      if (r.code !== 0) throw new Error(`docker-compose down failed (exit ${r.code}):\n${r.stderr}`);
      isUp = false;
    },
  };
}
