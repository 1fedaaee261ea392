// Retention simulation: run the promotion rule (tierFor) and the lifecycle rules the plan
// produces (S3 and B2 forms), day by day, and check the promise every day once warmed up:
// a restore point for each of the last `daily` days, each of the last `weekly` 7-day windows and
// each of the last `monthly` calendar months, and never an object older than its rule allows.
// The store is modelled the way S3 documents expiry: creation time + Days, rounded up to the
// next UTC midnight. B2 hides after `daysFromUploadingToHiding` on the same day boundary.
import { describe, expect, it } from "vitest";
import { b2Lifecycle, objectKeys, retentionRules, s3Lifecycle, tierExpiryDays, tierFor, type Retention } from "../../infra/plan";

const DAY = 86_400_000;
const HOST = "web-1";

interface StoredObject {
  key: string;
  created: number; // ms
  expireDays: number;
}

/** Days for the one rule whose prefix matches `key` (S3 form); fails if zero or several match. */
function s3ExpiryFor(rules: ReturnType<typeof s3Lifecycle>["Rules"], key: string): number {
  const matching = rules.filter((r) => key.startsWith(r.Filter.Prefix) && r.Expiration && "Days" in r.Expiration);
  if (matching.length !== 1) throw new Error(`${matching.length} expiring rules match ${key}`);
  return (matching[0]!.Expiration as { Days: number }).Days;
}

function b2ExpiryFor(rules: ReturnType<typeof b2Lifecycle>, key: string): number {
  const matching = rules.filter((r) => key.startsWith(r.fileNamePrefix));
  if (matching.length !== 1) throw new Error(`${matching.length} B2 rules match ${key}`);
  return matching[0]!.daysFromUploadingToHiding!;
}

/** When the store removes (or hides) the object: creation + days, rounded up to next UTC midnight. */
function removalTime(o: StoredObject): number {
  const t = o.created + o.expireDays * DAY;
  return Math.floor(t / DAY) * DAY + DAY;
}

const dayOf = (ms: number) => Math.floor(ms / DAY);

interface SimOptions {
  retention: Retention;
  start: Date;
  days: number;
  /** Minutes after UTC midnight at which the daily backup finishes uploading. */
  backupMinute: number;
  /** Which lifecycle form decides the expiry. */
  form: "s3" | "b2";
  /** Override the expiry of one tier (to show the plan's value is the smallest that works). */
  override?: Partial<Record<"daily" | "weekly" | "monthly", number>>;
}

interface SimResult {
  violations: string[];
  checkedDays: number;
}

function simulate(opts: SimOptions): SimResult {
  const r = opts.retention;
  const rules = retentionRules([HOST], r);
  const s3 = s3Lifecycle(rules).Rules;
  const b2 = b2Lifecycle(rules);
  const expiryOf = (key: string) => {
    const tier = key.split("/")[1] as "daily" | "weekly" | "monthly";
    if (opts.override?.[tier] !== undefined) return opts.override[tier]!;
    return opts.form === "s3" ? s3ExpiryFor(s3, key) : b2ExpiryFor(b2, key);
  };
  let objects: StoredObject[] = [];
  const violations: string[] = [];
  const startDay = Date.UTC(opts.start.getUTCFullYear(), opts.start.getUTCMonth(), opts.start.getUTCDate());
  // Warm-up: the monthly promise needs `monthly` months of history (plus one month of slack).
  const warmupDays = Math.max(r.daily, 7 * r.weekly, 31 * (r.monthly + 1));
  let checkedDays = 0;

  const check = (now: number, newestDay: number, label: string) => {
    const d = new Date(newestDay * DAY);
    const createdDays = objects.map((o) => dayOf(o.created));
    for (let k = 0; k < r.daily; k++) {
      if (!createdDays.includes(newestDay - k)) violations.push(`${label}: no restore point for day -${k}`);
    }
    for (let w = 0; w < r.weekly; w++) {
      const hi = newestDay - 7 * w;
      const lo = hi - 6;
      if (!createdDays.some((c) => c >= lo && c <= hi)) violations.push(`${label}: no restore point in week -${w}`);
    }
    for (let m = 0; m < r.monthly; m++) {
      const monthStart = dayOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - m, 1));
      const monthEnd = dayOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - m + 1, 1)) - 1;
      if (!createdDays.some((c) => c >= monthStart && c <= monthEnd)) violations.push(`${label}: no restore point in month -${m}`);
    }
    for (const o of objects) {
      // Never older than its tier allows: the rule's days, plus less than a day of rounding.
      if (now - o.created > (o.expireDays + 1) * DAY) violations.push(`${label}: ${o.key} is older than ${o.expireDays}+1 days`);
    }
  };

  for (let i = 0; i < opts.days; i++) {
    const midnight = startDay + i * DAY;
    // The store's daily pass at midnight removes what has expired.
    objects = objects.filter((o) => removalTime(o) > midnight);
    const warm = i >= warmupDays;
    const label = new Date(midnight).toISOString().slice(0, 10);
    if (warm) check(midnight, dayOf(midnight) - 1, `${label} 00:00`);
    // The day's backup: one upload, into the tier the date calls for.
    const at = new Date(midnight + opts.backupMinute * 60_000);
    const keys = objectKeys(HOST, tierFor(at), { kind: "postgres", database: "app" }, at, { compressed: true, encrypted: false });
    objects.push({ key: keys.object, created: at.getTime(), expireDays: expiryOf(keys.object) });
    if (warm) {
      check(at.getTime(), dayOf(midnight), `${label} after backup`);
      checkedDays++;
    }
  }
  return { violations, checkedDays };
}

const DEFAULT: Retention = { daily: 7, weekly: 4, monthly: 12 };

describe("retention simulation", () => {
  // 2027-01-01 .. 2030-06: 2028 is a leap year, every month length occurs several times.
  const base = { start: new Date(Date.UTC(2027, 0, 1)), days: 1270 };

  it.each([
    ["s3", 3 * 60],
    ["s3", 23 * 60 + 59],
    ["b2", 3 * 60],
    ["b2", 0],
  ] as const)("keeps 7/4/12 every day for 800+ days (%s form, backup at minute %i)", (form, backupMinute) => {
    const res = simulate({ ...base, retention: DEFAULT, backupMinute, form });
    expect(res.checkedDays).toBeGreaterThanOrEqual(800);
    expect(res.violations).toEqual([]);
  });

  it.each([
    [{ daily: 1, weekly: 1, monthly: 1 }],
    [{ daily: 14, weekly: 8, monthly: 24 }],
    [{ daily: 3, weekly: 10, monthly: 6 }],
  ])("keeps other retention counts too: %o", (retention) => {
    const res = simulate({ ...base, days: 1270 + 31 * retention.monthly, retention, backupMinute: 180, form: "s3" });
    expect(res.checkedDays).toBeGreaterThanOrEqual(800);
    expect(res.violations).toEqual([]);
  });

  it.each(["daily", "weekly", "monthly"] as const)("the %s expiry is the smallest that keeps the promise", (tier) => {
    const days = tierExpiryDays(DEFAULT);
    const res = simulate({ ...base, retention: DEFAULT, backupMinute: 180, form: "s3", override: { [tier]: days[tier] - 1 } });
    expect(res.violations.length).toBeGreaterThan(0);
  });

  it("expiry ages for the default policy", () => {
    // 12 consecutive months span at most 366 days (a leap February inside).
    expect(tierExpiryDays(DEFAULT)).toEqual({ daily: 7, weekly: 28, monthly: 366 });
  });
});
