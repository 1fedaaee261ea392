/**
 * The WAL archiver under test: started archivers with their stderr, and what the bucket holds
 * under `<host>/wal/<cluster>/` (decompressed segments, "has this committed row arrived", "no
 * hole in the segment numbers"). Shared by the wal-archiver tests for local and docker sources.
 */
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { DEFAULT_WAL_SEGMENT_BYTES, walSegmentPosition } from "../../infra/plan/pitr";
import { createBackupEnv, type BackupEnv, type BucketAccess, type RunScriptOptions } from "./backup-env";
import { unzstd, waitFor } from "./proc";

/** What the helpers below read from the bucket: a BackupEnv, or any reader with its list/get. */
export type BucketReader = Pick<BackupEnv, "list" | "get">;

export interface Archiver {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

export interface WalArchive {
  /** Every archiver started so far (the last one is the current one). */
  archivers: Archiver[];
  /** Start `wal-archiver` of the env (with `opts`, e.g. extra environment), collecting its stderr. */
  start(opts?: RunScriptOptions): Archiver;
  /** start(), then wait (up to `timeoutMs`) until it says it archives ("archiving WAL of N cluster(s)"). */
  startReady(opts?: RunScriptOptions, timeoutMs?: number): Promise<Archiver>;
  /** Decompressed WAL objects in the bucket, by segment name. */
  objects(): Promise<Map<string, Buffer>>;
  /** Waits until a WAL object in the bucket holds `text` (a committed row's bytes); its key. */
  reachesBucket(text: string, timeoutMs?: number): Promise<string>;
  /** On failure, the archivers' logs (what they did instead) go with the error. */
  withLog<T>(p: Promise<T>): Promise<T>;
  /** Asserts that the archive's segment names have no hole from the first to the last (read
   * with the cluster's segment size, 16 MiB by default). */
  expectNoGap(segBytes?: number): Promise<string[]>;
  /** TERM every archiver still running and wait (up to 10 s each) for it to exit. */
  stopAll(): Promise<void>;
}

export function walArchive(e: BackupEnv, prefix: () => string): WalArchive {
  const archivers: Archiver[] = [];
  const fetched = new Map<string, Buffer>();
  const segmentName = (key: string) => walObjectName(key, prefix());
  const withLog = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- archiver stderr:\n${archivers.map((a) => a.stderr().slice(-3000)).join("\n---\n")}`);
    }
  };
  return {
    archivers,
    start(opts) {
      const proc = e.spawn("wal-archiver", [], opts);
      let err = "";
      proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      proc.stdout!.resume();
      // "close", not "exit": the last stderr lines (e.g. "stopped by signal TERM") arrive before it.
      const exited = new Promise<number | null>((r) => proc.on("close", (code) => r(code)));
      const a = { proc, stderr: () => err, exited };
      archivers.push(a);
      return a;
    },
    async startReady(opts, timeoutMs = 60_000) {
      const a = this.start(opts);
      await withLog(waitFor("the archiver to start", () => /archiving WAL of \d+ cluster\(s\)/.test(a.stderr()), timeoutMs));
      return a;
    },
    async objects() {
      const out = new Map<string, Buffer>();
      for (const { key } of await e.list(prefix())) out.set(segmentName(key), await unzstd(await e.get(key)));
      return out;
    },
    reachesBucket(text, timeoutMs = 60_000) {
      return withLog(
        waitFor(
          `"${text}" to reach the bucket`,
          () => keyHolding(e, prefix(), text, fetched),
          timeoutMs,
          500,
        ),
      );
    },
    withLog,
    expectNoGap: (segBytes = DEFAULT_WAL_SEGMENT_BYTES) => expectNoGap(e, prefix(), segBytes),
    async stopAll() {
      for (const a of archivers) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill("SIGTERM");
      await Promise.all(archivers.map((a) => Promise.race([a.exited, new Promise((r) => setTimeout(r, 10_000))])));
    },
  };
}

/**
 * A host whose one local cluster (database app on `port`) is archived, with the archiver's
 * periods short enough for tests: ship within 12 s (a round every 2 s, a quiet segment switched
 * after 4 s) and an RPO of 10 s for the alarm.
 */
export function localArchiverEnv(o: { s3: BucketAccess; port: number; pingUrl: string; textfileDir?: string }): BackupEnv {
  return createBackupEnv({
    s3: o.s3,
    pingUrl: o.pingUrl,
    ...(o.textfileDir ? { metrics: { textfileDir: o.textfileDir } } : {}),
    objectives: { rpo: "1m", rto: "1h" },
    pitr: {},
    postgres: [{ via: "local", host: "127.0.0.1", port: o.port, database: "app" }],
    drill: { runtime: "local" },
    extraConf: { RESTORABLE_PITR_SHIP_SECONDS: 12, RESTORABLE_RPO_SECONDS: 10 },
  });
}

const XLOG_BLCKSZ = 8192;
/** The record bytes of a WAL segment: its 8 KiB pages without their headers (40 bytes on the
 * segment's first page, 24 on the others). A record that crosses a page boundary has the next
 * page's header in the middle of its data, so a committed row's text can be split in the raw
 * segment (seen: a marker "missing" from the bucket that a recovery then found). */
export function walRecordBytes(segment: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let off = 0; off < segment.length; off += XLOG_BLCKSZ) parts.push(segment.subarray(off + (off === 0 ? 40 : 24), off + XLOG_BLCKSZ));
  return Buffer.concat(parts);
}

/** The key of the WAL object under `prefix` whose records hold `text` (a committed row's bytes);
 * `cache` keeps each object's record bytes across calls (complete objects never change). */
export async function keyHolding(e: BucketReader, prefix: string, text: string, cache: Map<string, Buffer>): Promise<string | undefined> {
  for (const { key } of await e.list(prefix)) {
    if (!cache.has(key)) cache.set(key, walRecordBytes(await unzstd(await e.get(key))));
    if (cache.get(key)!.includes(Buffer.from(text))) return key;
  }
  return undefined;
}

/** The WAL file name of an archived object: its key under `prefix` without ".zst". */
const walObjectName = (key: string, prefix: string) => key.slice(prefix.length).replace(/\.zst$/, "");

/** Asserts that the WAL segment names under `prefix` have no hole from the first to the last; the names. */
export async function expectNoGap(e: BucketReader, prefix: string, segBytes = DEFAULT_WAL_SEGMENT_BYTES): Promise<string[]> {
  const names = (await e.list(prefix)).map((k) => walObjectName(k.key, prefix)).filter((n) => /^[0-9A-F]{24}$/.test(n));
  const nums = names.map((n) => walSegmentPosition(n, segBytes));
  // A plain error, not vitest's expect: the benchmarks (tsx, no vitest) use this module too.
  for (let k = 1; k < nums.length; k++) if (nums[k]! - nums[k - 1]! !== 1) throw new Error(`a gap in the WAL archive: ${names[k - 1]} -> ${names[k]}`);
  return names;
}

/** pids of pg_receivewal processes whose arguments mention `dir`. */
export function receiverPids(dir: string | undefined): number[] {
  if (!dir) return [];
  const out: number[] = [];
  for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const args = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
      if (args[0]?.endsWith("pg_receivewal") && args.some((a) => a.startsWith(dir))) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

