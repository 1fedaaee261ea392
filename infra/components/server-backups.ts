// Everything one server gets: its scoped credentials, and (see HostInstall) its rendered
// scripts, config, credentials file and crontab installed over SSH.
import * as pulumi from "@pulumi/pulumi";
import { renderHost } from "../plan/render";
import { HostCredentials, type HostCredentialsArgs } from "./host-credentials";
import { HostInstall } from "./host-install";

export interface ServerBackupsArgs extends HostCredentialsArgs {
  /** Passwords for this host's databases, by database name (secret). */
  dbPasswords?: pulumi.Output<Record<string, string>>;
  /** SSH private key for the host (secret). */
  sshPrivateKey: pulumi.Output<string>;
}

/** What `pulumi stack output hosts` shows for each host (contract). */
export interface HostSummary {
  prefix: string;
  backupCron: string;
  volumesCron: string;
  drillCron: string;
  scriptsDir: string;
  configDir: string;
  keyId: pulumi.Output<string>;
}

export class ServerBackups extends pulumi.ComponentResource {
  public readonly credentials: HostCredentials;
  public readonly install: HostInstall;
  public readonly summary: HostSummary;

  constructor(name: string, args: ServerBackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("restorable:index:ServerBackups", name, {}, opts);
    const { dbPasswords, sshPrivateKey, ...credentialArgs } = args;
    const { host } = args;
    this.credentials = new HostCredentials(name, credentialArgs, { parent: this });
    // The rendered files carry the credentials file: the whole value is a secret.
    const rendered = pulumi.secret(
      pulumi
        .all([this.credentials.accessKeyId, this.credentials.secretAccessKey, dbPasswords ?? pulumi.output({} as Record<string, string>)])
        .apply(([accessKeyId, secretAccessKey, pgPasswords]) => renderHost(args.plan, host, { accessKeyId, secretAccessKey, pgPasswords })),
    );
    const c = host.config;
    this.install = new HostInstall(
      name,
      {
        host,
        rendered,
        connection: { host: c.ssh.host, user: c.ssh.user, port: c.ssh.port, privateKey: sshPrivateKey, hostKey: c.ssh.hostKey },
        dependsOn: this.credentials.ready,
      },
      { parent: this },
    );
    this.summary = {
      prefix: host.prefix,
      backupCron: c.schedule.backup,
      volumesCron: c.schedule.volumes,
      drillCron: c.schedule.drill,
      scriptsDir: c.paths.scriptsDir,
      configDir: c.paths.configDir,
      keyId: this.credentials.accessKeyId,
    };
    this.registerOutputs({ ...this.summary });
  }
}
