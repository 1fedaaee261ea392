// The bad-config table (test/support/bad-configs.ts) through both ways in:
//   - the stack program (infra/index.ts) reading Pulumi.<stack>.yaml keys: messages prefixed restorable:
//   - the Backups component with the same values as args: the same texts without the namespace,
//     also when every value that may come from another resource is given as an Output (then the
//     check runs when it resolves and fails the deployment with a RunError: no stack trace).
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type * as PulumiModule from "@pulumi/pulumi";
import { DEPLOY_TIME } from "../../infra/components/deploy-values";
import { BAD, good } from "../support/bad-configs";
import { startMocks, type Pulumi } from "../support/pulumi-mocks";

vi.setConfig({ testTimeout: 60_000 });

const SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
const SECRETS = { sshPrivateKey: SSH_KEY, b2Credentials: { keyId: "0021234567890ab0000000001", key: "K002-master-secret" } };
// Rows that switch to provider s3 need host keys; on b2 they are not used.
const S3_CREDENTIALS = { hosts: { "web-1": { accessKeyId: "A", secretAccessKey: "B" }, "web-2": { accessKeyId: "C", secretAccessKey: "D" } } };
const state = (type: string) => (type === "command:remote:Command" ? { stdout: "", stderr: "" } : type.endsWith(":B2Bucket") ? { bucketId: "b" } : {});

/** The row's expectation for the component: the same regex without the namespace. */
const withoutNs = (re: RegExp) => new RegExp(re.source.replace(/restorable:/g, ""));

function mutated(mutate: (c: any) => void): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const c = good();
  mutate(c);
  return c as Record<string, unknown>;
}

/**
 * What Pulumi's language host does with a failed deployment-time check: the rejections of the
 * resources waiting for the value. Collected here (vitest would report them) for the suite's tests
 * to check; the runner's own listeners are back after the suite.
 */
function collectRejections(): unknown[] {
  const rejections: unknown[] = [];
  let saved: NodeJS.UnhandledRejectionListener[] = [];
  beforeAll(() => {
    saved = process.listeners("unhandledRejection");
    process.removeAllListeners("unhandledRejection");
    process.on("unhandledRejection", (e) => rejections.push(e));
  });
  afterAll(async () => {
    await new Promise((r) => setTimeout(r, 200));
    process.removeAllListeners("unhandledRejection");
    for (const l of saved) process.on("unhandledRejection", l);
  });
  return rejections;
}

describe("the stack program (Pulumi.<stack>.yaml)", () => {
  it.each(BAD)("%s", async (_name, mutate, expected, stackProgram) => {
    const cfg = mutated(mutate);
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(cfg)) config[`restorable:${k}`] = JSON.stringify(v);
    config["restorable:sshPrivateKey"] = SSH_KEY;
    config["restorable:b2Credentials"] = JSON.stringify(SECRETS.b2Credentials);
    const { pulumi } = await startMocks({ config, secretKeys: ["restorable:sshPrivateKey", "restorable:b2Credentials"], state });
    const err = await import("../../infra/index").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, "the program refuses the config").toBeDefined();
    expect(pulumi.RunError.isInstance(err), "a RunError: the message, no stack trace").toBe(true);
    expect((err as Error).message).toMatch(stackProgram ?? expected);
  });
});

describe("the Backups component", () => {
  let pulumi: Pulumi;
  let Backups: typeof import("../../infra/components/backups").Backups;
  beforeAll(async () => {
    ({ pulumi } = await startMocks({ state }));
    ({ Backups } = await import("../../infra/components/backups"));
  });
  const rejections = collectRejections();

  let n = 0;
  /** The error of building Backups from `args`, at construction or (deploy-time values) when they resolve. */
  async function errorOf(args: Record<string, unknown>): Promise<{ when: "construction" | "deploy"; error: unknown }> {
    let b: InstanceType<typeof Backups>;
    try {
      b = new Backups(`b${n++}`, { ...args, ...SECRETS, s3Credentials: S3_CREDENTIALS } as never);
    } catch (error) {
      return { when: "construction", error };
    }
    const promise = (b.deployPlan as unknown as { promise(): Promise<unknown> }).promise();
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    return { when: "deploy", error };
  }

  it.each(BAD)("%s", async (_name, mutate, expected) => {
    const { when, error } = await errorOf(mutated(mutate));
    expect(when).toBe("construction");
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(withoutNs(expected));
    expect(message, "keys as in the args, without the namespace").not.toMatch(/restorable:/);
  });

  /** Every value that may be an Input, given as an Output (leaves: each recipient on its own). */
  function asOutputs(cfg: Record<string, unknown>): { args: Record<string, unknown>; wrapped: string[] } {
    const wrapped: string[] = [];
    const walk = (v: unknown, path: string): unknown => {
      const rule = DEPLOY_TIME.find((r) => r.path.test(path) && !Array.isArray(v));
      if (rule && v !== undefined) {
        wrapped.push(path);
        return pulumi.output(v as PulumiModule.Input<unknown>);
      }
      if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
      if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, path ? `${path}.${k}` : k)]));
      return v;
    };
    return { args: walk(cfg, "") as Record<string, unknown>, wrapped };
  }

  // Rows whose bad value is one that may come from another resource: known only when it resolves.
  const AT_DEPLOY = ["endpoint on the backed-up host itself", "two hosts on one SSH target", "non-https ping URL", "malformed age recipient", "ssh port out of range"];

  it.each(BAD)("%s, with every deploy-time value an Output", async (name, mutate, expected) => {
    const { args, wrapped } = asOutputs(mutated(mutate));
    if ((args.hosts as unknown[]).length > 0) expect(wrapped).toContain("hosts[0].ssh.host");
    const { when, error } = await errorOf(args);
    expect(when).toBe(AT_DEPLOY.includes(name) ? "deploy" : "construction");
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect((error as Error).message).toMatch(withoutNs(expected));
  });

  it("a bad value from another resource fails at deploy time, naming the key", async () => {
    const { when, error } = await errorOf(mutated((c) => (c.hosts[0].ssh.port = pulumi.output(70000))));
    expect(when).toBe("deploy");
    expect((error as Error).message).toMatch(/hosts\[0\]\.ssh\.port: Too big/);
    // The program fails with it too: every rejection it leaves is that RunError (message only).
    await new Promise((r) => setTimeout(r, 100));
    expect(rejections.length).toBeGreaterThan(0);
    for (const r of rejections) {
      expect(pulumi.RunError.isInstance(r)).toBe(true);
      expect((r as Error).message).toMatch(/invalid restorable config:/);
    }
  });
});

// The secrets: missing ones fail before any resource exists; a bad value fails when it resolves.
// [case, stack-program config changes (undefined: removed), Backups args changes, stack program message, Backups message]
const SECRET_CASES: Array<[string, Record<string, unknown>, Record<string, unknown>, RegExp, RegExp]> = [
  ["no SSH key", { sshPrivateKey: undefined }, { sshPrivateKey: undefined }, /restorable:sshPrivateKey: is required to install on the hosts \(pulumi config set --secret restorable:sshPrivateKey/, /^invalid restorable config:\n {2}sshPrivateKey: is required to install on the hosts$/],
  ["SSH key that is not a private key", { sshPrivateKey: "ssh-ed25519 AAAA" }, { sshPrivateKey: "ssh-ed25519 AAAA" }, /restorable:sshPrivateKey: must be a PEM\/OpenSSH private key/, /(^|\s)sshPrivateKey: must be a PEM\/OpenSSH private key/],
  ["no B2 key", { b2Credentials: undefined }, { b2Credentials: undefined }, /restorable:b2Credentials: is required for provider b2/, /(^|\s)b2Credentials: is required for provider b2/],
  ["B2 key without its secret", { b2Credentials: { keyId: "002abc" } }, { b2Credentials: { keyId: "002abc" } }, /restorable:b2Credentials\.key: is required/, /(^|\s)b2Credentials\.key: is required/],
  ["database password for a host that is not a map", { dbPasswords: { "web-1": "pw" } }, { dbPasswords: { "web-1": "pw" } }, /restorable:dbPasswords\.web-1: /, /(^|\s)dbPasswords\.web-1: /],
];

describe("secrets, through both ways in", () => {
  beforeAll(() => {
    // "no B2 key" must not find one in the environment either.
    vi.stubEnv("B2_APPLICATION_KEY_ID", "");
    vi.stubEnv("B2_APPLICATION_KEY", "");
  });
  afterAll(() => vi.unstubAllEnvs());
  const rejections = collectRejections();

  /** The program's failure: thrown while it runs, or the first rejection it leaves (a deploy-time check). */
  async function failure(run: () => Promise<unknown>): Promise<unknown> {
    rejections.length = 0;
    const thrown = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    if (thrown) return thrown;
    await new Promise((r) => setTimeout(r, 300));
    return rejections[0];
  }

  it.each(SECRET_CASES)("%s: the stack program", async (_name, change, _args, expected) => {
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(good())) config[`restorable:${k}`] = JSON.stringify(v);
    const secrets: Record<string, unknown> = { ...SECRETS, ...change };
    for (const [k, v] of Object.entries(secrets)) if (v !== undefined) config[`restorable:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    const { pulumi } = await startMocks({ config, secretKeys: Object.keys(secrets).map((k) => `restorable:${k}`), state });
    const err = await failure(() => import("../../infra/index"));
    expect(pulumi.RunError.isInstance(err)).toBe(true);
    expect((err as Error).message).toMatch(expected);
  });

  it.each(SECRET_CASES)("%s: Backups", async (_name, _change, args, _stack, expected) => {
    const { pulumi } = await startMocks({ state });
    const { Backups } = await import("../../infra/components/backups");
    const all: Record<string, unknown> = { ...good(), ...SECRETS, ...args };
    for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k];
    const err = await failure(async () => new Backups("b", all as never));
    expect(pulumi.RunError.isInstance(err)).toBe(true);
    expect((err as Error).message).toMatch(expected);
    expect((err as Error).message).not.toMatch(/restorable:/);
  });
});
