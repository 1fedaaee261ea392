import { configSchema, type RestorableConfig } from "./schema";
import { ConfigError, formatIssue } from "./errors";

export * from "./schema";
export { ConfigError, keyPath } from "./errors";
export { parseCron, maxGapSeconds } from "./cron";
export { parseSecret, secretSchemas, type S3Credentials, type DbPasswords } from "./secrets";

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
