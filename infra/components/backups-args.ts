// The args of the Backups component: the stack config's shape (README "Stack config") without
// the `restorable:` namespace. Defaults and validation are the schema's (infra/config/schema.ts);
// test/unit/backups.test.ts checks these interfaces have exactly the schema's keys, and
// test/unit/readme-args.test.ts that the README's args reference lists exactly these fields.
//
// A field typed pulumi.Input may come from another resource (a server's address, a generated
// key); its value is validated when it resolves (infra/components/deploy-values.ts). Every other
// field decides which resources exist and must be a plain value.
import type * as pulumi from "@pulumi/pulumi";

export interface BackupsArgs {
  /** Where the backups go. */
  storage: StorageArgs;
  /** What the schedules must meet. */
  objectives: ObjectivesArgs;
  /** Restore points kept per tier (default 7 daily, 4 weekly, 12 monthly). */
  retention?: RetentionArgs;
  /** Healthchecks-style pings (none by default). */
  notify?: NotifyArgs;
  /** The servers to back up (at least one). */
  hosts: HostArgs[];
  /** SSH private key (PEM/OpenSSH) Pulumi installs on every host with. Kept a secret. */
  sshPrivateKey: pulumi.Input<string>;
  /** b2: a key that may create buckets and keys (default: B2_APPLICATION_KEY_ID / B2_APPLICATION_KEY). Kept a secret. */
  b2Credentials?: pulumi.Input<B2CredentialsArgs>;
  /** s3: one key pair per host (by host name), and the admin key that creates the bucket (default: AWS_* env). Kept a secret. */
  s3Credentials?: pulumi.Input<S3CredentialsArgs>;
  /** Passwords by host name and database name, for sources that need one. Kept a secret. */
  dbPasswords?: pulumi.Input<Record<string, pulumi.Input<Record<string, pulumi.Input<string>>>>>;
}

export interface StorageArgs {
  /** b2 (Backblaze B2), aws (AWS S3) or s3 (any S3-compatible store: endpoint required). */
  provider: "b2" | "aws" | "s3";
  /** Bucket name (S3 naming rules; B2: at least 6 characters, no dots, not b2-...). */
  bucket: string;
  /** Region (required for b2 and aws; s3 default us-east-1). */
  region?: string;
  /** https URL of the store (derived for b2 and aws). */
  endpoint?: string;
  /** Object lock (WORM) on new objects. */
  objectLock?: { mode: "governance" | "compliance"; days: number };
  /** Manage the bucket's public access block (default true; false only for stores without the API). */
  publicAccessBlock?: boolean;
  /** Accept storage that is not off-site (loopback, the host itself, plain http): demos and tests only (default false). */
  allowNotOffsite?: boolean;
}

export interface ObjectivesArgs {
  /** Recovery point objective, e.g. "24h": every backup schedule must meet it. */
  rpo: string;
  /** Recovery time objective, e.g. "1h". */
  rto: string;
}

export interface RetentionArgs {
  /** Daily restore points (default 7). */
  daily?: number;
  /** Weekly restore points (default 4). */
  weekly?: number;
  /** Monthly restore points (default 12). */
  monthly?: number;
}

export interface NotifyArgs {
  /** https URL pinged on start, success (and /fail with the log tail), e.g. https://hc-ping.com/UUID. */
  pingUrl?: pulumi.Input<string>;
}

export interface HostArgs {
  /** Host name: the object prefix in the bucket (lowercase letters, digits, hyphens). */
  name: string;
  /** How Pulumi reaches the host. */
  ssh: SshArgs;
  /** PostgreSQL sources (default none). */
  postgres?: PostgresSourceArgs[];
  /** Docker volumes to back up (default none). */
  volumes?: string[];
  /** Image that tars the volumes (default busybox:1.36). */
  volumeImage?: string;
  /** Cron schedules (5 fields, UTC). */
  schedule?: ScheduleArgs;
  /** The restore drill. */
  drill?: DrillArgs;
  /** Client-side encryption with age. */
  encryption?: EncryptionArgs;
  /** Install paths on the host. */
  paths?: PathsArgs;
  /** Rotation of the cron logs (<stateDir>/<job>.log). */
  logs?: LogsArgs;
  /** node_exporter textfile collector: every job writes restorable.prom there. */
  metrics?: MetricsArgs;
  /** zstd level 1-19 (default 3). */
  zstdLevel?: number;
  /** Point-in-time recovery: continuous WAL archive + physical base backups (default off). */
  pitr?: PitrArgs;
}

export interface PitrArgs {
  /** Default true once the section is there. */
  enabled?: boolean;
  /** How far back every second is restorable, e.g. "7d" (default). */
  window?: string;
  /** Cron schedule of the base backups (default "0 2 * * 0"). */
  baseBackup?: string;
  /** max_slot_wal_keep_size on the server, e.g. "4GB" (default). */
  serverWalLimit?: string;
}

export interface SshArgs {
  /** Hostname or IP address, e.g. a server resource's ipv4Address. */
  host: pulumi.Input<string>;
  /** Unix user (default root). */
  user?: pulumi.Input<string>;
  /** Port (default 22). */
  port?: pulumi.Input<number>;
  /** The host's public key, "ssh-ed25519 AAAA..." (recommended: without it any host key is accepted). */
  hostKey?: pulumi.Input<string>;
}

export type PostgresSourceArgs =
  | { via: "compose"; project: string; service: string; database: string; user?: string }
  | { via: "container"; container: string; database: string; user?: string }
  | { via: "local"; host?: string; port?: number; database: string; user?: string };

export interface ScheduleArgs {
  /** Database backups (default "0 3 * * *"). */
  backup?: string;
  /** Volume backups (default: the backup schedule). */
  volumes?: string;
  /** Restore drill (default "0 5 1 * *"). */
  drill?: string;
}

export interface DrillArgs {
  /** docker (a container from image) or local (initdb in a temp dir) (default docker). */
  runtime?: "docker" | "local";
  /** Image of the throwaway Postgres (default postgres:16). */
  image?: string;
  /** SQL statements that must each return true on the restored database. */
  checks?: string[];
  /** With encryption: the age identity file on the host the drill decrypts with. */
  ageIdentityFile?: string;
}

export interface EncryptionArgs {
  /** age X25519 recipients (age1...), at least one. */
  ageRecipients: pulumi.Input<pulumi.Input<string>[]>;
}

export interface PathsArgs {
  /** Scripts (default /opt/restorable). */
  scriptsDir?: string;
  /** Config and credentials (default /etc/restorable). */
  configDir?: string;
  /** Locks, run directories and logs (default /var/lib/restorable). */
  stateDir?: string;
}

export interface LogsArgs {
  /** A log that has reached this size (MiB) is rotated when the next run of its job starts (default 10). */
  maxMiB?: number;
  /** Rotated generations kept (default 5). */
  keep?: number;
}

export interface MetricsArgs {
  /** The collector's directory (absolute path). */
  textfileDir: string;
}

export interface B2CredentialsArgs {
  keyId: pulumi.Input<string>;
  key: pulumi.Input<string>;
}

export interface S3KeyPairArgs {
  accessKeyId: pulumi.Input<string>;
  secretAccessKey: pulumi.Input<string>;
}

export interface S3CredentialsArgs {
  /** Creates the bucket (default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  admin?: pulumi.Input<S3KeyPairArgs>;
  /** Each host's key pair, by host name. */
  hosts: Record<string, pulumi.Input<S3KeyPairArgs>>;
}
