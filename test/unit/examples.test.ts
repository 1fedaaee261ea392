// examples/ type-check against the package's types with the real provider package they use
// (@pulumi/hcloud, a dev dependency): a change to the Backups args that breaks them fails here.
// And they run under setMocks ("restorable" is the package source: test/vitest.config.ts): the server's address
// and host key, or the other stack's outputs, reach the install connection.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { outputValue, startMocks, unwrapSecrets } from "../support/pulumi-mocks";

vi.setConfig({ testTimeout: 60_000 });

// Loaded by path, not by a static import: the root tsconfig does not map "restorable" (the
// type-check test above checks the examples with examples/tsconfig.json, which does).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const loadExample = (name: string): Promise<any> => import(/* @vite-ignore */ join(ROOT, "examples", name, "index.ts"));

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKey";

const ROOT = resolve(__dirname, "../..");

describe("examples/", () => {
  it("has the two programs, each a Pulumi project", () => {
    const dirs = readdirSync(join(ROOT, "examples"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    expect(dirs).toEqual(["existing-server", "server-and-backups"]);
    for (const d of dirs) expect(readdirSync(join(ROOT, "examples", d)).sort()).toEqual(["Pulumi.yaml", "index.ts"]);
  });

  it("type-check (tsc -p examples/tsconfig.json)", () => {
    let out = "";
    try {
      execFileSync("node", [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "examples/tsconfig.json")], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout);
    }
    expect(out).toBe("");
  }, 170_000);

  it("server-and-backups: the Hetzner server's address and scanned host key are the install's connection", async () => {
    const { pulumi, registered, settle } = await startMocks({
      config: { "restorable:sshPublicKey": "ssh-ed25519 AAAApublic", "restorable:sshPrivateKey": SSH_KEY },
      secretKeys: ["restorable:sshPrivateKey"],
      state: (t, n) =>
        t === "hcloud:index/server:Server"
          ? { ipv4Address: "198.51.100.9" }
          : t === "command:local:Command"
            ? { stdout: HOST_KEY }
            : t.endsWith(":B2Bucket")
              ? { bucketId: "bucket-id" }
              : t.endsWith(":B2ApplicationKey")
                ? { applicationKeyId: `keyid-${n}`, applicationKey: "app-key" }
                : t === "command:remote:Command"
                  ? { stdout: "" }
                  : {},
    });
    vi.stubEnv("B2_APPLICATION_KEY_ID", "0021234567890ab0000000001");
    vi.stubEnv("B2_APPLICATION_KEY", "K002-master");
    try {
      const ex = await loadExample("server-and-backups");
      expect(await outputValue(pulumi, ex.bucketName)).toBe("acme-prod-backups");
      await outputValue(pulumi, ex.hosts["web-1"]!.keyId);
      await settle();
      await new Promise((r) => setTimeout(r, 300));
      const install = registered.find((r) => r.name === "prod-web-1-install")!;
      expect(install.inputs.connection).toMatchObject({ host: "198.51.100.9", hostKey: HOST_KEY, user: "root", port: 22 });
      expect(registered.find((r) => r.name === "web-1-hostkey")!.inputs.create).toContain("ssh-keyscan -t ed25519 198.51.100.9");
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("existing-server: the other stack's outputs and this stack's secrets reach the install", async () => {
    const { pulumi, registered, settle } = await startMocks({
      config: { "restorable:sshPrivateKey": SSH_KEY, "restorable:pingUrl": "https://hc-ping.com/abc", "restorable:s3KeyId": "DB1KEY", "restorable:s3Secret": "db1-secret", "restorable:dbPassword": "pw" },
      secretKeys: ["restorable:sshPrivateKey", "restorable:pingUrl", "restorable:s3KeyId", "restorable:s3Secret", "restorable:dbPassword"],
      state: (t) =>
        t === "pulumi:pulumi:StackReference" ? { outputs: { dbHost: "10.0.0.5", dbHostKey: HOST_KEY }, secretOutputNames: [] } : t === "command:remote:Command" ? { stdout: "" } : {},
    });
    const ex = await loadExample("existing-server");
    expect(await outputValue(pulumi, ex.hosts["db-1"]!.keyId)).toBe("DB1KEY");
    await settle();
    await new Promise((r) => setTimeout(r, 300));
    const install = registered.find((r) => r.name === "ledger-db-1-install")!;
    expect(unwrapSecrets(install.inputs.connection)).toMatchObject({ host: "10.0.0.5", hostKey: HOST_KEY, user: "backup" });
  });
});
