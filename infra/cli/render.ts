// npm run render -- --stack prod --out <dir>
//
// Reads Pulumi.<stack>.yaml, validates its `restorable:` config with the same schema `pulumi up`
// uses, and writes what `pulumi up` would install on each host (secrets as clearly marked
// placeholders), plus the bucket's lifecycle rules and access policies as JSON and a short human
// summary. This is what a reviewer diffs in a PR. No Pulumi engine, no network, no secrets needed.
//
// Exit status: 0 written; 1 invalid config (the ConfigError text on stderr); 2 usage error or
// unreadable stack file.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { CONFIG_KEYS, ConfigError, NAMESPACE, parseConfig, SECRET_KEYS, unknownKeyProblems } from "../config";
import { ABORT_INCOMPLETE_DAYS, buildPlan, NONCURRENT_DAYS, objectKeys, type Plan } from "../plan";
import { cronJobs, loadTemplates, placeholderSecrets, renderHost, type RenderedHost, type Template } from "../plan/render";

/** Marks a directory as written by this tool (so it may be cleared and rewritten). */
export const MARKER = ".restorable-render";

export class UsageError extends Error {}

/** The raw `restorable:` config of a Pulumi.<stack>.yaml text (secret keys dropped). */
export function stackConfigFromYaml(text: string, file = "stack file"): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new UsageError(`${file} is not valid YAML: ${(e as Error).message}`);
  }
  const config = (doc as { config?: unknown } | null)?.config;
  if (config === undefined || config === null) throw new ConfigError([`${file} has no config: section`]);
  if (typeof config !== "object" || Array.isArray(config)) throw new ConfigError([`${file}: config: must be a map of keys to values`]);
  const raw: Record<string, unknown> = {};
  const problems = unknownKeyProblems(Object.keys(config));
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    if (!key.startsWith(`${NAMESPACE}:`)) continue; // other providers' keys (aws:region, ...)
    const name = key.slice(NAMESPACE.length + 1);
    if ((SECRET_KEYS as readonly string[]).includes(name)) continue; // secrets: never read here
    if (!(CONFIG_KEYS as readonly string[]).includes(name)) continue; // reported by unknownKeyProblems
    if (value !== null && typeof value === "object" && !Array.isArray(value) && "secure" in value) {
      problems.push(`${key}: is stored as a secret, but it is plain configuration (render cannot decrypt it, and it is not secret); set it without --secret`);
      continue;
    }
    raw[name] = value;
  }
  if (problems.length) throw new ConfigError(problems);
  return raw;
}

const mode = (m: number) => `0${m.toString(8)}`;

function write(path: string, content: string, fileMode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content, { mode: fileMode });
  chmodSync(path, fileMode);
}

function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

/** The human summary a reviewer reads first. */
export function summaryMarkdown(plan: Plan, rendered: Map<string, RenderedHost>, stack: string, templates: Template[]): string {
  const cfg = plan.config;
  const lines: string[] = [`# restorable: stack ${stack}`, "", ...plan.summary.map((l) => (l.startsWith("  ") ? `  - ${l.trim()}` : `- ${l}`)), ""];
  lines.push("## Retention (lifecycle rules)", "");
  lines.push("| prefix | expires after | meaning |", "|---|---|---|");
  for (const r of plan.retention.rules) {
    const meaning = r.scope === "drills" ? "restore-drill reports" : `${r.scope} tier: keeps ${cfg.retention[r.scope]} ${r.scope} restore points`;
    lines.push(`| \`${r.prefix}\` | ${r.expireDays} days | ${meaning} |`);
  }
  lines.push("", `Noncurrent versions are removed ${NONCURRENT_DAYS} day(s) after they stop being current; unfinished uploads are aborted after ${ABORT_INCOMPLETE_DAYS} days.`, "");
  lines.push("## What goes where", "");
  const sample = new Date(Date.UTC(2026, 10, 24, 3, 0, 0));
  for (const h of plan.hosts) {
    const c = h.config;
    const enc = { compressed: true, encrypted: !!c.encryption };
    lines.push(`### host ${h.name}`, "");
    for (const p of c.postgres) lines.push(`- database \`${p.database}\` -> \`${objectKeys(h.name, "daily", { kind: "postgres", database: p.database }, sample, enc).object}\``);
    if (c.postgres.length) lines.push(`- roles (pg_dumpall --globals-only) -> \`${objectKeys(h.name, "daily", { kind: "globals" }, sample, enc).object}\``);
    for (const v of c.volumes) lines.push(`- volume \`${v}\` -> \`${objectKeys(h.name, "daily", { kind: "volume", volume: v }, sample, enc).object}\``);
    lines.push("- each with a `.manifest.json` beside it, uploaded last: a backup exists only when its manifest does.");
    lines.push("- tier, per item from what the bucket holds: `monthly` for the UTC month's first successful run, else `weekly` for the ISO week's first, else `daily` (the keys above show `daily`).");
    const installed = templates.map((t) => t.install);
    lines.push("", "Schedule (host crontab):", "");
    for (const j of cronJobs(h, installed)) lines.push(`- \`${j.schedule}\` ${j.script}`);
    const r = rendered.get(h.name)!;
    lines.push("", "Installed files:", "");
    for (const f of r.files) lines.push(`- \`${f.path}\` ${mode(f.mode)}${f.secret ? " (secret; placeholder values here)" : ""}`);
    lines.push("", `Content hash: \`${r.hash}\``, "");
  }
  return `${lines.join("\n")}\n`;
}

export interface RenderCliOptions {
  stack: string;
  out: string;
  /** Directory holding Pulumi.<stack>.yaml (default: the current directory). */
  dir?: string;
  /** Templates (default: the repository's scripts/). */
  templates?: Template[];
}

/** Renders a stack into `out`; returns the paths written (relative to out). */
export function renderStack(o: RenderCliOptions): string[] {
  if (!/^[A-Za-z0-9._-]+$/.test(o.stack)) throw new UsageError(`--stack ${o.stack}: not a stack name`);
  const file = resolve(o.dir ?? process.cwd(), `Pulumi.${o.stack}.yaml`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const cfg = parseConfig(stackConfigFromYaml(text, `Pulumi.${o.stack}.yaml`));
  return writeRender(buildPlan(cfg), o);
}

/**
 * Writes the review files of a plan into `o.out`; returns the paths written (relative to out).
 * A plan from Backups args with values from other resources (plan.deferred) shows them as
 * "<known after deploy>" (summary, restorable.conf), never as a made-up value.
 */
export function writeRender(plan: Plan, o: Pick<RenderCliOptions, "out" | "stack" | "templates">): string[] {
  const cfg = plan.config;
  const templates = o.templates ?? loadTemplates();

  const out = resolve(o.out);
  if (existsSync(out)) {
    const entries = readdirSync(out);
    if (entries.length > 0 && !entries.includes(MARKER)) {
      throw new UsageError(`${out} is not empty and was not written by npm run render; choose an empty or new directory`);
    }
    for (const e of entries) rmSync(join(out, e), { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const put = (rel: string, content: string, m = 0o644) => {
    write(join(out, rel), content, m);
    written.push(rel);
  };
  put(MARKER, `Written by npm run render -- --stack ${o.stack}. Do not edit: re-run the command.\n`);

  // Bucket: settings, lifecycle rules, access.
  const bucket = {
    name: plan.bucket,
    provider: plan.provider,
    endpoint: plan.endpoint,
    region: plan.region,
    versioning: true,
    objectLock: cfg.storage.objectLock ?? null,
    offsite: plan.offsite,
  };
  put("bucket/bucket.json", json(bucket));
  if (plan.provider === "b2") {
    put("bucket/lifecycle.b2.json", json(plan.lifecycle.b2));
    for (const h of plan.hosts) put(`bucket/access/${h.name}.b2-key.json`, json(h.access.b2));
  } else {
    put("bucket/lifecycle.s3.json", json(plan.lifecycle.s3));
    for (const h of plan.hosts) put(`bucket/access/${h.name}.iam-policy.json`, json(h.access.iamPolicy));
  }

  // Hosts: every file as installed (absolute host paths under hosts/<name>/files), the crontab block.
  const rendered = new Map<string, RenderedHost>();
  for (const h of plan.hosts) {
    const r = renderHost(plan, h, placeholderSecrets(h), { templates });
    rendered.set(h.name, r);
    for (const f of r.files) put(`hosts/${h.name}/files${f.path}`, f.content, f.mode);
    put(`hosts/${h.name}/crontab`, r.crontab);
    put(`hosts/${h.name}/FILES`, r.files.map((f) => `${mode(f.mode)} ${f.path}${f.secret ? " secret" : ""}`).join("\n") + "\n");
  }
  put("SUMMARY.md", summaryMarkdown(plan, rendered, o.stack, templates));
  return written;
}

const USAGE = `usage: npm run render -- --stack <name> --out <dir> [--dir <dir with Pulumi.<name>.yaml>]`;

/** CLI entry: returns the exit status. */
export function main(argv: string[], io: { out: (s: string) => void; err: (s: string) => void } = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): number {
  let values: { stack?: string; out?: string; dir?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { stack: { type: "string" }, out: { type: "string" }, dir: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.err(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.out(`${USAGE}\n`);
    return 0;
  }
  if (!values.stack || !values.out) {
    io.err(`${USAGE}\n`);
    return 2;
  }
  try {
    const written = renderStack({ stack: values.stack, out: values.out, dir: values.dir });
    io.out(`rendered stack ${values.stack} into ${resolve(values.out)} (${written.length} files); start with SUMMARY.md\n`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(`${e.message}\n`);
      return 1;
    }
    if (e instanceof UsageError) {
      io.err(`${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
