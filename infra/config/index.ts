import { configSchema, type RestorableConfig } from "./schema";
import { ConfigError, formatIssue } from "./errors";

export * from "./schema";
export { ConfigError, keyPath, withoutNamespace } from "./errors";
export { parseCron, maxGapSeconds } from "./cron";
export { parseSecret, secretSchemas, type S3Credentials, type DbPasswords } from "./secrets";

/** The Pulumi config namespace of every key. */
export const NAMESPACE = "restorable";

/** The project's keys, as they appear (without namespace) under `restorable:` in Pulumi.<stack>.yaml. */
export const CONFIG_KEYS = ["storage", "objectives", "retention", "notify", "hosts"] as const;
/** Secret keys, read as Pulumi secrets by the stack program (never part of the plan). */
export const SECRET_KEYS = ["sshPrivateKey", "b2Credentials", "s3Credentials", "dbPasswords"] as const;

/**
 * Validates a raw config object ({storage, objectives, retention, notify, hosts}) and fills
 * defaults. Throws ConfigError listing every problem, each naming its key path.
 */
export function parseConfig(raw: unknown): RestorableConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => formatIssue(i)));
  return result.data;
}

/**
 * One problem line per `restorable:` key that is neither a config key nor a secret key: a typo
 * (`restorable:retension`) must fail rather than silently fall back to defaults. Other
 * namespaces (aws:region, ...) are ignored.
 */
export function unknownKeyProblems(namespacedKeys: Iterable<string>): string[] {
  const known: readonly string[] = [...CONFIG_KEYS, ...SECRET_KEYS];
  const problems: string[] = [];
  for (const key of namespacedKeys) {
    if (!key.startsWith(`${NAMESPACE}:`) || known.includes(key.slice(NAMESPACE.length + 1))) continue;
    problems.push(`${key}: unknown key (known: ${known.map((k) => `${NAMESPACE}:${k}`).join(", ")})`);
  }
  return problems;
}
