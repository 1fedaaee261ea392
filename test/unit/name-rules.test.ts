import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NAME_RULES } from "../../infra/config";

// restore and restore-drill check their name arguments with the schema's rules: the shell copy in
// lib-restore.sh must be the same pattern and the same text (bash ERE and JS agree on these
// patterns: bracket expressions, anchors and a bounded repeat only).
const lib = readFileSync(join(__dirname, "../../scripts/lib-restore.sh"), "utf8");
function shellValue(name: string): string {
  const m = lib.match(new RegExp(`^${name}='([^']*)'$`, "m"));
  if (!m) throw new Error(`${name}='...' not found in lib-restore.sh`);
  return m[1]!;
}

describe("name rules: lib-restore.sh equals the schema", () => {
  it.each([
    ["pg", "RESTORABLE_PG_NAME"],
    ["docker", "RESTORABLE_DOCKER_NAME"],
  ] as const)("%s", (rule, v) => {
    expect(shellValue(`${v}_RE`)).toBe(NAME_RULES[rule].pattern.source);
    expect(shellValue(`${v}_RULE`)).toBe(NAME_RULES[rule].rule);
  });
});
