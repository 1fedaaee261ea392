// The retention promise, as the README states it: a restore point from each of the last `daily`
// UTC days, `weekly` ISO weeks and `monthly` UTC months, counted at a moment as the periods that
// end with yesterday (the moment that matters is just after midnight, before that day's run).
// One definition for the retention simulation (which proves the lifecycle keeps it), `npm run
// status` and the drill's retention audit (scripts/lib-restore.sh restorable_promise_periods, kept equal
// by test/unit/promise.test.ts). Pure: no Pulumi imports.
import type { Tier } from "../config/schema";
import { isoWeekStart } from "./layout";
import type { Retention } from "./retention";

const DAY = 86_400_000;

/** One counted period: [from, to) in ms since the epoch, and how a report names it. */
export interface PromisePeriod {
  tier: Tier;
  /** 2026-11-30 (a day), week of 2026-11-23 (an ISO week, by its Monday), 2026-11 (a month). */
  label: string;
  from: number;
  to: number;
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The periods the promise counts at `nowMs`, newest first within each tier. */
export function promisePeriods(r: Retention, nowMs: number): PromisePeriod[] {
  const yesterday = Math.floor(nowMs / DAY) * DAY - DAY;
  const out: PromisePeriod[] = [];
  for (let k = 0; k < r.daily; k++) {
    const from = yesterday - k * DAY;
    out.push({ tier: "daily", label: isoDay(from), from, to: from + DAY });
  }
  const monday = isoWeekStart(new Date(yesterday)).getTime();
  for (let k = 0; k < r.weekly; k++) {
    const from = monday - 7 * k * DAY;
    out.push({ tier: "weekly", label: `week of ${isoDay(from)}`, from, to: from + 7 * DAY });
  }
  const y = new Date(yesterday);
  for (let k = 0; k < r.monthly; k++) {
    const from = Date.UTC(y.getUTCFullYear(), y.getUTCMonth() - k, 1);
    out.push({ tier: "monthly", label: isoDay(from).slice(0, 7), from, to: Date.UTC(y.getUTCFullYear(), y.getUTCMonth() - k + 1, 1) });
  }
  return out;
}

export interface PeriodCheck {
  required: number;
  covered: number;
  /** Periods that ended before the item's oldest restore point (the item is younger than the promise). */
  pending: number;
  /** Labels of the periods without a restore point. */
  missing: string[];
}

export interface PromiseCheck {
  ok: boolean;
  daily: PeriodCheck;
  weekly: PeriodCheck;
  monthly: PeriodCheck;
}

/** Whether one item's restore points (their creation times, ms) keep the promise at `nowMs`. */
export function promiseCheck(created: readonly number[], nowMs: number, r: Retention): PromiseCheck {
  const first = created.length ? Math.min(...created) : Infinity;
  const result: PromiseCheck = {
    ok: true,
    daily: { required: r.daily, covered: 0, pending: 0, missing: [] },
    weekly: { required: r.weekly, covered: 0, pending: 0, missing: [] },
    monthly: { required: r.monthly, covered: 0, pending: 0, missing: [] },
  };
  for (const p of promisePeriods(r, nowMs)) {
    const c = result[p.tier];
    if (created.some((t) => t >= p.from && t < p.to)) c.covered++;
    else if (p.to <= first) c.pending++;
    else {
      c.missing.push(p.label);
      result.ok = false;
    }
  }
  return result;
}
