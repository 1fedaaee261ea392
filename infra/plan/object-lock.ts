// Object lock: the bucket's default retention in S3 API form, and what it costs together with
// the lifecycle rules. Pure.
//
// How the two interact (shown on radosgw's lifecycle engine in test/integration/object-lock.test.ts):
// a tier's Expiration rule still turns the current version into a delete marker on schedule (a
// delete marker removes no version, so the lock allows it) and the backup stops being a restore
// point; the NoncurrentVersionExpiration rule then may remove the version only once its lock
// has ended. So a tier's objects are stored for max(expiry + NONCURRENT_DAYS, lock days).
import type { RestorableConfig, Tier } from "../config/schema";
import { TIERS } from "./layout";
import { NONCURRENT_DAYS, type TierExpiry } from "./retention";

export type ObjectLock = NonNullable<RestorableConfig["storage"]["objectLock"]>;

/** ObjectLockConfiguration as `aws s3api put-object-lock-configuration` takes it. */
export interface S3ObjectLockConfiguration {
  ObjectLockEnabled: "Enabled";
  Rule: { DefaultRetention: { Mode: "GOVERNANCE" | "COMPLIANCE"; Days: number } };
}

export function s3ObjectLockConfiguration(lock: ObjectLock | undefined): S3ObjectLockConfiguration | undefined {
  if (!lock) return undefined;
  return { ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: lock.mode === "compliance" ? "COMPLIANCE" : "GOVERNANCE", Days: lock.days } } };
}

/** How long one tier's objects are stored, without and with the lock. */
export interface TierLockCost {
  tier: Tier;
  /** Days until the backup stops being a restore point (the tier's Expiration). */
  expiryDays: number;
  /** Days its bytes are stored without a lock: expiry, then NONCURRENT_DAYS as a noncurrent version. */
  storedDaysUnlocked: number;
  /** Days its bytes are stored with the lock: max(storedDaysUnlocked, lock days). */
  storedDaysLocked: number;
  /** storedDaysLocked / storedDaysUnlocked: the factor on this tier's stored bytes. */
  factor: number;
}

export function objectLockCosts(lock: ObjectLock, expiry: TierExpiry): TierLockCost[] {
  return TIERS.map((tier) => {
    const unlocked = expiry[tier] + NONCURRENT_DAYS;
    const locked = Math.max(unlocked, lock.days);
    return { tier, expiryDays: expiry[tier], storedDaysUnlocked: unlocked, storedDaysLocked: locked, factor: locked / unlocked };
  });
}

/** Summary lines about the lock: a WARNING per tier whose objects it keeps longer, naming both keys. */
export function objectLockSummary(lock: ObjectLock | undefined, expiry: TierExpiry, provider: RestorableConfig["storage"]["provider"]): string[] {
  if (!lock) return [];
  const costs = objectLockCosts(lock, expiry);
  const lines: string[] = [];
  for (const c of costs) {
    if (c.storedDaysLocked <= c.storedDaysUnlocked) continue;
    lines.push(
      `WARNING: restorable:storage.objectLock.days (${lock.days}) is longer than the ${c.tier} tier's expiry (${c.expiryDays} days from restorable:retention.${c.tier}): ` +
        `each ${c.tier} backup stops being a restore point after ${c.expiryDays} days but stays stored until its lock ends, ${c.storedDaysLocked} days instead of ${c.storedDaysUnlocked} ` +
        `(about ${c.factor.toFixed(1)}x the ${c.tier} tier's stored bytes${lock.mode === "compliance" ? "; in compliance mode nobody can remove them earlier" : ""}).`,
    );
  }
  const bypass = provider === "b2" ? "a key with the bypassGovernance capability" : "a key allowed s3:BypassGovernanceRetention";
  const who = lock.mode === "compliance" ? "no key, not even the bucket owner's," : `only ${bypass} that sends the bypass header (never a host key)`;
  lines.push(
    `Object lock ${lock.mode} ${lock.days}d: ${who} can delete a version or shorten its lock before ${lock.days} days; ` +
      `an overwritten object's old version is kept ${Math.max(lock.days, NONCURRENT_DAYS)} days instead of ${NONCURRENT_DAYS}.`,
  );
  return lines;
}
