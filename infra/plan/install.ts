// Installing a host's rendered files and crontab block over SSH. Pure: it only produces the
// shell texts (and the stdin payload) that the HostInstall component hands to
// @pulumi/command's remote.Command, and that the integration tests run for real over sshd.
//
// Shape of the work:
//   preflight  run first: are the tools the host's configuration needs on cron's PATH, can the
//              SSH user write the directories, may it use crontab, can it reach Docker?
//              Exit 1 with the missing list and how to install them; nothing is changed.
//   install    reads a self-describing payload on stdin (file contents incl. credentials: data
//              never travels in argv or the environment), writes every file atomically (temp
//              file in the same directory, chmod, rename), leaves byte-identical files alone,
//              replaces our marked block in the SSH user's crontab (or puts it at the top), and
//              keeps a record of what it wrote and which directories it created.
//   uninstall  removes our crontab block, our files, and the directories the install created
//              (when empty; the state dir with its lock files and logs entirely). Never the
//              user's other cron lines, never other files, never anything in the bucket.
//              Safe to run twice.
//
// Crontab decision: the SSH user's own crontab (`crontab -l` / `crontab FILE`), not
// /etc/cron.d. Reasons: one code path for root and non-root users (an /etc/cron.d file needs
// root); `crontab` validates the lines when installing, so a bad line fails `pulumi up` instead
// of cron silently skipping a whole /etc/cron.d file (bad owner, mode, or a dot in its name);
// and the jobs run as the user who owns the 0600 credentials file. The block goes at the top of
// the crontab: variable assignments the user writes below it (SHELL=, PATH=, MAILTO=) do not
// apply to our lines, and the block sets none, so nothing of ours leaks into the user's lines.
// Our lines therefore run in cron's bare environment (SHELL=/bin/sh, PATH=/usr/bin:/bin, HOME
// from passwd): they call the scripts by absolute path and the scripts set PATH themselves.
//
// Non-root SSH users: everything runs as the SSH user, without sudo. The directories
// (paths.scriptsDir, paths.configDir and the state dir) must then be writable by that user, and
// Docker sources need the user in the `docker` group; preflight says so plainly when not.
//
// The command texts are POSIX sh without single quotes, wrapped as `exec /bin/sh -c '...'`, so
// they behave the same whatever the user's login shell is (bash, dash, zsh, ...).
import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { HostConfig } from "../config/schema";
import type { HostPlan } from "./index";
import { CRON_BEGIN, CRON_END, STATE_DIR, type RenderedHost } from "./render";

/** One rendered file (contract: infra/plan/render.ts). */
export interface InstallFile {
  path: string;
  mode: number;
  content: string;
  secret: boolean;
}
/** What renderHost() returns (contract: infra/plan/render.ts), or a hand-made one of the same shape. */
export interface InstallInput {
  files: InstallFile[];
  crontab: string;
  hash: string;
}
// RenderedHost must stay usable as an InstallInput.
const _renderedIsInput: (r: RenderedHost) => InstallInput = (r) => r;
void _renderedIsInput;

export { CRON_BEGIN, CRON_END } from "./render";
/** What the scripts see under cron: their own standard PATH (contract), cron's /usr/bin:/bin after it. */
export const CRON_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
export const DEFAULT_STATE_DIR = STATE_DIR;
/** Name of the install record in the config dir. */
export const RECORD_NAME = ".restorable-installed";
export const PAYLOAD_HEADER = "restorable-install 1";

export interface InstallOptions {
  /**
   * PATH preflight looks tools up in. Default: CRON_SEARCH_PATH, i.e. what the scripts will
   * have under cron (tools that only an interactive shell finds, e.g. in ~/.local/bin, do not count).
   */
  searchPath?: string;
}

export interface ToolNeed {
  /** Binary looked up on the search path ("initdb" is also looked for in /usr/lib/postgresql/N/bin). */
  tool: string;
  /** Debian/Ubuntu package that provides it. */
  pkg: string;
  /** Why this host needs it. */
  why: string;
}

export interface InstallPlan {
  /** sh command text: exit 0 when the host is ready; else exit 1 and say what is missing (stderr). Changes nothing. */
  preflight: string;
  install: {
    /** sh command text; reads `stdin`. Idempotent: a re-run with the same payload changes nothing. */
    command: string;
    /** The payload (file contents, credentials included): secret. */
    stdin: string;
  };
  /** sh command text: removes our crontab block, files and created directories. Safe to run twice. */
  uninstall: string;
  /** Replace the installation when these change: the rendered content hash. */
  triggers: string[];
  /** What goes where (no content), for outputs and docs. */
  files: { path: string; mode: string; secret: boolean }[];
  scriptsDir: string;
  configDir: string;
  stateDir: string;
  /** Path of the install record on the host. */
  record: string;
  tools: ToolNeed[];
}

const SAFE_PATH = /^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/;

function checkPath(p: string, what: string): string {
  if (!SAFE_PATH.test(p) || p.split("/").some((s) => s === "..")) {
    throw new Error(`installPlan: ${what} "${p}" must be an absolute path of letters, digits, . _ - and /`);
  }
  return p;
}

/** The images a host runs and so must keep pulled: the drill's Postgres (docker runtime) and the volume tar image. */
export function hostImages(c: HostConfig): { drill?: string; volume?: string } {
  return {
    ...(c.postgres.length > 0 && c.drill.runtime === "docker" ? { drill: c.drill.image } : {}),
    ...(c.volumes.length > 0 ? { volume: c.volumeImage } : {}),
  };
}

/** The tools a host's configuration needs at run time (and the packages that provide them). */
export function requiredTools(c: HostConfig): ToolNeed[] {
  const needs: ToolNeed[] = [
    { tool: "bash", pkg: "bash", why: "runs the scripts" },
    { tool: "crontab", pkg: "cron", why: "schedules the jobs" },
    { tool: "aws", pkg: "awscli", why: "uploads to and downloads from the bucket" },
    { tool: "zstd", pkg: "zstd", why: "compresses dumps and volume archives" },
    { tool: "flock", pkg: "util-linux", why: "prevents overlapping runs" },
    { tool: "curl", pkg: "curl", why: "sends healthchecks pings" },
    { tool: "sha256sum", pkg: "coreutils", why: "checksums every upload" },
    { tool: "jq", pkg: "jq", why: "reads manifests in restore and drill" },
    { tool: "base64", pkg: "coreutils", why: "the installer decodes the payload" },
    { tool: "cmp", pkg: "diffutils", why: "the installer leaves unchanged files alone" },
  ];
  const pg = c.postgres;
  const usesDocker = pg.some((p) => p.via !== "local") || Object.keys(hostImages(c)).length > 0;
  if (pg.some((p) => p.via === "local")) {
    needs.push({ tool: "pg_dump", pkg: "postgresql-client", why: "dumps the local databases" });
    needs.push({ tool: "pg_dumpall", pkg: "postgresql-client", why: "dumps roles (globals)" });
    needs.push({ tool: "psql", pkg: "postgresql-client", why: "lists tables for the manifest" });
  }
  if (c.pitr?.enabled && pg.some((p) => p.via === "local")) {
    // compose/container sources: both run in the database's own image (docker exec, a sidecar).
    needs.push({ tool: "pg_basebackup", pkg: "postgresql-client", why: "takes the local clusters' base backups (pitr)" });
    needs.push({ tool: "pg_receivewal", pkg: "postgresql-client", why: "streams the local clusters' WAL (pitr)" });
  }
  if (usesDocker) needs.push({ tool: "docker", pkg: "docker.io", why: "reaches containers, volumes and the drill image" });
  if (pg.some((p) => p.via === "compose")) needs.push({ tool: "docker-compose|docker compose", pkg: "docker-compose", why: "runs pg_dump in the Compose service" });
  if (pg.length > 0 && c.drill.runtime === "local") {
    needs.push({ tool: "pg_restore", pkg: "postgresql-client", why: "restores the dump in the drill" });
    needs.push({ tool: "psql", pkg: "postgresql-client", why: "runs the drill's checks" });
    needs.push({ tool: "initdb", pkg: "postgresql", why: "creates the drill's throwaway cluster" });
    needs.push({ tool: "pg_ctl", pkg: "postgresql", why: "starts and stops the drill's cluster" });
  }
  if (c.encryption) needs.push({ tool: "age", pkg: "age", why: "encrypts backups to the age recipients" });
  const seen = new Set<string>();
  return needs.filter((n) => (seen.has(n.tool) ? false : (seen.add(n.tool), true)));
}

/** The marked block, ending in a newline; accepts the block with or without its markers. */
export function cronBlock(crontab: string): string {
  const lines = crontab.replace(/\n+$/, "").split("\n");
  if (lines[0] === CRON_BEGIN && lines[lines.length - 1] === CRON_END) {
    const inner = lines.slice(1, -1);
    if (inner.some((l) => l === CRON_BEGIN || l === CRON_END)) throw new Error("installPlan: crontab block contains a nested marker line");
    return `${lines.join("\n")}\n`;
  }
  if (lines.some((l) => l === CRON_BEGIN || l === CRON_END)) throw new Error("installPlan: crontab block has a marker line in the wrong place");
  return `${[CRON_BEGIN, ...lines, CRON_END].join("\n")}\n`;
}

/** The state dir the scripts use (RESTORABLE_STATE_DIR in restorable.conf), else the default. */
export function stateDirOf(rendered: InstallInput): string {
  for (const f of rendered.files) {
    const m = /^RESTORABLE_STATE_DIR='([^']*)'\s*$/m.exec(f.content);
    if (m && !f.secret && m[1]) return m[1];
  }
  return DEFAULT_STATE_DIR;
}

function b64(s: string): string {
  return Buffer.from(s, "utf8").toString("base64");
}

/** The stdin payload: self-describing, line based, every content base64 on one line, `end` last. */
export function installPayload(rendered: InstallInput, stateDir: string): string {
  const lines = [PAYLOAD_HEADER, `dir 700 ${stateDir}`];
  for (const f of rendered.files) lines.push(`file ${f.mode.toString(8)} ${f.path} ${b64(f.content)}`);
  lines.push(`cron ${b64(cronBlock(rendered.crontab))}`);
  lines.push("end");
  return `${lines.join("\n")}\n`;
}

/** `exec /bin/sh -c '<script>'`: the same shell whatever the login shell is. */
export function wrapSh(script: string, name: string): string {
  if (script.includes("'")) throw new Error(`installPlan: internal error: the ${name} script contains a single quote`);
  return `exec /bin/sh -c '${script}' restorable-${name}`;
}

/** The inner sh script of a command text produced by wrapSh (for shellcheck and debugging). */
export function unwrapSh(command: string): string {
  const m = /^exec \/bin\/sh -c '([^']*)' restorable-[a-z]+$/s.exec(command);
  if (!m) throw new Error("not a wrapped restorable command");
  return m[1]!;
}

// ---- shared shell pieces -----------------------------------------------------------------

function prelude(what: string, host: string): string {
  return `#!/bin/sh
# restorable ${what} for host ${host}
set -eu
umask 077
PATH="${CRON_SEARCH_PATH}:$PATH"
export PATH
LC_ALL=C
export LC_ALL
BEGIN_MARK="${CRON_BEGIN}"
END_MARK="${CRON_END}"
ME=$(id -un)
work=$(mktemp -d "\${TMPDIR:-/tmp}/restorable-${what}.XXXXXX")
cleanup() {
  if [ -f "$work/pending" ]; then
    while IFS= read -r t; do rm -f "$t"; done < "$work/pending"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" HUP INT TERM
fail() {
  printf "restorable ${what} on ${host}: %s\\n" "$*" >&2
  exit 1
}
# The current crontab of the SSH user into $1 (empty when there is none).
cron_read() {
  if crontab -l > "$1" 2> "$work/cron.err"; then return 0; fi
  if grep -qi "no crontab" "$work/cron.err"; then : > "$1"; return 0; fi
  fail "cannot read the crontab of $ME: $(cat "$work/cron.err")"
}
# $1 without our block(s) into $2; with $3 (a block file) our block goes where the first one
# was, or at the top when there was none. Every other line is kept as it is.
cron_merge() {
  placed=0
  inside=0
  : > "$2"
  if [ -n "\${3:-}" ] && ! grep -qxF "$BEGIN_MARK" "$1"; then
    cat "$3" > "$2"
    placed=1
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    if [ "$inside" = 0 ] && [ "$line" = "$BEGIN_MARK" ]; then
      inside=1
      if [ -n "\${3:-}" ] && [ "$placed" = 0 ]; then
        cat "$3" >> "$2"
        placed=1
      fi
      continue
    fi
    if [ "$inside" = 1 ]; then
      if [ "$line" = "$END_MARK" ]; then inside=0; fi
      continue
    fi
    printf "%s\\n" "$line" >> "$2"
  done < "$1"
  if [ "$inside" = 1 ]; then
    fail "the crontab of $ME has the line \\"$BEGIN_MARK\\" without a matching \\"$END_MARK\\": fix it with crontab -e, then re-run"
  fi
}
# Install $2 as the crontab when it differs from $1 (an empty result removes the crontab).
cron_write() {
  if cmp -s "$1" "$2"; then return 1; fi
  if [ -s "$2" ]; then
    crontab "$2" || fail "crontab rejected the new crontab of $ME"
  else
    crontab -r 2>/dev/null || true
  fi
  return 0
}
`;
}

// ---- the three commands ------------------------------------------------------------------

function preflightScript(host: HostPlan, tools: ToolNeed[], dirs: string[], stateDir: string, searchPath: string, usesDocker: boolean): string {
  const c = host.config;
  const checks: string[] = [];
  for (const t of tools) {
    if (t.tool === "docker-compose|docker compose") {
      checks.push(`if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then missing "docker-compose (or the docker compose plugin)" "${t.pkg}"; fi`);
    } else if (t.tool === "initdb" || t.tool === "pg_ctl") {
      checks.push(`if ! command -v ${t.tool} >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/${t.tool} >/dev/null 2>&1; then missing ${t.tool} ${t.pkg}; fi`);
    } else {
      checks.push(`if ! command -v ${t.tool} >/dev/null 2>&1; then missing ${t.tool} ${t.pkg}; fi`);
    }
  }
  const dirChecks = dirs.map((d) => `check_dir "${d}"`);
  return `#!/bin/sh
# restorable preflight for host ${host.name}: changes nothing.
set -u
PATH="${searchPath}"
export PATH
ME=$(id -un)
tools=""
pkgs=""
problems=""
missing() {
  tools="$tools $1"
  case " $pkgs " in *" $2 "*) ;; *) pkgs="$pkgs $2" ;; esac
}
problem() {
  problems="$problems
  - $*"
}
# A directory is fine when it exists and is writable, or when its nearest existing parent is.
check_dir() {
  if [ -e "$1" ]; then
    if [ ! -d "$1" ]; then problem "$1 exists but is not a directory"; return; fi
    if [ ! -w "$1" ]; then problem "$1 is not writable by $ME"; fi
    return
  fi
  p=$(dirname "$1")
  while [ ! -e "$p" ]; do p=$(dirname "$p"); done
  if [ ! -d "$p" ] || [ ! -w "$p" ]; then problem "$ME cannot create $1 ($p is not writable by $ME)"; fi
}
${checks.join("\n")}
${dirChecks.join("\n")}
if command -v crontab >/dev/null 2>&1; then
  if ! crontab -l >/dev/null 2>"\${TMPDIR:-/tmp}/restorable-preflight.$$"; then
    if ! grep -qi "no crontab" "\${TMPDIR:-/tmp}/restorable-preflight.$$"; then
      problem "$ME may not use crontab: $(cat "\${TMPDIR:-/tmp}/restorable-preflight.$$") (see /etc/cron.allow and /etc/cron.deny)"
    fi
  fi
  rm -f "\${TMPDIR:-/tmp}/restorable-preflight.$$"
fi
${tools.some((t) => t.tool === "initdb") ? `if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
  problem "the local drill runs its throwaway cluster as the postgres user (initdb refuses root), and there is no postgres user: install postgresql, or useradd --system postgres"
fi
` : ""}${usesDocker ? `if command -v docker >/dev/null 2>&1 && ! docker version >/dev/null 2>&1; then
  problem "$ME cannot reach the Docker daemon (is it running? a non-root user needs to be in the docker group: usermod -aG docker $ME)"
fi
` : ""}if [ -z "$tools" ] && [ -z "$problems" ]; then
  if ! [ -e /run/crond.pid ] && ! [ -e /var/run/crond.pid ] && ! pgrep -x cron >/dev/null 2>&1 && ! pgrep -x crond >/dev/null 2>&1; then
    printf "restorable preflight on ${host.name}: warning: no running cron daemon found; the scheduled backups will not run until it is started\\n" >&2
  fi
  printf "restorable preflight on ${host.name}: ready (user %s)\\n" "$ME"
  exit 0
fi
{
  printf "restorable preflight on ${host.name}: host ${c.ssh.host} is not ready for user %s\\n" "$ME"
  if [ -n "$tools" ]; then
    printf "  missing tools (looked for on PATH=%s, what the scripts get under cron):%s\\n" "$PATH" "$tools"
    printf "  install them, on Debian/Ubuntu: apt-get install -y%s\\n" "$pkgs"
    case " $tools " in *" aws "*)
      printf "  (aws is the AWS CLI v2; where the distribution has no awscli package: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)\\n" ;;
    esac
  fi
  if [ -n "$problems" ]; then
    printf "  problems:%s\\n" "$problems"
    case "$problems" in *"not writable"*)
      printf "  connect as root (ssh.user: root), or set paths.scriptsDir and paths.configDir of host ${host.name} to directories %s owns\\n" "$ME"
      case "$problems" in *"${stateDir}"*)
        printf "  and have root create the state directory once: install -d -m 0700 -o %s ${stateDir}\\n" "$ME" ;;
      esac ;;
    esac
  fi
} >&2
exit 1
`;
}

function installScript(host: HostPlan, hash: string, files: string[], record: string): string {
  const expected = files.map((f) => `"${f}"`).join(" \\\n  ");
  return `${prelude("install", host.name)}RECORD="${record}"
HASH="${hash}"
payload=$(cat)
case "$payload" in
  "${PAYLOAD_HEADER}"*) ;;
  *) fail "no install payload on stdin: nothing was changed" ;;
esac
case "$payload" in
  *"
end") ;;
  *) fail "the install payload is incomplete (no end line): nothing was changed" ;;
esac
# The files this install owns, in order; the payload must carry exactly these.
: > "$work/expected"
for f in ${expected}; do
  printf "%s\\n" "$f" >> "$work/expected"
done
# Directories created by earlier installs stay ours.
: > "$work/dirs"
if [ -f "$RECORD" ]; then
  grep "^dir " "$RECORD" | cut -c5- > "$work/dirs" || true
fi
ensure_dir() {
  if [ -d "$1" ]; then return 0; fi
  ensure_dir "$(dirname "$1")"
  mkdir -m 755 "$1" || fail "cannot create directory $1 as $ME"
  if ! grep -qxF "$1" "$work/dirs"; then printf "%s\\n" "$1" >> "$work/dirs"; fi
}
: > "$work/staged"
: > "$work/same"
: > "$work/seen"
while IFS=" " read -r kind a b c; do
  case "$kind" in
    "${PAYLOAD_HEADER.split(" ")[0]}") ;;
    dir)
      if [ ! -d "$b" ]; then
        ensure_dir "$(dirname "$b")"
        mkdir -m "$a" "$b" || fail "cannot create directory $b as $ME"
        printf "%s\\n" "$b" >> "$work/dirs"
      fi
      ;;
    file)
      grep -qxF "$b" "$work/expected" || fail "the payload has an unexpected file $b: nothing was changed"
      printf "%s\\n" "$b" >> "$work/seen"
      # Identical content and mode: leave the file (and its directory) untouched.
      if [ -f "$b" ] && [ ! -L "$b" ] && [ "$(stat -c %a "$b")" = "$a" ] && printf "%s\\n" "$c" | base64 -d 2>/dev/null | cmp -s - "$b"; then
        printf "%s\\n" "$b" >> "$work/same"
        continue
      fi
      d=$(dirname "$b")
      ensure_dir "$d"
      t=$(mktemp "$d/.restorable.XXXXXX") || fail "cannot write in $d as $ME"
      printf "%s\\n" "$t" >> "$work/pending"
      printf "%s\\n" "$c" | base64 -d > "$t" || fail "cannot decode the content of $b"
      chmod "$a" "$t"
      printf "%s %s\\n" "$b" "$t" >> "$work/staged"
      ;;
    cron)
      printf "%s\\n" "$a" | base64 -d > "$work/block" || fail "cannot decode the crontab block"
      ;;
    end) break ;;
    *) fail "unexpected payload line ($kind): nothing was changed" ;;
  esac
done <<EOF
$payload
EOF
payload=""
sort "$work/expected" > "$work/expected.sorted"
sort "$work/seen" > "$work/seen.sorted"
cmp -s "$work/expected.sorted" "$work/seen.sorted" || fail "the payload does not carry every file of this install: nothing was changed"
[ -f "$work/block" ] || fail "the payload has no crontab block: nothing was changed"
# Move changed files into place (rename is atomic).
written=0
while IFS=" " read -r path tmp; do
  mv -f "$tmp" "$path"
  written=$((written + 1))
done < "$work/staged"
unchanged=$(wc -l < "$work/same")
unchanged=$((unchanged + 0))
# Files an earlier install wrote that this one does not: remove.
stale=0
if [ -f "$RECORD" ]; then
  grep "^file " "$RECORD" | cut -c6- > "$work/old" || true
  while IFS= read -r f; do
    if ! grep -qxF "$f" "$work/expected"; then rm -f "$f"; stale=$((stale + 1)); fi
  done < "$work/old"
fi
# The crontab block.
cron_read "$work/cron.cur"
cron_merge "$work/cron.cur" "$work/cron.new" "$work/block"
if cron_write "$work/cron.cur" "$work/cron.new"; then crontab_state="updated"; else crontab_state="unchanged"; fi
# The record (what uninstall removes), rewritten only when it changes.
ensure_dir "$(dirname "$RECORD")"
{
  printf "# restorable install record (managed by Pulumi; do not edit)\\n"
  printf "hash %s\\n" "$HASH"
  while IFS= read -r d; do printf "dir %s\\n" "$d"; done < "$work/dirs"
  while IFS= read -r f; do printf "file %s\\n" "$f"; done < "$work/expected"
} > "$work/record"
if ! cmp -s "$work/record" "$RECORD" 2>/dev/null; then
  t=$(mktemp "$(dirname "$RECORD")/.restorable.XXXXXX")
  printf "%s\\n" "$t" >> "$work/pending"
  cat "$work/record" > "$t"
  chmod 644 "$t"
  mv -f "$t" "$RECORD"
fi
printf "restorable install on ${host.name}: %s files written, %s unchanged, %s stale removed; crontab block of %s %s\\n" "$written" "$unchanged" "$stale" "$ME" "$crontab_state"
`;
}

/** PITR: stop the WAL archiver (it runs until stopped) and drop its replication slots, before the files go. */
function pitrUninstallStep(host: HostPlan): string {
  const cmd = `${host.config.paths.scriptsDir}/pitr-uninstall`;
  return `# 1b. PITR: stop the WAL archiver and drop its replication slots (scripts/pitr-uninstall.sh).
if [ -x "${cmd}" ]; then
  "${cmd}" || printf "restorable uninstall on ${host.name}: pitr-uninstall failed (see above); drop the replication slots by hand\\n" >&2
fi
`;
}

function uninstallScript(host: HostPlan, files: string[], record: string, stateDir: string): string {
  const list = files.map((f) => `"${f}"`).join(" \\\n  ");
  return `${prelude("uninstall", host.name)}RECORD="${record}"
STATE_DIR="${stateDir}"
# 1. The crontab block first, so cron starts nothing while files go away.
cron_read "$work/cron.cur"
cron_merge "$work/cron.cur" "$work/cron.new"
if cron_write "$work/cron.cur" "$work/cron.new"; then crontab_state="removed"; else crontab_state="absent"; fi
${host.pitr ? pitrUninstallStep(host) : ""}# 2. A run in progress holds its lock file in the state dir: let it finish (at most 15 minutes
# each) rather than pull its files from under it. Cron starts no new run: the block is gone.
if [ -d "$STATE_DIR" ] && command -v flock >/dev/null 2>&1; then
  for lock in "$STATE_DIR"/*.lock; do
    [ -e "$lock" ] || continue
    if ! flock -n "$lock" true 2>/dev/null; then
      printf "restorable uninstall on ${host.name}: waiting for the run holding %s to finish\\n" "$lock"
      flock -w 900 "$lock" true 2>/dev/null || printf "restorable uninstall on ${host.name}: %s is still held after 15 minutes; removing anyway\\n" "$lock" >&2
    fi
  done
fi
# 3. Our files: those this install wrote, and any the record lists.
: > "$work/dirs"
removed=0
if [ -f "$RECORD" ]; then
  grep "^dir " "$RECORD" | cut -c5- > "$work/dirs" || true
  grep "^file " "$RECORD" | cut -c6- > "$work/files" || true
  while IFS= read -r f; do
    if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; removed=$((removed + 1)); fi
  done < "$work/files"
fi
for f in ${list}; do
  if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f"; removed=$((removed + 1)); fi
done
rm -f "$RECORD"
# 4. Directories the install created, deepest first: when empty (the state dir, which holds
# only lock files and run logs, entirely). Directories that existed before are left alone.
kept=""
tac "$work/dirs" > "$work/dirs.rev"
while IFS= read -r d; do
  [ -d "$d" ] || continue
  if [ "$d" = "$STATE_DIR" ]; then
    rm -rf "$d"
  elif ! rmdir "$d" 2>/dev/null; then
    kept="$kept $d"
  fi
done < "$work/dirs.rev"
printf "restorable uninstall on ${host.name}: %s files removed; crontab block of %s %s\\n" "$removed" "$ME" "$crontab_state"
if [ -n "$kept" ]; then
  printf "restorable uninstall on ${host.name}: kept directories that hold files we did not write:%s\\n" "$kept"
fi
`;
}

/**
 * The commands that install `rendered` on `host` over SSH, and remove it again.
 * Pure and deterministic: same input, same texts.
 */
export function installPlan(rendered: InstallInput, host: HostPlan, opts: InstallOptions = {}): InstallPlan {
  const c = host.config;
  const scriptsDir = checkPath(c.paths.scriptsDir, "paths.scriptsDir");
  const configDir = checkPath(c.paths.configDir, "paths.configDir");
  const stateDir = checkPath(stateDirOf(rendered), "RESTORABLE_STATE_DIR");
  const record = `${configDir}/${RECORD_NAME}`;
  if (!/^[A-Za-z0-9:._-]+$/.test(rendered.hash)) throw new Error(`installPlan: hash "${rendered.hash}" is not a plain hex/base64url string`);
  const paths = rendered.files.map((f) => checkPath(f.path, `file path`));
  if (new Set(paths).size !== paths.length) throw new Error("installPlan: two rendered files have the same path");
  for (const f of rendered.files) {
    if (![0o755, 0o644, 0o600].includes(f.mode)) throw new Error(`installPlan: ${f.path} has mode ${f.mode.toString(8)}; expected 755, 644 or 600`);
    if (f.secret && f.mode !== 0o600) throw new Error(`installPlan: ${f.path} holds secrets and must have mode 600`);
    if (f.path === record) throw new Error(`installPlan: ${f.path} is the install record's path`);
  }
  const tools = requiredTools(c);
  const usesDocker = tools.some((t) => t.tool === "docker");
  const dirs = [...new Set([scriptsDir, configDir, stateDir, ...paths.map((p) => posix.dirname(p))])];
  const searchPath = opts.searchPath ?? CRON_SEARCH_PATH;
  if (!/^[A-Za-z0-9._/:-]+$/.test(searchPath)) throw new Error(`installPlan: searchPath "${searchPath}" has unexpected characters`);
  const plan: InstallPlan = {
    preflight: wrapSh(preflightScript(host, tools, dirs, stateDir, searchPath, usesDocker), "preflight"),
    install: { command: wrapSh(installScript(host, rendered.hash, paths, record), "install"), stdin: installPayload(rendered, stateDir) },
    uninstall: wrapSh(uninstallScript(host, paths, record, stateDir), "uninstall"),
    triggers: [rendered.hash],
    files: rendered.files.map((f) => ({ path: f.path, mode: f.mode.toString(8).padStart(4, "0"), secret: f.secret })),
    scriptsDir,
    configDir,
    stateDir,
    record,
    tools,
  };
  // Belt and braces: no secret content in any command text.
  for (const f of rendered.files.filter((x) => x.secret)) {
    for (const line of f.content.split("\n").filter((l) => l.includes("=") && !l.trimStart().startsWith("#") && l.trim().length >= 8)) {
      for (const text of [plan.preflight, plan.install.command, plan.uninstall]) {
        if (text.includes(line)) throw new Error(`installPlan: internal error: a command text contains content of the secret file ${f.path}`);
      }
    }
  }
  return plan;
}

/** sha256 hex of a string (tests, fixtures). */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
