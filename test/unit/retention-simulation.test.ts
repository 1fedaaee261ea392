// Retention simulation: run the tier rule (tierFor over what the bucket holds, read with
// heldPoints) and the lifecycle rules the plan produces (S3 and B2 forms) through calendars of
// successful, failed and skipped runs, some moved across midnight, and check the promise every day:
//   for each of the last `daily` UTC days, `weekly` ISO weeks (Monday to Sunday, UTC) and
//   `monthly` UTC calendar months in which at least one run succeeded, the bucket holds a
//   restore point (manifest and data object) made in it;
// never an object older than its rule allows, and no more promotions than the rule calls for
// (one monthly per month, one weekly or monthly per week; promoting every run would keep the
// promise at many times the storage). It is checked at every UTC midnight, after the
// store's daily expiry pass and before that day's run (the moment objects have just gone and none
// has come), over the periods ending yesterday, and after every run over the periods ending now.
// The store is modelled the way S3 documents expiry: creation time + Days, rounded up to the next
// UTC midnight. B2 hides after `daysFromUploadingToHiding` on the same day boundary.
// A failed run may leave a data object without its manifest (an interrupted upload): it must
// not count as a restore point, neither for the promise nor for the next run's tier.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  b2Lifecycle, heldPoints, isoWeekStart, objectKeys, promisePeriods, retentionRules, s3Lifecycle, tierExpiryDays, tierFor, type Retention,
} from "../../infra/plan";
import type { Tier } from "../../infra/config/schema";

const DAY = 86_400_000;
const MIN = 60_000;
const HOST = "web-1";
const ITEM = { kind: "postgres", database: "app" } as const;

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

/** One backup run: when it starts (its stamp), how long it takes, how it ends. */
interface Run {
  at: number;
  durationMs: number;
  /** ok: object and manifest; orphan: the object was uploaded, the manifest never; failed: nothing. */
  outcome: "ok" | "orphan" | "failed";
}

interface SimOptions {
  retention: Retention;
  /** First simulated UTC day (ms at midnight) and number of days. */
  start: number;
  days: number;
  runs: Run[];
  form: "s3" | "b2";
  /** Override the expiry of one tier (to show the plan's value is the smallest that works). */
  override?: Partial<Record<Tier, number>>;
}

interface SimResult {
  violations: string[];
  /** How many restore points each tier received. */
  made: Record<Tier, number>;
  /** Days (since the epoch) on which a monthly / weekly restore point was made. */
  monthlyDays: number[];
  weeklyDays: number[];
}

/** The periods the promise counts when day `d` has just ended (the plan's one definition). */
const periods = (r: Retention, d: number) => promisePeriods(r, (d + 1) * DAY);

function simulate(opts: SimOptions): SimResult {
  const r = opts.retention;
  const rules = retentionRules([HOST], r);
  const s3 = s3Lifecycle(rules).Rules;
  const b2 = b2Lifecycle(rules);
  const expiryOf = (key: string) => {
    const tier = key.split("/")[1] as Tier;
    if (opts.override?.[tier] !== undefined) return opts.override[tier]!;
    return opts.form === "s3" ? s3ExpiryFor(s3, key) : b2ExpiryFor(b2, key);
  };
  let objects: StoredObject[] = [];
  const violations: string[] = [];
  const made: Record<Tier, number> = { daily: 0, weekly: 0, monthly: 0 };
  const monthlyDays: number[] = [];
  const weeklyDays: number[] = [];
  /** Days (since the epoch) with a successful run, i.e. with a restore point made. */
  const succeeded = new Set<number>();
  const runs = [...opts.runs].sort((a, b) => a.at - b.at);
  let next = 0;

  const check = (now: number, newestDay: number, label: string) => {
    const present = new Set(objects.map((o) => o.key));
    // Restore points the bucket holds: a manifest whose data object is there too.
    const points = heldPoints(present, HOST, ITEM).filter((p) =>
      present.has(objectKeys(HOST, p.tier, ITEM, stampDate(p.stamp), { compressed: true, encrypted: false }).object),
    );
    const pointDays = new Set(points.map((p) => dayOf(stampDate(p.stamp).getTime())));
    for (const p of periods(r, newestDay)) {
      let ran = false;
      let held = false;
      for (let d = dayOf(p.from); d < dayOf(p.to); d++) {
        ran ||= succeeded.has(d);
        held ||= pointDays.has(d);
      }
      if (ran && !held) violations.push(`${label}: a run succeeded in ${p.label} (${iso(p.from)}..${iso(p.to - DAY)}) but no restore point from it is left`);
    }
    for (const o of objects) {
      // Never older than its tier allows: the rule's days, plus less than a day of rounding.
      if (now - o.created > (o.expireDays + 1) * DAY) violations.push(`${label}: ${o.key} is older than ${o.expireDays}+1 days`);
    }
  };

  for (let i = 0; i < opts.days; i++) {
    const midnight = opts.start + i * DAY;
    // The store's daily pass at midnight removes what has expired.
    objects = objects.filter((o) => removalTime(o) > midnight);
    check(midnight, dayOf(midnight) - 1, `${iso(midnight)} 00:00`);
    while (next < runs.length && runs[next]!.at < midnight + DAY) {
      const run = runs[next++]!;
      if (run.at < midnight) continue;
      const at = new Date(run.at);
      // The run lists what the bucket holds (all earlier runs have finished: one run at a time).
      const tier = tierFor(at, heldPoints(objects.map((o) => o.key), HOST, ITEM));
      const keys = objectKeys(HOST, tier, ITEM, at, { compressed: true, encrypted: false });
      const done = run.at + run.durationMs;
      if (run.outcome !== "failed") objects.push({ key: keys.object, created: done, expireDays: expiryOf(keys.object) });
      if (run.outcome === "ok") {
        objects.push({ key: keys.manifest, created: done + 1000, expireDays: expiryOf(keys.manifest) });
        succeeded.add(dayOf(run.at));
        // Economy: no more than one monthly per month and one weekly-or-monthly per week, unless
        // a monthly begins a month inside a week that already had its weekly (a rule promoting
        // every run would keep the promise, at many times the storage).
        const monthStart = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
        const weekStart = isoWeekStart(at).getTime();
        const sameMonth = monthlyDays.filter((d) => d * DAY >= monthStart).length;
        const sameWeek = [...monthlyDays, ...weeklyDays].filter((d) => d * DAY >= weekStart).length;
        if (tier === "monthly" && sameMonth > 0) violations.push(`${at.toISOString()}: a second monthly restore point in one month`);
        if (tier === "weekly" && sameWeek > 0) violations.push(`${at.toISOString()}: a second weekly restore point in one week`);
        if (tier === "weekly" && sameMonth === 0) violations.push(`${at.toISOString()}: the first successful run of its month is weekly`);
        if (tier === "daily" && (sameMonth === 0 || sameWeek === 0)) violations.push(`${at.toISOString()}: the first successful run of its month or week is daily`);
        made[tier]++;
        // A run that ends after midnight ends after the store's pass at that midnight.
        objects = objects.filter((o) => removalTime(o) > done + 1000);
        if (tier === "monthly") monthlyDays.push(dayOf(run.at));
        if (tier === "weekly") weeklyDays.push(dayOf(run.at));
        check(done + 1000, dayOf(run.at), `${at.toISOString()} after the run`);
      }
    }
  }
  return { violations, made, monthlyDays, weeklyDays };
}

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const stampDate = (s: string) =>
  new Date(Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8), +s.slice(9, 11), +s.slice(11, 13), +s.slice(13, 15)));

/** A small deterministic PRNG (mulberry32), so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Calendar {
  start: number;
  days: number;
  /** Minutes after UTC midnight of the scheduled run. */
  minute: number;
  /** Each run moves by up to this many minutes either way (across midnight when near it). */
  jitter?: number;
  /** Day index -> skipped (no run at all) / failed (orphan object or nothing). */
  skip?: (day: Date, i: number) => boolean;
  fail?: (day: Date, i: number) => "orphan" | "failed" | false;
  seed?: number;
}

function runsOf(c: Calendar): Run[] {
  const rnd = prng(c.seed ?? 1);
  const runs: Run[] = [];
  for (let i = 0; i < c.days; i++) {
    const day = new Date(c.start + i * DAY);
    const jitter = c.jitter ? Math.round((rnd() * 2 - 1) * c.jitter) : 0;
    const durationMs = Math.round(rnd() * 10 * MIN);
    if (c.skip?.(day, i)) continue;
    const f = c.fail?.(day, i) || false;
    runs.push({ at: c.start + i * DAY + (c.minute + jitter) * MIN, durationMs, outcome: f || "ok" });
  }
  return runs;
}

const DEFAULT: Retention = { daily: 7, weekly: 4, monthly: 12 };
// 2027-01-01 .. 2030-06: 2028 is a leap year, every month length occurs several times.
const START = Date.UTC(2027, 0, 1);
const DAYS = 1270;
const sim = (c: Calendar, o: Partial<SimOptions> = {}) =>
  simulate({ retention: DEFAULT, start: c.start, days: c.days, runs: runsOf(c), form: "s3", ...o });

const dom = (d: Date) => d.getUTCDate();
const dow = (d: Date) => d.getUTCDay(); // 0 Sunday .. 6 Saturday
const lastOfMonth = (d: Date) => new Date(d.getTime() + DAY).getUTCDate() === 1;

describe("retention simulation", () => {
  it.each([
    ["s3", 3 * 60],
    ["s3", 23 * 60 + 59],
    ["b2", 3 * 60],
    ["b2", 0],
  ] as const)("every run succeeds: keeps 7/4/12 every day for %s days (%s form, backup at minute %i)", (form, minute) => {
    const res = sim({ start: START, days: DAYS, minute }, { form });
    expect(res.violations).toEqual([]);
    // The first run of each month is monthly (the 1st), the first of each other week weekly (Monday).
    expect(res.monthlyDays.every((d) => new Date(d * DAY).getUTCDate() === 1)).toBe(true);
    expect(res.weeklyDays.every((d) => new Date(d * DAY).getUTCDay() === 1)).toBe(true);
    expect(res.made.monthly).toBe(42);
  });

  const skipped: [string, (d: Date) => boolean, (r: SimResult) => void][] = [
    ["every 1st", (d) => dom(d) === 1, (r) => expect(new Set(r.monthlyDays.map((d) => new Date(d * DAY).getUTCDate()))).toEqual(new Set([2]))],
    ["every Sunday", (d) => dow(d) === 0, (r) => expect(r.made.weekly).toBeGreaterThan(100)],
    ["every Monday (the week's first day)", (d) => dow(d) === 1, (r) => expect(new Set(r.weeklyDays.map((d) => new Date(d * DAY).getUTCDay()))).toEqual(new Set([2]))],
    ["every 1st and every Sunday", (d) => dom(d) === 1 || dow(d) === 0, () => {}],
    ["the 1st to the 27th of every month (monthly on the 28th)", (d) => dom(d) <= 27, (r) => expect(new Set(r.monthlyDays.map((d) => new Date(d * DAY).getUTCDate()))).toEqual(new Set([28]))],
    ["all but the last day of every month", (d) => !lastOfMonth(d), (r) => expect(r.made).toEqual({ daily: 0, weekly: 0, monthly: 41 })],
    ["Monday to Saturday (weekly on Sunday, the week's last day)", (d) => dow(d) !== 0, (r) => {
      expect(r.made.daily).toBe(0);
      expect(new Set(r.weeklyDays.map((d) => new Date(d * DAY).getUTCDay()))).toEqual(new Set([0]));
    }],
    ["all but the 2nd and the last Sunday of each month", (d) => !(dom(d) === 2 || (dow(d) === 0 && dom(d) > new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate() - 7)), () => {}],
  ];
  it.each(skipped)("skipping %s keeps the promise every day", (_label, skip, more) => {
    for (const minute of [3 * 60, 23 * 60 + 58]) {
      const res = sim({ start: START, days: DAYS, minute, jitter: 4, skip, seed: 7 });
      expect(res.violations).toEqual([]);
      // Near midnight the jitter moves runs onto the next day, so which day gets which tier shifts.
      if (minute === 3 * 60) more(res);
    }
  });

  it("a failed run that left its object but no manifest does not count: the next run takes the tier", () => {
    // Every 1st fails after uploading its data object; the 2nd must become monthly.
    const res = sim({ start: START, days: 400, minute: 180, fail: (d) => (dom(d) === 1 ? "orphan" : false) });
    expect(res.violations).toEqual([]);
    expect(new Set(res.monthlyDays.map((d) => new Date(d * DAY).getUTCDate()))).toEqual(new Set([2]));
  });

  it("property: for any pattern of failed and skipped runs, some moved across midnight, the promise holds every day", () => {
    const calendar = fc.record({
      start: fc.integer({ min: 0, max: 240 }).map((d) => START + d * DAY),
      minute: fc.constantFrom(0, 2, 180, 23 * 60 + 57, 23 * 60 + 59),
      jitter: fc.constantFrom(0, 3, 30),
      rate: fc.constantFrom(0.05, 0.3, 0.6, 0.9),
      seed: fc.integer(),
      orphans: fc.boolean(),
      form: fc.constantFrom("s3" as const, "b2" as const),
    });
    fc.assert(
      fc.property(calendar, (c) => {
        const rnd = prng(c.seed ^ 0x5eed);
        const res = sim(
          { start: c.start, days: 900, minute: c.minute, jitter: c.jitter, seed: c.seed, fail: () => (rnd() < c.rate ? (c.orphans ? "orphan" : "failed") : false) },
          { form: c.form },
        );
        expect(res.violations.slice(0, 3)).toEqual([]);
      }),
      { numRuns: 25 },
    );
  });

  it("property: any set of failed days (shrinks to the smallest calendar that breaks it)", () => {
    const days = 800;
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(days - 1), { maxLength: 600 }), fc.constantFrom(5, 23 * 60 + 59), (failed, minute) => {
        const set = new Set(failed);
        const res = sim({ start: START, days, minute, fail: (_d, i) => (set.has(i) ? "failed" : false) });
        expect(res.violations.slice(0, 3)).toEqual([]);
      }),
      { numRuns: 25 },
    );
  });

  it.each([
    [{ daily: 1, weekly: 1, monthly: 1 }],
    [{ daily: 14, weekly: 8, monthly: 24 }],
    [{ daily: 3, weekly: 10, monthly: 6 }],
  ])("keeps other retention counts too, with every 1st and Sunday skipped: %o", (retention) => {
    const res = sim({ start: START, days: DAYS + 31 * retention.monthly, minute: 180, skip: (d) => dom(d) === 1 || dow(d) === 0 }, { retention });
    expect(res.violations).toEqual([]);
  });

  it.each(["daily", "weekly", "monthly"] as const)("the %s expiry is the smallest that keeps the promise: one day less breaks it", (tier) => {
    const days = tierExpiryDays(DEFAULT);
    const res = sim({ start: START, days: DAYS, minute: 180 }, { override: { [tier]: days[tier] - 1 } });
    expect(res.violations.length).toBeGreaterThan(0);
    const label = { daily: / in \d{4}-\d\d-\d\d \(/, weekly: / in week of \d{4}-\d\d-\d\d \(/, monthly: / in \d{4}-\d\d \(/ }[tier];
    expect(res.violations.some((v) => label.test(v))).toBe(true);
    // fast-check finds a calendar of failed runs that breaks it too, and shrinks it.
    const found = fc.check(
      fc.property(fc.uniqueArray(fc.nat(DAYS - 1), { maxLength: 400 }), (failed) => {
        const set = new Set(failed);
        return sim({ start: START, days: DAYS, minute: 180, fail: (_d, i) => (set.has(i) ? "failed" : false) }, { override: { [tier]: days[tier] - 1 } }).violations.length === 0;
      }),
      { numRuns: 5 },
    );
    expect(found.failed).toBe(true);
  });

  it("expiry ages for the default policy", () => {
    // A monthly made at the earliest (00:00 on the 1st) must outlive 12 consecutive months, at
    // most 366 days (a leap February inside); one made later in its month needs fewer.
    expect(tierExpiryDays(DEFAULT)).toEqual({ daily: 7, weekly: 28, monthly: 366 });
  });
});
