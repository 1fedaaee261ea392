import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Integration tests need real binaries (PostgreSQL, radosgw, aws, sshd, dockerd, ...).
 * Under CI (CI=true) a missing binary is a failure, never a skip: the test file throws at
 * collection time. Locally the caller may skip, and a message says what to install.
 */
export interface ToolCheck {
  ok: boolean;
  missing: string[];
  /** Why the suite is skipped (empty when ok). */
  reason: string;
}

/** Debian package that provides each binary the tests use (for the message). */
const PACKAGES: Record<string, string> = {
  "/usr/lib/postgresql/15/bin/initdb": "postgresql",
  "/usr/lib/postgresql/15/bin/pg_ctl": "postgresql",
  pg_dump: "postgresql-client",
  pg_restore: "postgresql-client",
  psql: "postgresql-client",
  pgbench: "postgresql-contrib",
  "ceph-mon": "ceph-mon",
  "ceph-osd": "ceph-osd",
  radosgw: "radosgw",
  "radosgw-admin": "radosgw",
  "/usr/bin/aws": "awscli",
  "/usr/sbin/sshd": "openssh-server",
  ssh: "openssh-client",
  "ssh-keygen": "openssh-client",
  "ssh-keyscan": "openssh-client",
  cron: "cron",
  crontab: "cron",
  dockerd: "docker.io",
  docker: "docker.io",
  "docker-compose": "docker-compose",
  debootstrap: "debootstrap",
  shellcheck: "shellcheck",
  zstd: "zstd",
  age: "age",
  "age-keygen": "age",
  flock: "util-linux",
  curl: "curl",
  jq: "jq",
  busybox: "busybox-static",
  "/usr/bin/chromium": "chromium",
  promtool: "prometheus",
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1": "faketime",
};

export function hasTool(bin: string): boolean {
  if (bin.startsWith("/")) return existsSync(bin);
  try {
    execFileSync("sh", ["-c", 'command -v "$1"', "sh", bin], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Check binaries; under CI=true throw when any is missing.
 * Usage: `const tools = requireTools("radosgw", "/usr/bin/aws"); describe.skipIf(!tools.ok)(...)`.
 */
export function requireTools(...bins: string[]): ToolCheck {
  const missing = bins.filter((b) => !hasTool(b));
  if (missing.length === 0) return { ok: true, missing, reason: "" };
  const pkgs = [...new Set(missing.map((b) => PACKAGES[b] ?? b))];
  const reason = `missing ${missing.join(", ")}: apt-get install ${pkgs.join(" ")}`;
  if (process.env.CI === "true" || process.env.CI === "1") {
    throw new Error(`CI requires real services, none may be skipped: ${reason}`);
  }
  // eslint-disable-next-line no-console
  console.warn(`SKIPPING integration test (${reason})`);
  return { ok: false, missing, reason };
}
