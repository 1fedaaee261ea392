import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { promisePeriods, utcStamp } from "../../infra/plan";

// The drill's retention audit (scripts/lib-restore.sh restorable_promise_periods) counts the same periods
// as the plan's promisePeriods: checked at moments around every kind of boundary (midnights,
// Mondays, month and year ends, a leap day) and at random moments over four years.
const LIB = join(__dirname, "../../scripts/lib-restore.sh");
const R = { daily: 7, weekly: 4, monthly: 12 };

function shellPeriods(nows: number[]): string[][] {
  const script = `. ${JSON.stringify(LIB)}; for n in ${nows.map((n) => Math.floor(n / 1000)).join(" ")}; do restorable_promise_periods "$n" ${R.daily} ${R.weekly} ${R.monthly}; echo; done`;
  const out = execFileSync("bash", ["-c", script], { encoding: "utf8" });
  return out.split("\n\n").slice(0, nows.length).map((block) => block.split("\n").filter(Boolean));
}

describe("retention promise: shell periods equal the plan's", () => {
  const fixed = [
    "2026-12-01T00:00:00Z", "2026-12-01T00:00:01Z", "2026-11-30T23:59:59Z", "2026-12-07T05:00:00Z", "2026-12-08T00:10:00Z",
    "2028-02-29T12:00:00Z", "2028-03-01T00:30:00Z", "2027-01-01T03:00:00Z", "2026-12-31T23:00:00Z", "2027-01-04T00:00:00Z",
  ].map((t) => Date.parse(t));
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const random = Array.from({ length: 60 }, () => Date.parse("2026-01-01T00:00:00Z") + Math.floor(rand() * 4 * 365 * 86400) * 1000);
  const nows = [...fixed, ...random];

  it(`at ${nows.length} moments`, () => {
    const shell = shellPeriods(nows);
    nows.forEach((now, i) => {
      const plan = promisePeriods(R, now).map((p) => [p.tier, p.label, utcStamp(new Date(p.from)), utcStamp(new Date(p.to))].join("\t"));
      expect(shell[i], new Date(now).toISOString()).toEqual(plan);
    });
  });
});
