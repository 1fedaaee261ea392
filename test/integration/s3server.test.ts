// Self-test of the radosgw harness (test/support/s3server.ts): a real S3 server that takes a
// streamed multipart upload from stdin, lists and returns it byte for byte, keeps users it
// creates from making buckets, and leaves no daemon behind after stop().
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requireTools } from "../support/tools";
import { awsErrorCode, startS3Server, type S3Server } from "../support/s3server";

const tools = requireTools("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph", "setpriv", "/usr/bin/aws");

/** Pids of processes whose command line mentions `needle` (e.g. a server's ceph.conf path). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0").join(" ");
      if (cmd.includes(needle) && /radosgw|ceph-osd|ceph-mon/.test(cmd)) pids.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe.skipIf(!tools.ok)("S3 server harness (Ceph radosgw)", () => {
  let server: S3Server;

  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("streams a 20 MiB multipart upload from stdin into a versioned bucket and returns it identical", async () => {
    await server.createBucket("harness-test", { versioning: true });
    const versioning = await server.aws(server.admin, ["s3api", "get-bucket-versioning", "--bucket", "harness-test"]);
    expect(versioning.code, versioning.stderr).toBe(0);
    expect(JSON.parse(versioning.stdout).Status).toBe("Enabled");

    const data = randomBytes(20 * 1024 * 1024);
    const put = await server.aws(server.admin, ["s3", "cp", "-", "s3://harness-test/dir/blob.bin"], data);
    expect(put.code, put.stderr).toBe(0);

    const list = await server.aws(server.admin, ["s3api", "list-objects-v2", "--bucket", "harness-test", "--prefix", "dir/"]);
    expect(list.code, list.stderr).toBe(0);
    const contents = JSON.parse(list.stdout).Contents as { Key: string; Size: number; ETag: string }[];
    expect(contents.map((c) => [c.Key, c.Size])).toEqual([["dir/blob.bin", data.length]]);
    // A multipart upload's ETag is "<md5 of part md5s>-<number of parts>": it really was multipart.
    expect(contents[0]!.ETag).toMatch(/-\d+"$/);

    const versions = await server.aws(server.admin, ["s3api", "list-object-versions", "--bucket", "harness-test", "--prefix", "dir/"]);
    expect(versions.code, versions.stderr).toBe(0);
    const v = JSON.parse(versions.stdout).Versions as { VersionId: string; IsLatest: boolean }[];
    expect(v).toHaveLength(1);
    expect(v[0]!.VersionId).not.toBe("null");

    // Download through stdout as raw bytes (run() decodes utf8, so hash on the server side of aws
    // would be lossy): write to a file in the server's temp dir and compare.
    const out = `${server.confPath.replace(/ceph\.conf$/, "")}download.bin`;
    const get = await server.aws(server.admin, ["s3", "cp", "s3://harness-test/dir/blob.bin", out]);
    expect(get.code, get.stderr).toBe(0);
    expect(sha256(readFileSync(out))).toBe(sha256(data));
  });

  it("creates users that can use S3 but cannot create buckets", async () => {
    const user = await server.createUser("harness-user");
    const ls = await server.aws(user, ["s3api", "list-buckets"]);
    expect(ls.code, ls.stderr).toBe(0);
    const mk = await server.aws(user, ["--debug", "s3api", "create-bucket", "--bucket", "harness-user-bucket"]);
    expect(mk.code).not.toBe(0);
    // radosgw answers a user with --max-buckets=-1 with AccessDenied (not TooManyBuckets).
    expect(awsErrorCode(mk)).toBe("AccessDenied");
  });

  it("awsEnv isolates the AWS CLI from the caller's environment", () => {
    const env = server.awsEnv(server.admin);
    expect(env.AWS_PROFILE).toBeUndefined();
    expect(env.AWS_SESSION_TOKEN).toBeUndefined();
    expect(env.AWS_ACCESS_KEY_ID).toBe(server.admin.accessKeyId);
    expect(env.AWS_CONFIG_FILE && existsSync(env.AWS_CONFIG_FILE)).toBeTruthy();
    expect(env.AWS_SHARED_CREDENTIALS_FILE && existsSync(env.AWS_SHARED_CREDENTIALS_FILE)).toBeTruthy();
  });

  it("stop() ends this server's radosgw, ceph-osd and ceph-mon, removes its dir, and is idempotent", async () => {
    const second = await startS3Server();
    const conf = second.confPath;
    try {
      expect(second.endpoint).not.toBe(server.endpoint);
      expect(second.pids()).toHaveLength(3);
      expect(processesMentioning(conf).sort()).toEqual([...second.pids()].sort());
    } finally {
      await second.stop();
    }
    await second.stop();
    expect(second.pids()).toEqual([]);
    expect(processesMentioning(conf)).toEqual([]);
    expect(existsSync(conf)).toBe(false);
    // The other server is unaffected ...
    const ls = await server.aws(server.admin, ["s3api", "list-buckets"]);
    expect(ls.code, ls.stderr).toBe(0);
    // ... until it is stopped too.
    const firstConf = server.confPath;
    expect(processesMentioning(firstConf)).toHaveLength(3);
    await server.stop();
    expect(processesMentioning(firstConf)).toEqual([]);
    expect(existsSync(firstConf)).toBe(false);
  });
});
