// The pure fleet judgement (infra/plan/fleet-status.ts) and the SigV4 signer of the status CLI.
// The whole CLI runs against real backups in test/integration/status.test.ts.
import { describe, expect, it } from "vitest";
import { parseConfig, type RawConfig } from "../../infra/config";
import { buildPlan } from "../../infra/plan";
import { hostStatus, parseManifestKey, promiseCheck, walStatus, type HostBucketData } from "../../infra/plan/fleet-status";
import { S3Reader, signV4, uriEncode } from "../../infra/cli/s3-read";
import { operatorCredentials, readerFor } from "../../infra/cli/status";

const DAY = 86_400_000;
const at = (s: string) => Date.parse(s);

describe("SigV4 signer", () => {
  it("reproduces AWS's published S3 example (GET /test.txt with Range)", () => {
    // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "GET Object"
    const h = signV4({
      method: "GET",
      host: "examplebucket.s3.amazonaws.com",
      path: "/test.txt",
      query: {},
      headers: { range: "bytes=0-9" },
      payloadHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      region: "us-east-1",
      credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
      amzDate: "20130524T000000Z",
    });
    expect(h.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
  });
  it("encodes like RFC 3986 (UTF-8, unreserved kept, / only in paths)", () => {
    expect(uriEncode("a b/ü~*", true)).toBe("a%20b/%C3%BC~%2A");
    expect(uriEncode("web-1/")).toBe("web-1%2F");
  });
});

describe("which store, which key", () => {
  const planFor = (storage: RawConfig["storage"]) =>
    buildPlan(parseConfig({ storage, objectives: { rpo: "24h", rto: "1h" }, hosts: [{ name: "web-1", ssh: { host: "192.0.2.1" }, volumes: ["vol"] }] }));
  const creds = { accessKeyId: "a", secretAccessKey: "s" };
  it("aws and b2: virtual-hosted requests at the derived endpoint; s3 and dotted buckets: path style", () => {
    const aws = readerFor(planFor({ provider: "aws", bucket: "acme-backups", region: "eu-central-1" }), creds);
    expect(aws.url("", { "list-type": "2", prefix: "web-1/" }).url).toBe("https://acme-backups.s3.eu-central-1.amazonaws.com/?list-type=2&prefix=web-1%2F");
    const b2 = readerFor(planFor({ provider: "b2", bucket: "acme-backups", region: "us-west-002" }), creds);
    expect(b2.url("web-1/drills/20261201T050000Z.json").url).toBe("https://acme-backups.s3.us-west-002.backblazeb2.com/web-1/drills/20261201T050000Z.json");
    const dotted = readerFor(planFor({ provider: "aws", bucket: "acme.backups", region: "us-east-1" }), creds);
    expect(dotted.url("k").url).toBe("https://s3.us-east-1.amazonaws.com/acme.backups/k");
    const generic = new S3Reader({ endpoint: "https://s3.example.net/base", region: "us-east-1", bucket: "bk", credentials: creds, pathStyle: true });
    expect(generic.url("a b/c").url).toBe("https://s3.example.net/base/bk/a%20b/c");
  });
  it("operator credentials come from the provider's environment variables only", () => {
    expect(operatorCredentials("b2", { B2_APPLICATION_KEY_ID: "id", B2_APPLICATION_KEY: "k", AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y" })).toEqual({ accessKeyId: "id", secretAccessKey: "k" });
    expect(operatorCredentials("aws", { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y", AWS_SESSION_TOKEN: "t" })).toEqual({ accessKeyId: "x", secretAccessKey: "y", sessionToken: "t" });
    expect(() => operatorCredentials("b2", { AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y" })).toThrow(/set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY in the environment/);
    expect(() => operatorCredentials("s3", { AWS_ACCESS_KEY_ID: "x" })).toThrow(/set AWS_SECRET_ACCESS_KEY in the environment/);
  });
});

describe("retention promise from restore point dates", () => {
  const r = { daily: 7, weekly: 4, monthly: 12 };
  const daysBack = (now: number, ks: number[]) => ks.map((k) => now - k * DAY);
  const now = at("2026-12-10T12:00:00Z");

  it("a full year of daily backups keeps it", () => {
    const p = promiseCheck(daysBack(now, Array.from({ length: 400 }, (_, k) => k)), now, r);
    expect(p.ok).toBe(true);
    expect([p.daily.covered, p.weekly.covered, p.monthly.covered]).toEqual([7, 4, 12]);
  });
  it("counts the periods that end with yesterday (today's backup may not have run yet)", () => {
    const p = promiseCheck(daysBack(now, [1, 2, 3, 4, 5, 6, 7]), now, r);
    expect(p.daily).toEqual({ required: 7, covered: 7, pending: 0, missing: [] });
  });
  it("a missed day after the first restore point breaks it, named by date", () => {
    const p = promiseCheck(daysBack(now, [0, 1, 2, 4, 5, 6, 7, 8]), now, r);
    expect(p.ok).toBe(false);
    expect(p.daily.missing).toEqual(["2026-12-07"]);
  });
  it("periods before the oldest restore point are pending, not missed", () => {
    const p = promiseCheck(daysBack(now, [0, 1, 2]), now, r);
    expect(p.ok).toBe(true);
    expect(p.daily).toMatchObject({ covered: 2, pending: 5, missing: [] });
    expect(p.weekly).toMatchObject({ covered: 1, pending: 3 });
    expect(p.monthly).toMatchObject({ covered: 1, pending: 11 });
  });
  it("a month without any restore point is missed; weeks are ISO weeks named by their Monday", () => {
    // Points on Dec 10..4, then Oct 1 (nothing in November).
    const pts = [...daysBack(now, [0, 1, 2, 3, 4, 5, 6]), at("2026-10-01T03:00:00Z")];
    const p = promiseCheck(pts, now, r);
    expect(p.monthly.missing).toEqual(["2026-11"]);
    // Yesterday, Wed Dec 9, is in the week of Mon Dec 7; Dec 4..6 cover the week of Nov 30.
    expect(p.weekly.missing).toEqual(["week of 2026-11-23", "week of 2026-11-16"]);
  });
  it("nothing at all: everything pending (the RPO check reports the absence)", () => {
    expect(promiseCheck([], now, r)).toMatchObject({ ok: true, daily: { covered: 0, pending: 7 } });
  });
});

describe("host status", () => {
  const raw: RawConfig = {
    storage: { provider: "s3", bucket: "acme-backups", endpoint: "https://s3.example.net" },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [{ name: "web-1", ssh: { host: "192.0.2.1" }, postgres: [{ via: "local", database: "app" }], volumes: ["uploads"] }],
  };
  const plan = buildPlan(parseConfig(raw));
  const now = at("2026-12-10T12:00:00Z");
  const manifest = (kind: string, created: string, size: number) => ({ format: 1, kind, createdAt: created, object: { key: "k", size, sha256: "x" }, durationSeconds: 2.5 });
  function data(entries: [string, unknown, number][], reports: [string, unknown][] = []): HostBucketData {
    return { objects: entries.map(([key, , size]) => ({ key, size })), manifests: new Map(entries.filter(([, m]) => m !== undefined).map(([k, m]) => [k, m])), reports: new Map(reports) };
  }
  const pass = { startedAt: "2026-12-01T05:00:00Z", finishedAt: "2026-12-01T05:00:05Z", result: "pass", failure: null, databases: [{ database: "app", result: "pass", rto: { achievedSeconds: 2.1, targetSeconds: 3600, ok: true }, failure: null }] };

  it("judges each item and the drill, and adds up the bytes per tier", () => {
    const s = hostStatus(
      plan,
      "web-1",
      data(
        [
          ["web-1/daily/postgres/app/20261210T030000Z.dump.zst", undefined, 1000],
          ["web-1/daily/postgres/app/20261210T030000Z.manifest.json", manifest("postgres", "2026-12-10T03:00:00Z", 1000), 300],
          ["web-1/monthly/globals/20261201T030000Z.sql.zst", undefined, 50],
          ["web-1/monthly/globals/20261201T030000Z.manifest.json", manifest("globals", "2026-12-01T03:00:00Z", 50), 200],
          ["web-1/daily/volumes/uploads/20261210T040000Z.tar.zst", undefined, 70], // no manifest: not a restore point
          ["web-1/drills/20261201T050000Z.json", undefined, 900],
        ],
        [["web-1/drills/20261201T050000Z.json", pass]],
      ),
      now,
    );
    const byId = Object.fromEntries(s.items.map((i) => [i.id, i]));
    expect(Object.keys(byId)).toEqual(["postgres/app", "globals", "volume/uploads"]);
    expect(byId["postgres/app"]).toMatchObject({ ok: true, rpo: { achievedSeconds: 9 * 3600, ok: true }, newest: { tier: "daily", sizeBytes: 1000, durationSeconds: 2.5 } });
    expect(byId.globals).toMatchObject({ ok: false, rpo: { ok: false }, restorePoints: { daily: 0, weekly: 0, monthly: 1 } });
    expect(byId["volume/uploads"]).toMatchObject({ ok: false, newest: null, rpo: { achievedSeconds: null, ok: false } });
    expect(s.drill).toMatchObject({ scheduled: true, ok: true, overdue: false, last: { result: "pass" } });
    expect(s.storage.bytes).toEqual({ daily: 1370, weekly: 0, monthly: 250, drills: 900, other: 0, total: 2520 });
    expect(s.storage.withoutManifest).toBe(1);
    expect(s.storage.unreadableManifests).toEqual([]);
    expect(s.wal).toEqual({ enabled: false, archiveAgeSeconds: null, clusters: [], ok: true });
    expect(s.ok).toBe(false);
    expect(s.problems).toEqual([
      "web-1 roles (globals): newest restore point is 9d9h old (2026-12-01T03:00:00Z), RPO 1d",
      "web-1 roles (globals): retention promise broken: no restore point for 2026-12-09, 2026-12-08, 2026-12-07, 2026-12-06, 2026-12-05, 2026-12-04, 2026-12-03",
      "web-1 roles (globals): retention promise broken: no restore point for week of 2026-12-07",
      "web-1 volume uploads: no restore point in the bucket",
    ]);
  });

  it("a manifest that is not JSON is no restore point, and a problem", () => {
    const s = hostStatus(plan, "web-1", data([["web-1/daily/postgres/app/20261210T030000Z.manifest.json", undefined, 10]]), now);
    expect(s.items[0]!.newest).toBeNull();
    expect(s.storage.unreadableManifests).toEqual(["web-1/daily/postgres/app/20261210T030000Z.manifest.json"]);
    expect(s.problems).toContain("web-1: 1 manifest(s) are not readable JSON (not restore points): web-1/daily/postgres/app/20261210T030000Z.manifest.json");
  });

  it("a failed drill names its stage; an old one is overdue; none at all is a miss", () => {
    const failed = { ...pass, result: "fail", failure: { stage: "rpo", reason: "newest backup is 3d old" } };
    expect(hostStatus(plan, "web-1", data([], [["web-1/drills/x.json", failed]]), now).problems).toContain(
      "web-1 drill: last drill (2026-12-01T05:00:00Z) fail at stage rpo: newest backup is 3d old",
    );
    const old = hostStatus(plan, "web-1", data([], [["web-1/drills/x.json", { ...pass, startedAt: "2026-10-01T05:00:00Z" }]]), now);
    expect(old.drill).toMatchObject({ overdue: true, ok: false, maxAgeSeconds: 31 * 86400 + 3600 + 3600 });
    expect(hostStatus(plan, "web-1", data([]), now).problems).toContain("web-1 drill: no restore drill report in the bucket");
  });

  it("parses only contract manifest keys", () => {
    expect(parseManifestKey("web-1", "web-1/weekly/postgres/app/20261206T030000Z.manifest.json")).toMatchObject({ tier: "weekly", kind: "postgres", name: "app" });
    expect(parseManifestKey("web-1", "web-1/daily/volumes/v1/20261206T030000Z.manifest.json")).toMatchObject({ kind: "volume", name: "v1" });
    expect(parseManifestKey("web-1", "web-1/daily/globals/20261206T030000Z.manifest.json")).toMatchObject({ kind: "globals", name: null });
    expect(parseManifestKey("web-1", "web-1/hourly/globals/20261206T030000Z.manifest.json")).toBeUndefined();
    expect(parseManifestKey("web-1", "web-10/daily/globals/20261206T030000Z.manifest.json")).toBeUndefined();
    expect(parseManifestKey("web-1", "web-1/drills/20261206T030000Z.json")).toBeUndefined();
  });
});

describe("the WAL archive (hosts[].pitr) against the RPO", () => {
  const plan = buildPlan(
    parseConfig({
      storage: { provider: "s3", bucket: "bkt", region: "us-east-1", endpoint: "https://s3.example.net" },
      objectives: { rpo: "1h", rto: "1h" },
      hosts: [
        {
          name: "db-1",
          ssh: { host: "192.0.2.1" },
          postgres: [
            { via: "compose", project: "/srv/app", service: "db", user: "app", database: "app" },
            { via: "compose", project: "/srv/app", service: "db", user: "app", database: "other" },
            { via: "container", container: "pg2", user: "postgres", database: "crm" },
          ],
          schedule: { backup: "0 * * * *" },
          pitr: { enabled: true },
        },
        { name: "web-1", ssh: { host: "192.0.2.2" }, schedule: { backup: "0 * * * *" }, postgres: [{ via: "container", container: "pg", user: "postgres", database: "app" }] },
      ],
    }),
  );
  const now = at("2026-12-10T12:00:00Z");
  const seg = (cluster: string, name: string, lastModified: string, size = 100) => ({ key: `db-1/wal/${cluster}/${name}`, size, lastModified });

  it("per cluster: the newest segment by LastModified, its age against the RPO; history files and other names do not count", () => {
    const problems: string[] = [];
    const w = walStatus(plan, "db-1", [
      seg("app-db", "000000010000000000000001.zst", "2026-12-10T11:00:00Z"),
      seg("app-db", "000000010000000000000002.zst.age", "2026-12-10T11:40:00Z"),
      seg("app-db", "00000002.history.zst", "2026-12-10T11:59:00Z"), // not a segment
      seg("app-db", "000000010000000000000003.partial.zst", "2026-12-10T11:59:30Z"), // not wal-archiver's
      seg("pg2", "000000010000000000000009.zst", "2026-12-10T09:30:00Z"),
      { key: "db-1/daily/postgres/app/20261210T030000Z.dump.zst", size: 5, lastModified: "2026-12-10T11:59:59Z" },
    ], now, problems);
    expect(w.enabled).toBe(true);
    expect(w.clusters.map((c) => c.cluster)).toEqual(["app-db", "pg2"]);
    expect(w.clusters[0]).toEqual({
      cluster: "app-db",
      newest: { segment: "000000010000000000000002", key: "db-1/wal/app-db/000000010000000000000002.zst.age", lastModified: "2026-12-10T11:40:00Z", ageSeconds: 1200 },
      rpo: { achievedSeconds: 1200, targetSeconds: 3600, ok: true },
      segments: 2,
      bytes: 200,
      ok: true,
    });
    expect(w.clusters[1]).toMatchObject({ cluster: "pg2", rpo: { achievedSeconds: 9000, ok: false }, ok: false });
    expect(w.archiveAgeSeconds).toBe(9000);
    expect(w.ok).toBe(false);
    expect(problems).toEqual(["db-1 WAL archive of cluster pg2: newest segment 000000010000000000000009 was archived 2h30m ago (2026-12-10T09:30:00Z), RPO 1h"]);
  });

  it("a cluster with no segment misses the RPO; a host without pitr has no WAL verdict", () => {
    const problems: string[] = [];
    const w = walStatus(plan, "db-1", [seg("app-db", "000000010000000000000001.zst", "2026-12-10T11:59:00Z")], now, problems);
    expect(w.clusters[1]).toEqual({ cluster: "pg2", newest: null, rpo: { achievedSeconds: null, targetSeconds: 3600, ok: false }, segments: 0, bytes: 0, ok: false });
    expect(w.archiveAgeSeconds).toBeNull();
    expect(problems).toEqual(["db-1 WAL archive of cluster pg2: no archived WAL segment under db-1/wal/pg2/ (is wal-archiver running?)"]);
    expect(walStatus(plan, "web-1", [seg("app-db", "000000010000000000000001.zst", "2026-12-10T11:59:00Z")], now)).toEqual({ enabled: false, archiveAgeSeconds: null, clusters: [], ok: true });
  });

  it("a missed WAL RPO makes the host miss its objectives", () => {
    const data: HostBucketData = { objects: [seg("app-db", "000000010000000000000001.zst", "2026-12-09T11:00:00Z"), seg("pg2", "000000010000000000000001.zst", "2026-12-10T11:59:00Z")], manifests: new Map(), reports: new Map() };
    const h = hostStatus(plan, "db-1", data, now);
    expect(h.wal.clusters.map((c) => c.ok)).toEqual([false, true]);
    expect(h.ok).toBe(false);
    expect(h.problems).toContain("db-1 WAL archive of cluster app-db: newest segment 000000010000000000000001 was archived 1d1h ago (2026-12-09T11:00:00Z), RPO 1h");
  });
});
