// The package as a user gets it: `npm pack` (which builds dist/ with .d.ts), then a new TypeScript
// Pulumi project, made from nothing in a temp dir, installs the tarball with npm, type-checks a
// program that creates a server and hands its address to Backups, and runs it under
// pulumi.runtime.setMocks: the install command's SSH connection must go to the server's address,
// and the install payload must carry the shell templates shipped inside the package.
//
// npm fetches package metadata from the registry (reachable here) and the tarballs from its cache
// (--prefer-offline), which the worktree's own install filled.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(__dirname, "../..");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");
const SERVER_IP = "198.51.100.42";

const PROGRAM = `import * as pulumi from "@pulumi/pulumi";
import { Backups, type BackupsArgs } from "restorable";

/** Stands for a cloud server resource (hcloud.Server, digitalocean.Droplet, aws.ec2.Instance). */
export class Server extends pulumi.CustomResource {
  declare readonly ipv4Address: pulumi.Output<string>;
  constructor(name: string) {
    super("consumer:index:Server", name, { ipv4Address: undefined });
  }
}

export function program() {
  const server = new Server("web");
  const args: BackupsArgs = {
    storage: { provider: "aws", bucket: "consumer-backups", region: "eu-central-1" },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [{ name: "web-1", ssh: { host: server.ipv4Address, user: "root" }, postgres: [{ via: "compose", project: "/srv/app", service: "db", database: "app" }] }],
    sshPrivateKey: pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----\\nAAAA\\n-----END OPENSSH PRIVATE KEY-----\\n"),
  };
  const backups = new Backups("prod", args);
  return { server, backups };
}
`;

const RUN = `import * as pulumi from "@pulumi/pulumi";

// Secret inputs reach mocks wrapped ({ <sig>: <secret sig>, value }).
const unwrap = (v: any): any => (v && typeof v === "object" && "4dabf18193072939515e22adb298388d" in v ? unwrap(v.value) : v);
const seen: Record<string, Record<string, any>> = {};
pulumi.runtime.setMocks(
  {
    newResource(args) {
      seen[args.name] = args.inputs;
      const state = { ...args.inputs };
      if (args.type === "consumer:index:Server") state.ipv4Address = "${SERVER_IP}";
      if (args.type === "aws:iam/accessKey:AccessKey") state.secret = "mock-secret";
      return { id: args.name + "-id", state };
    },
    call: (args) => args.inputs,
  },
  "consumer",
  "dev",
  false,
);

async function main() {
  const { program } = await import("./program");
  const { backups } = program();
  const keyId = await new Promise((r) => backups.hosts["web-1"]!.keyId.apply(r));
  await new Promise((r) => setTimeout(r, 500));
  const install = seen["prod-web-1-install"]!;
  const stdin: string = unwrap(install.stdin);
  const files = stdin.split("\\n").filter((l) => l.startsWith("file ")).map((l) => l.split(" ")[2]);
  console.log(JSON.stringify({ host: unwrap(unwrap(install.connection).host), files, keyId, policy: backups.policy, provider: backups.provider }));
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
`;

const BAD = `import { Backups } from "restorable";
new Backups("x", { storage: { provider: "aws", bucket: "b-b-b" }, objectives: { rpo: "1h", rto: "1h" }, hosts: [{ name: "a", ssh: { host: "h", port: "22" } }], sshPrivateKey: "k" });
`;

// What `pulumi new typescript` writes (strict, commonjs, node resolution, no skipLibCheck: the
// package's .d.ts are checked too), plus esModuleInterop, which zod's declarations need (README).
const TSCONFIG = {
  compilerOptions: { strict: true, target: "ES2020", module: "commonjs", moduleResolution: "node", outDir: "bin", esModuleInterop: true, noImplicitReturns: true, forceConsistentCasingInFileNames: true, types: ["node"] },
  // bad.ts: a mistake the types must catch (see the type-check test).
  files: ["program.ts", "run.ts", "bad.ts"],
};

let dir: string;
let app: string;

function sh(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "restorable-pack-"));
  // prepack builds dist/ (tsc -p tsconfig.build.json).
  sh("npm", ["pack", "--pack-destination", dir, "--silent"], ROOT);
  app = join(dir, "app");
  mkdirSync(app);
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"))!;
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({
      name: "consumer",
      version: "1.0.0",
      private: true,
      main: "bin/program.js",
      dependencies: { restorable: `file:../${tarball}`, "@pulumi/pulumi": "^3.270.0" },
      devDependencies: { "@types/node": "^20.19.43" },
    }),
  );
  writeFileSync(join(app, "Pulumi.yaml"), "name: consumer\nruntime: nodejs\n");
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify(TSCONFIG));
  writeFileSync(join(app, "program.ts"), PROGRAM);
  writeFileSync(join(app, "run.ts"), RUN);
  writeFileSync(join(app, "bad.ts"), BAD);
  sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], app);
}, 170_000);

afterAll(() => {
  if (process.env.RESTORABLE_KEEP_PACK) return void console.log(`kept ${dir}`);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the npm package in a new Pulumi project", () => {
  it("ships dist with types and the shell templates", () => {
    const pkg = join(app, "node_modules/restorable");
    expect(readdirSync(join(pkg, "dist")).sort()).toEqual(expect.arrayContaining(["lib.d.ts", "lib.js"]));
    // Every template of the repository's scripts/, and nothing else.
    const templates = readdirSync(join(ROOT, "scripts")).filter((f) => f.endsWith(".sh")).sort();
    expect(templates).toEqual(expect.arrayContaining(["lib.sh", "backup.sh", "restore.sh", "restore-drill.sh"]));
    expect(readdirSync(join(pkg, "scripts")).sort()).toEqual(templates);
    // Not the stack program, not the tests.
    expect(readdirSync(join(pkg, "dist"))).not.toContain("index.js");
    expect(readdirSync(pkg)).not.toContain("test");
  });

  it("type-checks the user's program against the package's types", () => {
    // One tsc run (it is slow on a busy machine): the program and runner must check clean, and
    // bad.ts (a port given as a string) must be refused, so the types are real, not any.
    let out = "";
    try {
      sh("node", [TSC, "-p", "."], app);
    } catch (e) {
      out = String((e as { stdout?: string }).stdout);
    }
    const errors = out.split("\n").filter((l) => /error TS/.test(l));
    expect(errors.filter((l) => !l.startsWith("bad.ts")), "program.ts and run.ts type-check").toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^bad\.ts\(2,\d+\): error TS2322: Type 'string' is not assignable to type 'Input<number> \| undefined'/);
  });

  it("runs under mocks: the install connects to the server's address from its output", () => {
    // bin/ is what the type-check test's tsc run emitted.
    const result = JSON.parse(sh("node", ["bin/run.js"], app)) as { host: string; files: string[]; keyId: string; policy: string[]; provider: string };
    expect(result.host).toBe(SERVER_IP);
    expect(result.files).toEqual(expect.arrayContaining(["/opt/restorable/lib.sh", "/opt/restorable/backup", "/opt/restorable/restore-drill", "/etc/restorable/credentials"]));
    expect(result.keyId).toBe("prod-web-1-id");
    expect(result.provider).toBe("aws");
    expect(result.policy.join("\n")).toContain("Host web-1 (root@<known after deploy>:22)");
  });
});
