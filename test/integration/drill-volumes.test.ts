/**
 * The drill's volume part, for real: a private dockerd with the busybox tool image, Ceph radosgw,
 * AWS CLI v2, zstd, age, and (for the mixed host) PostgreSQL 15 with the local drill runtime.
 *   - backup-volumes records a listing of every entry (names with spaces, quotes, newlines and
 *     non-ASCII; nested and empty dirs; symlinks; a hard link; a fifo; a device; set-id and sticky
 *     modes; owners; mtimes; a binary blob), uploaded beside the tarball and named by the manifest;
 *     the drill restores the tarball into a throwaway Docker volume and finds it identical
 *   - a tarball changed after the backup, with a manifest that is right for it, fails the drill at
 *     stage compare, naming the volume and the path
 *   - a backup without a listing (made before listings existed) passes, "content not verified"
 *   - a failing volume does not stop the next one nor the database, and a failing database does
 *     not stop the volumes; the run fails naming the first failure
 *   - older restore points of a volume, one per tier, never proven first, then the least recently
 *     proven; an older tarball without a listing passes "content not verified", a broken one fails
 *   - restore --volume compares what it extracted with the listing before touching the target: a
 *     tampered tarball fails at stage compare naming volume and path, the target left as it was
 *   - nothing is left behind: no throwaway volume, no container, no temp dir; a volume left by a
 *     SIGKILLed drill is reaped by the next
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, failedLine, type BackupEnv, type BackupEnvOptions, type BucketAccess } from "../support/backup-env";
import { ensureToolImage, startDockerd, type Dockerd } from "../support/docker";
import {
  ageKey, corruptObject, fixtureGlobalsBackup, fixturePostgresBackup, follow, getObject, listKeys, processesMentioning, putObject, q, type AgeKey,
} from "../support/drill-fixtures";
import { loadSampleData, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { run, runOk } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "radosgw", "ceph-mon", "ceph-osd", "/usr/bin/aws",
  "dockerd", "docker", "busybox", "zstd", "age", "age-keygen", "jq", "flock", "curl",
);

const BUCKET = "drill-volumes";

interface VolumeResult {
  volume: string;
  stamp: string | null;
  tier: string | null;
  manifestKey: string | null;
  objectKey: string | null;
  listingKey: string | null;
  sha256Ok: boolean | null;
  contentVerified: boolean;
  note: string | null;
  entries: { listed: number | null; restored: number | null };
  rpo: { ok: boolean } | null;
  rto: { achievedSeconds: number; ok: boolean } | null;
  durations: Record<string, number>;
  result: "pass" | "fail";
  failure: { stage: string; reason: string } | null;
}
interface Report {
  result: "pass" | "fail";
  startedAt: string;
  olderPoints: (VolumeResult & { chosenBecause: string })[];
  retention: { result: string } | null;
  globals: { result: string } | null;
  failure: { stage: string; reason: string } | null;
  databases: { database: string; result: string; failure: { stage: string } | null; rto: { ok: boolean } | null }[];
  volumes: VolumeResult[];
}
interface VolumeManifest {
  object: { key: string; size: number; sha256: string };
  listing?: { key: string; size: number; sha256: string; entries: number };
  [k: string]: unknown;
}

// Every kind of entry tar keeps (sockets it cannot), with names that need care.
const FILL = String.raw`set -e
cd /data
mkdir -p 'a/b/c d' empty "q'uote" 'sticky'
printf 'hello\n' > 'a/b/c d/file with spaces.txt'
printf 'Zoë 日本\n' > 'a/Zoë 日本.txt'
printf 'new\nline' > "$(printf 'a/new\nline')"
printf 'dq' > 'a/"dq"'
printf 'tab' > "$(printf 'a/tab\there')"
printf 'bs' > 'a/back\slash'
: > a/empty-file
dd if=/dev/urandom of=a/blob.bin bs=1k count=300 2>/dev/null
ln -s 'b/c d/file with spaces.txt' a/link-to-file
ln -s ../nowhere a/dangling
ln -s "$(printf 'new\nline target')" a/odd-link
ln a/blob.bin a/hardlink.bin
mkfifo a/fifo
mknod a/null-copy c 1 3
chmod 0600 'a/Zoë 日本.txt'
chown 1234:5678 a/blob.bin
chmod 4755 a/blob.bin
chmod 1777 sticky
chmod 0700 "q'uote"
chown 33:33 "q'uote"
touch -d '2020-01-02 03:04:05' 'a/b/c d/file with spaces.txt' a/empty-file
chown 999:999 /data
chmod 0750 /data
`;

describe.skipIf(!tools.ok)("restore-drill: Docker volumes against their listing", () => {
  let s3: S3Server;
  let d: Dockerd;
  let src: PgCluster;
  let access: BucketAccess;
  let toolImage: string;
  let key: AgeKey;
  let scratch: string;
  const envs: BackupEnv[] = [];

  function host(name: string, o: Partial<BackupEnvOptions> = {}): BackupEnv {
    const e = createBackupEnv({ host: name, s3: access, volumeImage: toolImage, baseEnv: d.env, ...o });
    envs.push(e);
    return e;
  }
  async function fill(volume: string, script = FILL): Promise<void> {
    await d.dockerOk(["volume", "create", volume]);
    await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${volume}:/data`, toolImage, "sh", "-c", script]);
  }
  async function latestReport(e: BackupEnv): Promise<Report> {
    const k = (await listKeys(access, `${e.host.name}/drills/`)).map((x) => x.key).sort().pop();
    expect(k, "a report in the bucket").toBeDefined();
    return JSON.parse((await getObject(access, k!)).toString("utf8")) as Report;
  }
  async function manifestOf(e: BackupEnv, volume: string): Promise<{ key: string; manifest: VolumeManifest }> {
    const k = (await listKeys(access, `${e.host.name}/`)).map((x) => x.key).filter((x) => x.includes(`/volumes/${volume}/`) && x.endsWith(".manifest.json")).sort().pop();
    expect(k, `a manifest of ${volume}`).toBeDefined();
    return { key: k!, manifest: JSON.parse((await getObject(access, k!)).toString("utf8")) as VolumeManifest };
  }
  /** Throwaway volumes and drill containers still in the daemon. */
  async function dockerLeftovers(): Promise<string[]> {
    const v = await d.dockerOk(["volume", "ls", "-q", "--filter", "label=restorable.drill"]);
    const c = await d.dockerOk(["ps", "-aq", "--filter", "label=restorable.drill"]);
    return [...v.stdout.split("\n"), ...c.stdout.split("\n")].filter(Boolean);
  }
  async function expectNothingLeft(e: BackupEnv): Promise<void> {
    expect(e.leftovers()).toEqual([]);
    expect(processesMentioning(e.tmpDir)).toEqual([]);
    expect(await dockerLeftovers()).toEqual([]);
  }
  /**
   * Replace the newest backup's tarball with the same tarball changed by `change` (a shell command
   * run in /data of a scratch volume holding it), and fix the manifest's size and sha256 for it:
   * the manifest is right, the content does not match the listing.
   */
  async function tamper(e: BackupEnv, volume: string, change: string): Promise<void> {
    const { key: mkey, manifest } = await manifestOf(e, volume);
    const dir = mkdtempSync(join(scratch, "tamper-"));
    try {
      writeFileSync(join(dir, "orig.tar.zst"), await getObject(access, manifest.object.key));
      const tmpVol = `tamper-${volume}`;
      await d.dockerOk(["volume", "create", tmpVol]);
      const sh = (cmd: string) => runOk("bash", ["-c", `set -euo pipefail; ${cmd}`], { env: d.env });
      await sh(`zstd -q -d -c ${q(join(dir, "orig.tar.zst"))} | docker run --rm -i --network none -v ${tmpVol}:/data ${toolImage} tar --numeric-owner -C /data -xf -`);
      await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${tmpVol}:/data`, toolImage, "sh", "-c", `cd /data && ${change}`]);
      await sh(`docker run --rm --network none -v ${tmpVol}:/data:ro ${toolImage} tar -C /data -cf - . | zstd -q -3 -c > ${q(join(dir, "new.tar.zst"))}`);
      await d.dockerOk(["volume", "rm", tmpVol]);
      const bytes = readFileSync(join(dir, "new.tar.zst"));
      const sha = createHash("sha256").update(bytes).digest("hex");
      await putObject(access, manifest.object.key, bytes);
      manifest.object = { ...manifest.object, size: bytes.length, sha256: sha };
      await putObject(access, mkey, `${JSON.stringify(manifest, null, 2)}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  beforeAll(async () => {
    [s3, d, src] = await Promise.all([startS3Server(), startDockerd(), startPostgres()]);
    toolImage = await ensureToolImage(d);
    await Promise.all([s3.createBucket(BUCKET, { versioning: true }), loadSampleData(src, "app")]);
    access = { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin };
    scratch = mkdtempSync(join(tmpdir(), "rdv-"));
    key = await ageKey(scratch, "vol");
  });

  afterAll(async () => {
    for (const e of envs) e.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await Promise.all([d?.stop(), src?.stop(), s3?.stop()]);
  });

  it("records a listing at backup time and finds the restored volume identical (a host with volumes only)", async () => {
    await fill("files");
    const e = host("vonly", { volumes: ["files"] });
    const b = await e.run("backup-volumes");
    expect(b.code, b.stderr).toBe(0);
    const { key: mkey, manifest } = await manifestOf(e, "files");
    const base = mkey.replace(/\.manifest\.json$/, "");
    expect(manifest.object.key).toBe(`${base}.tar.zst`);
    expect(manifest.listing).toMatchObject({ key: `${base}.listing.zst` });
    const stored = (await listKeys(access, base)).find((k) => k.key === manifest.listing!.key);
    expect(stored?.size).toBe(manifest.listing!.size);
    const listing = (await runOk("zstd", ["-q", "-d", "-c"], { input: await getObject(access, manifest.listing!.key) })).stdout;
    const lines = listing.split("\n").filter(Boolean);
    expect(lines[0]).toMatch(/^# restorable volume listing 1: /);
    expect(lines.length - 1).toBe(manifest.listing!.entries);
    const hex = (s: string) => Buffer.from(s, "utf8").toString("hex");
    const entry = (path: string) => lines.find((l) => l.startsWith(`${hex(path)} `))?.split(" ");
    expect(entry(".")).toEqual(["2e", "d", "0750", "999:999", "-", expect.any(String), "-", "-"]);
    expect(entry("a/blob.bin")?.slice(1, 5)).toEqual(["f", "4755", "1234:5678", String(300 * 1024)]);
    expect(entry("a/b/c d/file with spaces.txt")?.slice(1, 6)).toEqual(["f", "0644", "0:0", "6", String(Date.UTC(2020, 0, 2, 3, 4, 5) / 1000)]);
    expect(entry("a/b/c d/file with spaces.txt")?.[6]).toBe("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    expect(entry("a/new\nline")?.[1]).toBe("f");
    expect(entry("a/Zoë 日本.txt")?.[2]).toBe("0600");
    expect(entry("a/odd-link")?.slice(1, 2).concat(entry("a/odd-link")![7]!)).toEqual(["l", hex("new\nline target")]);
    expect(entry("a/fifo")?.[1]).toBe("p");
    expect(entry("a/null-copy")?.[1]).toBe("c");
    expect(entry("sticky")?.[2]).toBe("1777");
    expect(entry("q'uote")?.slice(2, 4)).toEqual(["0700", "33:33"]);
    expect(manifest.listing!.entries).toBe(21);

    const r = await e.run("restore-drill");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/volume files: all 21 entries of the listing restored identically/);
    const report = await latestReport(e);
    expect(report.result).toBe("pass");
    expect(report.databases).toEqual([]);
    expect(report.globals).toBeNull();
    expect(report.volumes).toHaveLength(1);
    expect(report.volumes[0]).toMatchObject({
      volume: "files", manifestKey: mkey, objectKey: manifest.object.key, listingKey: manifest.listing!.key, sha256Ok: true,
      contentVerified: true, note: null, entries: { listed: 21, restored: 21 }, rpo: { ok: true }, rto: { ok: true }, result: "pass", failure: null,
    });
    expect(Object.keys(report.volumes[0]!.durations).sort()).toEqual(["compare", "download", "listing", "restore", "verify"]);
    await expectNothingLeft(e);
  });

  it("encrypted: the listing is encrypted like the tarball, and the drill decrypts both", async () => {
    await fill("secret", "echo top > /data/secret.txt && chmod 0400 /data/secret.txt");
    const e = host("venc", { volumes: ["secret"], ageRecipients: [key.recipient] });
    const b = await e.run("backup-volumes");
    expect(b.code, b.stderr).toBe(0);
    const { manifest } = await manifestOf(e, "secret");
    expect(manifest.listing!.key).toMatch(/\.listing\.zst\.age$/);
    expect((await getObject(access, manifest.listing!.key)).subarray(0, 21).toString()).toBe("age-encryption.org/v1");
    const r = await e.run("restore-drill", ["--identity", key.identityFile]);
    expect(r.code, r.stderr).toBe(0);
    expect((await latestReport(e)).volumes[0]).toMatchObject({ contentVerified: true, entries: { listed: 2, restored: 2 } });
    await expectNothingLeft(e);
  });

  it("a tarball that no longer matches its listing (manifest right for it) fails at stage compare, naming volume and path", async () => {
    await fill("changed");
    const e = host("vchg", { volumes: ["changed"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    await tamper(e, "changed", "chmod 0600 'a/b/c d/file with spaces.txt'");
    const r = await e.run("restore-drill");
    expect(r.code, r.stderr).toBe(1);
    expect(failedLine(r)).toMatch(/FAILED at stage compare: volume changed: path a\/b\/c d\/file with spaces\.txt: mode 0644 in the listing, 0600 restored$/);
    const report = await latestReport(e);
    expect(report.result).toBe("fail");
    expect(report.failure).toEqual({ stage: "compare", reason: "volume changed: path a/b/c d/file with spaces.txt: mode 0644 in the listing, 0600 restored" });
    expect(report.volumes[0]).toMatchObject({ sha256Ok: true, contentVerified: false, result: "fail", failure: { stage: "compare" } });
    await expectNothingLeft(e);
  });

  it("a backup without a listing (older backup-volumes) passes with \"content not verified\"", async () => {
    await fill("legacy", "mkdir -p /data/x && echo one > /data/x/one && echo two > /data/two");
    const e = host("vold", { volumes: ["legacy"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    const { key: mkey, manifest } = await manifestOf(e, "legacy");
    delete manifest.listing;
    await putObject(access, mkey, `${JSON.stringify(manifest, null, 2)}\n`);
    const r = await e.run("restore-drill");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/volume legacy: content not verified/);
    expect((await latestReport(e)).volumes[0]).toMatchObject({
      volume: "legacy", sha256Ok: true, contentVerified: false, listingKey: null, entries: { listed: null, restored: 4 },
      note: expect.stringMatching(/^content not verified: this backup has no listing/), result: "pass",
    });
    await expectNothingLeft(e);
  });

  it("a failing volume does not stop the next one nor the database, and the other way round", async () => {
    await fill("bad", "echo original > /data/f && mkdir /data/d");
    await fill("good", "echo fine > /data/g");
    const e = host("vmix", {
      volumes: ["bad", "nobackup", "good"],
      postgres: [{ via: "local", host: src.socketDir, port: src.port, user: "postgres", database: "app" }],
      drill: { runtime: "local", checks: ["SELECT count(*) > 0 FROM users"] },
    });
    const hourAgo = new Date(Math.floor(Date.now() / 1000 - 3600) * 1000);
    await fixtureGlobalsBackup({ bucket: access, host: "vmix", date: hourAgo, pg: src });
    await fixturePostgresBackup({ bucket: access, host: "vmix", date: hourAgo, pg: src, database: "app" });
    await fill("nobackup", "true");
    // back up only bad and good: nobackup has no restore point at all
    e.setOverrides({ RESTORABLE_VOLUMES: ["bad", "good"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    e.setOverrides({});
    await tamper(e, "bad", "echo tampered > f");

    const r = await e.run("restore-drill");
    expect(r.code, r.stderr).toBe(1);
    expect(failedLine(r)).toMatch(/FAILED at stage compare: volume bad: path f: sha256 [0-9a-f]{64} in the listing, [0-9a-f]{64} restored$/);
    const report = await latestReport(e);
    expect(report.globals).toMatchObject({ result: "pass" });
    expect(report.databases).toMatchObject([{ database: "app", result: "pass" }]);
    expect(report.volumes.map((v) => [v.volume, v.result, v.failure?.stage ?? null])).toEqual([
      ["bad", "fail", "compare"], ["nobackup", "fail", "find"], ["good", "pass", null],
    ]);
    expect(report.volumes[1]!.failure!.reason).toMatch(/^volume nobackup: no manifest-backed backup of volume nobackup/);
    await expectNothingLeft(e);

    // A database that fails (no restore point) does not stop the volumes; it is the first failure.
    e.setOverrides({ RESTORABLE_VOLUMES: ["good"], RESTORABLE_PG_DATABASE: ["ghost"] });
    const r2 = await e.run("restore-drill");
    expect(r2.code, r2.stderr).toBe(1);
    expect(failedLine(r2)).toMatch(/FAILED at stage find: no manifest-backed backup of database ghost/);
    const report2 = await latestReport(e);
    expect(report2.volumes).toMatchObject([{ volume: "good", result: "pass", contentVerified: true }]);
    await expectNothingLeft(e);
  }, 400_000); // two drills of a database and volumes: room on a busy machine (180 s timed out)

  it("also proves one older restore point per tier of a volume: never proven first, then the least recently proven", async () => {
    // Wed 2026-11-18: the promise (2 days, 2 weeks, 2 months) is kept by these backup-volumes runs,
    // whose tiers follow from the bucket (the first in a month is monthly, in a week weekly).
    await fill("hist", "echo v0 > /data/f");
    const e = host("volder", { volumes: ["hist"], retention: { daily: 2, weekly: 2, monthly: 2 } });
    const runs = ["2026-10-01", "2026-11-02", "2026-11-09", "2026-11-16", "2026-11-17", "2026-11-18"];
    for (const [i, day] of runs.entries()) {
      await d.dockerOk(["run", "--rm", "--network", "none", "-v", "hist:/data", toolImage, "sh", "-c", `echo v${i} > /data/f`]);
      const b = await e.run("backup-volumes", [], { now: `${day}T03:00:00Z` });
      expect(b.code, b.stderr).toBe(0);
    }
    const manifests = (await listKeys(access, "volder/")).map((x) => x.key).filter((k) => k.endsWith(".manifest.json")).sort((a, b) => a.split("/").pop()!.localeCompare(b.split("/").pop()!));
    expect(manifests.map((k) => k.split("/")[1])).toEqual(["monthly", "monthly", "weekly", "weekly", "daily", "daily"]);
    const [oct, nov, w09, w16, d17] = manifests;
    // The October backup as one made before listings existed.
    const legacy = JSON.parse((await getObject(access, oct!)).toString("utf8")) as VolumeManifest;
    delete legacy.listing;
    await putObject(access, oct!, `${JSON.stringify(legacy, null, 2)}\n`);

    const at = (now: string) => e.run("restore-drill", [], { now });
    const first = await at("2026-11-18T06:00:00Z");
    expect(first.code, first.stderr).toBe(0);
    const r1 = await latestReport(e);
    expect(r1.volumes).toMatchObject([{ volume: "hist", manifestKey: manifests[5], contentVerified: true, rpo: { ok: true }, result: "pass" }]);
    expect(r1.olderPoints.map((p) => [p.volume, p.tier, p.result, p.chosenBecause])).toEqual([
      ["hist", "daily", "pass", "never proven by a drill"], ["hist", "weekly", "pass", "never proven by a drill"], ["hist", "monthly", "pass", "never proven by a drill"],
    ]);
    expect(r1.olderPoints[0]!.manifestKey).toBe(d17);
    expect([w09, w16]).toContain(r1.olderPoints[1]!.manifestKey);
    expect([oct, nov]).toContain(r1.olderPoints[2]!.manifestKey);
    for (const p of r1.olderPoints) {
      expect(p).toMatchObject({ sha256Ok: true });
      expect(Object.keys(p)).not.toContain("rto"); // the RTO stays the newest restore's
      expect(p.entries.restored).toBe(2);
    }
    expect(r1.retention).toMatchObject({ result: "pass" });
    expect(first.stderr).toContain("drill passed for 1 volume(s) and 3 older restore point(s)");

    const second = await at("2026-11-18T06:10:00Z");
    expect(second.code, second.stderr).toBe(0);
    const r2 = await latestReport(e);
    // The other weekly and monthly were never proven; the only older daily was, by the first drill.
    expect(r2.olderPoints[0]!.chosenBecause).toBe(`the least recently proven (last proven by the drill of ${r1.startedAt})`);
    expect(r2.olderPoints.slice(1).map((p) => p.chosenBecause)).toEqual(["never proven by a drill", "never proven by a drill"]);
    const monthlies = [r1.olderPoints[2]!, r2.olderPoints[2]!];
    expect(monthlies.map((p) => p.manifestKey).sort()).toEqual([oct, nov].sort());
    // Each older tarball is compared with its own listing; the one without: extracted and counted.
    expect(monthlies.find((p) => p.manifestKey === oct)).toMatchObject({
      contentVerified: false, listingKey: null, note: expect.stringMatching(/^content not verified: this backup has no listing/), result: "pass",
    });
    expect(monthlies.find((p) => p.manifestKey === nov)).toMatchObject({ contentVerified: true, entries: { listed: 2, restored: 2 } });
    expect(second.stderr).toMatch(/volume hist: older monthly restore point \d{8}T\d{6}Z passed/);

    // A broken older point fails the drill (the newest still passes), named in olderPoints.
    const weekly1 = JSON.parse((await getObject(access, r1.olderPoints[1]!.manifestKey!)).toString("utf8")) as VolumeManifest;
    await corruptObject(access, weekly1.object.key);
    const third = await at("2026-11-18T06:20:00Z");
    expect(third.code, third.stderr).toBe(1);
    expect(failedLine(third)).toMatch(new RegExp(`FAILED at stage verify: volume hist: sha256 mismatch for s3://${BUCKET}/${weekly1.object.key.replace(/[.]/g, "\\.")}`));
    const r3 = await latestReport(e);
    expect(r3.volumes[0]).toMatchObject({ result: "pass" });
    expect(r3.olderPoints.find((p) => p.tier === "weekly")).toMatchObject({ manifestKey: r1.olderPoints[1]!.manifestKey, result: "fail", sha256Ok: false, failure: { stage: "verify" } });
    await expectNothingLeft(e);
  }, 600_000); // three drills of four volume restores each

  it("restore --volume compares with the listing before touching the target; a mismatch fails naming volume and path", async () => {
    await fill("rsrc", "mkdir /data/d && echo one > /data/d/one && echo two > /data/two && chmod 0640 /data/two");
    const e = host("vrestore", { volumes: ["rsrc"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    const volumes = async () => (await d.dockerOk(["volume", "ls", "-q"])).stdout.split("\n").filter(Boolean);
    const content = async (v: string) =>
      (await d.dockerOk(["run", "--rm", "--network", "none", "-v", `${v}:/data:ro`, toolImage, "sh", "-c", "cd /data && find . | sort && cat two"])).stdout;

    // A good backup: compared in a staging volume, then restored; the staging volume is gone.
    const ok = await e.run("restore", ["--volume", "rsrc", "--target-volume", "rgood"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/Restored volume rsrc into rgood from \d{8}T\d{6}Z \((daily|weekly|monthly)\): \d+ entries, all 4 entries identical to the listing recorded at backup time;/);
    expect(await content("rgood")).toBe(await content("rsrc"));

    // The tarball no longer matches its listing (its manifest right for it).
    await tamper(e, "rsrc", "chmod 0600 two");
    const fresh = await e.run("restore", ["--volume", "rsrc", "--target-volume", "rnew"]);
    expect(fresh.code, fresh.stderr).toBe(1);
    expect(failedLine(fresh)).toMatch(/FAILED at stage compare: volume rsrc: path two: mode 0640 in the listing, 0600 restored \(volume rnew not touched\)$/);
    expect(await volumes()).not.toContain("rnew");
    // --force over a volume with content: refused by the comparison before its content is deleted.
    await fill("rkeep", "echo mine > /data/two");
    const before = await content("rkeep");
    const forced = await e.run("restore", ["--volume", "rsrc", "--target-volume", "rkeep", "--force"]);
    expect(forced.code).toBe(1);
    expect(failedLine(forced)).toMatch(/FAILED at stage compare: volume rsrc: path two: mode 0640/);
    expect(await content("rkeep")).toBe(before);

    // A backup without a listing is restored, "content not verified".
    const { key: mkey, manifest } = await manifestOf(e, "rsrc");
    delete manifest.listing;
    await putObject(access, mkey, `${JSON.stringify(manifest, null, 2)}\n`);
    const legacy = await e.run("restore", ["--volume", "rsrc", "--target-volume", "rlegacy"]);
    expect(legacy.code, legacy.stderr).toBe(0);
    expect(legacy.stdout).toMatch(/into rlegacy .* content not verified: this backup has no listing/);
    expect(await dockerLeftovers()).toEqual([]);
    expect(e.leftovers()).toEqual([]);
    for (const v of ["rgood", "rkeep", "rlegacy"]) await d.dockerOk(["volume", "rm", v]);
  });

  it("removes the throwaway volume a SIGKILLed drill left behind (by its labels), and only this host's", async () => {
    const e = host("vreap", { volumes: ["good"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    const labels = (h: string) => ["--label", "restorable.drill=20261201T050000Z-1", "--label", `restorable.host=${h}`, "--label", "restorable.role=volume"];
    await d.dockerOk(["volume", "create", ...labels("vreap"), "restorable-drill-20261201T050000Z-1-v0"]);
    await d.dockerOk(["volume", "create", ...labels("other-host"), "restorable-drill-other"]);
    const r = await e.run("restore-drill");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removing throwaway volume\(s\) an interrupted drill left behind: restorable-drill-20261201T050000Z-1-v0/);
    expect(await dockerLeftovers()).toEqual(["restorable-drill-other"]);
    await d.dockerOk(["volume", "rm", "restorable-drill-other"]);
    await expectNothingLeft(e);
  });

  it("interrupted (SIGTERM) while a volume is in its throwaway volume: the volume and its containers are removed", async () => {
    await fill("slow", "dd if=/dev/urandom of=/data/big bs=1M count=40 2>/dev/null && mkdir /data/d && echo x > /data/d/x");
    const e = host("vterm", { volumes: ["slow"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    const child = e.spawn("restore-drill");
    const drilling = follow(child);
    let seen = false;
    for (let i = 0; i < 600 && !seen && child.exitCode === null; i++) {
      seen = (await d.dockerOk(["volume", "ls", "-q", "--filter", "label=restorable.host=vterm"])).stdout.trim() !== "";
      if (!seen) await new Promise((res) => setTimeout(res, 50));
    }
    expect(seen, drilling.stderr).toBe(true);
    child.kill("SIGTERM");
    expect(await drilling.exited).toBe(1);
    expect(failedLine(drilling)).toMatch(/FAILED at stage (restore|listing|compare): interrupted by SIGTERM/);
    await expectNothingLeft(e);
    const report = await latestReport(e);
    expect(report.result).toBe("fail");
  });

  it("backup-volumes: a listing that cannot be made fails the volume at stage listing, and no manifest names the tarball", async () => {
    // An image whose tar works but that has no sh to run the listing script with.
    const noSh = "restorable-test/busybox-no-sh:1";
    await d.dockerOk(["build", "-q", "-t", noSh, "-"], { input: `FROM ${toolImage}\nRUN rm /bin/sh\n` });
    await fill("nolist", "echo x > /data/x");
    const e = host("vnolist", { volumes: ["nolist"], volumeImage: noSh });
    const b = await e.run("backup-volumes");
    expect(b.code).toBe(1);
    expect(failedLine(b)).toMatch(/FAILED at stage listing: volume nolist: the volume listing exited with status 127: .*exec: "sh": executable file not found/);
    const keys = (await listKeys(access, "vnolist/")).map((k) => k.key);
    expect(keys.some((k) => k.endsWith(".tar.zst"))).toBe(true);
    expect(keys.filter((k) => k.endsWith(".manifest.json"))).toEqual([]);
    expect(e.leftovers()).toEqual([]);
  });

  it("--volume drills only that volume; an unconfigured one is a usage error", async () => {
    const e = host("vsel", { volumes: ["good", "nobackup"] });
    e.setOverrides({ RESTORABLE_VOLUMES: ["good"] });
    expect((await e.run("backup-volumes")).code).toBe(0);
    e.setOverrides({});
    const r = await e.run("restore-drill", ["--volume", "good"]);
    expect(r.code, r.stderr).toBe(0);
    expect((await latestReport(e)).volumes.map((v) => v.volume)).toEqual(["good"]);
    const bad = await run("bash", [e.scriptPath("restore-drill"), "--volume", "nope"], { env: e.env() });
    expect(bad.code).toBe(2);
    expect(failedLine(bad)).toMatch(/FAILED at stage usage: volume nope is not configured on vsel/);
    await expectNothingLeft(e);
  });
});
