// Object key layout in the bucket (contract, see DESIGN.md) and the tier a run uploads into.
import type { Tier } from "../config/schema";

export const TIERS: readonly Tier[] = ["daily", "weekly", "monthly"];

/**
 * The tier a backup run on this UTC date uploads into: the highest one the day qualifies for
 * (1st of month -> monthly, Sunday -> weekly, else daily). One upload per run.
 * The shell scripts implement the same rule (`restorable_tier` in scripts/lib.sh); a test keeps
 * the two in agreement.
 */
export function tierFor(date: Date): Tier {
  if (date.getUTCDate() === 1) return "monthly";
  if (date.getUTCDay() === 0) return "weekly";
  return "daily";
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

export function objectKeys(host: string, tier: Tier, what: BackupKind, date: Date, opts: { compressed: boolean; encrypted: boolean }): ObjectKeys {
  const stamp = utcStamp(date);
  const suffix = `${opts.compressed ? ".zst" : ""}${opts.encrypted ? ".age" : ""}`;
  let base: string;
  let ext: string;
  switch (what.kind) {
    case "postgres":
      base = `${tierPrefix(host, tier)}postgres/${what.database}/${stamp}`;
      ext = ".dump";
      break;
    case "globals":
      base = `${tierPrefix(host, tier)}globals/${stamp}`;
      ext = ".sql";
      break;
    case "volume":
      base = `${tierPrefix(host, tier)}volumes/${what.volume}/${stamp}`;
      ext = ".tar";
      break;
  }
  return { object: `${base}${ext}${suffix}`, manifest: `${base}.manifest.json` };
}
