// Point-in-time recovery in the plan: the object layout of the WAL archive and the physical base
// backups (contract), and the WAL's lifecycle rule in the S3 and B2 forms. Additive to
// ./retention.ts: base backups live in the tier prefixes and expire with them; the WAL has one
// rule per host, `<host>/wal/`, long enough for the window plus two base-backup gaps.
//
//   <host>/wal/<cluster>/<timeline><segment>.zst[.age]               one per WAL segment, immutable
//   <host>/wal/<cluster>/<timeline>.history.zst[.age]                timeline history files
//   <host>/<tier>/base/<cluster>/<stamp>.tar.zst[.age]               pg_basebackup -Ft -X fetch
//   <host>/<tier>/base/<cluster>/<stamp>.manifest.json               written last
import type { HostConfig } from "../config/schema";
import { maxGapSeconds } from "../config/cron";
import { pitrClusters, walExpireDays, type PitrCluster } from "../config/pitr";
import { hostPrefix, tierPrefix, utcStamp, type ObjectKeys } from "./layout";
import { NONCURRENT_DAYS, ABORT_INCOMPLETE_DAYS, type B2LifecycleRule, type S3LifecycleRule } from "./retention";
import type { Tier } from "../config/schema";

export { pitrClusters, type PitrCluster } from "../config/pitr";

export function walPrefix(host: string, cluster?: string): string {
  return `${hostPrefix(host)}wal/${cluster === undefined ? "" : `${cluster}/`}`;
}

/** A WAL file name as PostgreSQL writes it: 24 hex digits (timeline, log, segment), or a timeline history file. */
export const WAL_FILE = /^(?:[0-9A-F]{24}|[0-9A-F]{8}\.history)$/;

export function walKey(host: string, cluster: string, walFile: string, opts: { encrypted: boolean }): string {
  if (!WAL_FILE.test(walFile)) throw new Error(`"${walFile}" is not a WAL segment or timeline history file name`);
  return `${walPrefix(host, cluster)}${walFile}.zst${opts.encrypted ? ".age" : ""}`;
}

export function baseBackupKeys(host: string, tier: Tier, cluster: string, date: Date, opts: { encrypted: boolean }): ObjectKeys {
  const base = `${tierPrefix(host, tier)}base/${cluster}/${utcStamp(date)}`;
  return { object: `${base}.tar.zst${opts.encrypted ? ".age" : ""}`, manifest: `${base}.manifest.json` };
}

export interface HostPitrPlan {
  window: number;
  baseBackup: string;
  /** Longest time between two base backups of the schedule (seconds). */
  baseGap: number;
  /** Days the WAL rule keeps segments. */
  walExpireDays: number;
  serverWalLimit: string;
  clusters: PitrCluster[];
}

export function hostPitrPlan(h: HostConfig): HostPitrPlan | undefined {
  if (!h.pitr?.enabled) return undefined;
  const baseGap = maxGapSeconds(h.pitr.baseBackup);
  return {
    window: h.pitr.window,
    baseBackup: h.pitr.baseBackup,
    baseGap,
    walExpireDays: walExpireDays(h.pitr.window, baseGap),
    serverWalLimit: h.pitr.serverWalLimit,
    clusters: pitrClusters(h.postgres),
  };
}

export interface WalRule {
  id: string;
  host: string;
  prefix: string;
  expireDays: number;
}

export function walRules(hosts: { name: string; pitr: HostPitrPlan | undefined }[]): WalRule[] {
  return hosts.flatMap((h) => (h.pitr ? [{ id: `${h.name}-wal`, host: h.name, prefix: walPrefix(h.name), expireDays: h.pitr.walExpireDays }] : []));
}

/** The WAL rules in the S3 form, the same shape as the tier rules (retention.ts s3Lifecycle). */
export function walS3Rules(rules: WalRule[]): S3LifecycleRule[] {
  return rules.map((r) => ({
    ID: r.id,
    Status: "Enabled",
    Filter: { Prefix: r.prefix },
    Expiration: { Days: r.expireDays },
    NoncurrentVersionExpiration: { NoncurrentDays: NONCURRENT_DAYS },
  }));
}

/** The WAL rules in B2's native form (retention.ts b2Lifecycle). */
export function walB2Rules(rules: WalRule[]): B2LifecycleRule[] {
  return rules.map((r) => ({
    fileNamePrefix: r.prefix,
    daysFromUploadingToHiding: r.expireDays,
    daysFromHidingToDeleting: NONCURRENT_DAYS,
    daysFromStartingToCancelingUnfinishedLargeFiles: ABORT_INCOMPLETE_DAYS,
  }));
}
