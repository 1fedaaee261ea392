// npm run status -- --stack NAME [--json] [--html FILE] [--dir DIR]
//
// Reads Pulumi.<stack>.yaml (validated like everywhere: the render CLI's loader and the schema),
// then the bucket with the operator's credentials from the environment (never argv):
//   aws, s3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN when set)
//   b2:      B2_APPLICATION_KEY_ID, B2_APPLICATION_KEY (B2's S3-compatible endpoint)
// and shows, per host and per database, roles and volume, the newest restore point against the
// RPO, the restore points against the retention promise, the last drill, the bytes stored.
// The judgement is infra/plan/fleet-status.ts (pure); this file only reads and prints.
//
// Exit status: 0 every objective holds; 1 an objective is missed; 2 usage, config, credential
// or bucket-access error (one line on stderr: "restorable status: <reason>").
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, formatDuration, parseConfig } from "../config";
import { buildPlan, type Plan } from "../plan";
import { fleetStatus, formatAge, type FleetStatus, type HostBucketData } from "../plan/fleet-status";
import { drillsPrefix, hostPrefix, TIERS } from "../plan/layout";
import { stackConfigFromYaml, UsageError } from "./render";
import { S3Error, S3Reader, type S3Credentials } from "./s3-read";
import { statusHtml } from "./status-html";

/** At most this many of a host's newest drill reports are read (the RTO history). */
export const MAX_DRILL_REPORTS = 100;

export function loadStackPlan(stack: string, dir = process.cwd()): Plan {
  if (!/^[A-Za-z0-9._-]+$/.test(stack)) throw new UsageError(`--stack ${stack}: not a stack name`);
  const file = resolve(dir, `Pulumi.${stack}.yaml`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return buildPlan(parseConfig(stackConfigFromYaml(text, `Pulumi.${stack}.yaml`)));
}

/** The operator's credentials for the plan's provider, from the environment only. */
export function operatorCredentials(provider: Plan["provider"], env: NodeJS.ProcessEnv): S3Credentials {
  const need = provider === "b2" ? (["B2_APPLICATION_KEY_ID", "B2_APPLICATION_KEY"] as const) : (["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] as const);
  const missing = need.filter((n) => !env[n]);
  if (missing.length) throw new UsageError(`no operator credentials for provider ${provider}: set ${missing.join(" and ")} in the environment (a key that can list and read the bucket)`);
  return provider === "b2"
    ? { accessKeyId: env.B2_APPLICATION_KEY_ID!, secretAccessKey: env.B2_APPLICATION_KEY! }
    : { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
}

export function readerFor(plan: Plan, credentials: S3Credentials): S3Reader {
  // Generic stores get path-style (as the host scripts do); AWS and B2 virtual-hosted, except
  // for bucket names with dots, which break TLS host names.
  const pathStyle = plan.provider === "s3" || plan.bucket.includes(".");
  return new S3Reader({ endpoint: plan.endpoint, region: plan.region, bucket: plan.bucket, credentials, pathStyle });
}

const parseJson = (b: Buffer): unknown => {
  try {
    return JSON.parse(b.toString("utf8"));
  } catch {
    return undefined;
  }
};

export async function readHost(s3: S3Reader, host: string): Promise<HostBucketData> {
  const objects = await s3.list(hostPrefix(host));
  const manifestKeys = objects.map((o) => o.key).filter((k) => TIERS.some((t) => k.startsWith(`${host}/${t}/`)) && k.endsWith(".manifest.json"));
  const reportKeys = objects
    .map((o) => o.key)
    .filter((k) => k.startsWith(drillsPrefix(host)) && k.endsWith(".json"))
    .sort()
    .slice(-MAX_DRILL_REPORTS);
  const [manifests, reports] = await Promise.all([s3.getMany(manifestKeys), s3.getMany(reportKeys)]);
  return {
    objects: objects.map((o) => ({ key: o.key, size: o.size, lastModified: o.lastModified })),
    manifests: new Map(manifestKeys.map((k, i) => [k, parseJson(manifests[i]!)])),
    reports: new Map(reportKeys.map((k, i) => [k, parseJson(reports[i]!)])),
  };
}

export async function collectStatus(plan: Plan, stack: string, s3: S3Reader, nowMs = Date.now()): Promise<FleetStatus> {
  const data = new Map<string, HostBucketData>();
  for (const h of plan.hosts) data.set(h.name, await readHost(s3, h.name));
  return fleetStatus(plan, stack, data, nowMs);
}

export function formatBytes(n: number | null): string {
  if (n === null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));

/** The human table. */
export function statusText(s: FleetStatus): string {
  const L: string[] = [];
  L.push(`restorable status: stack ${s.stack}, ${s.provider} bucket ${s.bucket} at ${s.endpoint}, ${s.generatedAt}`);
  L.push(`objectives: RPO ${formatDuration(s.objectives.rpoSeconds)}, RTO ${formatDuration(s.objectives.rtoSeconds)}; retention ${s.retention.daily} daily / ${s.retention.weekly} weekly / ${s.retention.monthly} monthly`);
  for (const h of s.hosts) {
    L.push("", `host ${h.name}: ${h.ok ? "OK" : "OBJECTIVES MISSED"}`);
    const rows: string[][] = [["item", "newest", "tier", "age", "RPO", "points d/w/m", "days", "weeks", "months", "size", "took"]];
    const cov = (p: { required: number; covered: number; pending: number; missing: string[] }) => `${p.covered}/${p.required}${p.pending ? ` (${p.pending} pending)` : ""}${p.missing.length ? " MISSED" : ""}`;
    for (const i of h.items) {
      const n = i.newest;
      rows.push([
        i.kind === "globals" ? "roles" : `${i.kind} ${i.name}`,
        n ? n.createdAt : "none",
        n ? n.tier : "-",
        n ? formatAge(n.ageSeconds) : "-",
        i.rpo.ok ? "ok" : "MISSED",
        `${i.restorePoints.daily}/${i.restorePoints.weekly}/${i.restorePoints.monthly}`,
        cov(i.promise.daily),
        cov(i.promise.weekly),
        cov(i.promise.monthly),
        n ? formatBytes(n.sizeBytes) : "-",
        n && n.durationSeconds !== null ? `${n.durationSeconds.toFixed(1)}s` : "-",
      ]);
    }
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    for (const r of rows) L.push(`  ${r.map((v, c) => pad(v, widths[c]!)).join("  ").trimEnd()}`);
    const d = h.drill;
    if (!d.scheduled) L.push("  drill: none (no databases)");
    else if (!d.last) L.push("  drill: NONE in the bucket");
    else {
      const l = d.last;
      const rtos = l.databases.map((db) => `${db.database} ${db.rto ? `${db.rto.achievedSeconds.toFixed(1)}s/${formatDuration(db.rto.targetSeconds)}${db.rto.ok ? "" : " MISSED"}` : "n/a"}${db.failure ? ` (failed at stage ${db.failure.stage})` : ""}`);
      L.push(`  drill: last ${l.startedAt} (${formatAge(l.ageSeconds)} ago) ${l.result.toUpperCase()}${l.failure ? ` at stage ${l.failure.stage}: ${l.failure.reason}` : ""}${d.overdue ? ", OVERDUE" : ""}; RTO ${rtos.join(", ") || "-"}`);
    }
    const b = h.storage.bytes;
    L.push(`  stored: daily ${formatBytes(b.daily)}, weekly ${formatBytes(b.weekly)}, monthly ${formatBytes(b.monthly)}, drills ${formatBytes(b.drills)}${b.other ? `, other ${formatBytes(b.other)}` : ""}; total ${formatBytes(b.total)} in ${h.storage.objects.total} objects${h.storage.withoutManifest ? ` (${h.storage.withoutManifest} without manifest: not restore points)` : ""}`);
    if (!h.wal.enabled) L.push("  WAL archive: none (point-in-time recovery is off)");
    for (const c of h.wal.clusters) {
      const n = c.newest;
      L.push(`  WAL archive ${c.cluster}: ${n ? `newest segment ${n.segment} archived ${n.lastModified} (${formatAge(n.ageSeconds)} ago)` : "NO segment archived"}, RPO ${c.rpo.ok ? "ok" : "MISSED"}; ${c.segments} segment(s), ${formatBytes(c.bytes)}`);
    }
    if (h.unconfigured.length) L.push(`  also in the bucket, no longer configured: ${h.unconfigured.join(", ")}`);
  }
  L.push("");
  if (s.ok) L.push("all objectives hold");
  else {
    L.push(`${s.problems.length} problem(s):`);
    for (const p of s.problems) L.push(`  - ${p}`);
  }
  return `${L.join("\n")}\n`;
}

const USAGE = "usage: npm run status -- --stack <name> [--json] [--html <file>] [--dir <dir with Pulumi.<name>.yaml>]";

export interface StatusIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** The clock (ms), for tests. */
  now?: () => number;
}

const defaultIo: StatusIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env };

/** CLI entry: returns the exit status. */
export async function main(argv: string[], io: StatusIo = defaultIo): Promise<number> {
  const fail = (msg: string) => {
    io.err(`restorable status: ${msg}\n`);
    return 2;
  };
  let values: { stack?: string; json?: boolean; html?: string; dir?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { stack: { type: "string" }, json: { type: "boolean" }, html: { type: "string" }, dir: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    return fail(`${(e as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    io.out(`${USAGE}\n`);
    return 0;
  }
  if (!values.stack) return fail(`--stack is required\n${USAGE}`);
  try {
    const plan = loadStackPlan(values.stack, values.dir);
    const creds = operatorCredentials(plan.provider, io.env);
    const status = await collectStatus(plan, values.stack, readerFor(plan, creds), io.now?.() ?? Date.now());
    if (values.html) {
      const file = resolve(values.html);
      const tmp = `${dirname(file)}/.${process.pid}.status.html.tmp`;
      writeFileSync(tmp, statusHtml(status));
      renameSync(tmp, file);
    }
    io.out(values.json ? `${JSON.stringify(status, null, 2)}\n` : statusText(status));
    return status.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof ConfigError) return fail(e.message);
    if (e instanceof UsageError) return fail(e.message);
    if (e instanceof S3Error) {
      if (e.isCredentials) return fail(`the store refused the operator credentials: ${e.message}`);
      if (e.code === "NoSuchBucket") return fail(`bucket ${e.message}: check restorable:storage.bucket`);
      return fail(`cannot read the bucket: ${e.message}`);
    }
    if ((e as NodeJS.ErrnoException).code && values.html) return fail(`cannot write ${values.html}: ${(e as Error).message}`);
    throw e;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
