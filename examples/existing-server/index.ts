// Backups for a server another stack (or nothing Pulumi) manages: its address comes from that
// stack's outputs, its database password from this stack's secrets, the storage is an existing
// S3-compatible bucket with a key per host made by the store's admin.
//
//   pulumi config set --secret sshPrivateKey -- "$(cat ~/.ssh/backup_ed25519)"
//   pulumi config set --secret s3KeyId ...; pulumi config set --secret s3Secret ...
//   pulumi config set --secret dbPassword ...
import * as pulumi from "@pulumi/pulumi";
import { Backups, type HostArgs } from "restorable";

const config = new pulumi.Config();
const infra = new pulumi.StackReference("acme/infra/prod");

const db1: HostArgs = {
  name: "db-1",
  ssh: { host: infra.requireOutput("dbHost") as pulumi.Output<string>, user: "backup", hostKey: infra.requireOutput("dbHostKey") as pulumi.Output<string> },
  postgres: [{ via: "local", database: "ledger", user: "backup" }],
  schedule: { backup: "0 */6 * * *" },
  drill: { runtime: "local" },
  // The user owns these directories (see the README: non-root SSH users).
  paths: { scriptsDir: "/home/backup/restorable/bin", configDir: "/home/backup/restorable/etc", stateDir: "/home/backup/restorable/state" },
};

const backups = new Backups("ledger", {
  storage: { provider: "s3", bucket: "acme-ledger-backups", endpoint: "https://s3.eu-central-003.example.net", region: "eu-central-003" },
  objectives: { rpo: "6h", rto: "2h" },
  notify: { pingUrl: config.requireSecret("pingUrl") },
  hosts: [db1],
  sshPrivateKey: config.requireSecret("sshPrivateKey"),
  s3Credentials: { hosts: { "db-1": { accessKeyId: config.requireSecret("s3KeyId"), secretAccessKey: config.requireSecret("s3Secret") } } },
  dbPasswords: { "db-1": { ledger: config.requireSecret("dbPassword") } },
});

export const bucketName = backups.bucketName;
export const hosts = backups.hosts;
