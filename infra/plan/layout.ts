// Object key layout in the bucket (contract, see DESIGN.md) and the tier a run uploads into.
import type { Tier } from "../config/schema";

export const TIERS: readonly Tier[] = ["daily", "weekly", "monthly"];

/** A restore point of one item as the bucket listing shows it: its tier and UTC stamp. */
export interface HeldPoint {
  tier: Tier;
  /** 20261124T030000Z */
  stamp: string;
}

const DAY_MS = 86_400_000;

/** Monday 00:00 UTC of the ISO week (Monday to Sunday, UTC) that contains `date`. */
export function isoWeekStart(date: Date): Date {
  const day = Math.floor(date.getTime() / DAY_MS);
  // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
  return new Date((day - (((day + 3) % 7) + 7) % 7) * DAY_MS);
}

/**
 * The tier this run's restore point of one item (a database, the roles, a volume) goes into,
 * decided by the item's restore points the bucket already holds (`held`, from heldPoints):
 *   monthly  if it holds no monthly restore point of the item stamped in the current UTC month,
 *   weekly   else, if it holds no weekly or monthly one stamped in the current ISO week (UTC),
 *   daily    otherwise.
 * So the first successful run of a month is monthly and the first successful run of a week is
 * weekly unless it is the month's first (then the monthly stands for that week too), whatever
 * the weekday and however many runs were missed or failed. One upload per item and run.
 * The shell scripts implement the same rule (`restorable_tier` in scripts/lib.sh); a test over
 * generated histories keeps the two equal.
 */
export function tierFor(now: Date, held: readonly HeldPoint[]): Tier {
  const stamp = utcStamp(now);
  const month = stamp.slice(0, 6);
  if (!held.some((p) => p.tier === "monthly" && p.stamp.slice(0, 6) === month)) return "monthly";
  const from = utcStamp(isoWeekStart(now)).slice(0, 8);
  const to = utcStamp(new Date(isoWeekStart(now).getTime() + 7 * DAY_MS)).slice(0, 8);
  const inWeek = (p: HeldPoint) => p.stamp.slice(0, 8) >= from && p.stamp.slice(0, 8) < to;
  if (!held.some((p) => p.tier !== "daily" && inWeek(p))) return "weekly";
  return "daily";
}

const STAMP_RE = /^[0-9]{8}T[0-9]{6}Z$/;

/**
 * The restore points of `what` among `keys` (a listing of the host's tier prefixes): every
 * `<host>/<tier>/<item>/<stamp>.manifest.json`. A data object without its manifest is not a
 * restore point (an interrupted run) and does not count.
 */
export function heldPoints(keys: Iterable<string>, host: string, what: BackupKind): HeldPoint[] {
  const out: HeldPoint[] = [];
  for (const key of keys) {
    for (const tier of TIERS) {
      const prefix = `${tierPrefix(host, tier)}${itemPath(what)}/`;
      if (!key.startsWith(prefix) || !key.endsWith(".manifest.json")) continue;
      const stamp = key.slice(prefix.length, -".manifest.json".length);
      if (STAMP_RE.test(stamp)) out.push({ tier, stamp });
    }
  }
  return out;
}

/** UTC stamp used in object names: 20261124T030000Z (sorts chronologically as text). */
export function utcStamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

export function hostPrefix(host: string): string {
  return `${host}/`;
}

export function tierPrefix(host: string, tier: Tier): string {
  return `${host}/${tier}/`;
}

export function drillsPrefix(host: string): string {
  return `${host}/drills/`;
}

export interface ObjectKeys {
  /** The data object; extension shows the pipeline: .dump/.sql/.tar then .zst then .age */
  object: string;
  /** Written last; a backup exists only when this exists. */
  manifest: string;
}

export type BackupKind =
  | { kind: "postgres"; database: string }
  | { kind: "globals" }
  | { kind: "volume"; volume: string };

/** Where an item's restore points live under a tier: postgres/<database>, globals, volumes/<volume>. */
export function itemPath(what: BackupKind): string {
  switch (what.kind) {
    case "postgres":
      return `postgres/${what.database}`;
    case "globals":
      return "globals";
    case "volume":
      return `volumes/${what.volume}`;
  }
}

const EXTENSIONS: Record<BackupKind["kind"], string> = { postgres: ".dump", globals: ".sql", volume: ".tar" };

export function objectKeys(host: string, tier: Tier, what: BackupKind, date: Date, opts: { compressed: boolean; encrypted: boolean }): ObjectKeys {
  const base = `${tierPrefix(host, tier)}${itemPath(what)}/${utcStamp(date)}`;
  const suffix = `${opts.compressed ? ".zst" : ""}${opts.encrypted ? ".age" : ""}`;
  return { object: `${base}${EXTENSIONS[what.kind]}${suffix}`, manifest: `${base}.manifest.json` };
}
