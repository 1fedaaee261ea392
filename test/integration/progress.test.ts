/**
 * Progress of long streams (scripts/lib-progress.sh) for real: PostgreSQL 15, Ceph radosgw, the
 * AWS CLI and curl, with a throttled TCP relay in front of radosgw (test/support/tcp-relay.ts)
 * so that an upload or a download of a few MB lasts several seconds. RESTORABLE_PROGRESS_INTERVAL
 * is 1 s here (30 s by default). Not a terminal: one log line per interval on a long stream, none
 * on a short one. A terminal (util-linux `script`): a \r-redrawn line, no log lines. Either way the
 * watcher ends with its stream: no progress line after the stage's result, no process left.
 */
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, type BackupEnv } from "../support/backup-env";
import { PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { run } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { tcpRelay, type TcpRelay } from "../support/tcp-relay";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "radosgw", "ceph-mon", "ceph-osd",
  "/usr/bin/aws", "zstd", "jq", "flock", "curl", "script",
);

const BUCKET = "progress-test";
const RATE = 1024 * 1024; // bytes per second through the relay
const ROWS = 120_000;

/** The progress log lines of a run: what, the exact byte count, and the whole line. */
function progressLines(stderr: string): { what: string; bytes: number; line: string }[] {
  const out: { what: string; bytes: number; line: string }[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^\d{4}-\d\d-\d\dT[\d:]+Z restorable [a-z-]+: progress: (.+?): .* \((\d+) bytes\)$/.exec(line);
    if (m) out.push({ what: m[1]!, bytes: Number(m[2]), line });
  }
  return out;
}

/** Processes still running one of this repository's scripts (a watcher left behind would be one). */
/**
 * Processes of the script still there once it has exited, after a grace of 2 s: a watcher or a
 * download subshell whose shell ended without stopping it ends within a second on its own (in one
 * full run two restore subshells were still there the moment restore returned; which ones is
 * not known yet). More than that is a leak.
 */
async function leftoverScripts(path: string): Promise<string[]> {
  const list = () => execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" }).split("\n").filter((l) => l.includes(path));
  for (let i = 0; i < 20 && list().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  return list();
}

describe.skipIf(!tools.ok)("progress of long streams", () => {
  let s3: S3Server;
  let src: PgCluster;
  let dst: PgCluster;
  let relay: TcpRelay;
  let env: BackupEnv;
  let dumpKey = "";
  let dumpSize = 0;
  const direct = () => env.setOverrides({});
  const slow = () => env.setOverrides({ RESTORABLE_ENDPOINT: relay.url });
  const withInterval = { RESTORABLE_PROGRESS_INTERVAL: "1" };
  const dstTarget = () => `local:${dst.socketDir}:${dst.port}`;

  beforeAll(async () => {
    [s3, src, dst] = await Promise.all([startS3Server(), startPostgres(), startPostgres()]);
    await s3.createBucket(BUCKET, { versioning: true });
    const u = new URL(s3.endpoint);
    relay = await tcpRelay(u, { bytesPerSecond: RATE });
    // Hex text: about half of it survives zstd, so the dump is a few MB in the bucket.
    await src.psql(`CREATE DATABASE app`);
    await src.psql(
      `CREATE TABLE blob AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, ${ROWS}) g`,
      { database: "app" },
    );
    env = createBackupEnv({
      s3: { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin },
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
    });
  });

  afterAll(async () => {
    env?.remove();
    await relay?.stop();
    await Promise.all([src?.stop(), dst?.stop(), s3?.stop()]);
  });

  it("a short stream (not a terminal) logs no progress", async () => {
    direct();
    const r = await env.run("backup");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("progress:");
    expect(await leftoverScripts(env.scriptPath("backup"))).toEqual([]);
  });

  it("backup over a slow link: one log line per interval with the bytes streamed so far, none after the result", async () => {
    slow();
    const r = await env.run("backup", [], { now: "2026-11-24T03:00:00Z", env: withInterval });
    expect(r.code, r.stderr).toBe(0);
    const objects = await env.list("web-1/");
    const dump = objects.find((o) => o.key.includes("/postgres/app/20261124T030000Z.dump.zst"));
    expect(dump, JSON.stringify(objects)).toBeDefined();
    dumpKey = dump!.key;
    dumpSize = dump!.size;
    expect(dumpSize).toBeGreaterThan(2 * RATE); // the link needs seconds for it

    const lines = progressLines(r.stderr).filter((l) => l.what === `upload ${dumpKey}`);
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(2);
    // wc -c counts what tee streamed: never more than the object, never backwards (a few KB
    // of slack: the counter also holds wc's own start-up reads).
    for (const [i, l] of lines.entries()) {
      expect(l.bytes).toBeGreaterThan(0);
      expect(l.bytes).toBeLessThanOrEqual(dumpSize + 65536);
      if (i > 0) expect(l.bytes).toBeGreaterThanOrEqual(lines[i - 1]!.bytes);
      // Once tee has handed everything to the uploader, the upload is "finishing".
      expect(l.line).toMatch(/: \d+(\.\d)? [KMG]i?B, (\d+(\.\d)? (B|KiB|MiB)\/s|finishing), \d+s elapsed \(\d+ bytes\)$/);
    }
    // The stage's result comes after the last progress line, and nothing follows the run's end.
    const all = r.stderr.trimEnd().split("\n");
    const lastProgress = all.map((l) => l.includes(" progress: ")).lastIndexOf(true);
    const result = all.findIndex((l) => /database app: done/.test(l) || /app: .*sha256/.test(l));
    expect(result, r.stderr).toBeGreaterThan(lastProgress);
    expect(all.at(-1)).toMatch(/done in [\d.]+s$/);
    expect(await leftoverScripts(env.scriptPath("backup"))).toEqual([]);
  });

  it("restore over a slow link: download lines with the manifest's size, percentage and ETA; the restore is exact", async () => {
    slow();
    const r = await env.run("restore", ["--database", "app", "--target", dstTarget(), "--target-database", "logged"], { env: withInterval });
    expect(r.code, r.stderr).toBe(0);
    // The newest restore point (the first test's backup, or the slow one).
    const key = /^Will restore database app from s3:\/\/[^/]+\/(\S+)$/m.exec(r.stdout)?.[1] ?? "";
    const size = (await env.list("web-1/")).find((o) => o.key === key)?.size ?? 0;
    expect(size, r.stdout).toBeGreaterThan(2 * RATE);
    const lines = progressLines(r.stderr).filter((l) => l.what === `download ${key}`);
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(2);
    for (const [i, l] of lines.entries()) {
      expect(l.bytes).toBeLessThanOrEqual(size);
      if (i > 0) expect(l.bytes).toBeGreaterThanOrEqual(lines[i - 1]!.bytes);
      expect(l.line).toMatch(/: \d+(\.\d)? [KM]iB of \d+\.\d MiB \(\d+%\), \d+(\.\d)? (B|KiB|MiB)\/s(, ETA \d+s)?, \d+s elapsed \(\d+ bytes\)$/);
    }
    expect(lines.some((l) => /, ETA \d+s, /.test(l.line)), r.stderr).toBe(true);
    const all = r.stderr.trimEnd().split("\n");
    const lastProgress = all.map((l) => l.includes(" progress: ")).lastIndexOf(true);
    const verified = all.findIndex((l) => l.includes(`verified sha256 of ${key}`));
    expect(verified, r.stderr).toBeGreaterThan(lastProgress);
    expect(r.stdout).toMatch(/^Restored database app into logged /m);
    expect(await dst.psql("SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM blob", { database: "logged" })).toBe(
      await src.psql("SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM blob", { database: "app" }),
    );
    expect(await leftoverScripts(env.scriptPath("restore"))).toEqual([]);
  });

  it("on a terminal: a \\r line with bytes, rate and ETA, erased at the end, and no progress log lines", async () => {
    slow();
    const cmd = `exec bash "$0" --database app --target "$1" --target-database onterm`;
    const r = await run("script", ["-qec", `bash -c '${cmd}' ${env.scriptPath("restore")} ${dstTarget()}`, "/dev/null"], {
      env: env.env(withInterval),
      timeoutMs: 300_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.stdout;
    // An 80-column terminal: the key is shortened from the left, the verb stays.
    const drawn = out.match(/\rdownload [^\r\n]*?: [\d.]+ [KM]iB of [\d.]+ MiB \(\d+%\), [\d.]+ (B|KiB|MiB)\/s(, ETA \d+s)?\x1b\[K/g) ?? [];
    expect(drawn.length, JSON.stringify(out.slice(0, 2000))).toBeGreaterThanOrEqual(2);
    expect(drawn.some((d) => d.includes(", ETA "))).toBe(true);
    expect(out).toContain("\r\x1b[K"); // erased before the next line
    expect(out).not.toContain("progress:");
    expect(out).toMatch(/Restored database app into onterm /);
    expect(await leftoverScripts(env.scriptPath("restore"))).toEqual([]);
  });

  it("restore-drill over a slow link: the prefetched download it waits for shows progress; every restore point passes", async () => {
    relay.setRate(RATE / 2);
    const drill = createBackupEnv({
      s3: { endpoint: relay.url, region: s3.region, bucket: BUCKET, creds: s3.admin },
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
      drill: { runtime: "local", checks: ["SELECT count(*) > 0 FROM blob"] },
    });
    try {
      const r = await drill.run("restore-drill", [], { env: withInterval });
      // Every restore point passes; the retention audit fails (this bucket holds two days).
      expect(failedLine(r), r.stderr).toMatch(/FAILED at stage retention: /);
      expect(r.stderr).toMatch(/restore-drill: roles: passed/);
      expect(r.stderr).toMatch(/restore-drill: app: passed; RPO /);
      expect(r.stderr).toMatch(/restore-drill: app: older restore point 20261124T030000Z \(monthly\) passed/);
      const lines = progressLines(r.stderr).filter((l) => /^download web-1\/[a-z]+\/postgres\/app\/\d{8}T\d{6}Z\.dump\.zst$/.test(l.what));
      expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
      for (const l of lines) expect(l.line).toMatch(/ of 4\.\d MiB \(\d+%\)/);
      const all = r.stderr.trimEnd().split("\n");
      // Each download's lines end before its verify result.
      for (const l of lines) {
        const key = l.what.replace(/^download /, "");
        expect(all.lastIndexOf(l.line)).toBeLessThan(all.findIndex((x) => x.includes(`verified sha256 of ${key} `)));
      }
      expect(await leftoverScripts(drill.scriptPath("restore-drill"))).toEqual([]);
    } finally {
      drill.remove();
      relay.setRate(RATE);
    }
  });

  it("RESTORABLE_PROGRESS=off shows nothing, also on a long stream", async () => {
    slow();
    const r = await env.run("restore", ["--database", "app", "--target", dstTarget(), "--target-database", "quiet"], {
      env: { ...withInterval, RESTORABLE_PROGRESS: "off" },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("progress:");
  });
});
