// The Backups component under pulumi.runtime.setMocks: a server created in the same program hands
// its address, host key and a recipient to the backups; the values reach the install connection,
// the preflight text and the rendered config, the summary says "known after deploy"; the parts
// (BackupBucket, ServerBackups) work alone with config-shaped args. The args' types are the
// schema's keys (checked by tsc below).
import { describe, expect, it, vi } from "vitest";
import type * as PulumiModule from "@pulumi/pulumi";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RawConfig } from "../../infra/config";
import type { BackupsArgs, HostArgs, SshArgs, StorageArgs } from "../../infra/lib";
import { outputValue, parentType, startMocks } from "../support/pulumi-mocks";

vi.setConfig({ testTimeout: 60_000 });

// --- Types: the args have exactly the schema's keys, and a YAML config fits them. -------------
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type RawHost = RawConfig["hosts"][number];
const sameKeys: [
  Same<Exclude<keyof BackupsArgs, "sshPrivateKey" | "b2Credentials" | "s3Credentials" | "dbPasswords">, keyof RawConfig>,
  Same<keyof HostArgs, keyof RawHost>,
  Same<keyof SshArgs, keyof RawHost["ssh"]>,
  Same<keyof StorageArgs, keyof RawConfig["storage"]>,
  Same<keyof NonNullable<HostArgs["schedule"]>, keyof NonNullable<RawHost["schedule"]>>,
  Same<keyof NonNullable<HostArgs["drill"]>, keyof NonNullable<RawHost["drill"]>>,
  Same<keyof NonNullable<HostArgs["paths"]>, keyof NonNullable<RawHost["paths"]>>,
  Same<keyof NonNullable<BackupsArgs["retention"]>, keyof NonNullable<RawConfig["retention"]>>,
  Same<keyof NonNullable<HostArgs["logs"]>, keyof NonNullable<RawHost["logs"]>>,
  Same<keyof NonNullable<HostArgs["metrics"]>, keyof NonNullable<RawHost["metrics"]>>,
  Same<keyof NonNullable<StorageArgs["objectLock"]>, keyof NonNullable<RawConfig["storage"]["objectLock"]>>,
] = [true, true, true, true, true, true, true, true, true, true, true];
const yamlFits = (raw: RawConfig): Omit<BackupsArgs, "sshPrivateKey"> => raw;
void sameKeys;
void yamlFits;

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyOfTheServer";

/** One file's content from the install payload ("file <mode> <path> <base64>" lines). */
function payloadFile(stdin: string, path: string): string {
  const line = stdin.split("\n").find((l) => l.startsWith("file ") && l.split(" ")[2] === path);
  if (!line) throw new Error(`no ${path} in the payload`);
  return Buffer.from(line.split(" ")[3]!, "base64").toString("utf8");
}

async function mocks() {
  return startMocks({
    state: (type, name) => {
      if (type === "test:index:Server") return { ipv4Address: "198.51.100.7", hostKey: HOST_KEY, recipient: RECIPIENT };
      if (type === "aws:iam/accessKey:AccessKey") return { secret: `secret-of-${name}` };
      if (type === "command:remote:Command") return { stdout: "", stderr: "" };
      return {};
    },
  });
}

describe("Backups with a server from the same program", () => {
  it("wires the server's address, host key and recipient into the install; the summary says known after deploy", async () => {
    const { pulumi, registered, settle } = await mocks();
    const { Backups } = await import("../../infra/lib");
    class Server extends pulumi.CustomResource {
      declare readonly ipv4Address: PulumiModule.Output<string>;
      declare readonly hostKey: PulumiModule.Output<string>;
      declare readonly recipient: PulumiModule.Output<string>;
      constructor(name: string) {
        super("test:index:Server", name, { ipv4Address: undefined, hostKey: undefined, recipient: undefined }, {});
      }
    }
    const server = new Server("web");
    const backups = new Backups("prod", {
      storage: { provider: "aws", bucket: "acme-prod-backups", region: "eu-central-1" },
      objectives: { rpo: "24h", rto: "1h" },
      notify: { pingUrl: pulumi.output("https://hc-ping.com/0b1c2d3e") },
      hosts: [
        {
          name: "web-1",
          ssh: { host: server.ipv4Address, hostKey: server.hostKey, user: "root" },
          postgres: [{ via: "compose", project: "/srv/app", service: "db", database: "app" }],
          encryption: { ageRecipients: [server.recipient] },
          drill: { ageIdentityFile: "/root/drill.age" },
        },
      ],
      sshPrivateKey: pulumi.secret(SSH_KEY),
    });
    // Construction: the plan decided the resources without the values and says so.
    expect(backups.plan.deferred).toEqual(["notify.pingUrl", "hosts[0].ssh.host", "hosts[0].ssh.hostKey", "hosts[0].encryption.ageRecipients[0]"]);
    expect(backups.policy.join("\n")).toContain("Host web-1 (root@<known after deploy>:22)");
    expect(backups.policy.join("\n")).toContain("encrypted to <known after deploy> age recipient(s)");
    expect(backups.policy.join("\n")).not.toMatch(/invalid|deploy-time-host/);
    const deployed = await outputValue(pulumi, backups.deployPlan);
    expect(deployed.summary.join("\n")).toContain("Host web-1 (root@198.51.100.7:22)");
    expect(await outputValue(pulumi, backups.bucketName)).toBe("acme-prod-backups");
    await settle();

    const install = registered.find((r) => r.name === "prod-web-1-install")!;
    expect(install.inputs.connection).toMatchObject({ host: "198.51.100.7", port: 22, user: "root", hostKey: HOST_KEY, privateKey: SSH_KEY });
    const preflight = registered.find((r) => r.name === "prod-web-1-preflight")!;
    expect(preflight.inputs.connection.host).toBe("198.51.100.7");
    expect(preflight.inputs.create).toContain("host 198.51.100.7 is not ready");
    // The rendered config on the host has the resolved values, not stand-ins.
    const conf = payloadFile(install.inputs.stdin as string, "/etc/restorable/restorable.conf");
    expect(conf).toContain(`RESTORABLE_AGE_RECIPIENTS=('${RECIPIENT}')`);
    expect(conf).toContain("RESTORABLE_PING_URL='https://hc-ping.com/0b1c2d3e'");
    expect(conf).not.toMatch(/known-after-deploy|deploy-time-|qqqqqqqq/);
    // The tree: Backups owns the provider, the bucket and each host's ServerBackups.
    for (const t of ["restorable:index:BackupBucket", "restorable:index:ServerBackups", "pulumi:providers:aws"]) {
      expect(parentType(registered.find((r) => r.type === t)!), t).toBe("restorable:index:Backups");
    }
    expect(backups.provider).toBe("aws");
    expect(backups.retention).toEqual({ daily: 7, weekly: 4, monthly: 12, expiryDays: expect.objectContaining({ daily: 7 }) });
    expect(Object.keys(backups.hosts)).toEqual(["web-1"]);
    expect(await outputValue(pulumi, backups.hosts["web-1"]!.keyId)).toBe("prod-web-1-id");
    await outputValue(pulumi, backups.servers[0]!.install.stdout);
    await settle();
  });

  it("an Output where the value decides the resources is refused, naming the key", async () => {
    const { pulumi } = await mocks();
    const { Backups } = await import("../../infra/lib");
    expect(
      () =>
        new Backups("prod", {
          storage: { provider: "aws", bucket: pulumi.output("acme-prod-backups") as unknown as string, region: "eu-central-1" },
          objectives: { rpo: "24h", rto: "1h" },
          hosts: [{ name: "web-1", ssh: { host: "203.0.113.10" }, volumes: ["uploads"] }],
          sshPrivateKey: SSH_KEY,
        }),
    ).toThrow(/storage\.bucket: must be a plain value, not a pulumi Output or Promise: it decides which resources exist/);
  });
});

describe("two Backups in one program", () => {
  it("with the same host name: every resource has its own name (no URN collision)", async () => {
    const { pulumi, registered, settle } = await mocks();
    const { Backups } = await import("../../infra/lib");
    const make = (n: string, bucket: string) =>
      new Backups(n, {
        storage: { provider: "aws", bucket, region: "eu-central-1" },
        objectives: { rpo: "24h", rto: "1h" },
        hosts: [{ name: "web-1", ssh: { host: "203.0.113.10" }, volumes: ["uploads"] }],
        sshPrivateKey: SSH_KEY,
      });
    const all = [make("eu", "acme-eu-backups"), make("us", "acme-us-backups")];
    for (const b of all) await outputValue(pulumi, b.servers[0]!.install.stdout);
    await settle();
    const urns = registered.map((r) => `${r.type}::${r.name}`);
    expect(new Set(urns).size).toBe(urns.length);
    expect(registered.filter((r) => r.type === "restorable:index:ServerBackups").map((r) => r.name)).toEqual(["eu-web-1", "us-web-1"]);
  });
});

describe("the stack program through Backups", () => {
  it("keeps the URNs of the resources it made before Backups existed: its children alias the stack", async () => {
    const config: Record<string, string> = {
      "restorable:storage": JSON.stringify({ provider: "aws", bucket: "acme-prod-backups", region: "eu-central-1" }),
      "restorable:objectives": JSON.stringify({ rpo: "24h", rto: "1h" }),
      "restorable:hosts": JSON.stringify([{ name: "web-1", ssh: { host: "203.0.113.10" }, volumes: ["uploads"] }]),
      "restorable:sshPrivateKey": SSH_KEY,
    };
    const { pulumi, registered, settle } = await startMocks({ config, secretKeys: ["restorable:sshPrivateKey"], state: (t, n) => (t === "aws:iam/accessKey:AccessKey" ? { secret: `s-${n}` } : {}) });
    const stack = await import("../../infra/index");
    await outputValue(pulumi, stack.bucketName);
    await settle();
    const byType = (t: string) => registered.find((r) => r.type === t)!;
    // Before: BackupBucket "backups", ServerBackups "web-1" and the provider "storage" at the top level.
    expect(byType("restorable:index:BackupBucket")).toMatchObject({ name: "backups", aliases: [expect.objectContaining({ name: "", noparent: true })] });
    expect(byType("restorable:index:ServerBackups")).toMatchObject({ name: "web-1", aliases: [expect.objectContaining({ name: "", noparent: true })] });
    expect(byType("pulumi:providers:aws")).toMatchObject({ name: "backups-storage", aliases: [expect.objectContaining({ name: "storage", noparent: true })] });
    // A user's Backups has no such aliases.
    expect(byType("restorable:index:Backups").aliases).toEqual([]);
  });
});

describe("review output of a plan with deploy-time values", () => {
  it("the render CLI's files say <known after deploy>, not the stand-ins", async () => {
    const { pulumi, settle } = await mocks();
    const { Backups } = await import("../../infra/lib");
    const { writeRender } = await import("../../infra/cli/render");
    const b = new Backups("prod", {
      storage: { provider: "aws", bucket: "acme-prod-backups", region: "eu-central-1" },
      objectives: { rpo: "24h", rto: "1h" },
      notify: { pingUrl: pulumi.output("https://hc-ping.com/x") },
      hosts: [{ name: "web-1", ssh: { host: pulumi.output("198.51.100.7") }, volumes: ["uploads"], encryption: { ageRecipients: pulumi.output([RECIPIENT]) } }],
      sshPrivateKey: SSH_KEY,
    });
    const out = mkdtempSync(join(tmpdir(), "restorable-review-"));
    try {
      writeRender(b.plan, { out, stack: "prod" });
      const summary = readFileSync(join(out, "SUMMARY.md"), "utf8");
      expect(summary).toContain("Host web-1 (root@<known after deploy>:22)");
      const conf = readFileSync(join(out, "hosts/web-1/files/etc/restorable/restorable.conf"), "utf8");
      expect(conf).toContain("RESTORABLE_PING_URL='<known after deploy>'");
      expect(conf).toContain("RESTORABLE_AGE_RECIPIENTS=('<known after deploy>')");
      const everything = readdirSync(out, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => readFileSync(join(e.parentPath, e.name), "utf8"))
        .join("\n");
      expect(everything).not.toMatch(/deploy-time-host|known-after-deploy\.invalid|age1q{58}/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    await outputValue(pulumi, b.servers[0]!.install.stdout);
    await settle();
  });
});

describe("the parts alone, with config-shaped args", () => {
  const config = {
    storage: { provider: "s3" as const, bucket: "existing-backups", endpoint: "https://s3.eu-central-003.example.net" },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [{ name: "web-1", ssh: { host: "203.0.113.10" }, volumes: ["uploads"] }],
  };

  it("ServerBackups installs on a host whose bucket exists, with a supplied key", async () => {
    const { pulumi, registered, settle } = await mocks();
    const { ServerBackups } = await import("../../infra/lib");
    const s = new ServerBackups("web-1", {
      plan: config,
      host: "web-1",
      suppliedKey: pulumi.secret({ accessKeyId: "WEB1KEY", secretAccessKey: "web1-secret" }),
      sshPrivateKey: SSH_KEY,
    });
    expect(await outputValue(pulumi, s.summary.keyId)).toBe("WEB1KEY");
    await outputValue(pulumi, s.install.stdout);
    await settle();
    expect(registered.some((r) => r.type.startsWith("aws:s3/"))).toBe(false);
    const install = registered.find((r) => r.name === "web-1-install")!;
    expect(install.inputs.connection.host).toBe("203.0.113.10");
    expect(payloadFile(install.inputs.stdin as string, "/etc/restorable/credentials")).toContain("AWS_ACCESS_KEY_ID='WEB1KEY'");
  });

  it("BackupBucket alone: the bucket and its lifecycle for the config's hosts", async () => {
    const { pulumi, registered, settle } = await mocks();
    const { BackupBucket } = await import("../../infra/lib");
    const bucket = new BackupBucket("b", { plan: { ...config, storage: { provider: "aws", bucket: "acme-prod-backups", region: "eu-central-1" } } });
    await outputValue(pulumi, bucket.bucketName);
    await settle();
    const lc = registered.find((r) => r.type.endsWith(":BucketLifecycleConfiguration"))!;
    expect((lc.inputs.rules as Array<{ filter: { prefix: string } }>).map((r) => r.filter.prefix)).toContain("web-1/daily/");
  });

  it("only the bucket and keys: BackupBucket and one HostCredentials per host (aws), no install", async () => {
    const { pulumi, registered, settle } = await mocks();
    const { BackupBucket, HostCredentials } = await import("../../infra/lib");
    const cfg = { ...config, storage: { provider: "aws" as const, bucket: "acme-prod-backups", region: "eu-central-1" } };
    const bucket = new BackupBucket("b", { plan: cfg });
    const key = new HostCredentials("web-1", { plan: cfg, host: "web-1", bucket });
    expect(await outputValue(pulumi, key.accessKeyId)).toBe("web-1-id");
    await settle();
    const policy = JSON.parse(registered.find((r) => r.type === "aws:iam/userPolicy:UserPolicy")!.inputs.policy as string);
    expect(JSON.stringify(policy)).toContain("arn:aws:s3:::acme-prod-backups/web-1/*");
    expect(registered.some((r) => r.type === "command:remote:Command")).toBe(false);
  });

  it("b2 keys for a bucket that exists: HostCredentials with b2BucketId", async () => {
    const { pulumi, registered, settle } = await startMocks({
      state: (t, n) => (t.endsWith(":B2ApplicationKey") ? { applicationKeyId: `keyid-${n}`, applicationKey: "app-key" } : {}),
    });
    const { HostCredentials } = await import("../../infra/lib");
    const cfg = { ...config, storage: { provider: "b2" as const, bucket: "acme-prod-backups", region: "us-west-002" } };
    const key = new HostCredentials("web-1", { plan: cfg, host: "web-1", b2BucketId: "4a48fe8875c6214145260818", b2: { keyId: "002abc", key: pulumi.secret("K002") } });
    expect(await outputValue(pulumi, key.accessKeyId)).toBe("keyid-web-1");
    await settle();
    const k = registered.find((r) => r.type.endsWith(":B2ApplicationKey"))!;
    expect(k.inputs).toMatchObject({ bucketId: "4a48fe8875c6214145260818", namePrefix: "web-1/" });
  });

  it("a host name that is not in the config is refused", async () => {
    await mocks();
    const { ServerBackups } = await import("../../infra/lib");
    expect(() => new ServerBackups("web-9", { plan: config, host: "web-9", sshPrivateKey: SSH_KEY })).toThrow(/host: "web-9" is not one of the config's hosts \(web-1\)/);
  });
});
