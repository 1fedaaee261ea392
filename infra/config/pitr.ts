// Point-in-time recovery (PITR) config: the host's `pitr` section, the clusters it archives, and
// the rules that tie the window, the base-backup schedule and the retention together. Pure; the
// schema (./schema.ts) calls checkPitr from its cross-section refinement.
//
//   pitr:               (restorable:hosts[i].pitr)
//     enabled: true            # default true once the section is there
//     window: 7d               # every second of the last 7 days is restorable
//     baseBackup: "0 2 * * 0"  # physical base backups (pg_basebackup), cron
//     serverWalLimit: 4GB      # max_slot_wal_keep_size: WAL the server keeps for a dead archiver
//
// Why "twice the gap": restoring to any second T of the window needs the newest base backup that
// ended before T and every WAL segment after it. With base backups every G, the oldest one still
// needed is at most window + G old; keeping window + 2G tolerates one missed (failed) base-backup
// run, which the base-backup job reports with its failure ping. Two missed runs in a row can open
// a gap at the far end of the window (the retention simulation shows both).
// The tier rule and the tier expiry come from the plan (pure functions; the plan imports only
// types from config, so there is no cycle at run time).
import { tierFor, utcStamp } from "../plan/layout";
import type { Tier } from "./schema";
import { tierExpiryDays, type Retention } from "../plan/retention";
import { firings, maxGapSeconds, parseCron } from "./cron";

/** "512MB", "4GB", "1TB" -> megabytes (PostgreSQL's unit for max_slot_wal_keep_size). */
export function parseSizeMB(text: string): number | undefined {
  const m = /^(\d+)\s*(MB|GB|TB)$/i.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2]!.toUpperCase();
  return unit === "MB" ? n : unit === "GB" ? n * 1024 : n * 1024 * 1024;
}

/** Smallest RPO the archive can promise: the shipper wakes every RPO/3 (at least every 10 s). */
export const PITR_MIN_RPO_SECONDS = 30;
/** The shipper's target: each WAL segment off-site within min(RPO, this). */
export const PITR_DEFAULT_SHIP_SECONDS = 60;

/** Base backups and WAL tolerate this many missed base-backup runs in a row (see above). */
export const PITR_TOLERATED_MISSED_BASE_RUNS = 1;

/**
 * The seconds of history the archive must keep for a window and a base-backup gap: the oldest
 * base backup still needed plus the WAL after it, with PITR_TOLERATED_MISSED_BASE_RUNS misses.
 */
export function pitrHistorySeconds(windowSeconds: number, baseGapSeconds: number): number {
  return windowSeconds + (1 + PITR_TOLERATED_MISSED_BASE_RUNS) * baseGapSeconds;
}

/** Days the WAL lifecycle rule keeps segments (counted from upload, like every rule). */
export function walExpireDays(windowSeconds: number, baseGapSeconds: number): number {
  return Math.ceil(pitrHistorySeconds(windowSeconds, baseGapSeconds) / 86400);
}

interface SourceLike {
  via: "compose" | "container" | "local";
  project?: string;
  service?: string;
  container?: string;
  host?: string;
  port?: number;
}

/** Same identity as restorable_pg_cluster_id in scripts/lib.sh: sources on one cluster share it. */
export function clusterIdentity(p: SourceLike): string {
  switch (p.via) {
    case "compose":
      return `compose|${p.project}|${p.service}`;
    case "container":
      return `container|${p.container}`;
    default:
      return `local|${p.host}|${p.port}`;
  }
}

/** The cluster's name in object keys (<host>/wal/<cluster>/...): readable, [A-Za-z0-9._-]. */
export function clusterKeyName(p: SourceLike): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._-]+/, "") || "x";
  switch (p.via) {
    case "compose": {
      const dir = (p.project ?? "").replace(/\/+$/, "").split("/").pop() || "root";
      return clean(`${dir}-${p.service}`);
    }
    case "container":
      return clean(p.container ?? "");
    default:
      return clean(`${p.host}-${p.port}`);
  }
}

export interface PitrCluster {
  /** Name in object keys. */
  name: string;
  /** Index of the first source on this cluster: the connection the archiver and base backup use. */
  source: number;
  /** Every source (index) on this cluster. */
  sources: number[];
}

/** The distinct clusters behind a host's sources, in source order. */
export function pitrClusters(sources: SourceLike[]): PitrCluster[] {
  const byId = new Map<string, PitrCluster>();
  sources.forEach((p, i) => {
    const id = clusterIdentity(p);
    const c = byId.get(id);
    if (c) c.sources.push(i);
    else byId.set(id, { name: clusterKeyName(p), source: i, sources: [i] });
  });
  return [...byId.values()];
}

// ---------------------------------------------------------------------------------------------
// Rules (the section's zod schema is in ./schema.ts, with the other host fields)

/** The section after parsing (window in seconds). */
export interface PitrConfig {
  enabled: boolean;
  window: number;
  baseBackup: string;
  serverWalLimit: string;
}

/**
 * The shortest time the tier lifecycle rules keep a base backup made on this schedule: the
 * smallest expiry of the tiers its runs land in (tierFor) over two years of runs.
 */
export function baseBackupKeepSeconds(schedule: string, retention: Retention): number {
  const days = tierExpiryDays(retention);
  let min = Infinity;
  // The tier rule looks at the restore points the bucket holds: every run succeeds here.
  const held: { tier: Tier; stamp: string }[] = [];
  for (const t of firings(parseCron(schedule), Date.UTC(2027, 0, 1), Date.UTC(2029, 0, 1))) {
    const date = new Date(t);
    const tier = tierFor(date, held);
    held.push({ tier, stamp: utcStamp(date) });
    min = Math.min(min, days[tier] * 86400);
    if (min === days.daily * 86400) break;
  }
  return min;
}

export interface PitrProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Cross-section rules for one host's pitr section: a window the base backups' retention can
 * hold, a base-backup schedule whose gaps the retention covers, an RPO the archive can meet.
 */
export function checkPitr(
  pitr: PitrConfig,
  hostIndex: number,
  sources: SourceLike[],
  rpoSeconds: number,
  retention: Retention,
): PitrProblem[] {
  const windowSeconds = pitr.window;
  const at = (...k: (string | number)[]) => ["hosts", hostIndex, "pitr", ...k];
  const out: PitrProblem[] = [];
  if (!pitr.enabled) return out;
  if (sources.length === 0) out.push({ path: at(), message: "PITR needs at least one postgres source on this host" });
  if (rpoSeconds < PITR_MIN_RPO_SECONDS) {
    out.push({ path: ["objectives", "rpo"], message: `with PITR the WAL archive meets an RPO of ${PITR_MIN_RPO_SECONDS}s or more, not ${rpoSeconds}s` });
  }
  let gap: number;
  try {
    gap = maxGapSeconds(pitr.baseBackup);
  } catch (e) {
    out.push({ path: at("baseBackup"), message: (e as Error).message });
    return out;
  }
  if (!Number.isFinite(gap)) {
    out.push({ path: at("baseBackup"), message: `"${pitr.baseBackup}" fires less than twice in eight years; base backups need a regular schedule` });
    return out;
  }
  const keep = baseBackupKeepSeconds(pitr.baseBackup, retention);
  const need = pitrHistorySeconds(windowSeconds, gap);
  const days = (s: number) => `${Math.round((s / 86400) * 10) / 10}d`;
  if (windowSeconds > keep) {
    out.push({ path: at("window"), message: `${days(windowSeconds)} is longer than the retention keeps the base backups of "${pitr.baseBackup}" (${days(keep)}, the shortest tier they land in); raise restorable:retention or shorten the window` });
  } else if (need > keep) {
    out.push({
      path: at("baseBackup"),
      message: `"${pitr.baseBackup}" leaves up to ${days(gap)} between base backups: window ${days(windowSeconds)} plus two gaps (one missed run tolerated) needs base backups kept ${days(need)}, but their shortest tier keeps them ${days(keep)}; back up more often, shorten the window or raise restorable:retention`,
    });
  }
  return out;
}
