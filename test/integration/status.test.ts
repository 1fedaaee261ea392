/**
 * `npm run status` against real backups: Ceph radosgw, PostgreSQL 15, dockerd (a volume), the
 * real `backup`, `backup-volumes` and `restore-drill` scripts (runtime local) run at past clock
 * times (RESTORABLE_NOW), and the CLI reading the bucket with its own SigV4 client and the
 * operator's key from the environment. Two stacks over one bucket: "good" (web-1, everything
 * fresh, a passing drill) and "fleet" (web-1 and web-2, whose only backup is older than the RPO,
 * with a newer upload that has no manifest, and whose drill failed). `--html` is loaded from its
 * file by Debian's headless Chromium (playwright-core drives it): the charts must have drawn their
 * points, with no console error and no network request; a screenshot is kept in test/artifacts/.
 * The same runs write node_exporter textfile metrics (hosts[].metrics.textfileDir), which
 * `promtool check metrics` accepts and whose values match the manifests and drill reports.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { main } from "../../infra/cli/status";
import { chartData } from "../../infra/cli/status-html";
import type { RawConfig } from "../../infra/config";
import { pitrClusters } from "../../infra/config/pitr";
import type { FleetStatus } from "../../infra/plan/fleet-status";
import { walKey } from "../../infra/plan/pitr";
import { backupEnvConfig, createBackupEnv, REPO_ROOT, type BackupEnv, type BackupEnvOptions, type BucketAccess } from "../support/backup-env";
import { startDockerd, ensureToolImage, TOOL_IMAGE, type Dockerd } from "../support/docker";
import { fixturePostgresBackup } from "../support/drill-fixtures";
import { loadSampleData, PG_BIN, startPostgres, type PgCluster } from "../support/postgres";
import { run } from "../support/proc";
import { startS3Server, type S3Server } from "../support/s3server";
import { requireTools } from "../support/tools";

const tools = requireTools(
  `${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, "pg_dump", "pg_restore", "psql", "pgbench", "radosgw", "ceph-mon", "ceph-osd",
  "/usr/bin/aws", "dockerd", "docker", "busybox", "zstd", "jq", "flock", "curl", "/usr/bin/chromium", "promtool",
);

const BUCKET = "status-test";
const ARTIFACTS = join(REPO_ROOT, "test", "artifacts");
const DAYS = 8; // web-1: one backup a day for the last 8 days (k = 0 is an hour ago)

describe.skipIf(!tools.ok)("npm run status against real backups", () => {
  let s3: S3Server;
  let pg: PgCluster;
  let d: Dockerd;
  let access: BucketAccess;
  let web1: BackupEnv;
  let web2: BackupEnv;
  let stackDir: string;
  let metricsDirs: { web1: string; web2: string };
  let web2LastGood: string;
  const raws: RawConfig[] = [];
  const isoAgo = (h: number) => new Date(Math.floor(Date.now() / 1000 - h * 3600) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const operatorEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AWS_") && !k.startsWith("B2_")) e[k] = v;
    return { ...e, AWS_ACCESS_KEY_ID: s3.admin.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.admin.secretAccessKey, ...extra };
  };
  async function status(args: string[], env = operatorEnv()): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const code = await main(args, { out: (s) => (out += s), err: (s) => (err += s), env });
    return { code, out, err };
  }
  function host(o: Partial<BackupEnvOptions> & { host: string }): BackupEnv {
    const opts: BackupEnvOptions = {
      s3: access,
      postgres: [{ via: "local", host: pg.socketDir, port: pg.port, user: "postgres", database: "app" }],
      drill: { runtime: "local", checks: ["SELECT count(*) > 0 FROM users"] },
      ...o,
    };
    const e = createBackupEnv(opts);
    raws.push(backupEnvConfig(opts, e.dir));
    return e;
  }
  function writeStack(name: string, hosts: RawConfig["hosts"], extra: Record<string, unknown> = {}): void {
    const first = raws[0]!;
    const config: Record<string, unknown> = { "restorable:storage": first.storage, "restorable:objectives": first.objectives, "restorable:hosts": hosts, "aws:region": "us-east-1", ...extra };
    writeFileSync(join(stackDir, `Pulumi.${name}.yaml`), stringify({ config }));
  }
  async function ok(e: BackupEnv, script: string, now?: string): Promise<void> {
    const r = await e.run(script, [], now ? { now } : {});
    expect(r.code, `${script} at ${now}: ${r.stderr}`).toBe(0);
  }

  beforeAll(async () => {
    [s3, pg, d] = await Promise.all([startS3Server(), startPostgres(), startDockerd()]);
    await Promise.all([s3.createBucket(BUCKET, { versioning: true }), loadSampleData(pg, "app"), ensureToolImage(d)]);
    await d.dockerOk(["volume", "create", "uploads"]);
    await d.dockerOk(["run", "--rm", "--network", "none", "-v", "uploads:/data", TOOL_IMAGE, "sh", "-c", "echo hello > /data/a.txt && mkdir /data/sub && head -c 20000 /dev/urandom > /data/sub/b.bin"]);
    access = { endpoint: s3.endpoint, region: s3.region, bucket: BUCKET, creds: s3.admin };
    stackDir = mkdtempSync(join(tmpdir(), "rstatus-"));
    metricsDirs = { web1: join(stackDir, "textfile-web-1"), web2: join(stackDir, "textfile-web-2") };

    web1 = host({ host: "web-1", volumes: ["uploads"], volumeImage: TOOL_IMAGE, baseEnv: d.env, metrics: { textfileDir: metricsDirs.web1 } });
    for (let k = DAYS - 1; k >= 0; k--) {
      const now = isoAgo(1 + 24 * k);
      await ok(web1, "backup", now);
      await ok(web1, "backup-volumes", now);
    }
    await ok(web1, "restore-drill");

    web2 = host({ host: "web-2", metrics: { textfileDir: metricsDirs.web2 } });
    web2LastGood = isoAgo(50);
    await ok(web2, "backup", web2LastGood); // older than the 24h RPO
    // A failed attempt of the database after it (its server unreachable), for the metrics.
    web2.setOverrides({ RESTORABLE_PG_PORT: ["1"] });
    expect((await web2.run("backup", [], { now: web2LastGood })).code).toBe(1);
    web2.setOverrides({});
    await fixturePostgresBackup({ bucket: access, host: "web-2", date: new Date(Date.now() - 3600_000), pg, database: "app", withoutManifest: true });
    const drill = await web2.run("restore-drill");
    expect(drill.code).toBe(1); // fails at stage rpo: that is what status must show

    writeStack("good", [raws[0]!.hosts[0]!]);
    writeStack("fleet", [raws[0]!.hosts[0]!, { ...raws[1]!.hosts[0]!, ssh: { host: "192.0.2.11" } }]);
  }, 300_000);

  afterAll(async () => {
    web1?.remove();
    web2?.remove();
    if (stackDir) rmSync(stackDir, { recursive: true, force: true });
    await Promise.allSettled([s3?.stop(), pg?.stop(), d?.stop()]);
  });

  it("npm run status: exit 0 and a table when every objective holds", async () => {
    const r = await run("npm", ["run", "--silent", "status", "--", "--stack", "good", "--dir", stackDir], { cwd: REPO_ROOT, env: operatorEnv(), timeoutMs: 120_000 });
    expect(r.stderr).toBe("");
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^restorable status: stack good, s3 bucket status-test at http:\/\/127\.0\.0\.1:\d+/);
    expect(r.stdout).toMatch(/host web-1: OK/);
    for (const item of ["postgres app", "roles", "volume uploads"]) expect(r.stdout).toMatch(new RegExp(`^  ${item} +\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z +(daily|weekly|monthly) +\\S+ +ok +\\d+/\\d+/\\d+ +7/7 `, "m"));
    expect(r.stdout).toMatch(/drill: last \S+ \(.*ago\) PASS; RTO app \d+\.\ds\/1h/);
    expect(r.stdout).toMatch(/^  WAL archive: none \(point-in-time recovery is off\)$/m);
    expect(r.stdout.trimEnd().split("\n").pop()).toBe("all objectives hold");
  });

  it("--json: the documented document, matching what is in the bucket; exit 1 when an objective is missed", async () => {
    const r = await status(["--stack", "fleet", "--dir", stackDir, "--json"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(1);
    const s = JSON.parse(r.out) as FleetStatus;
    expect(s).toMatchObject({ format: 1, kind: "restorable-status", stack: "fleet", bucket: BUCKET, provider: "s3", ok: false, objectives: { rpoSeconds: 86400, rtoSeconds: 3600 }, retention: { daily: 7, weekly: 4, monthly: 12 } });
    const [h1, h2] = s.hosts;

    // web-1: every item fresh, 8 restore points each, exactly as the manifests in the bucket say.
    expect(h1!.ok).toBe(true);
    const listing = await web1.list("web-1/");
    for (const item of h1!.items) {
      const dir = item.kind === "postgres" ? "postgres/app/" : item.kind === "globals" ? "globals/" : "volumes/uploads/";
      const manifests = listing.filter((o) => o.key.endsWith(".manifest.json") && o.key.includes(`/${dir}`)).map((o) => o.key).sort((a, b) => a.split("/").pop()!.localeCompare(b.split("/").pop()!));
      expect(manifests).toHaveLength(DAYS);
      const newest = JSON.parse((await web1.get(manifests[DAYS - 1]!)).toString()) as { createdAt: string; tier: string; object: { size: number }; durationSeconds: number };
      expect(item.newest).toMatchObject({ createdAt: newest.createdAt, tier: newest.tier, sizeBytes: newest.object.size, durationSeconds: newest.durationSeconds, manifestKey: manifests[DAYS - 1] });
      expect(item.rpo.ok).toBe(true);
      expect(item.rpo.achievedSeconds).toBeGreaterThanOrEqual(3600);
      expect(item.rpo.achievedSeconds).toBeLessThan(3 * 3600);
      const tiers = { daily: 0, weekly: 0, monthly: 0 };
      for (const k of manifests) tiers[k.split("/")[1] as keyof typeof tiers]++;
      expect(item.restorePoints).toEqual(tiers);
      expect(item.promise.ok).toBe(true);
      expect(item.promise.daily).toMatchObject({ required: 7, covered: 7, missing: [] });
      expect(item.history).toHaveLength(DAYS);
    }
    const sum = (pred: (k: string) => boolean) => listing.filter((o) => pred(o.key)).reduce((a, o) => a + o.size, 0);
    expect(h1!.storage.bytes).toMatchObject({
      daily: sum((k) => k.startsWith("web-1/daily/")),
      weekly: sum((k) => k.startsWith("web-1/weekly/")),
      monthly: sum((k) => k.startsWith("web-1/monthly/")),
      drills: sum((k) => k.startsWith("web-1/drills/")),
      total: sum(() => true),
    });
    expect(h1!.storage.bytes.total).toBeGreaterThan(0);
    expect(h1!.drill).toMatchObject({ scheduled: true, ok: true, overdue: false, last: { result: "pass", failure: null } });
    expect(h1!.drill.last!.databases[0]).toMatchObject({ database: "app", result: "pass", rto: { targetSeconds: 3600, ok: true } });
    expect(h1!.wal).toEqual({ enabled: false, archiveAgeSeconds: null, clusters: [], ok: true });

    // web-2: the newest restore point is the 50 h old one (the newer upload has no manifest).
    expect(h2!.ok).toBe(false);
    const app2 = h2!.items.find((i) => i.id === "postgres/app")!;
    expect(app2.rpo.ok).toBe(false);
    expect(app2.rpo.achievedSeconds).toBeGreaterThanOrEqual(50 * 3600);
    expect(h2!.storage.withoutManifest).toBe(1);
    expect(h2!.drill).toMatchObject({ ok: false, last: { result: "fail", failure: { stage: "rpo" } } });
    expect(s.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^web-2 postgres app: newest restore point is 2d\dh old \(.*\), RPO 1d$/), expect.stringMatching(/^web-2 drill: last drill \(.*\) fail at stage rpo: /)]));
    expect(s.problems.every((p) => p.startsWith("web-2 "))).toBe(true);

    // The table says the same, and names the problems.
    const t = await status(["--stack", "fleet", "--dir", stackDir]);
    expect(t.code).toBe(1);
    expect(t.out).toMatch(/host web-2: OBJECTIVES MISSED/);
    expect(t.out).toMatch(/1 without manifest: not restore points/);
    expect(t.out).toMatch(/drill: last .* FAIL at stage rpo: /);
    expect(t.out).toMatch(/problem\(s\):\n  - web-2 /);
  });

  it("exit 2 with a one-line reason: no credentials, rejected credentials, bad config, missing bucket, bad usage", async () => {
    const noEnv = operatorEnv();
    delete noEnv.AWS_ACCESS_KEY_ID;
    delete noEnv.AWS_SECRET_ACCESS_KEY;
    let r = await status(["--stack", "good", "--dir", stackDir], noEnv);
    expect(r).toMatchObject({ code: 2, out: "" });
    expect(r.err).toBe("restorable status: no operator credentials for provider s3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (a key that can list and read the bucket)\n");

    r = await status(["--stack", "good", "--dir", stackDir], operatorEnv({ AWS_SECRET_ACCESS_KEY: "wrong" }));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^restorable status: the store refused the operator credentials: SignatureDoesNotMatch.*HTTP 403/);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).not.toContain("wrong");

    writeStack("typo", [raws[0]!.hosts[0]!], { "restorable:retension": { daily: 3 } });
    r = await status(["--stack", "typo", "--dir", stackDir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/restorable:retension: unknown key/);

    const first = raws[0]!;
    writeFileSync(join(stackDir, "Pulumi.nobucket.yaml"), stringify({ config: { "restorable:storage": { ...first.storage, bucket: "no-such-bucket" }, "restorable:objectives": first.objectives, "restorable:hosts": [first.hosts[0]] } }));
    r = await status(["--stack", "nobucket", "--dir", stackDir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^restorable status: bucket NoSuchBucket/);

    r = await status(["--stack", "missing", "--dir", stackDir]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^restorable status: cannot read .*Pulumi\.missing\.yaml/);
    expect((await status(["--stak", "good"])).code).toBe(2);
  });

  it("every job wrote node_exporter textfile metrics that promtool accepts and that match the bucket", async () => {
    const samples = (dir: string) => {
      const text = readFileSync(join(dir, "restorable.prom"), "utf8");
      const out = new Map<string, number>();
      for (const line of text.split("\n")) {
        const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
        if (m) out.set(`${m[1]}{${m[2]}}`, Number(m[3]));
      }
      return { text, get: (k: string) => out.get(k) };
    };
    for (const dir of [metricsDirs.web1, metricsDirs.web2]) {
      const check = await run("promtool", ["check", "metrics"], { input: readFileSync(join(dir, "restorable.prom")) });
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(check.stdout + check.stderr).toBe("");
    }
    const epoch = (iso: string) => Date.parse(iso) / 1000;

    const m1 = samples(metricsDirs.web1);
    for (const job of ["backup", "backup-volumes", "restore-drill"]) {
      expect(m1.get(`restorable_job_success{host="web-1",job="${job}"}`), job).toBe(1);
      expect(m1.get(`restorable_job_exit_code{host="web-1",job="${job}"}`), job).toBe(0);
      expect(m1.get(`restorable_job_duration_seconds{host="web-1",job="${job}"}`), job).toBeGreaterThan(0);
    }
    // The last backup run was the one an hour ago (RESTORABLE_NOW): its time, the newest manifest's size.
    const listing = await web1.list("web-1/");
    for (const [job, kind, item, dir] of [["backup", "postgres", "app", "postgres/app/"], ["backup", "globals", "", "globals/"], ["backup-volumes", "volume", "uploads", "volumes/uploads/"]] as const) {
      const newestKey = listing.filter((o) => o.key.endsWith(".manifest.json") && o.key.includes(`/${dir}`)).map((o) => o.key).sort((a, b) => a.split("/").pop()!.localeCompare(b.split("/").pop()!)).pop()!;
      const newest = JSON.parse((await web1.get(newestKey)).toString()) as { createdAt: string; object: { size: number }; durationSeconds: number };
      const l = `{host="web-1",job="${job}",kind="${kind}",item="${item}"}`;
      expect(m1.get(`restorable_backup_success${l}`), l).toBe(1);
      expect(m1.get(`restorable_backup_last_success_timestamp_seconds${l}`), l).toBe(epoch(newest.createdAt));
      expect(m1.get(`restorable_backup_bytes${l}`), l).toBe(newest.object.size);
      expect(m1.get(`restorable_backup_duration_seconds${l}`), l).toBeGreaterThan(0);
    }
    const report = JSON.parse(readFileSync(join(web1.stateDir, "drills", readdirSync(join(web1.stateDir, "drills")).sort().pop()!), "utf8")) as {
      startedAt: string; databases: { database: string; rto: { achievedSeconds: number }; rpo: { achievedSeconds: number } }[];
    };
    expect(m1.get('restorable_drill_success{host="web-1"}')).toBe(1);
    expect(m1.get('restorable_drill_last_timestamp_seconds{host="web-1"}')).toBe(epoch(report.startedAt));
    expect(m1.get('restorable_drill_last_success_timestamp_seconds{host="web-1"}')).toBe(epoch(report.startedAt));
    expect(m1.get('restorable_drill_rto_seconds{host="web-1",database="app"}')).toBe(report.databases[0]!.rto.achievedSeconds);
    expect(m1.get('restorable_drill_rpo_seconds{host="web-1",database="app"}')).toBe(report.databases[0]!.rpo.achievedSeconds);
    expect(m1.get('restorable_rpo_objective_seconds{host="web-1"}')).toBe(86400);

    // web-2: the refused run failed, its item says so, and the last success (50 h ago) and size survive it.
    const m2 = samples(metricsDirs.web2);
    const l2 = '{host="web-2",job="backup",kind="postgres",item="app"}';
    expect(m2.get('restorable_job_success{host="web-2",job="backup"}')).toBe(0);
    expect(m2.get('restorable_job_exit_code{host="web-2",job="backup"}')).toBe(1);
    expect(m2.get('restorable_job_last_success_timestamp_seconds{host="web-2",job="backup"}')).toBe(epoch(web2LastGood));
    expect(m2.get(`restorable_backup_success${l2}`)).toBe(0);
    expect(m2.get(`restorable_backup_last_success_timestamp_seconds${l2}`)).toBe(epoch(web2LastGood));
    expect(m2.get(`restorable_backup_bytes${l2}`)).toBeGreaterThan(0);
    expect(m2.get('restorable_drill_success{host="web-2"}')).toBe(0);
    expect(m2.get('restorable_drill_database_success{host="web-2",database="app"}')).toBe(0);
    expect(m2.get('restorable_drill_last_success_timestamp_seconds{host="web-2"}')).toBeUndefined();
    expect(readdirSync(metricsDirs.web2)).toEqual(["restorable.prom"]); // no temp file left
  });

  it("the README's example alert rules pass promtool check rules", async () => {
    const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
    const rules = /Example alert rules[^`]*```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(rules).toMatch(/alert: BackupOlderThanRPO/);
    const file = join(stackDir, "rules.yml");
    writeFileSync(file, rules!);
    const r = await run("promtool", ["check", "rules", file]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 7 rules found/);
  });

  describe("--html in headless Chromium", () => {
    let browser: Browser;
    afterAll(async () => {
      await browser?.close();
    });

    it("one self-contained page whose four charts draw every data point, without console errors or network", async () => {
      const file = join(stackDir, "status.html");
      const r = await status(["--stack", "fleet", "--dir", stackDir, "--html", file, "--json"]);
      expect(r.code).toBe(1);
      const s = JSON.parse(r.out) as FleetStatus;
      const html = readFileSync(file, "utf8");
      expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/cdn/i);
      const expected = chartData(s);

      browser = await chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
      const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } });
      const problems: string[] = [];
      const requests: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
      page.on("request", (q) => requests.push(q.url()));
      await page.goto(`file://${file}`);
      await page.waitForSelector("body[data-charts-rendered=true]", { timeout: 30_000 });

      const drawn = await page.evaluate(() => {
        type Canvas = { width: number; height: number; getContext(t: "2d"): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null };
        const charts = (globalThis as unknown as { restorableCharts: Record<string, { canvas: Canvas; chartArea: { left: number; right: number; top: number; bottom: number }; data: { datasets: { label: string }[] }; getDatasetMeta(i: number): { data: { x: number; y: number }[] } }> }).restorableCharts;
        const out: Record<string, { datasets: { label: string; points: number; inside: number }[]; inkPixels: number }> = {};
        for (const [name, c] of Object.entries(charts)) {
          const a = c.chartArea;
          const datasets = c.data.datasets.map((ds, i) => {
            const pts = c.getDatasetMeta(i).data;
            return { label: ds.label, points: pts.length, inside: pts.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && p.x >= a.left - 1 && p.x <= a.right + 1 && p.y >= a.top - 1 && p.y <= a.bottom + 1).length };
          });
          const ctx = c.canvas.getContext("2d")!;
          const img = ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
          let ink = 0;
          for (let i = 3; i < img.length; i += 4) if (img[i]! > 0) ink++;
          out[name] = { datasets, inkPixels: ink };
        }
        return out;
      });

      // Every series the status has is a dataset, and every one of its points was laid out inside the plot.
      const expectSeries = (name: string, series: { label: string; points: unknown[] }[]) => {
        const got = drawn[name]!.datasets.filter((ds) => ds.label !== "RTO objective");
        expect(got.map((g) => [g.label, g.points, g.inside])).toEqual(series.map((x) => [x.label, x.points.length, x.points.length]));
        expect(drawn[name]!.inkPixels).toBeGreaterThan(1000);
      };
      expectSeries("size", expected.size);
      expectSeries("duration", expected.duration);
      expectSeries("rto", expected.rto);
      expectSeries("calendar", expected.calendar.map((c) => ({ label: c.tier, points: c.points })));
      expect(expected.size.find((x) => x.label === "web-1 postgres app")!.points).toHaveLength(DAYS);
      expect(expected.size.find((x) => x.label === "web-1 volume uploads")!.points).toHaveLength(DAYS);
      expect(expected.rto.find((x) => x.label === "web-1 app")!.points).toHaveLength(1);
      expect(expected.calendar.reduce((a, c) => a + c.points.length, 0)).toBe(3 * DAYS + 2);
      expect(drawn.rto!.datasets.find((x) => x.label === "RTO objective")).toMatchObject({ points: 2 });

      // The table is on the page too, with the verdict.
      expect(await page.locator("tr[data-item]").count()).toBe(5);
      expect(await page.locator("#verdict").textContent()).toMatch(/problem\(s\):.*web-2 postgres app/);

      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, "status.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");

      expect(problems).toEqual([]);
      expect(requests).toEqual([`file://${file}`]);
    });
  });

  it("the WAL archive where hosts[].pitr is on: per cluster the newest segment's age (its object's LastModified) against the RPO", async () => {
    // web-1 with pitr on; WAL objects in wal-archiver's layout (zstd-compressed WAL file bytes,
    // keys from the plan's walKey), uploaded by the AWS CLI: radosgw dates them.
    writeStack("pitr", [{ ...raws[0]!.hosts[0]!, pitr: { enabled: true } }]);
    const [cluster] = pitrClusters(raws[0]!.hosts[0]!.postgres as Parameters<typeof pitrClusters>[0]);
    const json = async (now?: number) => {
      let out = "";
      const code = await main(["--stack", "pitr", "--dir", stackDir, "--json"], { out: (x) => (out += x), err: () => undefined, env: operatorEnv(), ...(now ? { now: () => now } : {}) });
      return { code, s: JSON.parse(out) as FleetStatus };
    };

    // Nothing archived yet: the cluster misses the RPO, and status says so (exit 1).
    const none = await json();
    expect(none.code).toBe(1);
    expect(none.s.hosts[0]!.wal).toEqual({
      enabled: true,
      archiveAgeSeconds: null,
      clusters: [{ cluster: cluster!.name, newest: null, rpo: { achievedSeconds: null, targetSeconds: 86400, ok: false }, segments: 0, bytes: 0, ok: false }],
      ok: false,
    });
    expect(none.s.problems).toEqual([`web-1 WAL archive of cluster ${cluster!.name}: no archived WAL segment under web-1/wal/${cluster!.name}/ (is wal-archiver running?)`]);

    const keys = [
      walKey("web-1", cluster!.name, "000000010000000000000001", { encrypted: false }),
      walKey("web-1", cluster!.name, "00000001.history", { encrypted: false }),
      walKey("web-1", cluster!.name, "000000010000000000000002", { encrypted: false }),
    ];
    const wal = execFileSync("zstd", ["-q", "-c"], { input: Buffer.alloc(16 * 1024 * 1024, 7) });
    try {
      for (const k of keys) {
        const up = await web1.aws(["s3", "cp", "-", `s3://${BUCKET}/${k}`, "--only-show-errors"], { input: wal });
        expect(up.code, up.stderr).toBe(0);
      }
      const uploadedAt = Date.now();
      const fresh = await json();
      expect(fresh.code, JSON.stringify(fresh.s.problems)).toBe(0);
      const c = fresh.s.hosts[0]!.wal.clusters[0]!;
      expect(c).toMatchObject({ cluster: cluster!.name, segments: 2, bytes: 2 * wal.length, rpo: { targetSeconds: 86400, ok: true }, ok: true });
      expect(c.newest).toMatchObject({ segment: "000000010000000000000002", key: keys[2] });
      expect(Math.abs(Date.parse(c.newest!.lastModified) - uploadedAt)).toBeLessThan(120_000);
      expect(c.newest!.ageSeconds).toBeLessThan(120);
      expect(fresh.s.hosts[0]!.wal.archiveAgeSeconds).toBe(c.newest!.ageSeconds);

      // The table and the page say the same.
      const text = await status(["--stack", "pitr", "--dir", stackDir]);
      expect(text.code).toBe(0);
      expect(text.out).toMatch(new RegExp(`^  WAL archive ${cluster!.name}: newest segment 000000010000000000000002 archived \\S+ \\(\\S+ ago\\), RPO ok; 2 segment\\(s\\), `, "m"));
      const file = join(stackDir, "pitr.html");
      expect((await status(["--stack", "pitr", "--dir", stackDir, "--html", file])).code).toBe(0);
      expect(readFileSync(file, "utf8")).toMatch(new RegExp(`<p class="wal" data-cluster="${cluster!.name}">WAL archive <code>${cluster!.name}</code>: newest segment <code>000000010000000000000002</code> .*RPO ok</b>`));

      // A day and an hour later the same archive is older than the RPO: exit 1, the cluster MISSED.
      const late = await json(uploadedAt + 25 * 3600_000);
      expect(late.code).toBe(1);
      const lc = late.s.hosts[0]!.wal.clusters[0]!;
      expect(lc.rpo.ok).toBe(false);
      expect(lc.rpo.achievedSeconds).toBeGreaterThanOrEqual(25 * 3600 - 120);
      expect(late.s.problems).toContainEqual(expect.stringMatching(new RegExp(`^web-1 WAL archive of cluster ${cluster!.name}: newest segment 000000010000000000000002 was archived 1d\\d*h?\\d*m? ago \\(.*\\), RPO 1d$`)));
    } finally {
      // The other tests' stacks see web-1/ without these.
      for (const k of keys) await web1.aws(["s3", "rm", `s3://${BUCKET}/${k}`, "--only-show-errors"]);
    }
  });
});
