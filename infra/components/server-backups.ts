// Everything one server gets: its scoped credentials, and (see HostInstall) its rendered
// scripts, config, credentials file and crontab installed over SSH.
import * as pulumi from "@pulumi/pulumi";
import type { HostPlan, Plan } from "../plan";
import { renderHost } from "../plan/render";
import { hostOf, planOf } from "./deploy-values";
import { HostCredentials, type HostCredentialsArgs } from "./host-credentials";
import { HostInstall } from "./host-install";

export interface ServerBackupsArgs extends HostCredentialsArgs {
  /** Passwords for this host's databases, by database name (secret). */
  dbPasswords?: pulumi.Output<Record<string, string>>;
  /** SSH private key for the host (secret). */
  sshPrivateKey: pulumi.Input<string>;
  /**
   * The plan with the values known only at deploy time resolved (Backups: the host's SSH address,
   * age recipients, ping URL from other resources). The rendered files and the SSH connection come
   * from it. Default: `plan`.
   */
  deployPlan?: pulumi.Input<Plan>;
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
    const { deployPlan: given, ...rest } = credentialArgs;
    const { plan, deployPlan } = planOf(args.plan);
    const host = hostOf(plan, args.host);
    this.credentials = new HostCredentials(name, { ...rest, plan, host }, { parent: this });
    const deploy = pulumi.output(given ?? deployPlan).apply((plan) => {
      const h = plan.hosts.find((x) => x.name === host.name);
      if (!h) throw new Error(`ServerBackups ${name}: host ${host.name} is not in the deploy plan`);
      return { plan, host: h };
    });
    const deployHost: pulumi.Output<HostPlan> = deploy.apply((d) => d.host);
    // The rendered files carry the credentials file: the whole value is a secret.
    const rendered = pulumi.secret(
      pulumi
        .all([this.credentials.accessKeyId, this.credentials.secretAccessKey, dbPasswords ?? pulumi.output({} as Record<string, string>), deploy])
        .apply(([accessKeyId, secretAccessKey, pgPasswords, d]) => renderHost(d.plan, d.host, { accessKeyId, secretAccessKey, pgPasswords })),
    );
    const c = host.config;
    const ssh = deployHost.apply((h) => h.config.ssh);
    // The stack config has it or not; from Backups args it may be an Output (which may resolve to nothing).
    const hostKeyGiven = c.ssh.hostKey !== undefined || plan.deferred.includes(`hosts[${plan.hosts.indexOf(host)}].ssh.hostKey`);
    this.install = new HostInstall(
      name,
      {
        host,
        deployHost,
        rendered,
        connection: {
          host: ssh.apply((s) => s.host),
          user: ssh.apply((s) => s.user),
          port: ssh.apply((s) => s.port),
          privateKey: sshPrivateKey,
          ...(hostKeyGiven ? { hostKey: ssh.apply((s) => s.hostKey) as pulumi.Output<string> } : {}),
        },
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
