/**
 * Fixtures for the restore and restore-drill integration tests (the host itself comes from
 * backup-env.ts: a real rendered config): manifest-backed backups made the way the contract
 * describes them (pg_dump -Fc -Z0 | zstd [| age], uploaded, then the manifest) — for restore points
 * in the past and fault cases the real backup script cannot produce (corrupted objects, uploads
 * without a manifest, a manifest listing a table the dump lacks) — plus comparison helpers.
 */
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { heldPoints, objectKeys, tierFor, utcStamp } from "../../infra/plan/layout";
import type { Tier } from "../../infra/config/schema";
import type { BucketAccess } from "./backup-env";
import { cleanLibpqEnv, PG_BIN, type PgCluster } from "./postgres";
import { processAlive, run, runOk, waitFor, type RunResult } from "./proc";
import { AWS_BIN } from "./s3server";

/** Single-quote for bash (the same rule as infra/plan/shell.ts shq). */
export function q(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

// ---- bucket access ----------------------------------------------------------------------------

/** A bucket on an S3 endpoint plus credentials, driven with the real AWS CLI v2 (a host's BucketAccess). */
export type Bucket = BucketAccess;

export function awsEnv(b: Bucket, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const k of Object.keys(env)) if (k.startsWith("AWS_")) delete env[k];
  env.AWS_ACCESS_KEY_ID = b.creds.accessKeyId;
  env.AWS_SECRET_ACCESS_KEY = b.creds.secretAccessKey;
  env.AWS_DEFAULT_REGION = b.region;
  env.AWS_CONFIG_FILE = "/nonexistent/aws-config";
  env.AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/aws-credentials";
  env.AWS_EC2_METADATA_DISABLED = "true";
  env.AWS_PAGER = "";
  return env;
}

export async function aws(b: Bucket, args: string[], input?: string | Buffer): Promise<RunResult> {
  const r = await run(AWS_BIN, ["--endpoint-url", b.endpoint, "--region", b.region, ...args], { env: awsEnv(b), input });
  return r;
}
export async function awsOk(b: Bucket, args: string[], input?: string | Buffer): Promise<RunResult> {
  const r = await aws(b, args, input);
  if (r.code !== 0) throw new Error(`aws ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}
export async function putObject(b: Bucket, key: string, body: string | Buffer): Promise<void> {
  await awsOk(b, ["s3", "cp", "--quiet", "-", `s3://${b.bucket}/${key}`], body);
}
export async function getObject(b: Bucket, key: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "rget-"));
  try {
    await awsOk(b, ["s3", "cp", "--quiet", `s3://${b.bucket}/${key}`, join(dir, "o")]);
    return readFileSync(join(dir, "o"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
export async function listKeys(b: Bucket, prefix: string): Promise<{ key: string; size: number }[]> {
  const r = await awsOk(b, ["s3api", "list-objects-v2", "--bucket", b.bucket, "--prefix", prefix, "--output", "json"]);
  if (!r.stdout.trim()) return [];
  const j = JSON.parse(r.stdout) as { Contents?: { Key: string; Size: number }[] };
  return (j.Contents ?? []).map((c) => ({ key: c.Key, size: c.Size })).sort((a, b2) => a.key.localeCompare(b2.key));
}

// ---- manifest-backed backups made by hand ---------------------------------------------------------

/** The table list the manifest carries (same set as the scripts compare against). */
export const TABLES_SQL = `SELECT n.nspname AS schema, c.relname AS name, greatest(c.reltuples, 0)::bigint AS rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1, 2`;

export interface Manifest {
  format: 1;
  kind: "postgres" | "globals" | "volume";
  host: string;
  tier: Tier;
  stamp: string;
  createdAt: string;
  database?: string;
  volume?: string;
  source: Record<string, unknown>;
  serverVersion?: string;
  dumpFormat: "custom" | "sql" | "tar";
  compression: "zstd" | "none";
  encryption: "none" | "age";
  object: { key: string; size: number; sha256: string };
  tables?: { schema: string; name: string; rows: number }[];
  durationSeconds: number;
}

export interface FixtureBackup {
  objectKey: string;
  manifestKey: string;
  manifest: Manifest;
  sha256: string;
  size: number;
}

interface CommonOpts {
  bucket: Bucket;
  host: string;
  date: Date;
  /** Default: the tier a backup run at `date` would choose from the bucket's restore points. */
  tier?: Tier;
  encryptTo?: string[];
  /** Upload the object but no manifest (an interrupted run). */
  withoutManifest?: boolean;
  /** Change the manifest before upload (e.g. a wrong table list). */
  editManifest?: (m: Manifest) => void;
}

async function pipeToFile(cmd: string, env: NodeJS.ProcessEnv): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "rfx-"));
  try {
    const out = join(dir, "out");
    await runOk("bash", ["-c", `set -euo pipefail; ${cmd} > ${q(out)}`], { env });
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function encryptStage(recipients?: string[]): string {
  if (!recipients?.length) return "";
  return ` | age ${recipients.map((r) => `-r ${q(r)}`).join(" ")}`;
}

async function upload(o: CommonOpts, kind: Manifest["kind"], what: Parameters<typeof objectKeys>[2], body: Buffer, extra: Partial<Manifest>): Promise<FixtureBackup> {
  // By default the tier a backup run would choose: the plan's rule over what the bucket holds.
  const tier = o.tier ?? tierFor(o.date, heldPoints((await listKeys(o.bucket, `${o.host}/`)).map((k) => k.key), o.host, what));
  const encrypted = !!o.encryptTo?.length;
  const keys = objectKeys(o.host, tier, what, o.date, { compressed: true, encrypted });
  const sha256 = createHash("sha256").update(body).digest("hex");
  await putObject(o.bucket, keys.object, body);
  const manifest: Manifest = {
    format: 1,
    kind,
    host: o.host,
    tier,
    stamp: utcStamp(o.date),
    createdAt: o.date.toISOString().replace(/\.\d{3}Z$/, "Z"),
    source: { via: "local" },
    dumpFormat: kind === "postgres" ? "custom" : kind === "globals" ? "sql" : "tar",
    compression: "zstd",
    encryption: encrypted ? "age" : "none",
    object: { key: keys.object, size: body.length, sha256 },
    durationSeconds: 0.1,
    ...extra,
  };
  o.editManifest?.(manifest);
  if (!o.withoutManifest) await putObject(o.bucket, keys.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
  return { objectKey: keys.object, manifestKey: keys.manifest, manifest, sha256, size: body.length };
}

/**
 * pg_dump -Fc -Z0 | zstd [| age] of `database` on `pg`, uploaded, then its manifest. With
 * `notADump`, those bytes take the dump's place (compressed and encrypted the same way; the
 * manifest still describes `sourceDatabase`): a backup whose restore must fail.
 */
export async function fixturePostgresBackup(o: CommonOpts & { pg: PgCluster; database: string; sourceDatabase?: string; notADump?: string }): Promise<FixtureBackup> {
  const src = o.sourceDatabase ?? o.database;
  const env = cleanLibpqEnv();
  const producer = o.notADump !== undefined
    ? `printf '%s' ${q(o.notADump)}`
    : `${PG_BIN}/pg_dump -Fc -Z0 -h ${q(o.pg.socketDir)} -p ${o.pg.port} -U postgres -d ${q(src)}`;
  const body = await pipeToFile(`${producer} | zstd -q -3 -c${encryptStage(o.encryptTo)}`, env);
  const rows = await o.pg.psql(`SELECT json_agg(t) FROM (${TABLES_SQL}) t`, { database: src });
  const tables = (JSON.parse(rows || "[]") as { schema: string; name: string; rows: number }[] | null) ?? [];
  const serverVersion = await o.pg.psql("SHOW server_version", { database: src });
  return upload(o, "postgres", { kind: "postgres", database: o.database }, body, { database: o.database, tables, serverVersion: serverVersion.split(" ")[0] });
}

/** pg_dumpall --globals-only | zstd [| age], uploaded, then its manifest. */
export async function fixtureGlobalsBackup(o: CommonOpts & { pg: PgCluster }): Promise<FixtureBackup> {
  const body = await pipeToFile(
    `${PG_BIN}/pg_dumpall --globals-only -h ${q(o.pg.socketDir)} -p ${o.pg.port} -U postgres | zstd -q -3 -c${encryptStage(o.encryptTo)}`,
    cleanLibpqEnv(),
  );
  return upload(o, "globals", { kind: "globals" }, body, { dumpFormat: "sql" });
}

/** Overwrite an uploaded object with the same bytes but one flipped (corruption after upload). */
export async function corruptObject(b: Bucket, key: string): Promise<void> {
  const body = Buffer.from(await getObject(b, key));
  const i = Math.floor(body.length / 2);
  body[i] = body[i]! ^ 0xff;
  await putObject(b, key, body);
}

// ---- age --------------------------------------------------------------------------------------

export interface AgeKey {
  identityFile: string;
  recipient: string;
}
export async function ageKey(dir: string, name: string): Promise<AgeKey> {
  const identityFile = join(dir, `${name}.age-identity`);
  rmSync(identityFile, { force: true });
  await runOk("age-keygen", ["-o", identityFile]);
  chmodSync(identityFile, 0o600);
  const recipient = (await runOk("age-keygen", ["-y", identityFile])).stdout.trim();
  return { identityFile, recipient };
}

// ---- comparing databases ------------------------------------------------------------------------

/** pg_dump --schema-only of a database on a cluster, without the per-run \restrict keys. */
export async function schemaDump(pg: PgCluster, database: string): Promise<string> {
  const r = await runOk(`${PG_BIN}/pg_dump`, ["--schema-only", "-h", pg.socketDir, "-p", String(pg.port), "-U", "postgres", "-d", database], { env: cleanLibpqEnv() });
  return r.stdout
    .split("\n")
    .filter((l) => !l.startsWith("\\restrict") && !l.startsWith("\\unrestrict"))
    .join("\n");
}

/** Exact row counts of the given tables. */
export async function rowCounts(pg: PgCluster, database: string, tables: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of tables) out[t] = Number(await pg.psql(`SELECT count(*) FROM ${t}`, { database }));
  return out;
}

/** Processes (not zombies) whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
      if (cmd.includes(needle) && processAlive(Number(e))) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Follow a spawned script: its stderr so far, its exit code once it has closed, and a wait for a line. */
export function follow(child: ChildProcess): { readonly stderr: string; exited: Promise<number | null>; until(re: RegExp, timeoutMs: number): Promise<void> } {
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return {
    get stderr() {
      return stderr;
    },
    exited,
    async until(re, timeoutMs) {
      await waitFor(`${re} on stderr`, () => re.test(stderr), timeoutMs);
    },
  };
}
