// The package entry (`import { Backups } from "restorable"`): the construct set. The stack program
// (infra/index.ts) is not part of it; it is one user of these components.
export { Backups, BACKUPS_TYPE, type BackupsOptions, type RetentionSummary } from "./components/backups";
export type {
  BackupsArgs,
  StorageArgs,
  ObjectivesArgs,
  RetentionArgs,
  NotifyArgs,
  HostArgs,
  SshArgs,
  PostgresSourceArgs,
  ScheduleArgs,
  DrillArgs,
  EncryptionArgs,
  PathsArgs,
  LogsArgs,
  MetricsArgs,
  B2CredentialsArgs,
  S3KeyPairArgs,
  S3CredentialsArgs,
} from "./components/backups-args";
export { DEPLOY_TIME, planOf, hostOf, type BackupsConfigArgs, type PlanArgs } from "./components/deploy-values";
// The parts, for a program that wants only some of them.
export { BackupBucket, type BackupBucketArgs } from "./components/backup-bucket";
export { HostCredentials, type HostCredentialsArgs, type S3KeyPair } from "./components/host-credentials";
export { ServerBackups, type ServerBackupsArgs, type HostSummary } from "./components/server-backups";
export { HostInstall, HOST_INSTALL_TYPE, installCommandArgs, dockerSshUrl, type HostInstallArgs, type HostConnection } from "./components/host-install";
export { B2Bucket, B2ApplicationKey, type B2AccountKey, type B2BucketArgs, type B2ApplicationKeyArgs } from "./components/b2";
// The pure layers: validation, the plan, what a host gets.
export { parseConfig, parseSecret, ConfigError, NAMESPACE, CONFIG_KEYS, SECRET_KEYS, type RawConfig, type RestorableConfig, type HostConfig } from "./config";
export { buildPlan, KNOWN_AFTER_DEPLOY, isDeferred, type Plan, type HostPlan, type BuildPlanOptions } from "./plan";
export { renderHost, loadTemplates, placeholderSecrets, TEMPLATES_DIR, type RenderedHost, type HostSecrets } from "./plan/render";
