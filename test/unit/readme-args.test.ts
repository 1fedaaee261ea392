// The README's Backups args reference is the one generated from infra/components/backups-args.ts
// (regenerate: npx tsx test/support/args-reference.ts --write), and it covers every args interface.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ARGS_BEGIN, ARGS_END, README, argsReference, withReference } from "../support/args-reference";

describe("README: Backups args reference", () => {
  it("is the text generated from the args types", () => {
    const readme = readFileSync(README, "utf8");
    expect(readme).toContain(ARGS_BEGIN);
    expect(readme).toContain(ARGS_END);
    expect(withReference(readme, argsReference()), "README is stale: npx tsx test/support/args-reference.ts --write").toBe(readme);
  });

  it("lists every field of every args interface, and notices a change", () => {
    const ref = argsReference();
    for (const name of ["BackupsArgs", "StorageArgs", "HostArgs", "SshArgs", "EncryptionArgs", "PostgresSourceArgs"]) expect(ref).toContain(`**${name}**`);
    expect(ref).toContain("| `host` | `pulumi.Input<string>` |");
    const changed = readFileSync(require.resolve("../../infra/components/backups-args.ts"), "utf8").replace("  zstdLevel?: number;", "  zstdLevel?: number;\n  /** New. */\n  extra?: string;");
    expect(argsReference(changed)).toContain("| `extra?` | `string` | New. |");
  });
});
