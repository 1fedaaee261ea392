// The plan's object-lock settings and what a lock costs with the lifecycle rules (pure).
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../infra/config";
import { buildPlan, hostIamPolicy, objectLockCosts, NONCURRENT_DAYS } from "../../infra/plan";

function planWith(objectLock: unknown, retention?: unknown, provider: "aws" | "b2" = "aws") {
  return buildPlan(
    parseConfig({
      storage: { provider, bucket: "acme-prod-backups", region: provider === "b2" ? "us-west-002" : "eu-central-1", ...(objectLock ? { objectLock } : {}) },
      objectives: { rpo: "24h", rto: "1h" },
      ...(retention ? { retention } : {}),
      hosts: [{ name: "web-1", ssh: { host: "203.0.113.10" }, postgres: [{ via: "local", database: "app" }] }],
    }),
  );
}

describe("object lock in the plan", () => {
  it("has the bucket's default retention in S3 API form", () => {
    expect(planWith({ mode: "governance", days: 7 }).objectLock).toEqual({ ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: "GOVERNANCE", Days: 7 } } });
    expect(planWith({ mode: "compliance", days: 30 }).objectLock).toEqual({ ObjectLockEnabled: "Enabled", Rule: { DefaultRetention: { Mode: "COMPLIANCE", Days: 30 } } });
    expect(planWith(undefined).objectLock).toBeUndefined();
  });

  it("the host policy denies bypassing governance retention and changing retention or legal hold", () => {
    const deny = hostIamPolicy("b", "web-1").Statement.find((s) => s.Effect === "Deny")!;
    expect(deny.Action).toEqual(expect.arrayContaining(["s3:BypassGovernanceRetention", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:DeleteObjectVersion", "s3:PutBucketObjectLockConfiguration"]));
  });

  it("stores a tier's objects for max(expiry + noncurrent days, lock days)", () => {
    const costs = objectLockCosts({ mode: "governance", days: 30 }, { daily: 7, weekly: 28, monthly: 366 });
    expect(costs).toEqual([
      { tier: "daily", expiryDays: 7, storedDaysUnlocked: 7 + NONCURRENT_DAYS, storedDaysLocked: 30, factor: 30 / 8 },
      { tier: "weekly", expiryDays: 28, storedDaysUnlocked: 29, storedDaysLocked: 30, factor: 30 / 29 },
      { tier: "monthly", expiryDays: 366, storedDaysUnlocked: 367, storedDaysLocked: 367, factor: 1 },
    ]);
  });

  it("warns, naming both keys, when the lock keeps the daily tier's objects longer than their expiry; states the cost", () => {
    const warnings = planWith({ mode: "compliance", days: 30 }).summary.filter((l) => l.startsWith("WARNING: restorable:storage.objectLock"));
    expect(warnings).toEqual([
      "WARNING: restorable:storage.objectLock.days (30) is longer than the daily tier's expiry (7 days from restorable:retention.daily): each daily backup stops being a restore point after 7 days but stays stored until its lock ends, 30 days instead of 8 (about 3.8x the daily tier's stored bytes; in compliance mode nobody can remove them earlier).",
      "WARNING: restorable:storage.objectLock.days (30) is longer than the weekly tier's expiry (28 days from restorable:retention.weekly): each weekly backup stops being a restore point after 28 days but stays stored until its lock ends, 30 days instead of 29 (about 1.0x the weekly tier's stored bytes; in compliance mode nobody can remove them earlier).",
    ]);
    // retention.daily is the other key: raising it past the lock removes the daily warning
    const longer = planWith({ mode: "governance", days: 30 }, { daily: 30 }).summary.filter((l) => l.startsWith("WARNING: restorable:storage.objectLock"));
    expect(longer.map((l) => / the (\w+) tier's/.exec(l)![1])).toEqual(["weekly"]);
  });

  it("does not warn when every tier outlives the lock, and says who can shorten it", () => {
    const summary = planWith({ mode: "governance", days: 7 }).summary;
    expect(summary.filter((l) => l.includes("WARNING"))).toEqual([]);
    expect(summary).toContain(
      "Object lock governance 7d: only a key allowed s3:BypassGovernanceRetention that sends the bypass header (never a host key) can delete a version or shorten its lock before 7 days; an overwritten object's old version is kept 7 days instead of 1.",
    );
    expect(planWith({ mode: "governance", days: 7 }, undefined, "b2").summary.filter((l) => l.startsWith("Object lock"))).toEqual([
      "Object lock governance 7d: only a key with the bypassGovernance capability that sends the bypass header (never a host key) can delete a version or shorten its lock before 7 days; an overwritten object's old version is kept 7 days instead of 1.",
    ]);
    expect(planWith({ mode: "compliance", days: 8 }).summary.filter((l) => l.includes("WARNING"))).toEqual([]);
    expect(planWith({ mode: "compliance", days: 9 }).summary.filter((l) => l.includes("WARNING")).length).toBe(1);
    expect(planWith(undefined).summary.filter((l) => l.includes("bject lock"))).toEqual([]);
  });
});
