import type { z } from "zod";

/** A config error names the key path (as the user writes it in Pulumi.<stack>.yaml) and says what is wrong. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`invalid restorable config:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/** ["hosts", 0, "schedule", "backup"] -> "restorable:hosts[0].schedule.backup" */
export function keyPath(path: ReadonlyArray<PropertyKey>, namespace = "restorable"): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? `${namespace}:` : `${namespace}:${out}`;
}

/**
 * A problem line without the stack-config namespace, for the `Backups` component, whose args are
 * the config without it: "restorable:hosts[0].ssh.port: ..." -> "hosts[0].ssh.port: ...", also where
 * the text names another key ("cannot meet restorable:objectives.rpo 1d"). A root-level problem
 * ("restorable:: unknown key") is said of "args".
 */
export function withoutNamespace(problem: string, namespace = "restorable"): string {
  return problem.replace(new RegExp(`^${namespace}::`), "args:").replace(new RegExp(`(^|[\\s(])${namespace}:(?=[A-Za-z\\[])`, "g"), "$1");
}

export function formatIssue(issue: z.core.$ZodIssue, namespace = "restorable"): string {
  const path = keyPath(issue.path, namespace);
  switch (issue.code) {
    case "unrecognized_keys":
      return `${path}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    case "invalid_type":
      if (/received undefined$/.test(issue.message)) return `${path}: is required`;
      return `${path}: ${issue.message}`;
    default:
      return `${path}: ${issue.message}`;
  }
}
