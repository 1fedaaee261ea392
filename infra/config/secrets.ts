// Shapes of the secret config keys. They are read as Pulumi secrets by infra/index.ts and
// validated inside apply(); errors name the key and never echo a value.
import { z } from "zod";
import { ConfigError, formatIssue } from "./errors";

const keyPair = z.strictObject({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1) });

export const secretSchemas = {
  /** restorable:sshPrivateKey: the private key Pulumi uses to reach every host (PEM/OpenSSH). */
  sshPrivateKey: z.string().regex(/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "must be a PEM/OpenSSH private key"),
  /** restorable:b2Credentials: a B2 application key that may create buckets and keys. */
  b2Credentials: z.strictObject({ keyId: z.string().min(1), key: z.string().min(1) }),
  /** restorable:s3Credentials: for provider s3, the admin key (optional: else AWS_* env) and one key per host. */
  s3Credentials: z.strictObject({ admin: keyPair.optional(), hosts: z.record(z.string(), keyPair) }),
  /** restorable:dbPasswords: { <host>: { <database>: password } } for sources that need one. */
  dbPasswords: z.record(z.string(), z.record(z.string(), z.string())),
};

export type S3Credentials = z.output<typeof secretSchemas.s3Credentials>;
export type DbPasswords = z.output<typeof secretSchemas.dbPasswords>;

/** Validates one secret key's value; the error names the key and the problem, never the value. */
export function parseSecret<K extends keyof typeof secretSchemas>(key: K, value: unknown): z.output<(typeof secretSchemas)[K]> {
  const r = secretSchemas[key].safeParse(value, { reportInput: false });
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => formatIssue({ ...i, path: [key, ...i.path] } as typeof i)));
  }
  return r.data as z.output<(typeof secretSchemas)[K]>;
}
