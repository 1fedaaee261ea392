// A Hetzner Cloud server and its backups in one program: the server's address and host key flow
// into Backups as Outputs; nothing is copied by hand into a YAML file.
//
//   pulumi config set hcloud:token --secret
//   pulumi config set sshPublicKey "$(cat ~/.ssh/backup_ed25519.pub)"
//   pulumi config set --secret sshPrivateKey -- "$(cat ~/.ssh/backup_ed25519)"
//   B2_APPLICATION_KEY_ID=... B2_APPLICATION_KEY=... pulumi up
import * as command from "@pulumi/command";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import { Backups } from "restorable";

const config = new pulumi.Config();
const key = new hcloud.SshKey("deploy", { publicKey: config.require("sshPublicKey") });

// Docker, the AWS CLI and the backup tools, so the install's preflight finds what the scripts need.
const userData = `#cloud-config
packages: [docker.io, docker-compose-v2, awscli, zstd, jq, curl, age, postgresql-client]
`;
const server = new hcloud.Server("web-1", {
  serverType: "cx22",
  image: "debian-12",
  location: "fsn1",
  sshKeys: [key.id],
  userData,
});

// The host key, read once the server answers (trust on first use; pin it in config once known).
const hostKey = new command.local.Command(
  "web-1-hostkey",
  { create: pulumi.interpolate`for i in $(seq 30); do ssh-keyscan -t ed25519 ${server.ipv4Address} 2>/dev/null | cut -d' ' -f2- | grep . && exit 0; sleep 10; done; exit 1` },
  { dependsOn: [server] },
);

const backups = new Backups("prod", {
  storage: { provider: "b2", bucket: "acme-prod-backups", region: "eu-central-003" },
  objectives: { rpo: "24h", rto: "1h" },
  hosts: [
    {
      name: "web-1",
      ssh: { host: server.ipv4Address, hostKey: hostKey.stdout },
      postgres: [{ via: "compose", project: "/srv/app", service: "db", user: "app", database: "app" }],
      volumes: ["uploads"],
      drill: { checks: ["SELECT count(*) > 0 FROM users"] },
    },
  ],
  sshPrivateKey: config.requireSecret("sshPrivateKey"),
});

export const serverIp = server.ipv4Address;
export const bucketName = backups.bucketName;
export const hosts = backups.hosts;
export const policy = backups.policy;
