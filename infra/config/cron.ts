// Five-field cron expressions (minute hour day-of-month month day-of-week), as Vixie cron
// (Debian's `cron`) reads them: lists, ranges, steps, `*`, month and weekday names, 7 = Sunday,
// and the rule that when both day-of-month and day-of-week are restricted, a day matches
// either. Pure: used by config validation (is the schedule valid, can it meet the RPO?).

export interface CronSpec {
  minutes: Set<number>;
  hours: Set<number>;
  daysOfMonth: Set<number>;
  months: Set<number>;
  daysOfWeek: Set<number>; // 0 = Sunday
  domRestricted: boolean;
  dowRestricted: boolean;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

interface FieldDef {
  name: string;
  min: number;
  max: number;
  names?: string[];
  namesBase?: number;
}

const FIELDS: FieldDef[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS, namesBase: 1 },
  { name: "day of week", min: 0, max: 7, names: DAYS, namesBase: 0 },
];

function parseValue(token: string, f: FieldDef): number {
  const lower = token.toLowerCase();
  if (f.names) {
    const i = f.names.indexOf(lower);
    if (i >= 0) return i + (f.namesBase ?? 0);
  }
  if (!/^\d+$/.test(token)) throw new Error(`"${token}" is not a valid ${f.name}`);
  const n = Number(token);
  if (n < f.min || n > f.max) throw new Error(`${f.name} ${n} is outside ${f.min}-${f.max}`);
  return n;
}

function parseField(text: string, f: FieldDef): { values: Set<number>; restricted: boolean } {
  const values = new Set<number>();
  for (const part of text.split(",")) {
    if (part === "") throw new Error(`empty list item in ${f.name} "${text}"`);
    const [rangePart, stepPart, extra] = part.split("/");
    if (extra !== undefined) throw new Error(`"${part}" has more than one step in ${f.name}`);
    let step = 1;
    if (stepPart !== undefined) {
      if (!/^\d+$/.test(stepPart) || Number(stepPart) === 0) throw new Error(`step "${stepPart}" in ${f.name} must be a positive integer`);
      step = Number(stepPart);
    }
    let lo: number;
    let hi: number;
    if (rangePart === "*") {
      lo = f.min;
      hi = f.name === "day of week" ? 6 : f.max;
    } else if (rangePart!.includes("-")) {
      const [a, b, more] = rangePart!.split("-");
      if (more !== undefined || a === undefined || b === undefined) throw new Error(`"${rangePart}" is not a valid range in ${f.name}`);
      lo = parseValue(a, f);
      hi = parseValue(b, f);
      if (lo > hi) throw new Error(`range "${rangePart}" in ${f.name} runs backwards`);
    } else {
      lo = parseValue(rangePart!, f);
      hi = stepPart !== undefined ? (f.name === "day of week" ? 6 : f.max) : lo;
    }
    for (let v = lo; v <= hi; v += step) values.add(f.name === "day of week" && v === 7 ? 0 : v);
  }
  return { values, restricted: !text.startsWith("*") };
}

/** Parses a 5-field cron expression; throws an Error whose message says what is wrong. */
export function parseCron(expr: string): CronSpec {
  if (/^\s*@/.test(expr)) throw new Error(`"${expr}" uses an @-shortcut; write the 5 fields instead`);
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5 || expr.trim() === "") {
    throw new Error(`"${expr}" is not a 5-field cron expression (minute hour day-of-month month day-of-week)`);
  }
  const parsed = fields.map((t, i) => parseField(t, FIELDS[i]!));
  const [mi, h, dom, mo, dow] = parsed as [typeof parsed[0], typeof parsed[0], typeof parsed[0], typeof parsed[0], typeof parsed[0]];
  return {
    minutes: mi.values,
    hours: h.values,
    daysOfMonth: dom.values,
    months: mo.values,
    daysOfWeek: dow.values,
    domRestricted: dom.restricted,
    dowRestricted: dow.restricted,
  };
}

function dayMatches(spec: CronSpec, d: Date): boolean {
  if (!spec.months.has(d.getUTCMonth() + 1)) return false;
  const domOk = spec.daysOfMonth.has(d.getUTCDate());
  const dowOk = spec.daysOfWeek.has(d.getUTCDay());
  if (spec.domRestricted && spec.dowRestricted) return domOk || dowOk;
  return domOk && dowOk;
}

const DAY_MS = 86_400_000;

/**
 * Firing times (ms since epoch, UTC) in [fromMs, toMs), in order. Cron runs in the host's time
 * zone; the gap analysis below is done in UTC, which is exact for hosts on UTC and off by at
 * most the DST shift elsewhere.
 */
export function* firings(spec: CronSpec, fromMs: number, toMs: number): Generator<number> {
  const minutes = [...spec.minutes].sort((a, b) => a - b);
  const hours = [...spec.hours].sort((a, b) => a - b);
  for (let day = Math.floor(fromMs / DAY_MS) * DAY_MS; day < toMs; day += DAY_MS) {
    if (!dayMatches(spec, new Date(day))) continue;
    for (const h of hours) {
      for (const m of minutes) {
        const t = day + (h * 60 + m) * 60_000;
        if (t >= fromMs && t < toMs) yield t;
      }
    }
  }
}

/**
 * The longest time between two consecutive runs of the schedule, in seconds, over eight
 * years (so every month length and two leap days are included). Infinity when the schedule
 * fires less than twice in that span (e.g. "0 0 30 2 *").
 */
export function maxGapSeconds(expr: string): number {
  let prev: number | undefined;
  let max = -1;
  for (const t of firings(parseCron(expr), Date.UTC(2027, 0, 1), Date.UTC(2035, 0, 8))) {
    if (prev !== undefined) max = Math.max(max, t - prev);
    prev = t;
  }
  return max < 0 ? Infinity : max / 1000;
}
