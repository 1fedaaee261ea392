// Everything a host gets, rendered from the plan: the scripts (templates in scripts/), their
// non-secret config, the credentials file (0600, the only file with secrets) and the crontab
// block. Pure except for reading the templates (loadTemplates), which callers may do themselves
// and pass in. Every substituted value is shell-quoted by shq (./shell.ts).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DEFAULT_PATHS, type HostConfig } from "../config/schema";
import { isDeferred, KNOWN_AFTER_DEPLOY, type HostPlan, type Plan } from "./index";
import { pitrCronJobs, renderPitrConfig } from "./render-pitr";
import { cronEscape, shArray, shAssign, shq } from "./shell";

// ---------------------------------------------------------------------------------------------
// Contract types (README: "What runs on the host")

export interface HostSecrets {
  accessKeyId: string;
  secretAccessKey: string;
  /** database name -> password; a database without an entry (or with "") connects without one. */
  pgPasswords: Record<string, string>;
}

export interface RenderedFile {
  /** Absolute path on the host. */
  path: string;
  mode: 0o755 | 0o644 | 0o600;
  content: string;
  /** True only for the credentials file. */
  secret: boolean;
}

export interface RenderedHost {
  files: RenderedFile[];
  /** The marked crontab block (BEGIN/END lines included, newline-terminated). */
  crontab: string;
  /** sha256 (hex) of every file's path and mode, every non-secret file's content and the crontab. */
  hash: string;
}

// ---------------------------------------------------------------------------------------------
// Constants

/** Lock files, run directories and cron logs on the host. */
export const STATE_DIR = DEFAULT_PATHS.stateDir;
export const CONFIG_FILE_NAME = "restorable.conf";
export const CREDENTIALS_FILE_NAME = "credentials";
export const CRON_BEGIN = "# BEGIN restorable (managed by Pulumi; do not edit)";
export const CRON_END = "# END restorable";
/** zstd worker threads: 1 measured fastest end to end on 2 cores, where pg_dump and the server share the CPU. */
export const ZSTD_THREADS = 1;

/** The repository's scripts/ directory (templates). */
export const TEMPLATES_DIR = resolve(__dirname, "../../scripts");

// ---------------------------------------------------------------------------------------------
// Templates

export interface Template {
  /** File name in scripts/, e.g. "backup.sh". */
  source: string;
  /** File name in scriptsDir on the host, e.g. "backup". */
  install: string;
  mode: 0o755 | 0o644;
  content: string;
}

/**
 * Which files of scripts/ are templates and how they are installed (data-driven: a new
 * scripts/<name>.sh just appears): `lib*.sh` are sourced libraries, installed under the same
 * name with mode 0644; every other `<name>.sh` is a command, installed as `<name>` with 0755.
 * Anything else in scripts/ is not installed.
 */
export function templateSpec(fileName: string): { install: string; mode: 0o755 | 0o644 } | undefined {
  if (!/^[a-z][a-z0-9-]*\.sh$/.test(fileName)) return undefined;
  if (/^lib([.-]|$)/.test(fileName)) return { install: fileName, mode: 0o644 };
  return { install: fileName.replace(/\.sh$/, ""), mode: 0o755 };
}

/** Reads every template in `dir` (default: the repository's scripts/): lib.sh, other libraries, commands. */
export function loadTemplates(dir: string = TEMPLATES_DIR): Template[] {
  const out: Template[] = [];
  for (const name of readdirSync(dir).sort()) {
    const spec = templateSpec(name);
    if (!spec) continue;
    out.push({ source: name, ...spec, content: readFileSync(join(dir, name), "utf8") });
  }
  // lib.sh first (everything sources it), then other libraries, then commands; by name within.
  const rank = (t: Template) => (t.source === "lib.sh" ? 0 : t.mode === 0o644 ? 1 : 2);
  const byName = (a: Template, b: Template) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0);
  return out.sort((a, b) => rank(a) - rank(b) || byName(a, b));
}

/** Placeholders a template may use, as @@NAME@@; each is replaced by shq(value). */
export type TemplateValues = Record<"DEFAULT_CONFIG" | "SCRIPTS_DIR" | "CONFIG_DIR" | "STATE_DIR", string>;

const PLACEHOLDER = /@@([A-Za-z0-9_]*)@@/g;

/** Substitutes @@NAME@@ placeholders with shell-quoted values; an unknown placeholder is an error. */
export function renderTemplate(name: string, content: string, values: Record<string, string>): string {
  return content.replace(PLACEHOLDER, (_m, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`template ${name}: unknown placeholder @@${key}@@ (known: ${Object.keys(values).join(", ")})`);
    return shq(v);
  });
}

// ---------------------------------------------------------------------------------------------
// Config and credentials

export interface RenderOptions {
  /** Templates to render (default: loadTemplates()). */
  templates?: Template[];
  /** State directory on the host (default: the host's paths.stateDir); tests point it at a temp dir. */
  stateDir?: string;
}

export function hostPaths(host: HostPlan, opts: RenderOptions = {}) {
  const { scriptsDir, configDir, stateDir } = host.config.paths;
  return {
    scriptsDir,
    configDir,
    stateDir: opts.stateDir ?? stateDir,
    config: `${configDir}/${CONFIG_FILE_NAME}`,
    credentials: `${configDir}/${CREDENTIALS_FILE_NAME}`,
  };
}

function pgColumn(c: HostConfig, pick: (p: HostConfig["postgres"][number]) => string | number | undefined): string[] {
  return c.postgres.map((p) => {
    const v = pick(p);
    return v === undefined ? "" : String(v);
  });
}

/** restorable.conf: non-secret settings, sourced by every script (contract). */
export function renderConfig(plan: Plan, host: HostPlan, opts: RenderOptions = {}): string {
  const c = host.config;
  const paths = hostPaths(host, opts);
  const cfg = plan.config;
  // Review output of a plan with deploy-time values (Backups args from other resources) says so
  // instead of showing the stand-in; `pulumi up` renders from the resolved plan, which has none.
  const i = plan.hosts.indexOf(host);
  const known = <T>(key: string, v: T): T | string => (isDeferred(plan, key) ? KNOWN_AFTER_DEPLOY : v);
  const lines = [
    "# shellcheck shell=bash disable=SC2034,SC2016",
    `# restorable settings for host ${host.name} (sourced by the scripts; no secrets here).`,
    "# Managed by Pulumi (restorable): edit Pulumi.<stack>.yaml and run pulumi up, not this file.",
    shAssign("RESTORABLE_HOST", host.name),
    shAssign("RESTORABLE_PROVIDER", plan.provider),
    shAssign("RESTORABLE_BUCKET", plan.bucket),
    shAssign("RESTORABLE_ENDPOINT", plan.endpoint),
    shAssign("RESTORABLE_REGION", plan.region),
    // Generic S3-compatible stores (MinIO, Ceph, ...) want path-style requests; AWS and B2 take either.
    shAssign("RESTORABLE_S3_ADDRESSING_STYLE", plan.provider === "s3" ? "path" : "auto"),
    shAssign("RESTORABLE_PREFIX", host.prefix),
    shAssign("RESTORABLE_PING_URL", known("notify.pingUrl", cfg.notify.pingUrl ?? "")),
    shAssign("RESTORABLE_ZSTD_LEVEL", c.zstdLevel),
    shAssign("RESTORABLE_ZSTD_THREADS", ZSTD_THREADS),
    shAssign("RESTORABLE_AGE_RECIPIENTS", isDeferred(plan, `hosts[${i}].encryption.ageRecipients`) ? [KNOWN_AFTER_DEPLOY] : (c.encryption?.ageRecipients ?? [])),
    shAssign("RESTORABLE_RPO_SECONDS", cfg.objectives.rpo),
    shAssign("RESTORABLE_RTO_SECONDS", cfg.objectives.rto),
    // The retention promise the drill audits (restore points per tier).
    shAssign("RESTORABLE_RETENTION_DAILY", cfg.retention.daily),
    shAssign("RESTORABLE_RETENTION_WEEKLY", cfg.retention.weekly),
    shAssign("RESTORABLE_RETENTION_MONTHLY", cfg.retention.monthly),
    shAssign("RESTORABLE_SCRIPTS_DIR", paths.scriptsDir),
    shAssign("RESTORABLE_CREDENTIALS", paths.credentials),
    shAssign("RESTORABLE_STATE_DIR", paths.stateDir),
    shAssign("RESTORABLE_LOG_MAX_BYTES", c.logs.maxMiB * 1024 * 1024),
    shAssign("RESTORABLE_LOG_KEEP", c.logs.keep),
    shAssign("RESTORABLE_METRICS_DIR", c.metrics?.textfileDir ?? ""),
    "# PostgreSQL sources: parallel arrays, one entry per source.",
    shAssign("RESTORABLE_PG_DATABASE", pgColumn(c, (p) => p.database)),
    shAssign("RESTORABLE_PG_VIA", pgColumn(c, (p) => p.via)),
    shAssign("RESTORABLE_PG_USER", pgColumn(c, (p) => p.user)),
    shAssign("RESTORABLE_PG_PROJECT", pgColumn(c, (p) => (p.via === "compose" ? p.project : undefined))),
    shAssign("RESTORABLE_PG_SERVICE", pgColumn(c, (p) => (p.via === "compose" ? p.service : undefined))),
    shAssign("RESTORABLE_PG_CONTAINER", pgColumn(c, (p) => (p.via === "container" ? p.container : undefined))),
    shAssign("RESTORABLE_PG_HOST", pgColumn(c, (p) => (p.via === "local" ? p.host : undefined))),
    shAssign("RESTORABLE_PG_PORT", pgColumn(c, (p) => (p.via === "local" ? p.port : undefined))),
    shAssign("RESTORABLE_VOLUMES", c.volumes),
    shAssign("RESTORABLE_VOLUME_IMAGE", c.volumeImage),
    shAssign("RESTORABLE_DRILL_RUNTIME", c.drill.runtime),
    shAssign("RESTORABLE_DRILL_IMAGE", c.drill.image),
    shAssign("RESTORABLE_DRILL_CHECKS", c.drill.checks),
    shAssign("RESTORABLE_AGE_IDENTITY", c.drill.ageIdentityFile ?? ""),
    ...renderPitrConfig(host),
  ];
  return `${lines.join("\n")}\n`;
}

/** The credentials file (0600): the only place secrets live on the host (contract). */
export function renderCredentials(host: HostPlan, secrets: HostSecrets): string {
  const dbs = host.config.postgres.map((p) => p.database);
  for (const db of Object.keys(secrets.pgPasswords)) {
    if (!dbs.includes(db)) {
      throw new Error(`pgPasswords has a password for database "${db}", which host ${host.name} does not back up (its databases: ${dbs.join(", ") || "none"})`);
    }
  }
  if (!secrets.accessKeyId || !secrets.secretAccessKey) throw new Error(`host ${host.name}: the S3 access key id and secret are required`);
  const lines = [
    "# shellcheck shell=bash disable=SC2034,SC2016",
    `# restorable credentials for host ${host.name}: SECRET (mode 0600, root only). Managed by Pulumi.`,
    shAssign("AWS_ACCESS_KEY_ID", secrets.accessKeyId),
    shAssign("AWS_SECRET_ACCESS_KEY", secrets.secretAccessKey),
    "# Parallel to RESTORABLE_PG_DATABASE in restorable.conf; '' = no password (peer/trust auth).",
    `RESTORABLE_PG_PASSWORD=${shArray(dbs.map((db) => secrets.pgPasswords[db] ?? ""))}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** Secrets for review output (render CLI): clearly marked placeholders, never real values. */
export function placeholderSecrets(host: HostPlan): HostSecrets {
  return {
    accessKeyId: `<SECRET: S3 access key id for host ${host.name}, set by pulumi up>`,
    secretAccessKey: `<SECRET: S3 secret access key for host ${host.name}, set by pulumi up>`,
    pgPasswords: Object.fromEntries(
      host.config.postgres.map((p) => [p.database, `<SECRET: password of ${p.user} for database ${p.database} from restorable:dbPasswords, empty when none>`]),
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// Crontab

export interface CronJob {
  schedule: string;
  script: string;
}

/** The jobs a host runs: backup always, backup-volumes with volumes, restore-drill with postgres sources or volumes (when its template exists). */
export function cronJobs(host: HostPlan, installed: string[]): CronJob[] {
  const c = host.config;
  const jobs: CronJob[] = [{ schedule: c.schedule.backup, script: "backup" }];
  if (c.volumes.length > 0) jobs.push({ schedule: c.schedule.volumes, script: "backup-volumes" });
  if (c.postgres.length > 0 || c.volumes.length > 0) jobs.push({ schedule: c.schedule.drill, script: "restore-drill" });
  jobs.push(...pitrCronJobs(host));
  return jobs.filter((j) => installed.includes(j.script));
}

/**
 * The marked crontab block. Each line creates the state dir if needed (cron would otherwise fail
 * the redirection before the script runs) and appends the script's output to a log there. The
 * scripts set their own PATH and need no HOME, so cron's bare environment is enough.
 */
export function renderCrontab(host: HostPlan, installed: string[], opts: RenderOptions = {}): string {
  const paths = hostPaths(host, opts);
  const lines = [CRON_BEGIN];
  for (const job of cronJobs(host, installed)) {
    const log = `${paths.stateDir}/${job.script}.log`;
    const cmd = `mkdir -p -m 0700 ${shq(paths.stateDir)} && ${shq(`${paths.scriptsDir}/${job.script}`)} >>${shq(log)} 2>&1`;
    lines.push(`${job.schedule} ${cronEscape(cmd)}`);
  }
  lines.push(CRON_END);
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// The whole host

let cachedTemplates: Template[] | undefined;
function defaultTemplates(): Template[] {
  cachedTemplates ??= loadTemplates();
  return cachedTemplates;
}

export function renderHost(plan: Plan, host: HostPlan, secrets: HostSecrets, opts: RenderOptions = {}): RenderedHost {
  const templates = opts.templates ?? defaultTemplates();
  const paths = hostPaths(host, opts);
  const values: TemplateValues = {
    DEFAULT_CONFIG: paths.config,
    SCRIPTS_DIR: paths.scriptsDir,
    CONFIG_DIR: paths.configDir,
    STATE_DIR: paths.stateDir,
  };
  const files: RenderedFile[] = templates.map((t) => ({
    path: `${paths.scriptsDir}/${t.install}`,
    mode: t.mode,
    content: renderTemplate(t.source, t.content, values),
    secret: false,
  }));
  files.push({ path: paths.config, mode: 0o644, content: renderConfig(plan, host, opts), secret: false });
  files.push({ path: paths.credentials, mode: 0o600, content: renderCredentials(host, secrets), secret: true });
  const crontab = renderCrontab(
    host,
    templates.map((t) => t.install),
    opts,
  );
  return { files, crontab, hash: renderedHash(files, crontab) };
}

/** sha256 over paths, modes, non-secret contents and the crontab (secret contents excluded). */
export function renderedHash(files: RenderedFile[], crontab: string): string {
  const h = createHash("sha256");
  for (const f of files) {
    h.update(`${f.path}\0${f.mode.toString(8)}\0${f.secret ? "secret" : "plain"}\0`);
    if (!f.secret) h.update(f.content);
    h.update("\0");
  }
  h.update(crontab);
  return h.digest("hex");
}
