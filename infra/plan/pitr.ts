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

/** PostgreSQL's default WAL segment size (initdb --wal-segsize changes it: 1 MiB .. 1 GiB). */
export const DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024;

function segmentsPerLog(segBytes: number): number {
  if (!Number.isInteger(segBytes) || segBytes < 1 << 20 || segBytes > 1 << 30 || (segBytes & (segBytes - 1)) !== 0) {
    throw new Error(`${segBytes} is not a WAL segment size (a power of two from 1 MiB to 1 GiB)`);
  }
  return 2 ** 32 / segBytes;
}

/**
 * A WAL segment's position (its timeline ignored): log * segments-per-log + segment, where a log
 * is 4 GiB of WAL; consecutive segments have consecutive positions. The segment size decides
 * how a name reads: with 1 MiB segments 000000010000000000000FFF is followed by
 * 000000010000000100000000, with 16 MiB ones 0000000100000000000000FF is. As
 * scripts/lib-pitr-restore.sh's restorable_pitr_seq.
 */
export function walSegmentPosition(name: string, segBytes: number = DEFAULT_WAL_SEGMENT_BYTES): number {
  if (!/^[0-9A-F]{24}$/.test(name)) throw new Error(`"${name}" is not a WAL segment name`);
  const per = segmentsPerLog(segBytes);
  const seg = parseInt(name.slice(16), 16);
  if (seg >= per) throw new Error(`"${name}" is not a WAL segment name with ${segBytes}-byte segments (at most ${per} segments per log)`);
  return parseInt(name.slice(8, 16), 16) * per + seg;
}

/** The name of the segment at `position` on `timeline` (restorable_pitr_seg_name). */
export function walSegmentName(timeline: number, position: number, segBytes: number = DEFAULT_WAL_SEGMENT_BYTES): string {
  const per = segmentsPerLog(segBytes);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, "0");
  return hex(timeline) + hex(Math.floor(position / per)) + hex(position % per);
}

/** The position of the segment holding LSN "hi/lo" (restorable_pitr_lsn_seq); PostgreSQL's
 * pg_walfile_name(lsn) is walSegmentName(timeline, walSegmentOfLsn(lsn)) but for an LSN at a
 * segment's very start, which it names by the segment before. */
export function walSegmentOfLsn(lsn: string, segBytes: number = DEFAULT_WAL_SEGMENT_BYTES): number {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new Error(`"${lsn}" is not an LSN`);
  segmentsPerLog(segBytes);
  return Number(((BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`)) / BigInt(segBytes));
}

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
