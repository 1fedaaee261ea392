// PITR config and plan: the `pitr` section's defaults and errors (each naming its key), the
// object layout of the WAL archive and the base backups, the WAL lifecycle rule in the S3 and B2
// forms, and a retention simulation that checks, hour by hour over years and with missed
// base-backup runs, that every second of the window stays restorable: the newest base backup
// that ended before it, and every WAL segment after that base backup, are still in the bucket.
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig, type RawConfig } from "../../infra/config";
import { firings, parseCron } from "../../infra/config/cron";
import { baseBackupKeepSeconds, pitrClusters } from "../../infra/config/pitr";
import { baseBackupKeys, buildPlan, tierFor, utcStamp, walKey, type Plan } from "../../infra/plan";
import { installPlan } from "../../infra/plan/install";
import { placeholderSecrets, renderHost } from "../../infra/plan/render";

function cfg(pitr: unknown, extra: (c: any) => void = () => undefined): RawConfig { // eslint-disable-line @typescript-eslint/no-explicit-any
  const c: any = { // eslint-disable-line @typescript-eslint/no-explicit-any
    storage: { provider: "b2", bucket: "acme-prod-backups", region: "us-west-002" },
    objectives: { rpo: "1m", rto: "1h" },
    hosts: [
      {
        name: "web-1",
        ssh: { host: "203.0.113.10" },
        postgres: [
          { via: "compose", project: "/srv/app", service: "db", user: "app", database: "app" },
          { via: "compose", project: "/srv/app", service: "db", user: "app", database: "crm" },
          { via: "local", port: 5433, database: "ledger" },
        ],
        pitr,
      },
    ],
  };
  extra(c);
  return c as RawConfig;
}

function errorOf(raw: RawConfig): string {
  try {
    parseConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("config was accepted");
}

describe("pitr config", () => {
  it("fills defaults: 7d window, weekly base backups on Sunday 02:00, 4GB server WAL limit", () => {
    const h = parseConfig(cfg({})).hosts[0]!;
    expect(h.pitr).toEqual({ enabled: true, window: 7 * 86400, baseBackup: "0 2 * * 0", serverWalLimit: "4GB" });
  });

  it("without pitr, an RPO shorter than the dump schedule is an error; with it, the archive meets the RPO", () => {
    expect(errorOf(cfg(undefined))).toMatch(/restorable:hosts\[0\]\.schedule\.backup: "0 3 \* \* \*" leaves up to 1d between backups, which cannot meet restorable:objectives\.rpo 1m/);
    expect(errorOf(cfg({ enabled: false }))).toMatch(/schedule\.backup: .*cannot meet restorable:objectives\.rpo 1m/);
    expect(() => parseConfig(cfg({}))).not.toThrow();
  });

  it("still holds volumes to the RPO: the WAL archive covers only the databases", () => {
    expect(errorOf(cfg({}, (c) => (c.hosts[0].volumes = ["uploads"])))).toMatch(/restorable:hosts\[0\]\.schedule\.volumes: .*cannot meet restorable:objectives\.rpo 1m/);
  });

  it.each([
    ["a window longer than the base backups' retention", { window: "30d" }, /restorable:hosts\[0\]\.pitr\.window: 30d is longer than the retention keeps the base backups of "0 2 \* \* 0" \(28d/],
    ["a base-backup gap the retention cannot cover", { window: "3d", baseBackup: "0 2 * * 1,4" }, /restorable:hosts\[0\]\.pitr\.baseBackup: "0 2 \* \* 1,4" leaves up to 4d between base backups: window 3d plus two gaps \(one missed run tolerated\) needs base backups kept 11d, but their shortest tier keeps them 7d/],
    ["daily base backups in the daily tier with a 7d window", { baseBackup: "0 2 * * *" }, /restorable:hosts\[0\]\.pitr\.baseBackup: "0 2 \* \* \*" leaves up to 1d .* needs base backups kept 9d, but their shortest tier keeps them 7d/],
    ["a window that is not a duration", { window: "a week" }, /restorable:hosts\[0\]\.pitr\.window: "a week" is not a duration/],
    ["a bad cron", { baseBackup: "0 2 * *" }, /restorable:hosts\[0\]\.pitr\.baseBackup: "0 2 \* \*" is not a 5-field cron expression/],
    ["a base backup that almost never runs", { baseBackup: "0 0 30 2 *" }, /restorable:hosts\[0\]\.pitr\.baseBackup: "0 0 30 2 \*" fires less than twice in eight years/],
    ["a server WAL limit that is not a size", { serverWalLimit: "lots" }, /restorable:hosts\[0\]\.pitr\.serverWalLimit: "lots" is not a size like 512MB/],
    ["a server WAL limit too small", { serverWalLimit: "64MB" }, /restorable:hosts\[0\]\.pitr\.serverWalLimit: "64MB" is below 256MB/],
    ["an unknown key", { windw: "7d" }, /restorable:hosts\[0\]\.pitr: unknown key "windw"/],
  ])("rejects %s, naming the key", (_name, pitr, re) => {
    expect(errorOf(cfg(pitr))).toMatch(re);
  });

  it("rejects an RPO the archive cannot meet, and PITR on a host without postgres", () => {
    expect(errorOf(cfg({}, (c) => (c.objectives.rpo = "10s")))).toMatch(/restorable:objectives\.rpo: with PITR the WAL archive meets an RPO of 30s or more, not 10s/);
    expect(errorOf(cfg({}, (c) => ((c.hosts[0].postgres = []), (c.hosts[0].volumes = ["v"]), (c.objectives.rpo = "1d"))))).toMatch(/restorable:hosts\[0\]\.pitr: PITR needs at least one postgres source/);
  });

  it("accepts a longer window with more retention, and daily base backups with a shorter window", () => {
    expect(() => parseConfig(cfg({ window: "30d", baseBackup: "0 2 * * 0" }, (c) => (c.retention = { weekly: 8 })))).not.toThrow();
    expect(() => parseConfig(cfg({ window: "5d", baseBackup: "0 2 * * *" }))).not.toThrow();
  });

  it("a base backup's shortest keep follows the tier its runs land in", () => {
    const r = { daily: 7, weekly: 4, monthly: 12 };
    expect(baseBackupKeepSeconds("0 2 * * 0", r)).toBe(28 * 86400); // Sundays: weekly, or monthly on the 1st
    expect(baseBackupKeepSeconds("0 2 * * *", r)).toBe(7 * 86400);
    expect(baseBackupKeepSeconds("0 2 1 * *", r) / 86400).toBeGreaterThan(360);
  });
});

describe("pitr plan: layout, clusters and lifecycle rules", () => {
  it("sources on one cluster share one archive; the cluster names are key-safe", () => {
    const h = parseConfig(cfg({})).hosts[0]!;
    expect(pitrClusters(h.postgres)).toEqual([
      { name: "app-db", source: 0, sources: [0, 1] },
      { name: "127.0.0.1-5433", source: 2, sources: [2] },
    ]);
  });

  it("keys: WAL by timeline and segment, base backups in the tier with a manifest", () => {
    expect(walKey("web-1", "app-db", "000000010000000000000003", { encrypted: false })).toBe("web-1/wal/app-db/000000010000000000000003.zst");
    expect(walKey("web-1", "app-db", "00000002.history", { encrypted: true })).toBe("web-1/wal/app-db/00000002.history.zst.age");
    expect(() => walKey("web-1", "app-db", "../x", { encrypted: false })).toThrow(/not a WAL segment/);
    expect(baseBackupKeys("web-1", "weekly", "app-db", new Date(Date.UTC(2026, 10, 29, 2)), { encrypted: true })).toEqual({
      object: "web-1/weekly/base/app-db/20261129T020000Z.tar.zst.age",
      manifest: "web-1/weekly/base/app-db/20261129T020000Z.manifest.json",
    });
  });

  it("adds one WAL rule per PITR host to the S3 and B2 lifecycle forms, and says so in the summary", () => {
    const plan = buildPlan(parseConfig(cfg({})));
    expect(plan.hosts[0]!.pitr?.walExpireDays).toBe(21); // 7d window + 2 x 7d
    expect(plan.lifecycle.s3.Rules.filter((r) => r.ID === "web-1-wal")).toEqual([
      { ID: "web-1-wal", Status: "Enabled", Filter: { Prefix: "web-1/wal/" }, Expiration: { Days: 21 }, NoncurrentVersionExpiration: { NoncurrentDays: 1 } },
    ]);
    // The housekeeping rule (aborted multipart uploads) covers the WAL prefix too.
    expect(plan.lifecycle.s3.Rules.find((r) => r.ID === "web-1-housekeeping")?.Filter.Prefix).toBe("web-1/");
    expect(plan.lifecycle.b2.filter((r) => r.fileNamePrefix === "web-1/wal/")).toEqual([
      { fileNamePrefix: "web-1/wal/", daysFromUploadingToHiding: 21, daysFromHidingToDeleting: 1, daysFromStartingToCancelingUnfinishedLargeFiles: 2 },
    ]);
    // Every WAL key matches exactly one expiring S3 rule (tier rules never match it).
    const key = walKey("web-1", "app-db", "000000010000000000000003", { encrypted: false });
    expect(plan.lifecycle.s3.Rules.filter((r) => key.startsWith(r.Filter.Prefix) && r.Expiration && "Days" in r.Expiration).map((r) => r.ID)).toEqual(["web-1-wal"]);
    expect(plan.summary.join("\n")).toMatch(/met by the continuous WAL archive \(PITR\)/);
    expect(plan.summary.join("\n")).toMatch(/PITR: every second of the last 7d restorable: WAL of app-db, 127\.0\.0\.1-5433 .* within 1m/);
    const off = buildPlan(parseConfig(cfg({}, (c) => ((c.objectives.rpo = "1d"), delete c.hosts[0].pitr))));
    expect(off.lifecycle.s3.Rules.some((r) => r.ID.endsWith("-wal"))).toBe(false);
    expect(off.hosts[0]!.pitr).toBeUndefined();
  });

  it("counts the WAL rule in B2's 100-rule limit", () => {
    const many = (n: number) =>
      cfg({}, (c) => {
        c.hosts = Array.from({ length: n }, (_, i) => ({ ...c.hosts[0], name: `h${i}`, ssh: { host: `203.0.113.${i + 1}` } }));
      });
    expect(() => parseConfig(many(20))).not.toThrow();
    expect(errorOf(many(21))).toMatch(/restorable:hosts: B2 allows 100 lifecycle rules .* these hosts need 105/);
  });
});

describe("pitr on the host: cron lines and uninstall", () => {
  it("cron runs backup-base on its schedule and the archiver every minute; uninstall stops it and drops the slots first", () => {
    const plan = buildPlan(parseConfig(cfg({})));
    const h = plan.hosts[0]!;
    const rendered = renderHost(plan, h, placeholderSecrets(h));
    expect(rendered.crontab).toMatch(/^0 2 \* \* 0 .*'\/opt\/restorable\/backup-base' >>/m);
    expect(rendered.crontab).toMatch(/^\* \* \* \* \* .*'\/opt\/restorable\/wal-archiver' >>/m);
    const conf = rendered.files.find((f) => f.path.endsWith("/restorable.conf"))!.content;
    expect(conf).toContain("RESTORABLE_PITR_CLUSTER=('app-db' '127.0.0.1-5433')");
    expect(conf).toContain("RESTORABLE_PITR_SLOT=('restorable_app_db' 'restorable_127_0_0_1_5433')");
    const un = installPlan(rendered, h).uninstall;
    expect(un).toContain('"/opt/restorable/pitr-uninstall"');
    expect(un.indexOf("pitr-uninstall")).toBeLessThan(un.indexOf("A run in progress"));
    const off = buildPlan(parseConfig(cfg(undefined, (c) => (c.objectives.rpo = "1d"))));
    const offRendered = renderHost(off, off.hosts[0]!, placeholderSecrets(off.hosts[0]!));
    expect(offRendered.crontab).not.toMatch(/wal-archiver|backup-base/);
    expect(installPlan(offRendered, off.hosts[0]!).uninstall).not.toContain("1b. PITR");
  });
});

// ------------------------------------------------------------------------------ the simulation

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** When the store removes an object with `days`: creation + days, rounded up to the next UTC midnight. */
const removal = (created: number, days: number) => Math.floor((created + days * DAY) / DAY) * DAY + DAY;

function expiryFor(plan: Plan, form: "s3" | "b2", key: string): number {
  if (form === "s3") {
    const m = plan.lifecycle.s3.Rules.filter((r) => key.startsWith(r.Filter.Prefix) && r.Expiration && "Days" in r.Expiration);
    if (m.length !== 1) throw new Error(`${m.length} rules match ${key}`);
    return (m[0]!.Expiration as { Days: number }).Days;
  }
  const m = plan.lifecycle.b2.filter((r) => key.startsWith(r.fileNamePrefix));
  if (m.length !== 1) throw new Error(`${m.length} B2 rules match ${key}`);
  return m[0]!.daysFromUploadingToHiding!;
}

interface PitrSim {
  window: string;
  baseBackup: string;
  retention?: RawConfig["retention"];
  form: "s3" | "b2";
  /** Which base-backup runs fail (by run number). */
  missed: (run: number) => boolean;
  days: number;
  /** How long a base backup takes (its objects are uploaded at the end). */
  baseMinutes: number;
}

function simulatePitr(o: PitrSim): { violations: string[]; checks: number } {
  const plan = buildPlan(parseConfig(cfg({ window: o.window, baseBackup: o.baseBackup }, (c) => (c.retention = o.retention ?? {}))));
  const p = plan.hosts[0]!.pitr!;
  const walDays = expiryFor(plan, o.form, walKey("web-1", "app-db", "000000010000000000000001", { encrypted: false }));
  const start = Date.UTC(2027, 0, 1);
  const end = start + o.days * DAY;
  // Base backups: the schedule's runs, minus the missed ones; each lands in the tier its date calls for.
  const bases: { stop: number; removedAt: number }[] = [];
  let run = 0;
  const held: { tier: "daily" | "weekly" | "monthly"; stamp: string }[] = [];
  for (const t of firings(parseCron(o.baseBackup), start, end)) {
    if (o.missed(run++)) continue;
    const stop = t + o.baseMinutes * 60_000;
    const tier = tierFor(new Date(t), held);
    held.push({ tier, stamp: utcStamp(new Date(t)) });
    const key = baseBackupKeys("web-1", tier, "app-db", new Date(t), { encrypted: false }).object;
    bases.push({ stop, removedAt: removal(stop, expiryFor(plan, o.form, key)) });
  }
  // WAL: shipped continuously from `start`; a segment uploaded at u is gone at removal(u, walDays),
  // so at `now` the archive holds every segment uploaded after the last u with removal(u) <= now.
  const violations: string[] = [];
  let checks = 0;
  const warm = start + (p.window / 3600) * HOUR + 2 * p.baseGap * 1000 + 2 * DAY;
  // Hourly, plus just after each midnight (when the stores expire) and just before.
  for (let now = warm; now < end; now += HOUR) {
    for (const t of [now, now + 1000]) {
      checks++;
      const target = t - p.window * 1000; // the oldest second the window promises
      const base = bases.filter((b) => b.stop <= target && b.removedAt > t).pop();
      if (!base) {
        violations.push(`${new Date(t).toISOString()}: no base backup ended before ${new Date(target).toISOString()} is left`);
        continue;
      }
      // The WAL from the base's stop on: its first segment is uploaded after the stop.
      if (removal(base.stop, walDays) <= t) violations.push(`${new Date(t).toISOString()}: WAL after the base backup of ${new Date(base.stop).toISOString()} has expired`);
    }
  }
  return { violations, checks };
}

describe("pitr retention simulation", () => {
  const years = 2 * 366 + 40;

  it.each([
    ["s3", "7d", "0 2 * * 0"],
    ["b2", "7d", "0 2 * * 0"],
    ["s3", "5d", "0 2 * * *"],
    ["b2", "5d", "30 23 * * *"],
    ["s3", "3d", "0 */6 * * *"],
  ] as const)("%s: window %s with base backups \"%s\" keeps every second restorable, every hour for two years", (form, window, baseBackup) => {
    const res = simulatePitr({ form, window, baseBackup, missed: () => false, days: years, baseMinutes: 20 });
    expect(res.checks).toBeGreaterThan(30_000);
    expect(res.violations).toEqual([]);
  });

  it("holds with missed base-backup runs (never two in a row)", () => {
    // A fixed pseudo-random pattern: about one run in three fails, never two consecutive ones.
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const fails: boolean[] = [];
    const missed = (run: number) => {
      while (fails.length <= run) fails.push(!fails[fails.length - 1] && rnd() < 0.35);
      return fails[run]!;
    };
    for (const [window, baseBackup] of [["7d", "0 2 * * 0"], ["5d", "0 2 * * *"]] as const) {
      for (const form of ["s3", "b2"] as const) {
        const res = simulatePitr({ form, window, baseBackup, missed, days: years, baseMinutes: 20 });
        expect(fails.some((f, i) => f && i > 0)).toBe(true);
        expect(res.violations).toEqual([]);
      }
    }
  });

  it("two missed runs in a row can break the window's far end (the tolerated limit is one)", () => {
    const res = simulatePitr({ form: "s3", window: "7d", baseBackup: "0 2 * * 0", missed: (r) => r === 30 || r === 31, days: years, baseMinutes: 20 });
    expect(res.violations.length).toBeGreaterThan(0);
    expect(res.violations[0]).toMatch(/WAL after the base backup .* has expired/);
  });
});
