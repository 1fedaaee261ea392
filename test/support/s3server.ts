/**
 * A real S3 server for integration tests: Ceph radosgw 16 on one mon + one memstore OSD, auth none,
 * everything on 127.0.0.1 with free ports, in its own temp dir (see /work/shared/TEST-INFRA.md).
 *
 * Several servers can run at once (own fsid, ports, dir). Each daemon runs in the foreground in its
 * own session, under `setpriv --pdeathsig KILL` so it dies with the test process even when that is
 * killed hard; a process 'exit' hook kills whatever is still running. stop() is idempotent.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, run, runOk, type RunOptions } from "./proc";

export interface S3Creds {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface AwsResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface S3Server {
  /** e.g. http://127.0.0.1:PORT (path-style addressing). */
  endpoint: string;
  /** Signing region the server accepts ("us-east-1"). */
  region: string;
  /** Owner user: can create buckets, has caps user-policy=* (may call the IAM user-policy API). */
  admin: S3Creds;
  /** ceph.conf of this cluster (always pass `-c` explicitly). */
  confPath: string;
  /** Creates an RGW user that cannot create buckets (--max-buckets=-1). */
  createUser(uid: string): Promise<S3Creds>;
  /**
   * Environment for /usr/bin/aws with these creds: no AWS_* variable of the caller survives,
   * isolated (temp) config/credentials files, AWS_ACCESS_KEY_ID/SECRET, AWS_DEFAULT_REGION,
   * no pager, no IMDS lookups, and /usr/bin first on PATH so a plain `aws` is Debian's v2.
   */
  awsEnv(creds: S3Creds): NodeJS.ProcessEnv;
  /** Runs /usr/bin/aws --endpoint-url <endpoint> ...args with awsEnv(creds). Never throws on non-zero exit. */
  aws(creds: S3Creds, args: string[], input?: string | Buffer): Promise<AwsResult>;
  createBucket(name: string, opts?: { versioning?: boolean; objectLock?: boolean }): Promise<void>;
  /** Runs radosgw-admin -c <confPath> ...args; throws on non-zero exit; returns stdout. */
  radosgwAdmin(args: string[]): Promise<string>;
  /**
   * With `https: true`: the port of the second, TLS frontend on 127.0.0.1 (self-signed
   * certificate for IP 127.0.0.1, at tlsCertPath), for clients that talk to S3 over TLS only
   * (pgBackRest). Undefined otherwise.
   */
  httpsPort?: number;
  tlsCertPath?: string;
  /** Pids of this server's daemons still running (empty after stop()). */
  pids(): number[];
  /** radosgw, then OSD, then mon; removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartS3ServerOptions {
  /** `rgw lc debug interval`: one lifecycle "day" lasts this many seconds. */
  lcDebugInterval?: number;
  /** Capacity of the memstore OSD (objects live in RAM). Default 2 GiB. */
  memstoreBytes?: number;
  /**
   * Also serve https on a second port (beast ssl_endpoint, a self-signed certificate made with
   * openssl). Default off: the plain http endpoint only.
   */
  https?: boolean;
}

const REGION = "us-east-1";
const DIR_PREFIX = "restorable-s3-";
/** The AWS CLI v2 the harness and the tests drive S3 with. */
export const AWS_BIN = "/usr/bin/aws";

interface Daemon {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  alive: boolean;
}

/** Servers not yet stopped, killed synchronously if the test process exits first. */
const live = new Set<{ killNow(): void }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const s of live) s.killNow();
  });
}

/** The caller's environment without anything that could point ceph or aws elsewhere. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("CEPH_") || k.startsWith("AWS_")) continue;
    env[k] = v;
  }
  return env;
}

/**
 * The S3 error code of a failed aws call. RGW sends errors with an empty <Message>, which makes
 * AWS CLI 2.9's s3 error customization crash ("argument of type 'NoneType' is not iterable",
 * awscli/customizations/s3errormsg.py) and hide the code; pass "--debug" as the first argument
 * and this finds the code in the logged response body instead.
 */
export function awsErrorCode(r: AwsResult): string | undefined {
  if (r.code === 0) return undefined;
  const shown = /An error occurred \(([A-Za-z0-9.]+)\)/.exec(r.stderr);
  if (shown) return shown[1];
  const codes = [...r.stderr.matchAll(/<Code>([A-Za-z0-9.]+)<\/Code>/g)];
  return codes.length ? codes[codes.length - 1]![1] : undefined;
}

/** Removes temp dirs of servers whose test process died without cleaning up (e.g. SIGKILL). */
function sweepStaleDirs(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = join(tmpdir(), n);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, "owner.pid"), "utf8"));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
      continue; // owner alive
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH") continue;
    }
    // Its daemons died with the owner (pdeathsig); only the files are left.
    rmSync(dir, { recursive: true, force: true });
  }
}

function randomKey(len: number, alphabet: string): string {
  const bytes = randomBytes(len);
  let s = "";
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

function newCreds(): S3Creds {
  return {
    accessKeyId: randomKey(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    secretAccessKey: randomKey(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
  };
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number, opts: StartS3ServerOptions, httpsPort?: number): string {
  const frontend = httpsPort === undefined
    ? `beast endpoint=127.0.0.1:${rgwPort}`
    : `beast endpoint=127.0.0.1:${rgwPort} ssl_endpoint=127.0.0.1:${httpsPort} ssl_certificate=${dir}/tls/cert.pem ssl_private_key=${dir}/tls/key.pem`;
  const lines = [
    "[global]",
    `fsid = ${fsid}`,
    `mon host = [v2:127.0.0.1:${monPort}]`,
    "mon initial members = a",
    // auth none, and the mon client mode radosgw can actually use with it (the `-13` trap)
    "auth cluster required = none",
    "auth service required = none",
    "auth client required = none",
    "ms mon client mode = crc",
    "keyring = /dev/null",
    "ms bind ipv6 = false",
    "public addr = 127.0.0.1",
    "public network = 127.0.0.1/32",
    "osd pool default size = 1",
    "osd pool default min size = 1",
    "mon allow pool size one = true",
    "mon warn on pool no redundancy = false",
    "osd pool default pg num = 8",
    "osd pool default pgp num = 8",
    "osd pool default pg autoscale mode = off",
    "osd crush chooseleaf type = 0",
    "osd objectstore = memstore",
    `memstore device bytes = ${opts.memstoreBytes ?? 2 * 1024 * 1024 * 1024}`,
    "paxos propose interval = 0.1",
    `mon data = ${dir}/mon`,
    `osd data = ${dir}/osd`,
    `run dir = ${dir}/run`,
    `admin socket = ${dir}/run/$cluster-$name.asok`,
    `pid file = ${dir}/run/$name.pid`,
    `log file = ${dir}/log/$name.log`,
    "",
    "[client.rgw]",
    `rgw frontends = ${frontend}`,
    "rgw dns name = 127.0.0.1",
  ];
  if (opts.lcDebugInterval !== undefined) lines.push(`rgw lc debug interval = ${opts.lcDebugInterval}`);
  return lines.join("\n") + "\n";
}

class RadosGwServer implements S3Server {
  readonly region = REGION;
  readonly endpoint: string;
  readonly confPath: string;
  httpsPort?: number;
  tlsCertPath?: string;
  admin: S3Creds = { accessKeyId: "", secretAccessKey: "" };
  private readonly daemons: Daemon[] = [];
  private stopping: Promise<void> | undefined;
  private readonly awsConfigFile: string;
  private readonly awsCredsFile: string;

  constructor(
    readonly dir: string,
    private readonly fsid: string,
    private readonly monPort: number,
    rgwPort: number,
  ) {
    this.endpoint = `http://127.0.0.1:${rgwPort}`;
    this.confPath = join(dir, "ceph.conf");
    mkdirSync(join(dir, "aws"));
    this.awsConfigFile = join(dir, "aws", "config");
    this.awsCredsFile = join(dir, "aws", "credentials");
    writeFileSync(this.awsConfigFile, `[default]\nregion = ${REGION}\ns3 =\n  addressing_style = path\n`);
    writeFileSync(this.awsCredsFile, "");
  }

  private opts(extra: RunOptions = {}): RunOptions {
    return { env: cleanEnv(), timeoutMs: 60_000, ...extra };
  }

  private spawnDaemon(name: string, cmd: string, args: string[]): Daemon {
    const out = openSync(join(this.dir, "log", `${name}.out`), "a");
    let child: ChildProcess;
    try {
      child = spawn("setpriv", ["--pdeathsig", "KILL", "--", cmd, ...args], {
        env: cleanEnv(),
        detached: true, // own session and process group (setsid)
        stdio: ["ignore", out, out],
      });
    } finally {
      closeSync(out);
    }
    const d: Daemon = {
      name,
      child,
      alive: true,
      exited: new Promise<void>((resolve) => {
        child.once("exit", () => {
          d.alive = false;
          resolve();
        });
        child.once("error", () => {
          d.alive = false;
          resolve();
        });
      }),
    };
    this.daemons.push(d);
    return d;
  }

  private ensureAlive(d: Daemon): void {
    if (d.alive) return;
    const log = { mon: "mon.a", osd: "osd.0", rgw: "client.rgw" }[d.name] ?? d.name;
    throw new Error(`${d.name} exited during startup:\n${tail(join(this.dir, "log", `${d.name}.out`))}\n${tail(join(this.dir, "log", `${log}.log`))}`);
  }

  async start(): Promise<void> {
    const { dir, confPath } = this;
    const monmap = join(dir, "monmap");
    await runOk("monmaptool", ["--create", "--fsid", this.fsid, "--addv", "a", `[v2:127.0.0.1:${this.monPort}]`, monmap], this.opts());
    await runOk("ceph-mon", ["-c", confPath, "--mkfs", "-i", "a", "--monmap", monmap], this.opts());
    const mon = this.spawnDaemon("mon", "ceph-mon", ["-c", confPath, "-i", "a", "-f"]);

    const osdUuid = randomUUID();
    const newOsd = await run("ceph", ["-c", confPath, "--connect-timeout", "30", "osd", "new", osdUuid], this.opts());
    this.ensureAlive(mon);
    if (newOsd.code !== 0 || newOsd.stdout.trim() !== "0") {
      throw new Error(`ceph osd new failed (${newOsd.code}): ${newOsd.stderr}${newOsd.stdout}\n${tail(join(dir, "log", "mon.a.log"))}`);
    }
    await runOk("ceph-osd", ["-c", confPath, "-i", "0", "--mkfs", "--osd-uuid", osdUuid], this.opts());
    const osd = this.spawnDaemon("osd", "ceph-osd", ["-c", confPath, "-i", "0", "-f"]);
    const rgw = this.spawnDaemon("rgw", "radosgw", ["-c", confPath, "-n", "client.rgw", "-f"]);

    // Own loop rather than waitFor(): a daemon that died must fail the start at once, with its log.
    const deadline = Date.now() + 60_000;
    for (;;) {
      for (const d of [mon, osd, rgw]) this.ensureAlive(d);
      try {
        const res = await fetch(this.endpoint + "/", { signal: AbortSignal.timeout(2000) });
        const body = await res.text();
        // The answer must be radosgw's: another process that took the port between freePort()
        // and radosgw's bind (radosgw then runs without listening) would pass a bare "answers"
        // check, and the first S3 call later fails with "Could not connect" (seen once under load).
        if (!body.includes("ListAllMyBucketsResult")) {
          throw new PortTaken(`${this.endpoint} answered, but not as radosgw (another process has it): ${body.slice(0, 120)}`);
        }
        break;
      } catch (e) {
        if (e instanceof PortTaken) throw e;
        if (Date.now() > deadline) throw new Error(`radosgw did not answer at ${this.endpoint}:\n${tail(join(this.dir, "log", "client.rgw.log"))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    this.admin = newCreds();
    await this.radosgwAdmin([
      "user", "create", "--uid=owner", "--display-name=owner",
      `--access-key=${this.admin.accessKeyId}`, `--secret-key=${this.admin.secretAccessKey}`,
    ]);
    await this.radosgwAdmin(["caps", "add", "--uid=owner", "--caps=user-policy=*"]);
  }

  async radosgwAdmin(args: string[]): Promise<string> {
    return (await runOk("radosgw-admin", ["-c", this.confPath, ...args], this.opts())).stdout;
  }

  async createUser(uid: string): Promise<S3Creds> {
    const c = newCreds();
    await this.radosgwAdmin([
      "user", "create", `--uid=${uid}`, `--display-name=${uid}`,
      `--access-key=${c.accessKeyId}`, `--secret-key=${c.secretAccessKey}`, "--max-buckets=-1",
    ]);
    return c;
  }

  awsEnv(creds: S3Creds): NodeJS.ProcessEnv {
    const env = cleanEnv();
    env.PATH = `/usr/bin:${env.PATH ?? "/bin"}`;
    env.AWS_CONFIG_FILE = this.awsConfigFile;
    env.AWS_SHARED_CREDENTIALS_FILE = this.awsCredsFile;
    env.AWS_ACCESS_KEY_ID = creds.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = creds.secretAccessKey;
    env.AWS_DEFAULT_REGION = REGION;
    env.AWS_REGION = REGION;
    env.AWS_PAGER = "";
    env.AWS_EC2_METADATA_DISABLED = "true";
    return env;
  }

  async aws(creds: S3Creds, args: string[], input?: string | Buffer): Promise<AwsResult> {
    const r = await run(AWS_BIN, ["--endpoint-url", this.endpoint, ...args], { env: this.awsEnv(creds), input, timeoutMs: 300_000 });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  async createBucket(name: string, opts: { versioning?: boolean; objectLock?: boolean } = {}): Promise<void> {
    const args = ["s3api", "create-bucket", "--bucket", name];
    if (opts.objectLock) args.push("--object-lock-enabled-for-bucket");
    const r = await this.aws(this.admin, args);
    if (r.code !== 0) throw new Error(`create-bucket ${name} failed (${r.code}): ${r.stderr}`);
    if (opts.versioning) {
      const v = await this.aws(this.admin, ["s3api", "put-bucket-versioning", "--bucket", name, "--versioning-configuration", "Status=Enabled"]);
      if (v.code !== 0) throw new Error(`put-bucket-versioning ${name} failed (${v.code}): ${v.stderr}`);
    }
  }

  pids(): number[] {
    return this.daemons.filter((d) => d.alive && d.child.pid !== undefined).map((d) => d.child.pid!);
  }

  /** Synchronous last resort (process exit): SIGKILL every process group, remove the dir. */
  killNow(): void {
    for (const d of [...this.daemons].reverse()) {
      if (d.alive && d.child.pid !== undefined) {
        try {
          process.kill(-d.child.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    // radosgw, then OSD, then mon. The data is throwaway (memstore, temp dir), so no graceful
    // shutdown is needed: SIGKILL each process group and wait until the daemon is reaped.
    const order = ["rgw", "osd", "mon"];
    for (const name of order) {
      for (const d of this.daemons.filter((x) => x.name === name)) {
        if (d.alive && d.child.pid !== undefined) {
          try {
            process.kill(-d.child.pid, "SIGKILL");
          } catch {
            /* already gone */
          }
        }
        await d.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

/** Starts mon + memstore OSD + radosgw and an owner user; retries on a port race. */
/** The radosgw port was taken by another process: startS3Server tries again with new ports. */
class PortTaken extends Error {}

export async function startS3Server(opts: StartS3ServerOptions = {}): Promise<S3Server> {
  installExitHook();
  sweepStaleDirs();
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
    writeFileSync(join(dir, "owner.pid"), String(process.pid));
    for (const sub of ["mon", "osd", "run", "log"]) mkdirSync(join(dir, sub));
    const monPort = await freePort();
    let rgwPort = await freePort();
    while (rgwPort === monPort) rgwPort = await freePort();
    let httpsPort: number | undefined;
    if (opts.https) {
      do httpsPort = await freePort();
      while (httpsPort === monPort || httpsPort === rgwPort);
    }
    const fsid = randomUUID();
    writeFileSync(join(dir, "ceph.conf"), cephConf(dir, fsid, monPort, rgwPort, opts, httpsPort));
    const server = new RadosGwServer(dir, fsid, monPort, rgwPort);
    live.add(server);
    try {
      if (httpsPort !== undefined) {
        mkdirSync(join(dir, "tls"));
        await runOk("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
          "-keyout", join(dir, "tls", "key.pem"), "-out", join(dir, "tls", "cert.pem")], { timeoutMs: 60_000 });
        server.httpsPort = httpsPort;
        server.tlsCertPath = join(dir, "tls", "cert.pem");
      }
      await server.start();
      return server;
    } catch (e) {
      lastErr = e;
      await server.stop();
    }
  }
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}
