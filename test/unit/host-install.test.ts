// Wiring of the HostInstall component under pulumi.runtime.setMocks: the command resources get
// the secret connection, the plan's texts, the content-hash trigger, the delete command, the
// dependencies (credentials first), delete-before-replace; and the Docker provider + RemoteImages
// exist exactly when the host uses a docker drill or volumes. What the commands do on a host is
// proven over real SSH in test/integration/install.test.ts.
import { describe, expect, it, vi } from "vitest";
import { isSecretValue, startMocks, type Pulumi, type Registered } from "../support/pulumi-mocks";
import type { RawConfig } from "../../infra/config";
import { installPlan } from "../../infra/plan/install";
import { fixture } from "../integration/install-fixture";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAprivate\n-----END OPENSSH PRIVATE KEY-----\n";
type Captured = Registered;
const isSecret = isSecretValue;

async function build(rawHost: Partial<RawConfig["hosts"][number]>) {
  const { pulumi, registered: captured, settle } = await startMocks({
    state: (type, name) => (type === "command:remote:Command" ? { stdout: `ran ${name}`, stderr: "" } : {}),
  });
  const { HostInstall } = await import("../../infra/components/host-install");
  const f = fixture({ sshUser: "deploy", sshPort: 2222, rawHost: { ssh: { host: "203.0.113.10", user: "deploy", port: 2222 }, ...rawHost } });
  // The credentials the install must wait for.
  class Creds extends pulumi.CustomResource {
    constructor(name: string) {
      super("test:index:Credentials", name, {}, {});
    }
  }
  const creds = new Creds("web-1-key");
  const hi = new HostInstall("web-1", {
    host: f.host,
    rendered: pulumi.secret(f.rendered),
    connection: { host: "203.0.113.10", user: "deploy", port: 2222, privateKey: KEY },
    dependsOn: [creds],
  });
  const stdout = await new Promise<string>((resolve) => hi.stdout.apply((s) => resolve(s)));
  await settle();
  return { captured, f, hi, stdout };
}


const urnName = (urn: string | undefined) => urn?.split("::").pop();

describe("HostInstall wiring", () => {
  it("preflight, then install with the secret connection, the plan's texts, hash trigger and uninstall on delete", async () => {
    const { captured, f, stdout } = await build({});
    const plan = installPlan(f.rendered, f.host);
    const comp = captured.find((r) => r.type === "restorable:index:HostInstall")!;
    expect(comp.name).toBe("web-1");
    const cmds = captured.filter((r) => r.type === "command:remote:Command");
    expect(cmds.map((c) => c.name)).toEqual(["web-1-preflight", "web-1-install"]);
    for (const c of cmds) {
      expect(urnName(c.parent)).toBe("web-1");
      // @pulumi/command 1.x fills in its defaults (dialErrorLimit, perDialTimeout).
      expect(c.inputs.connection).toMatchObject({ host: "203.0.113.10", user: "deploy", port: 2222, privateKey: KEY });
      // The key is a secret on the wire; host/user/port are not.
      expect(isSecret(c.raw.connection) || isSecret(c.raw.connection?.privateKey)).toBe(true);
      // @pulumi/command 1.x forwards addPreviousOutputInEnv; older typings drop unknown inputs
      // (then installCommandArgs() is checked below instead).
      expect(c.inputs.addPreviousOutputInEnv).toBe(false);
      expect(c.inputs.triggers).toEqual([f.rendered.hash]);
      expect(isSecret(c.raw.triggers)).toBe(false);
    }
    const [pre, ins] = cmds as [Captured, Captured];
    expect(pre.inputs.create).toBe(plan.preflight);
    expect(pre.inputs.delete).toBeUndefined();
    expect(ins.inputs.create).toBe(plan.install.command);
    expect(ins.inputs.update).toBe(plan.install.command);
    expect(ins.inputs.delete).toBe(plan.uninstall);
    // Readable in previews: the texts are not secret; the payload is.
    expect(isSecret(ins.raw.create)).toBe(false);
    expect(isSecret(ins.raw.delete)).toBe(false);
    expect(isSecret(ins.raw.stdin)).toBe(true);
    expect(ins.inputs.stdin).toBe(plan.install.stdin);
    expect(ins.additionalSecretOutputs).toContain("stdin");
    expect(ins.deleteBeforeReplace).toBe(true);
    // Credentials first, preflight before install.
    expect(pre.dependsOn.map(urnName)).toContain("web-1-key");
    expect(ins.dependsOn.map(urnName)).toEqual(expect.arrayContaining(["web-1-key", "web-1-preflight"]));
    expect(stdout).toBe("ran web-1-install");
    // No secret anywhere in plain inputs but stdin and the key.
    for (const c of cmds) {
      const { stdin: _s, connection: _c, ...rest } = c.inputs;
      expect(JSON.stringify(rest)).not.toContain(f.secret);
    }
  });

  it("a docker drill and volumes: a Docker provider over ssh://user@host:port keeps both images pulled", async () => {
    const { captured } = await build({
      postgres: [{ via: "container", container: "db", database: "app" }],
      volumes: ["uploads"],
      drill: { runtime: "docker", image: "postgres:16" },
      volumeImage: "busybox:1.36",
    });
    const providers = captured.filter((r) => r.type === "pulumi:providers:docker");
    expect(providers).toHaveLength(1);
    expect(providers[0]!.inputs.host).toBe("ssh://deploy@203.0.113.10:2222");
    expect(urnName(providers[0]!.parent)).toBe("web-1");
    const images = captured.filter((r) => r.type === "docker:index/remoteImage:RemoteImage");
    expect(images.map((i) => i.inputs.name).sort()).toEqual(["busybox:1.36", "postgres:16"]);
    for (const i of images) {
      expect(i.inputs.keepLocally).toBe(true);
      expect(i.provider).toContain("web-1-docker");
      expect(i.dependsOn.map(urnName)).toContain("web-1-preflight");
    }
  });

  it("a local drill without volumes: no Docker provider, no images", async () => {
    const { captured } = await build({});
    expect(captured.filter((r) => r.type === "pulumi:providers:docker")).toHaveLength(0);
    expect(captured.filter((r) => r.type === "docker:index/remoteImage:RemoteImage")).toHaveLength(0);
  });

  it("volumes only: just the volume image", async () => {
    const { captured } = await build({ postgres: [], volumes: ["uploads"] });
    const images = captured.filter((r) => r.type === "docker:index/remoteImage:RemoteImage");
    expect(images.map((i) => i.inputs.name)).toEqual(["busybox:1.36"]);
  });
});

describe("installCommandArgs", () => {
  it("never relies on sshd AcceptEnv, logs both streams, and pins the host key when given", async () => {
    vi.resetModules();
    const pulumi: Pulumi = await import("@pulumi/pulumi");
    const { installCommandArgs } = await import("../../infra/components/host-install");
    const f = fixture({ sshUser: "root", sshPort: 22 });
    const plan = pulumi.output(installPlan(f.rendered, f.host));
    const a = installCommandArgs(plan, { host: "h", user: "root", port: 22, privateKey: KEY, hostKey: "ssh-ed25519 AAAAC3Nza" });
    for (const c of [a.preflight, a.install]) {
      expect(c.addPreviousOutputInEnv).toBe(false);
      expect(c.environment).toBeUndefined();
      expect(c.logging).toBe("stdoutAndStderr");
      const conn = await new Promise<Record<string, unknown>>((r) => pulumi.output(c.connection).apply((v) => r(v as Record<string, unknown>)));
      expect(conn.hostKey).toBe("ssh-ed25519 AAAAC3Nza");
    }
  });
});

describe("dockerSshUrl", () => {
  it("brackets IPv6 literals", async () => {
    const { dockerSshUrl } = await import("../../infra/components/host-install");
    expect(dockerSshUrl("root", "203.0.113.10", 22)).toBe("ssh://root@203.0.113.10:22");
    expect(dockerSshUrl("root", "2001:db8::1", 22)).toBe("ssh://root@[2001:db8::1]:22");
  });
});
