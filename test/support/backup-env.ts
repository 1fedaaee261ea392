/**
 * A rendered host for tests against the harness services: builds a real stack config (validated
 * by parseConfig, like `pulumi up` does), renders it with renderHost, writes restorable.conf and
 * the 0600 credentials file into a temp dir and runs the scripts with RESTORABLE_CONFIG pointing
 * there: by default `bash scripts/<name>.sh` from the repository; with `install: true` every
 * rendered file is written to its (temp) path and the installed scripts run, exactly as `pulumi up`
 * would leave them on a host.
 *
 * Shared by the backup and the restore/drill tests; keep it general.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseConfig, type RawConfig } from "../../infra/config";
import { buildPlan, hostIamPolicy, type HostPlan, type Plan } from "../../infra/plan";
import { renderConfig, renderHost, type HostSecrets, type RenderedHost } from "../../infra/plan/render";
import { shAssign } from "../../infra/plan/shell";
import { cleanLibpqEnv } from "./postgres";
import { run, type RunResult } from "./proc";
import { AWS_BIN, type S3Server } from "./s3server";

export const REPO_ROOT = resolve(__dirname, "../..");
export const SCRIPTS_DIR = join(REPO_ROOT, "scripts");

type RawHost = RawConfig["hosts"][number];
export type RawPostgresSource = NonNullable<RawHost["postgres"]>[number];

export interface BucketAccess {
  endpoint: string;
  region: string;
  bucket: string;
  creds: { accessKeyId: string; secretAccessKey: string };
}

export interface BackupEnvOptions {
  /** Host name (default "web-1"). */
  host?: string;
  /** Where the backups go, and the host's key (written to the credentials file). */
  s3: BucketAccess;
  postgres?: RawPostgresSource[];
  /** database -> password (credentials file). */
  pgPasswords?: Record<string, string>;
  volumes?: string[];
  volumeImage?: string;
  ageRecipients?: string[];
  zstdLevel?: number;
  drill?: RawHost["drill"];
  schedule?: RawHost["schedule"];
  logs?: RawHost["logs"];
  metrics?: RawHost["metrics"];
  objectives?: RawConfig["objectives"];
  /** The host's pitr section (point-in-time recovery). */
  pitr?: RawHost["pitr"];
  /** storage.objectLock and retention of the stack config (the bucket itself is the test's to make). */
  objectLock?: RawConfig["storage"]["objectLock"];
  retention?: RawConfig["retention"];
  /**
   * Ping URL. The schema only accepts https, so a local http ping server's URL is written as an
   * override line at the end of restorable.conf (the rendered line stays as rendered).
   */
  pingUrl?: string;
  /** More assignments appended to restorable.conf (NAME -> value or array), quoted by shAssign. */
  extraConf?: Record<string, string | number | string[]>;
  /** The environment the scripts start from (e.g. a private dockerd's env with DOCKER_HOST). */
  baseEnv?: NodeJS.ProcessEnv;
  /** Write every rendered file and run the installed scripts instead of scripts/<name>.sh. */
  install?: boolean;
}

export interface RunScriptOptions {
  /** RESTORABLE_NOW (ISO-8601 UTC). */
  now?: string;
  /** Extra environment (merged over env()). */
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** Do not set RESTORABLE_CONFIG (installed scripts then use their rendered default path). */
  noConfigEnv?: boolean;
}

export interface BackupEnv {
  /** The temp dir holding everything below. */
  dir: string;
  configPath: string;
  credentialsPath: string;
  stateDir: string;
  /** Where `install: true` puts the scripts (the host's scriptsDir). */
  scriptsDir: string;
  /** The scripts' TMPDIR; nothing may be left in it after a run. */
  tmpDir: string;
  plan: Plan;
  host: HostPlan;
  rendered: RenderedHost;
  secrets: HostSecrets;
  /** Environment for running the scripts. */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Path of the script that run() executes ("backup" -> scripts/backup.sh or <scriptsDir>/backup). */
  scriptPath(name: string): string;
  run(name: string, args?: string[], opts?: RunScriptOptions): Promise<RunResult>;
  /** Start a script without waiting (for tests that interfere with a running backup). */
  spawn(name: string, args?: string[], opts?: RunScriptOptions): ChildProcess;
  /** Rewrite the credentials file (null: delete it). */
  writeCredentials(secrets: HostSecrets | null): void;
  /** Replace the conf overrides (NAME -> value) appended to restorable.conf, and rewrite it. */
  setOverrides(extra: Record<string, string | number | string[]>): void;
  /** Files left in tmpDir and run directories left in stateDir (both should be empty after a run). */
  leftovers(): string[];
  /** Runs /usr/bin/aws against the bucket with the host's key (or `creds`). */
  aws(args: string[], opts?: { creds?: BucketAccess["creds"]; input?: string | Buffer }): Promise<RunResult>;
  /** Keys (with sizes) under a prefix of the bucket. */
  list(prefix: string): Promise<{ key: string; size: number }[]>;
  /** Downloads an object (binary-safe). */
  get(key: string): Promise<Buffer>;
  remove(): void;
}

/** The raw stack config the fixture renders (exported for tests that want to tweak it). */
export function backupEnvConfig(o: BackupEnvOptions, dir: string): RawConfig {
  const host: RawHost = {
    name: o.host ?? "web-1",
    ssh: { host: "192.0.2.10" },
    postgres: o.postgres ?? [],
    volumes: o.volumes ?? [],
    paths: { scriptsDir: join(dir, "opt"), configDir: join(dir, "etc") },
  };
  if (o.volumeImage) host.volumeImage = o.volumeImage;
  if (o.ageRecipients) host.encryption = { ageRecipients: o.ageRecipients };
  if (o.zstdLevel !== undefined) host.zstdLevel = o.zstdLevel;
  if (o.drill) host.drill = o.drill;
  if (o.schedule) host.schedule = o.schedule;
  if (o.pitr) host.pitr = o.pitr;
  if (o.logs) host.logs = o.logs;
  if (o.metrics) host.metrics = o.metrics;
  return {
    storage: { provider: "s3", bucket: o.s3.bucket, endpoint: o.s3.endpoint, region: o.s3.region, allowNotOffsite: true, ...(o.objectLock ? { objectLock: o.objectLock } : {}) },
    objectives: o.objectives ?? { rpo: "24h", rto: "1h" },
    ...(o.retention ? { retention: o.retention } : {}),
    hosts: [host],
  };
}

function awsEnv(access: BucketAccess, creds: BucketAccess["creds"], dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AWS_")) env[k] = v;
  env.PATH = `/usr/bin:${env.PATH ?? "/bin"}`;
  env.AWS_CONFIG_FILE = join(dir, "aws-test.config");
  env.AWS_SHARED_CREDENTIALS_FILE = "/dev/null";
  env.AWS_ACCESS_KEY_ID = creds.accessKeyId;
  env.AWS_SECRET_ACCESS_KEY = creds.secretAccessKey;
  env.AWS_DEFAULT_REGION = access.region;
  env.AWS_PAGER = "";
  env.AWS_EC2_METADATA_DISABLED = "true";
  return env;
}

export function createBackupEnv(o: BackupEnvOptions): BackupEnv {
  // Short path: sockets may live under TMPDIR.
  const dir = mkdtempSync(join(tmpdir(), "rbe-"));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, "state");
  const tmpDir = join(dir, "tmp");
  mkdirSync(tmpDir, { mode: 0o755 });
  writeFileSync(join(dir, "aws-test.config"), "[default]\ns3 =\n  addressing_style = path\n");

  const cfg = parseConfig(backupEnvConfig(o, dir));
  const plan = buildPlan(cfg);
  const host = plan.hosts[0]!;
  const secrets: HostSecrets = {
    accessKeyId: o.s3.creds.accessKeyId,
    secretAccessKey: o.s3.creds.secretAccessKey,
    pgPasswords: o.pgPasswords ?? {},
  };
  const rendered = renderHost(plan, host, secrets, { stateDir });
  const configPath = rendered.files.find((f) => f.path.endsWith("/restorable.conf"))!.path;
  const credentialsPath = rendered.files.find((f) => f.secret)!.path;
  const scriptsDir = host.config.paths.scriptsDir;
  let overrides: Record<string, string | number | string[]> = { ...(o.extraConf ?? {}) };
  if (o.pingUrl !== undefined) overrides.RESTORABLE_PING_URL = o.pingUrl;

  const writeFile = (path: string, content: string, mode: number) => {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(path, content, { mode });
    chmodSync(path, mode);
  };
  const writeConf = () => {
    const lines = Object.entries(overrides).map(([k, v]) => shAssign(k, Array.isArray(v) ? v : String(v)));
    const extra = lines.length ? `# test overrides (test/support/backup-env.ts)\n${lines.join("\n")}\n` : "";
    writeFile(configPath, renderConfig(plan, host, { stateDir }) + extra, 0o644);
  };

  if (o.install) {
    for (const f of rendered.files) writeFile(f.path, f.content, f.mode);
  } else {
    writeFile(credentialsPath, rendered.files.find((f) => f.secret)!.content, 0o600);
  }
  writeConf();

  const env: BackupEnv["env"] = (extra = {}) => {
    const e = cleanLibpqEnv(o.baseEnv ?? process.env);
    for (const k of Object.keys(e)) if (k.startsWith("AWS_") || k.startsWith("RESTORABLE_")) delete e[k];
    e.RESTORABLE_CONFIG = configPath;
    e.TMPDIR = tmpDir;
    // Never the caller's AWS config: the scripts bring their own; these catch any leak.
    e.AWS_CONFIG_FILE = join(dir, "no-aws-config");
    e.AWS_SHARED_CREDENTIALS_FILE = join(dir, "no-aws-credentials");
    e.PATH = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", ...(e.PATH ?? "").split(":").filter((p) => p && !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].includes(p))].join(":");
    return { ...e, ...extra };
  };
  const scriptPath = (name: string) => (o.install ? join(scriptsDir, name) : join(SCRIPTS_DIR, `${name}.sh`));
  const scriptEnv = (opts: RunScriptOptions) => {
    const e = env(opts.env);
    if (opts.now !== undefined) e.RESTORABLE_NOW = opts.now;
    if (opts.noConfigEnv) delete e.RESTORABLE_CONFIG;
    return e;
  };
  const cmdFor = (name: string, args: string[]): [string, string[]] =>
    o.install ? [scriptPath(name), args] : ["bash", [scriptPath(name), ...args]];

  const e: BackupEnv = {
    dir,
    configPath,
    credentialsPath,
    stateDir,
    scriptsDir,
    tmpDir,
    plan,
    host,
    rendered,
    secrets,
    env,
    scriptPath,
    run(name, args = [], opts = {}) {
      const [cmd, argv] = cmdFor(name, args);
      return run(cmd, argv, { env: scriptEnv(opts), input: opts.input, timeoutMs: opts.timeoutMs ?? 5 * 60_000, cwd: dir });
    },
    spawn(name, args = [], opts = {}) {
      const [cmd, argv] = cmdFor(name, args);
      return spawn(cmd, argv, { env: scriptEnv(opts), cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    },
    writeCredentials(s) {
      if (s === null) {
        rmSync(credentialsPath, { force: true });
        return;
      }
      const r = renderHost(plan, host, s, { stateDir });
      writeFile(credentialsPath, r.files.find((f) => f.secret)!.content, 0o600);
    },
    setOverrides(extra) {
      overrides = { ...extra };
      writeConf();
    },
    leftovers() {
      const out: string[] = [];
      if (existsSync(tmpDir)) out.push(...readdirSync(tmpDir).map((n) => join(tmpDir, n)));
      if (existsSync(stateDir)) out.push(...readdirSync(stateDir).filter((n) => n.startsWith("run.")).map((n) => join(stateDir, n)));
      return out;
    },
    aws(args, opts = {}) {
      return run(AWS_BIN, ["--endpoint-url", o.s3.endpoint, ...args], { env: awsEnv(o.s3, opts.creds ?? o.s3.creds, dir), input: opts.input });
    },
    async list(prefix) {
      const r = await e.aws(["s3api", "list-objects-v2", "--bucket", o.s3.bucket, "--prefix", prefix, "--output", "json"]);
      if (r.code !== 0) throw new Error(`list ${prefix} failed: ${r.stderr}`);
      if (!r.stdout.trim()) return [];
      const j = JSON.parse(r.stdout) as { Contents?: { Key: string; Size: number }[] };
      return (j.Contents ?? []).map((c) => ({ key: c.Key, size: c.Size })).sort((a, b) => a.key.localeCompare(b.key));
    },
    async get(key) {
      const file = join(dir, `download-${process.hrtime.bigint()}`);
      try {
        const r = await e.aws(["s3", "cp", "--only-show-errors", `s3://${o.s3.bucket}/${key}`, file]);
        if (r.code !== 0) throw new Error(`get ${key} failed: ${r.stderr}`);
        return readFileSync(file);
      } finally {
        rmSync(file, { force: true });
      }
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return e;
}

/**
 * A new S3 user `host` holding exactly the plan's least-privilege policy for `host` in `bucket`
 * (hostIamPolicy: no delete, list only its own prefix), and the bucket access with its key.
 */
export async function hostBucketAccess(s3: S3Server, bucket: string, host: string): Promise<BucketAccess> {
  const creds = await s3.createUser(host);
  const r = await s3.aws(s3.admin, ["iam", "put-user-policy", "--user-name", host, "--policy-name", "restorable", "--policy-document", JSON.stringify(hostIamPolicy(bucket, host))]);
  if (r.code !== 0) throw new Error(`put-user-policy failed: ${r.stderr}`);
  return { endpoint: s3.endpoint, region: s3.region, bucket, creds };
}

/** The contract's one-line failure reason (last "FAILED at stage" line on stderr), or "". */
export function failedLine(r: { stderr: string }): string {
  return r.stderr.split("\n").filter((l) => l.includes("FAILED at stage")).pop() ?? "";
}

/** Size in bytes of every regular file under `dir` (recursively), for "no local temp file" checks. */
export function filesUnder(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      try {
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (st.isFile()) out.push({ path: p, size: st.size });
      } catch {
        /* vanished */
      }
    }
  };
  walk(dir);
  return out;
}
