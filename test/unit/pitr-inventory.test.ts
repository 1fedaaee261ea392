import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { walSegmentName, walSegmentOfLsn, walSegmentPosition } from "../../infra/plan/pitr";

// What restore, restore --list and the drill read first: the inventory of a cluster's archive
// (scripts/lib-pitr-restore.sh restorable_pitr_inventory / _manifests) and the manifest check
// every restore runs (lib-restore.sh restorable_check_manifest). The real scripts, sourced; only
// the bucket is a directory of files (restorable_s3_request replaced by a copy), so that an
// archive of thousands of segments costs nothing to build. The positions, runs and gaps are
// checked against the TypeScript segment arithmetic (infra/plan/pitr.ts); the integration tests
// (pitr-restore, drill) read real archives in radosgw.
const SCRIPTS = join(__dirname, "../../scripts");
const dir = mkdtempSync(join(tmpdir(), "restorable-inventory-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const PREFIX = "web-1/";

let n = 0;
/** A bucket in a directory: KEY -> { body, lastModified }; returns the listing file and the dir. */
function bucket(objects: Record<string, { body: string; lastModified?: string }>, extraKeys: string[] = []): { listing: string; store: string } {
  const store = join(dir, `b${++n}`);
  mkdirSync(store, { recursive: true });
  const lines: string[] = [];
  for (const [key, o] of Object.entries(objects)) {
    const f = join(store, key.replaceAll("/", "_"));
    writeFileSync(f, o.body);
    writeFileSync(`${f}.hdr`, `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n${o.lastModified ? `Last-Modified: ${o.lastModified}\r\n` : ""}\r\n`);
    lines.push(JSON.stringify({ key, size: o.body.length }));
  }
  for (const key of extraKeys) lines.push(JSON.stringify({ key, size: 1 }));
  const listing = join(store, "listing.jsonl");
  writeFileSync(listing, lines.join("\n") + "\n");
  return { listing, store };
}

/** Sources the restore libraries with the bucket replaced by STORE; runs SCRIPT. */
function sh(store: string, script: string): { status: number | null; stdout: string; stderr: string } {
  const prelude = [
    `set -euo pipefail`,
    `for l in lib.sh lib-restore.sh lib-pitr.sh lib-pitr-restore.sh; do . ${JSON.stringify(SCRIPTS)}/$l; done`,
    `RESTORABLE_SCRIPT=restore RESTORABLE_STAGE=find RESTORABLE_PREFIX=${PREFIX} RESTORABLE_HOST=web-1 RESTORABLE_BUCKET=b`,
    // GET KEY QUERY SHA OUT [-D HDR]: the object's file (and its headers), or a 404.
    `restorable_s3_request() { local f=${JSON.stringify(store)}/\${2//\\//_}; [[ -f $f ]] || { echo "HTTP 404 NoSuchKey" >&2; return 1; }; cp -- "$f" "$5"; if [[ \${6:-} == -D ]]; then cp -- "$f.hdr" "$7"; fi; }`,
  ].join("\n");
  const r = spawnSync("bash", ["-c", `${prelude}\n${script}`], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const baseManifest = (o: Record<string, unknown>) => JSON.stringify({ format: 1, kind: "base", host: "web-1", serverVersion: "15.18", ...o });
const tsv = (f: string) => readFileSync(f, "utf8").split("\n").filter(Boolean).map((l) => l.split("\t"));

describe("restorable_pitr_inventory: the archive's segments, runs, gaps and base backups from one listing", () => {
  it.each([16 * MiB, MiB])("%i-byte segments: thousands of segments in position order, every gap named, junk keys ignored", (seg) => {
    const cl = "db-1";
    // Timeline 1: positions 1..6000 without 700 and 2400..2402 (two gaps); every 7th encrypted.
    const missing = new Set([700, 2400, 2401, 2402]);
    const keys: string[] = [];
    for (let p = 1; p <= 6000; p++) if (!missing.has(p)) keys.push(`${PREFIX}wal/${cl}/${walSegmentName(1, p, seg)}.zst${p % 7 === 0 ? ".age" : ""}`);
    const junk = [`${PREFIX}wal/${cl}/junk.zst`, `${PREFIX}wal/${cl}/${walSegmentName(1, 10, seg).toLowerCase()}.zst`, `${PREFIX}wal/${cl}/${walSegmentName(1, 9, seg)}.partial.zst`, `${PREFIX}wal/other/${walSegmentName(1, 6001, seg)}.zst`];
    // Shuffled, as a listing need not be in position order.
    const shuffled = [...keys, ...junk].sort((a, b) => ((a.length * 7919 + a.charCodeAt(a.length - 5)) % 97) - ((b.length * 7919 + b.charCodeAt(b.length - 5)) % 97) || a.localeCompare(b));
    const stop1 = "0/2A000100";
    const stop2 = `${(Math.floor((3000 * seg) / 2 ** 32)).toString(16).toUpperCase()}/${((3000 * seg) % 2 ** 32 + 0x100).toString(16).toUpperCase()}`;
    const { listing, store } = bucket({
      [`${PREFIX}daily/base/${cl}/20261201T020000Z.manifest.json`]: { body: baseManifest({ createdAt: "2026-12-01T02:00:00Z", durationSeconds: 3.7, stopLsn: stop1, walSegmentBytes: seg }) },
      [`${PREFIX}daily/base/${cl}/20261202T020000Z.manifest.json`]: { body: baseManifest({ createdAt: "2026-12-02T02:00:00Z", durationSeconds: 12, stopLsn: stop2, walSegmentBytes: seg }) },
    }, shuffled);
    const inv = join(store, "inv");
    const r = sh(store, `restorable_pitr_inventory ${cl} ${listing} ${inv}; echo "seg=$PITR_SEG_BYTES"`);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe(`seg=${seg}`);
    const wal = tsv(join(inv, "wal.tsv"));
    expect(wal).toHaveLength(keys.length);
    expect(wal.map((w) => Number(w[0]))).toEqual([...Array(6000).keys()].map((i) => i + 1).filter((p) => !missing.has(p)));
    for (const [pos, name, key] of wal) {
      expect(walSegmentPosition(name!, seg)).toBe(Number(pos));
      expect(key).toMatch(new RegExp(`^${PREFIX}wal/${cl}/${name}\\.zst(\\.age)?$`));
    }
    expect(tsv(join(inv, "runs.tsv"))).toEqual([["1", "699"], ["701", "2399"], ["2403", "6000"]]);
    expect(tsv(join(inv, "gaps.tsv")).map((g) => g[0])).toEqual([walSegmentName(1, 700, seg), walSegmentName(1, 2400, seg)]);
    const bases = tsv(join(inv, "bases.tsv"));
    expect(bases.map((b) => [b[1], Number(b[3])])).toEqual([["20261201T020000Z", walSegmentOfLsn(stop1, seg)], ["20261202T020000Z", walSegmentOfLsn(stop2, seg)]]);
    // Consistent from createdAt + the whole seconds of the run + 1.
    expect(bases.map((b) => Number(b[0]))).toEqual([Date.parse("2026-12-01T02:00:00Z") / 1000 + 4, Date.parse("2026-12-02T02:00:00Z") / 1000 + 13]);
  });

  it("after a recovery only the newest timeline's history counts: the old timeline's segments past the switch are left out", () => {
    const cl = "db-2";
    const seg = 16 * MiB;
    const keys: string[] = [];
    for (let p = 40; p <= 60; p++) keys.push(`${PREFIX}wal/${cl}/${walSegmentName(1, p, seg)}.zst`);
    for (let p = 50; p <= 70; p++) keys.push(`${PREFIX}wal/${cl}/${walSegmentName(2, p, seg)}.zst`);
    // zstd of the history file: timeline 1 switched to 2 at 0/32000A0 (in position 50).
    const hist = spawnSync("zstd", ["-q", "-c"], { input: "1\t0/320000A0\tno recovery target specified\n" }).stdout;
    const store0 = bucket({ [`${PREFIX}daily/base/${cl}/20261201T020000Z.manifest.json`]: { body: baseManifest({ createdAt: "2026-12-01T02:00:00Z", stopLsn: "0/2A000100" }) } }, keys);
    const hkey = `${PREFIX}wal/${cl}/00000002.history.zst`;
    writeFileSync(join(store0.store, hkey.replaceAll("/", "_")), hist);
    const sha = spawnSync("sha256sum", [join(store0.store, hkey.replaceAll("/", "_"))], { encoding: "utf8" }).stdout.split(" ")[0];
    writeFileSync(join(store0.store, `${hkey.replaceAll("/", "_")}.hdr`), `HTTP/1.1 200 OK\r\nx-amz-meta-sha256: ${sha}\r\n\r\n`);
    writeFileSync(store0.listing, readFileSync(store0.listing, "utf8") + JSON.stringify({ key: hkey, size: hist.length }) + "\n");
    const inv = join(store0.store, "inv");
    const r = sh(store0.store, `restorable_pitr_inventory ${cl} ${store0.listing} ${inv}`);
    expect(r.stderr).toBe("");
    expect(tsv(join(inv, "history.tsv"))).toEqual([["00000002.history", hkey]]);
    const wal = tsv(join(inv, "wal.tsv")).map((w) => w[1]);
    expect(wal).toEqual([
      ...[...Array(11).keys()].map((i) => walSegmentName(1, 40 + i, seg)), // timeline 1 up to the switch's segment
      ...[...Array(21).keys()].map((i) => walSegmentName(2, 50 + i, seg)),
    ].sort((a, b) => walSegmentPosition(a, seg) - walSegmentPosition(b, seg) || a.localeCompare(b)));
    expect(tsv(join(inv, "runs.tsv"))).toEqual([["40", "70"]]);
  });
});

describe("restorable_pitr_manifests: every base manifest read at once, the broken one named", () => {
  const cl = "db-3";
  const key = (d: number) => `${PREFIX}daily/base/${cl}/202611${String(d).padStart(2, "0")}T010203Z.manifest.json`;
  /** 25 good manifests (a full retention's worth) with manifest D replaced by BODY. */
  function withBroken(d: number | undefined, body?: string) {
    const objects: Record<string, { body: string; lastModified?: string }> = {};
    for (let i = 1; i <= 25; i++) {
      objects[key(i)] = {
        body: i === d ? body! : baseManifest({ createdAt: `2026-11-${String(i).padStart(2, "0")}T01:02:03Z`, durationSeconds: 3.675, stopLsn: `0/${(0x2a000100 + i * 0x1000000).toString(16).toUpperCase()}`, walSegmentBytes: 16 * MiB }),
        // Manifest 9 reached the store an hour after its run ended: its Last-Modified counts.
        lastModified: i === 9 ? "Mon, 09 Nov 2026 02:02:03 GMT" : `Mon, ${String(i).padStart(2, "0")} Nov 2026 01:02:05 GMT`,
      };
    }
    const b = bucket(objects);
    return sh(b.store, `restorable_pitr_manifests ${cl} ${b.listing} ${join(b.store, "inv")} && cat ${join(b.store, "inv")}/manifests.tsv`);
  }

  it("25 manifests: their consistent-from times, stamps, stop LSNs in time order", () => {
    const r = withBroken(undefined);
    expect(r.stderr).toBe("");
    const rows = r.stdout.trim().split("\n").map((l) => l.split("\t"));
    expect(rows).toHaveLength(25);
    expect(rows.map((x) => x[1])).toEqual([...Array(25).keys()].map((i) => `202611${String(i + 1).padStart(2, "0")}T010203Z`));
    expect(Number(rows[0]![0])).toBe(Date.parse("2026-11-01T01:02:03Z") / 1000 + 3 + 1);
    expect(Number(rows[8]![0])).toBe(Date.parse("2026-11-09T02:02:03Z") / 1000);
    expect(rows[24]![3]).toBe("0/43000100");
  });

  it.each([
    ["not JSON", "{ not json", "is not a base backup manifest"],
    ["another kind", JSON.stringify({ kind: "postgres", stopLsn: "0/1" }), "is not a base backup manifest"],
    ["two documents", `${baseManifest({ createdAt: "2026-11-10T01:02:03Z", stopLsn: "0/1" })}\n${baseManifest({ createdAt: "2026-11-10T01:02:03Z", stopLsn: "0/2" })}`, "is not a base backup manifest: it holds more than one JSON document"],
    ["an unreadable stopLsn", baseManifest({ createdAt: "2026-11-10T01:02:03Z", stopLsn: "0/zz" }), "has no readable stopLsn: 0/zz"],
    ["an unreadable createdAt", baseManifest({ createdAt: "yesterday-ish", stopLsn: "0/1" }), "has no readable createdAt"],
    ["a segment size PostgreSQL cannot have", baseManifest({ createdAt: "2026-11-10T01:02:03Z", stopLsn: "0/1", walSegmentBytes: 1000 }), "records walSegmentBytes 1000, not a WAL segment size"],
  ])("a manifest with %s fails naming it", (_what, body, msg) => {
    const r = withBroken(10, body);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`FAILED at stage find: base backup manifest ${key(10)} ${msg}`);
  });

  it("a createdAt in another format date(1) reads is still read", () => {
    const r = withBroken(10, baseManifest({ createdAt: "2026-11-10 01:02:03+00", durationSeconds: 1, stopLsn: "0/1" }));
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`${Date.parse("2026-11-10T01:02:03Z") / 1000 + 2}\t20261110T010203Z\t`);
  });
});

describe("restorable_check_manifest: one read, the first problem named", () => {
  const mkey = `${PREFIX}daily/postgres/app/20261201T020000Z.manifest.json`;
  const good = { format: 1, kind: "postgres", host: "web-1", database: "app", createdAt: "2026-12-01T02:00:00Z", compression: "zstd", object: { key: `${PREFIX}daily/postgres/app/20261201T020000Z.dump.zst`, size: 1234, sha256: "a".repeat(64) } };
  function check(body: string) {
    const b = bucket({});
    const f = join(b.store, "m.json");
    writeFileSync(f, body);
    return sh(b.store, `restorable_check_manifest ${f} ${mkey} postgres app; printf '%s|' "$RESTORABLE_MF_KEY" "$RESTORABLE_MF_SHA256" "$RESTORABLE_MF_SIZE" "$RESTORABLE_MF_CREATED" "$RESTORABLE_MF_ENC" "$RESTORABLE_MF_COMP"`);
  }
  it("a good manifest: its fields, the defaults for what it leaves out", () => {
    const r = check(JSON.stringify(good));
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${good.object.key}|${"a".repeat(64)}|1234|2026-12-01T02:00:00Z|none|zstd|`);
  });
  it.each([
    ["not JSON", "{ broken", "is not valid JSON"],
    ["empty", "", "is not valid JSON"],
    ["two documents", `${JSON.stringify(good)} ${JSON.stringify(good)}`, "is not valid JSON"],
    ["format 2", JSON.stringify({ ...good, format: 2 }), ": unsupported manifest format 2"],
    ["another database's", JSON.stringify({ ...good, database: "other" }), ": database is other, expected app"],
    ["another host's", JSON.stringify({ ...good, host: "web-2" }), ": host is web-2, expected web-1"],
    ["an object elsewhere", JSON.stringify({ ...good, object: { ...good.object, key: "elsewhere/x.dump.zst" } }), ": object.key elsewhere/x.dump.zst is not beside the manifest"],
    ["a malformed sha256", JSON.stringify({ ...good, object: { ...good.object, sha256: "xyz" } }), ": object.sha256 is missing or malformed"],
  ])("%s: fails naming the manifest and the problem", (_what, body, msg) => {
    const r = check(body);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`FAILED at stage find: manifest ${mkey}${msg.startsWith(":") ? "" : " "}${msg}`);
  });
});
