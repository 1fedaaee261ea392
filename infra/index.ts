// The stack program: Pulumi.<stack>.yaml -> Backups -> `pulumi stack output` (contract). It is one
// user of the Backups component (infra/components/backups.ts), which any Pulumi program can use.
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEYS, ConfigError, NAMESPACE, SECRET_KEYS, unknownKeyProblems } from "./config";
import { Backups } from "./components/backups";
import type { BackupsArgs } from "./components/backups-args";

function readArgs(): Record<string, unknown> {
  const config = new pulumi.Config(NAMESPACE);
  const unknown = unknownKeyProblems(Object.keys(pulumi.runtime.allConfig()));
  if (unknown.length) throw new pulumi.RunError(new ConfigError(unknown).message);
  const args: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const v = config.getObject<unknown>(key);
    if (v !== undefined) args[key] = v;
  }
  // Secrets stay Pulumi secrets; Backups validates them when they resolve.
  for (const key of SECRET_KEYS) {
    const v = key === "sshPrivateKey" ? config.getSecret(key) : config.getSecretObject<unknown>(key);
    if (v !== undefined) args[key] = v;
  }
  return args;
}

// Named "backups" with its children aliased to the stack: the resources keep the URNs they had
// when this program created them at the top level.
const backups = new Backups("backups", readArgs() as unknown as BackupsArgs, { configNamespace: NAMESPACE, aliasChildrenToStack: true });

// Outputs (contract): `pulumi stack output`.
export const provider = backups.provider;
export const bucketName = backups.bucketName;
export const bucketEndpoint = backups.bucketEndpoint;
export const bucketRegion = backups.bucketRegion;
export const offsite = backups.offsite;
export const retention = backups.retention;
export const policy = backups.policy;
export const hosts = backups.hosts;
