// One canonical retention model; each provider's lifecycle rule format is an adapter of it.
//
// The promise (README, "Retention"): at any moment the bucket holds a restore point from each of
// the last `daily` UTC days, each of the last `weekly` ISO weeks (Monday to Sunday, UTC) and each
// of the last `monthly` UTC calendar months in which at least one backup run succeeded. Each
// run's restore point goes into one tier, chosen from what the bucket already holds (tierFor in
// layout.ts): the first successful run of a month is monthly, the first of a week weekly (unless
// it is the month's first: the monthly stands for that week), whatever the weekday.
//
// Expiry is counted by the stores from the object's creation and rounded up to the next UTC
// midnight (S3: "adds the number of days to the creation time and rounds to the next day
// midnight UTC"; B2 hides files N days after upload in its daily pass). So an object uploaded
// on day D with `days: N` is present through the whole of day D+N and gone from D+N+1 00:00.
// The binding moment is just after a midnight, before that day's run: the periods counted are
// the ones ending yesterday. A restore point made on day c of its period P must stay until the
// midnight after which P is no longer among the counted periods; the earlier c lies in P, the
// longer that is, so the binding case is the earliest possible c, the period's first day (a
// monthly made on the 28th or the last day, a weekly made on Sunday, needs fewer days):
//   daily:   made on day D, counted until the midnight that ends D+`daily`-1 -> N = daily
//   weekly:  made on a Monday, its week counted until the midnight 7*`weekly` days later
//                                                                            -> N = 7*weekly
//   monthly: made on a 1st, its month counted until the 1st `monthly` months later, up to L
//            days, L = the longest run of `monthly` consecutive months (Gregorian) -> N = L
// test/unit/retention-simulation.test.ts runs this day by day over years with skipped and
// failed runs (and runs moved across midnight) and also shows that N-1 breaks the promise for
// each tier.
import type { Tier } from "../config/schema";
import { TIERS, drillsPrefix, hostPrefix, tierPrefix } from "./layout";

export interface Retention {
  daily: number;
  weekly: number;
  monthly: number;
}

/** Days after creation at which a tier's objects expire. */
export type TierExpiry = Record<Tier, number>;

/** Days in the longest run of `months` consecutive calendar months (Gregorian, 400-year cycle). */
export function longestMonthsSpanDays(months: number): number {
  let best = 0;
  for (let start = 0; start < 12 * 400; start++) {
    const from = Date.UTC(2000, start, 1);
    const to = Date.UTC(2000, start + months, 1);
    best = Math.max(best, Math.round((to - from) / 86_400_000));
  }
  return best;
}

export function tierExpiryDays(r: Retention): TierExpiry {
  return { daily: r.daily, weekly: 7 * r.weekly, monthly: longestMonthsSpanDays(r.monthly) };
}

/** Noncurrent versions (overwritten or expired on a versioned bucket) are removed after this. */
export const NONCURRENT_DAYS = 1;
/** Unfinished multipart / large-file uploads are cancelled after this (a backup run takes far less). */
export const ABORT_INCOMPLETE_DAYS = 2;

/** Canonical rule: everything under `prefix` expires `expireDays` after upload. */
export interface RetentionRule {
  id: string;
  host: string;
  /** A tier, or "drills" for drill reports (kept as long as monthly backups). */
  scope: Tier | "drills";
  prefix: string;
  expireDays: number;
}

export function retentionRules(hosts: string[], r: Retention): RetentionRule[] {
  const days = tierExpiryDays(r);
  const rules: RetentionRule[] = [];
  for (const host of hosts) {
    for (const tier of TIERS) {
      rules.push({ id: `${host}-${tier}`, host, scope: tier, prefix: tierPrefix(host, tier), expireDays: days[tier] });
    }
    rules.push({ id: `${host}-drills`, host, scope: "drills", prefix: drillsPrefix(host), expireDays: days.monthly });
  }
  return rules;
}

// ----------------------------------------------------------------------------- S3 API form

export interface S3LifecycleRule {
  ID: string;
  Status: "Enabled";
  Filter: { Prefix: string };
  Expiration?: { Days: number } | { ExpiredObjectDeleteMarker: true };
  NoncurrentVersionExpiration?: { NoncurrentDays: number };
  AbortIncompleteMultipartUpload?: { DaysAfterInitiation: number };
}

/**
 * S3 LifecycleConfiguration (as `aws s3api put-bucket-lifecycle-configuration` takes it):
 * per host and tier an expiry + noncurrent-version expiry; per host one housekeeping rule that
 * removes expired delete markers and aborts incomplete multipart uploads.
 */
export function s3Lifecycle(rules: RetentionRule[]): { Rules: S3LifecycleRule[] } {
  const out: S3LifecycleRule[] = [];
  const hosts = [...new Set(rules.map((r) => r.host))];
  for (const rule of rules) {
    out.push({
      ID: rule.id,
      Status: "Enabled",
      Filter: { Prefix: rule.prefix },
      Expiration: { Days: rule.expireDays },
      NoncurrentVersionExpiration: { NoncurrentDays: NONCURRENT_DAYS },
    });
  }
  for (const host of hosts) {
    out.push({
      ID: `${host}-housekeeping`,
      Status: "Enabled",
      Filter: { Prefix: hostPrefix(host) },
      Expiration: { ExpiredObjectDeleteMarker: true },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: ABORT_INCOMPLETE_DAYS },
    });
  }
  return { Rules: out };
}

// ----------------------------------------------------------------------------- B2 native form

export interface B2LifecycleRule {
  fileNamePrefix: string;
  daysFromUploadingToHiding: number | null;
  daysFromHidingToDeleting: number | null;
  daysFromStartingToCancelingUnfinishedLargeFiles?: number | null;
}

/** B2 lifecycleRules: hide after the tier's age, delete hidden versions a day later. */
export function b2Lifecycle(rules: RetentionRule[]): B2LifecycleRule[] {
  return rules.map((r) => ({
    fileNamePrefix: r.prefix,
    daysFromUploadingToHiding: r.expireDays,
    daysFromHidingToDeleting: NONCURRENT_DAYS,
    daysFromStartingToCancelingUnfinishedLargeFiles: ABORT_INCOMPLETE_DAYS,
  }));
}
