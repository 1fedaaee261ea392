// examples/ type-check against the package's types with the real provider package they use
// (@pulumi/hcloud, a dev dependency): a change to the Backups args that breaks them fails here.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");

describe("examples/", () => {
  it("has the two programs, each a Pulumi project", () => {
    const dirs = readdirSync(join(ROOT, "examples"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    expect(dirs).toEqual(["existing-server", "server-and-backups"]);
    for (const d of dirs) expect(readdirSync(join(ROOT, "examples", d)).sort()).toEqual(["Pulumi.yaml", "index.ts"]);
  });

  it("type-check (tsc -p examples/tsconfig.json)", () => {
    let out = "";
    try {
      execFileSync("node", [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "examples/tsconfig.json")], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout);
    }
    expect(out).toBe("");
  }, 170_000);
});
