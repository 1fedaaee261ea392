// The fleet view (npm run status): what is in the bucket, judged against the objectives. Pure:
// the CLI (infra/cli/status.ts) reads the bucket and hands the listing, the manifests and the
// drill reports in; everything decided here is tested table-driven and against real backups.
//
// Restore points are what restore and the drill would use: objects with a manifest, dated by the
// manifest's createdAt. The retention promise is checked from those dates (not from a tier rule),
// with the one definition in ./promise.ts (the simulation's and the drill audit's too).
import { maxGapSeconds } from "../config/cron";
import type { Tier } from "../config/schema";
import type { Plan } from "./index";
import { TIERS, drillsPrefix, hostPrefix } from "./layout";
import { walPrefix } from "./pitr";
import { promiseCheck, type PromiseCheck } from "./promise";

export { promiseCheck, type PeriodCheck, type PromiseCheck } from "./promise";

/** Version of the `--json` document (README "Fleet status"); bump on incompatible changes. */
export const STATUS_FORMAT = 1;

const DAY = 86_400_000;

export interface ListedObject {
  key: string;
  size: number;
  /** ISO time the store gives (ListObjectsV2 LastModified); only the WAL archive's age uses it. */
  lastModified?: string;
}

export type ItemKind = "postgres" | "globals" | "volume";

export interface RestorePoint {
  kind: ItemKind;
  /** Database or volume name; null for globals (roles). */
  name: string | null;
  tier: Tier;
  stamp: string;
  createdAt: string;
  manifestKey: string;
  objectKey: string | null;
  sizeBytes: number | null;
  durationSeconds: number | null;
}

export interface ItemStatus {
  kind: ItemKind;
  name: string | null;
  /** "postgres/app", "globals", "volume/uploads" */
  id: string;
  newest: (Omit<RestorePoint, "kind" | "name"> & { ageSeconds: number }) | null;
  rpo: { achievedSeconds: number | null; targetSeconds: number; ok: boolean };
  restorePoints: Record<Tier, number>;
  promise: PromiseCheck;
  /** Every restore point, oldest first (for the charts). */
  history: { createdAt: string; tier: Tier; sizeBytes: number | null; durationSeconds: number | null }[];
  ok: boolean;
}

export interface DrillDatabase {
  database: string;
  result: string;
  rto: { achievedSeconds: number; targetSeconds: number; ok: boolean } | null;
  failure: { stage: string; reason: string } | null;
}

export interface DrillRun {
  reportKey: string;
  startedAt: string;
  finishedAt: string | null;
  result: string;
  failure: { stage: string; reason: string } | null;
  databases: DrillDatabase[];
}

export interface DrillStatus {
  /** False for a host without databases (no drill is installed). */
  scheduled: boolean;
  last: (DrillRun & { ageSeconds: number }) | null;
  /** Newest report older than this is overdue: the schedule's longest gap + the RTO + 1 h. */
  maxAgeSeconds: number | null;
  overdue: boolean;
  ok: boolean;
  /** Oldest first. */
  history: DrillRun[];
}

/** One cluster's WAL archive (`<host>/wal/<cluster>/`, written by wal-archiver). */
export interface WalClusterStatus {
  cluster: string;
  /** The newest archived segment (by its object's LastModified): its WAL file name, key and time. */
  newest: { segment: string; key: string; lastModified: string; ageSeconds: number } | null;
  /** The age of that segment against the RPO: WAL not off-site within the RPO is data at risk. */
  rpo: { achievedSeconds: number | null; targetSeconds: number; ok: boolean };
  segments: number;
  bytes: number;
  ok: boolean;
}

/** Point-in-time recovery (hosts[].pitr): the WAL archive per cluster. */
export interface WalStatus {
  enabled: boolean;
  /** The oldest of the clusters' newest segments, in seconds (null: PITR off, or a cluster has none). */
  archiveAgeSeconds: number | null;
  clusters: WalClusterStatus[];
  ok: boolean;
}

/** `<24 hex digits>.zst[.age]`: a complete WAL segment as wal-archiver uploads it (not a .history file). */
const WAL_SEGMENT_OBJECT = /^([0-9A-F]{24})\.zst(?:\.age)?$/;

/** The WAL archive of one host, judged against the RPO (pure; the listing must carry lastModified). */
export function walStatus(plan: Plan, hostName: string, objects: ListedObject[], nowMs: number, problems: string[] = []): WalStatus {
  const host = plan.hosts.find((h) => h.name === hostName)!;
  const rpo = plan.config.objectives.rpo;
  if (!host.pitr) return { enabled: false, archiveAgeSeconds: null, clusters: [], ok: true };
  const clusters = host.pitr.clusters.map((c): WalClusterStatus => {
    const prefix = walPrefix(hostName, c.name);
    let newest: { segment: string; key: string; ms: number } | undefined;
    let segments = 0;
    let bytes = 0;
    for (const o of objects) {
      if (!o.key.startsWith(prefix)) continue;
      const m = WAL_SEGMENT_OBJECT.exec(o.key.slice(prefix.length));
      if (!m) continue;
      segments++;
      bytes += o.size;
      const ms = Date.parse(o.lastModified ?? "");
      if (!Number.isFinite(ms)) continue;
      if (!newest || ms > newest.ms || (ms === newest.ms && m[1]! > newest.segment)) newest = { segment: m[1]!, key: o.key, ms };
    }
    const age = newest ? Math.max(0, Math.round((nowMs - newest.ms) / 1000)) : null;
    const ok = age !== null && age <= rpo;
    const what = `${hostName} WAL archive of cluster ${c.name}`;
    if (!newest) problems.push(`${what}: no archived WAL segment under ${prefix} (is wal-archiver running?)`);
    else if (!ok) problems.push(`${what}: newest segment ${newest.segment} was archived ${fmtAge(age!)} ago (${iso(newest.ms)}), RPO ${fmtAge(rpo)}`);
    return {
      cluster: c.name,
      newest: newest ? { segment: newest.segment, key: newest.key, lastModified: iso(newest.ms), ageSeconds: age! } : null,
      rpo: { achievedSeconds: age, targetSeconds: rpo, ok },
      segments,
      bytes,
      ok,
    };
  });
  const ages = clusters.map((c) => c.rpo.achievedSeconds);
  return {
    enabled: true,
    archiveAgeSeconds: ages.length && ages.every((a) => a !== null) ? Math.max(...(ages as number[])) : null,
    clusters,
    ok: clusters.every((c) => c.ok),
  };
}

export interface HostStatus {
  name: string;
  prefix: string;
  ok: boolean;
  items: ItemStatus[];
  drill: DrillStatus;
  storage: {
    /** Bytes of current object versions (noncurrent versions are not listed). */
    bytes: Record<Tier | "drills" | "other", number> & { total: number };
    objects: Record<Tier | "drills" | "other", number> & { total: number };
    /** Data objects with no manifest beside them (interrupted runs; expired by the lifecycle rules). */
    withoutManifest: number;
    /** Manifests that are not readable JSON (never restore points; reported as a problem). */
    unreadableManifests: string[];
  };
  wal: WalStatus;
  /** Restore points in the bucket for items the config no longer lists (not judged). */
  unconfigured: string[];
  problems: string[];
}

export interface FleetStatus {
  format: typeof STATUS_FORMAT;
  kind: "restorable-status";
  stack: string;
  generatedAt: string;
  bucket: string;
  provider: string;
  endpoint: string;
  objectives: { rpoSeconds: number; rtoSeconds: number };
  retention: { daily: number; weekly: number; monthly: number };
  ok: boolean;
  problems: string[];
  hosts: HostStatus[];
}

export interface HostBucketData {
  /** Every object under `<host>/`. */
  objects: ListedObject[];
  /** Parsed manifests by key (only keys ending in .manifest.json that were readable JSON). */
  manifests: Map<string, unknown>;
  /** Parsed drill reports by key. */
  reports: Map<string, unknown>;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

const MANIFEST = ".manifest.json";

/** Parses `<host>/<tier>/<kind path>/<stamp>.manifest.json` (contract layout), else undefined. */
export function parseManifestKey(host: string, key: string): { tier: Tier; kind: ItemKind; name: string | null; stamp: string; base: string } | undefined {
  if (!key.startsWith(hostPrefix(host)) || !key.endsWith(MANIFEST)) return undefined;
  const parts = key.slice(hostPrefix(host).length, -MANIFEST.length).split("/");
  const tier = parts[0] as Tier;
  if (!TIERS.includes(tier)) return undefined;
  const stamp = parts[parts.length - 1]!;
  if (!/^\d{8}T\d{6}Z$/.test(stamp)) return undefined;
  const base = key.slice(0, -MANIFEST.length);
  if (parts[1] === "postgres" && parts.length === 4) return { tier, kind: "postgres", name: parts[2]!, stamp, base };
  if (parts[1] === "volumes" && parts.length === 4) return { tier, kind: "volume", name: parts[2]!, stamp, base };
  if (parts[1] === "globals" && parts.length === 3) return { tier, kind: "globals", name: null, stamp, base };
  return undefined;
}

const stampToIso = (s: string) => `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`;
const itemId = (kind: ItemKind, name: string | null) => (kind === "globals" ? "globals" : `${kind === "postgres" ? "postgres" : "volume"}/${name}`);
const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown) => (typeof v === "string" ? v : null);

/** Restore points of one host: manifests in the listing that parsed, dated by createdAt. */
export function restorePoints(host: string, data: HostBucketData): RestorePoint[] {
  const out: RestorePoint[] = [];
  for (const o of data.objects) {
    const k = parseManifestKey(host, o.key);
    if (!k) continue;
    const m = data.manifests.get(o.key) as Record<string, unknown> | undefined;
    if (!m || typeof m !== "object") continue; // unreadable manifest: not a restore point
    const created = str(m.createdAt) ?? stampToIso(k.stamp);
    if (!Number.isFinite(Date.parse(created))) continue;
    const obj = (m.object ?? {}) as Record<string, unknown>;
    out.push({
      kind: k.kind,
      name: k.name,
      tier: k.tier,
      stamp: k.stamp,
      createdAt: created,
      manifestKey: o.key,
      objectKey: str(obj.key),
      sizeBytes: num(obj.size),
      durationSeconds: num(m.durationSeconds),
    });
  }
  return out.sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt) || a.manifestKey.localeCompare(b.manifestKey));
}

function drillRun(key: string, r: unknown): DrillRun | undefined {
  if (!r || typeof r !== "object") return undefined;
  const o = r as Record<string, unknown>;
  const startedAt = str(o.startedAt);
  if (!startedAt || !Number.isFinite(Date.parse(startedAt))) return undefined;
  const failure = (f: unknown) => (f && typeof f === "object" ? { stage: String((f as Record<string, unknown>).stage ?? ""), reason: String((f as Record<string, unknown>).reason ?? "") } : null);
  const dbs = Array.isArray(o.databases) ? (o.databases as Record<string, unknown>[]) : [];
  return {
    reportKey: key,
    startedAt,
    finishedAt: str(o.finishedAt),
    result: str(o.result) ?? "unknown",
    failure: failure(o.failure),
    databases: dbs.map((d) => {
      const rto = d.rto as Record<string, unknown> | null | undefined;
      return {
        database: String(d.database ?? ""),
        result: str(d.result) ?? "unknown",
        rto: rto && num(rto.achievedSeconds) !== null ? { achievedSeconds: num(rto.achievedSeconds)!, targetSeconds: num(rto.targetSeconds) ?? 0, ok: rto.ok === true } : null,
        failure: failure(d.failure),
      };
    }),
  };
}

const fmtAge = (s: number) => {
  const parts: string[] = [];
  let rest = Math.max(0, Math.round(s));
  for (const [u, n] of [["d", 86400], ["h", 3600], ["m", 60]] as const) {
    if (rest >= n) {
      parts.push(`${Math.floor(rest / n)}${u}`);
      rest %= n;
    }
  }
  return parts.length ? parts.join("") : `${rest}s`;
};
export { fmtAge as formatAge };

export function hostStatus(plan: Plan, hostName: string, data: HostBucketData, nowMs: number): HostStatus {
  const host = plan.hosts.find((h) => h.name === hostName)!;
  const c = host.config;
  const { rpo, rto } = plan.config.objectives;
  const points = restorePoints(hostName, data);
  const problems: string[] = [];

  const wanted: { kind: ItemKind; name: string | null }[] = [
    ...c.postgres.map((p) => ({ kind: "postgres" as const, name: p.database })),
    ...(c.postgres.length ? [{ kind: "globals" as const, name: null }] : []),
    ...c.volumes.map((v) => ({ kind: "volume" as const, name: v })),
  ];
  const items: ItemStatus[] = wanted.map(({ kind, name }) => {
    const mine = points.filter((p) => p.kind === kind && p.name === name);
    const id = itemId(kind, name);
    const last = mine[mine.length - 1];
    const age = last ? (nowMs - Date.parse(last.createdAt)) / 1000 : null;
    const rpoOk = age !== null && age <= rpo;
    const counts = { daily: 0, weekly: 0, monthly: 0 } as Record<Tier, number>;
    for (const p of mine) counts[p.tier]++;
    const promise = promiseCheck(mine.map((p) => Date.parse(p.createdAt)), nowMs, plan.config.retention);
    const what = `${hostName} ${kind === "globals" ? "roles (globals)" : `${kind} ${name}`}`;
    if (!last) problems.push(`${what}: no restore point in the bucket`);
    else if (!rpoOk) problems.push(`${what}: newest restore point is ${fmtAge(age!)} old (${last.createdAt}), RPO ${fmtAge(rpo)}`);
    for (const t of TIERS) if (promise[t].missing.length) problems.push(`${what}: retention promise broken: no restore point for ${promise[t].missing.join(", ")}`);
    return {
      kind,
      name,
      id,
      newest: last
        ? { tier: last.tier, stamp: last.stamp, createdAt: last.createdAt, manifestKey: last.manifestKey, objectKey: last.objectKey, sizeBytes: last.sizeBytes, durationSeconds: last.durationSeconds, ageSeconds: Math.round(age!) }
        : null,
      rpo: { achievedSeconds: age === null ? null : Math.round(age), targetSeconds: rpo, ok: rpoOk },
      restorePoints: counts,
      promise,
      history: mine.map((p) => ({ createdAt: p.createdAt, tier: p.tier, sizeBytes: p.sizeBytes, durationSeconds: p.durationSeconds })),
      ok: rpoOk && promise.ok,
    };
  });
  const configured = new Set(items.map((i) => i.id));
  const unconfigured = [...new Set(points.map((p) => itemId(p.kind, p.name)).filter((id) => !configured.has(id)))].sort();

  // Drill: newest report by startedAt.
  const history = [...data.reports.entries()]
    .map(([k, r]) => drillRun(k, r))
    .filter((r): r is DrillRun => !!r)
    .sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
  const scheduled = c.postgres.length > 0;
  const gap = maxGapSeconds(c.schedule.drill);
  const maxAge = scheduled && Number.isFinite(gap) ? gap + rto + 3600 : null;
  const lastRun = history[history.length - 1];
  const drillAge = lastRun ? (nowMs - Date.parse(lastRun.startedAt)) / 1000 : null;
  const overdue = scheduled && (drillAge === null || (maxAge !== null && drillAge > maxAge));
  const drillOk = !scheduled || (!!lastRun && lastRun.result === "pass" && !overdue);
  if (scheduled) {
    if (!lastRun) problems.push(`${hostName} drill: no restore drill report in the bucket`);
    else {
      if (lastRun.result !== "pass") problems.push(`${hostName} drill: last drill (${lastRun.startedAt}) ${lastRun.result}${lastRun.failure ? ` at stage ${lastRun.failure.stage}: ${lastRun.failure.reason}` : ""}`);
      if (overdue) problems.push(`${hostName} drill: last drill is ${fmtAge(drillAge!)} old, its schedule "${c.schedule.drill}" allows ${fmtAge(maxAge!)}`);
    }
  }

  // Storage per tier.
  const zero = () => ({ daily: 0, weekly: 0, monthly: 0, drills: 0, other: 0, total: 0 });
  const bytes = zero();
  const objects = zero();
  const manifestBases = new Set(data.objects.filter((o) => o.key.endsWith(MANIFEST)).map((o) => o.key.slice(0, -MANIFEST.length)));
  let withoutManifest = 0;
  for (const o of data.objects) {
    const rest = o.key.slice(hostPrefix(hostName).length);
    const first = rest.split("/")[0]!;
    const bucketOf: Tier | "drills" | "other" = (TIERS as readonly string[]).includes(first) ? (first as Tier) : o.key.startsWith(drillsPrefix(hostName)) ? "drills" : "other";
    bytes[bucketOf] += o.size;
    objects[bucketOf]++;
    bytes.total += o.size;
    objects.total++;
    if (bucketOf !== "drills" && bucketOf !== "other" && !o.key.endsWith(MANIFEST)) {
      const base = o.key.replace(/\/(\d{8}T\d{6}Z)\.[^/]*$/, "/$1");
      if (!manifestBases.has(base)) withoutManifest++;
    }
  }

  const unreadableManifests = data.objects.filter((o) => parseManifestKey(hostName, o.key) && !(data.manifests.get(o.key) && typeof data.manifests.get(o.key) === "object")).map((o) => o.key);
  const wal = walStatus(plan, hostName, data.objects, nowMs, problems);
  if (unreadableManifests.length) problems.push(`${hostName}: ${unreadableManifests.length} manifest(s) are not readable JSON (not restore points): ${unreadableManifests.slice(0, 3).join(", ")}${unreadableManifests.length > 3 ? ", ..." : ""}`);

  return {
    name: hostName,
    prefix: host.prefix,
    ok: items.every((i) => i.ok) && drillOk && !unreadableManifests.length && wal.ok,
    items,
    drill: {
      scheduled,
      last: lastRun ? { ...lastRun, ageSeconds: Math.round(drillAge!) } : null,
      maxAgeSeconds: maxAge,
      overdue,
      ok: drillOk,
      history,
    },
    storage: { bytes, objects, withoutManifest, unreadableManifests },
    wal,
    unconfigured,
    problems,
  };
}

export function fleetStatus(plan: Plan, stack: string, data: Map<string, HostBucketData>, nowMs: number): FleetStatus {
  const hosts = plan.hosts.map((h) => hostStatus(plan, h.name, data.get(h.name) ?? { objects: [], manifests: new Map(), reports: new Map() }, nowMs));
  return {
    format: STATUS_FORMAT,
    kind: "restorable-status",
    stack,
    generatedAt: iso(nowMs),
    bucket: plan.bucket,
    provider: plan.provider,
    endpoint: plan.endpoint,
    objectives: { rpoSeconds: plan.config.objectives.rpo, rtoSeconds: plan.config.objectives.rto },
    retention: { ...plan.config.retention },
    ok: hosts.every((h) => h.ok),
    problems: hosts.flatMap((h) => h.problems),
    hosts,
  };
}
