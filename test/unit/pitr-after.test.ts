import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// restorable_pitr_after (scripts/lib-pitr-restore.sh): is a commit's time, to the microsecond, after
// the whole second a recovery was asked for? The drill and restore --at judge "stopped at the
// target" with it, so a commit at T.91 is after T (the recovery rightly held it back) and a
// replayed one at T.3 is past T (a recovery that went too far). Inputs as they come: PostgreSQL's
// extract(epoch ...) ("1796176887.910584", or no fraction) and date +%s.%N (nine digits).
const LIB = join(__dirname, "../../scripts/lib-pitr-restore.sh");
const T = 1796176887;
const CASES: Array<[string, boolean]> = [
  [`${T}.910584`, true],
  [`${T}.910584000`, true],
  [`${T}.000001`, true],
  [`${T}.3`, true],
  [`${T}`, false],
  [`${T}.000000`, false],
  [`${T}.000000000`, false],
  [`${T - 1}.999999`, false],
  [`${T - 1}`, false],
  [`${T + 1}`, true],
  [`${T + 1}.000000`, true],
  ["", false],
  ["not-a-time", false],
];

describe("restorable_pitr_after: commit times against a whole-second target", () => {
  it.each(CASES)("%s after T: %s", (epoch, after) => {
    const script = `. ${JSON.stringify(LIB)}; if restorable_pitr_after "$1" "$2"; then echo after; else echo not; fi`;
    const out = execFileSync("bash", ["-c", script, "bash", epoch, String(T)], { encoding: "utf8" }).trim();
    expect(out).toBe(after ? "after" : "not");
  });
});
