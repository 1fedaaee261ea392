// Installs one host's rendered scripts, config, credentials and crontab block over SSH, from the
// pure install plan (infra/plan/install.ts), and keeps the Docker images its drills and volume
// backups need pulled on the host.
//
//   preflight  remote.Command: fails `pulumi up` with the missing tools / unwritable directories
//              before anything on the host is touched. Re-runs when the rendered content changes.
//   install    remote.Command: create = update = the install command, stdin = the payload (a
//              secret: file contents incl. credentials; never argv, never the environment),
//              delete = the uninstall command, triggers = the rendered content hash. A hash change
//              replaces it delete-before-replace: the old uninstall runs first (with the old paths
//              from the state), then the new install, so a moved directory or a changed crontab
//              block never leaves an orphan and the old uninstall never removes the new block.
//              A change of secrets only (rotated key, new password) changes stdin, not the hash,
//              and runs the install again as an update (it rewrites just what differs).
//   images     @pulumi/docker Provider over ssh://user@host:port + RemoteImage (keepLocally) for the
//              drill's Postgres image (drill.runtime docker) and the volume-backup image (volumes),
//              so a 3 a.m. drill does not depend on a registry being up.
//
// Not CopyToRemote: the files need atomic replacement, exact modes, secret content and
// byte-for-byte idempotence, which one command reading a payload on stdin gives in one step.
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { HostPlan } from "../plan";
import { hostImages, installPlan, type InstallInput, type InstallOptions, type InstallPlan } from "../plan/install";

export interface HostConnection {
  host: pulumi.Input<string>;
  user: pulumi.Input<string>;
  port: pulumi.Input<number>;
  /** OpenSSH private key text; wrapped as a secret here whatever it was. */
  privateKey: pulumi.Input<string>;
  /**
   * The host's public key (`ssh-keyscan -t ed25519 HOST`, the part after the host name), to verify
   * the server (@pulumi/command 1.x `hostKey`). Without it the command provider accepts any host key.
   */
  hostKey?: pulumi.Input<string>;
}

export interface HostInstallArgs {
  /** The host's plan: which images it keeps pulled, and (without deployHost) its install texts. */
  host: HostPlan;
  /** The host's plan with deploy-time values resolved (its SSH address in preflight's messages). Default: host. */
  deployHost?: pulumi.Input<HostPlan>;
  /** renderHost(plan, host, secrets): a secret (it carries the credentials file). */
  rendered: pulumi.Input<InstallInput>;
  connection: HostConnection;
  /** Resources the install waits for, e.g. the host's credentials (key + policy) being in place. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /** Options of the pure install plan (tests). */
  installOptions?: InstallOptions;
  docker?: {
    /**
     * Extra `ssh` options for the Docker provider. The provider runs the local `ssh` client, which
     * cannot take the key from a Pulumi secret: the key must be in the ssh-agent or named here
     * (e.g. ["-i", "/home/me/.ssh/backup_ed25519"]), and the host must be in known_hosts.
     */
    sshOpts?: pulumi.Input<string>[];
    /** Keep the images pulled (default true when the host uses them). */
    pullImages?: boolean;
  };
}


/**
 * The two remote.Command inputs HostInstall creates, from the install plan: preflight, and the
 * install (create = update = install, delete = uninstall, stdin = the payload as a secret).
 * Command texts, paths and the hash carry no secret (installPlan checks that), so they are
 * unsecreted to stay readable in previews and diffs; only the payload and the key stay secret.
 */
export function installCommandArgs(
  plan: pulumi.Output<InstallPlan>,
  conn: HostConnection,
): { preflight: command.remote.CommandArgs; install: command.remote.CommandArgs } {
  const text = <T>(f: (p: InstallPlan) => T): pulumi.Output<T> => pulumi.unsecret(plan.apply(f)) as pulumi.Output<T>;
  const connection = {
    host: conn.host,
    user: conn.user,
    port: conn.port,
    privateKey: pulumi.secret(conn.privateKey),
    ...(conn.hostKey !== undefined ? { hostKey: conn.hostKey } : {}),
  };
  const triggers = text((p) => p.triggers);
  return {
    preflight: {
      connection,
      create: text((p) => p.preflight),
      update: text((p) => p.preflight),
      triggers,
      // Keeps the provider from setting PULUMI_COMMAND_STDOUT/STDERR, which needs sshd AcceptEnv.
      addPreviousOutputInEnv: false,
      logging: "stdoutAndStderr",
    },
    install: {
      connection,
      create: text((p) => p.install.command),
      update: text((p) => p.install.command),
      delete: text((p) => p.uninstall),
      stdin: pulumi.secret(plan.apply((p) => p.install.stdin)),
      triggers,
      addPreviousOutputInEnv: false,
      logging: "stdoutAndStderr",
    },
  };
}

export const HOST_INSTALL_TYPE = "restorable:index:HostInstall";

/** `ssh://user@host:port` (IPv6 literals in brackets), as the Docker provider wants it. */
export function dockerSshUrl(user: string, host: string, port: number): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `ssh://${user}@${h}:${port}`;
}

export class HostInstall extends pulumi.ComponentResource {
  public readonly preflight: command.remote.Command;
  public readonly install: command.remote.Command;
  public readonly dockerProvider?: docker.Provider;
  public readonly images: docker.RemoteImage[];
  /** The install's own report (files written/unchanged, crontab block state). */
  public readonly stdout: pulumi.Output<string>;
  /** Where the files went (path, mode, secret flag; no content). */
  public readonly files: pulumi.Output<InstallPlan["files"]>;
  public readonly scriptsDir: string;
  public readonly configDir: string;

  constructor(name: string, args: HostInstallArgs, opts?: pulumi.ComponentResourceOptions) {
    super(HOST_INSTALL_TYPE, name, {}, opts);
    const { host } = args;
    const plan = pulumi
      .all([args.rendered, args.deployHost ?? host])
      .apply(([r, h]) => installPlan(r as InstallInput, h as HostPlan, args.installOptions));
    const cmdArgs = installCommandArgs(plan, args.connection);
    this.preflight = new command.remote.Command(`${name}-preflight`, cmdArgs.preflight, {
      parent: this,
      dependsOn: args.dependsOn,
    });
    this.install = new command.remote.Command(`${name}-install`, cmdArgs.install, {
      parent: this,
      dependsOn: [this.preflight, ...(args.dependsOn ?? [])],
      deleteBeforeReplace: true,
      additionalSecretOutputs: ["stdin"],
    });

    this.images = [];
    const images = hostImages(host.config);
    if ((args.docker?.pullImages ?? true) && (images.drill || images.volume)) {
      const url = pulumi
        .all([args.connection.user, args.connection.host, args.connection.port])
        .apply(([u, h, p]) => dockerSshUrl(u, h, p));
      this.dockerProvider = new docker.Provider(
        `${name}-docker`,
        { host: url, sshOpts: ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30", ...(args.docker?.sshOpts ?? [])] },
        { parent: this },
      );
      const wanted: [string, string][] = [];
      if (images.drill) wanted.push(["drill-image", images.drill]);
      if (images.volume && images.volume !== images.drill) wanted.push(["volume-image", images.volume]);
      for (const [suffix, image] of wanted) {
        this.images.push(
          new docker.RemoteImage(
            `${name}-${suffix}`,
            { name: image, keepLocally: true },
            { parent: this, provider: this.dockerProvider, dependsOn: [this.preflight] },
          ),
        );
      }
    }

    this.stdout = this.install.stdout;
    this.files = pulumi.unsecret(plan.apply((p) => p.files));
    this.scriptsDir = host.config.paths.scriptsDir;
    this.configDir = host.config.paths.configDir;
    this.registerOutputs({ stdout: this.stdout, files: this.files, scriptsDir: this.scriptsDir, configDir: this.configDir });
  }
}
