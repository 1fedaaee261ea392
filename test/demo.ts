/**
 * `npm run demo`: the whole restorable cycle on this machine, in a few minutes, with real services
 * on 127.0.0.1, and everything it started stopped again at the end (also on Ctrl-C or failure).
 *
 *   1. installs the Debian/Ubuntu packages that are missing (apt-get, root)
 *   2. starts a local PostgreSQL with sample app data, a local S3 server (Ceph radosgw), a
 *      loopback sshd, and a private dockerd with a small volume when dockerd is installed
 *   3. builds the plan from an in-code stack config (the same code `pulumi up` runs)
 *   4. provisions the bucket: the plan's lifecycle rules and a key scoped by the plan's policy
 *   5. installs the rendered scripts, config, credentials and crontab block over SSH with the
 *      exact commands HostInstall gives to remote.Command (preflight, install)
 *   6. runs backup (and backup-volumes) on the "host" over SSH, twice: "yesterday" (RESTORABLE_NOW)
 *      and now, so that the drill has an older restore point to prove
 *   7. runs restore-drill over SSH: the roles first, the database with its owners (a check asserts
 *      one), the volume compared with its listing, the older restore points, the retention audit;
 *      prints what each proved, the report, the bucket listing and where things are
 *   8. uninstalls over SSH (the command `pulumi destroy` runs) and stops everything
 *
 * Run as root on a fresh Debian 12 (or Ubuntu) machine. Packages it installs stay installed (it
 * prints which); everything else is as it found it.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RawConfig } from "../infra/config";
import { parseConfig } from "../infra/config";
import { buildPlan } from "../infra/plan";
import { CRON_BEGIN, installPlan } from "../infra/plan/install";
import { renderHost } from "../infra/plan/render";
import { readCrontab, snapshotCrontab } from "./support/cron";
import type { Dockerd } from "./support/docker";
import type { PgCluster } from "./support/postgres";
import { run } from "./support/proc";
import type { S3Creds, S3Server } from "./support/s3server";
import type { Sshd } from "./support/sshd";

const PACKAGES = [
  "postgresql", "postgresql-contrib", // the app's database (and pg_dump/pg_restore/initdb for the scripts)
  "ceph-mon", "ceph-osd", "radosgw", // the S3 server
  "awscli", "openssh-server", "openssh-client", "cron", "zstd", "jq", "curl", "util-linux",
];
const BUCKET = "restorable-demo";
const HOST = "demo";
const VOLUME = "demo-uploads";

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
let stepNo = 0;
function step(title: string): void {
  stepNo += 1;
  console.log(`\n${bold(`[${stepNo}/8] ${title}`)}`);
}
const say = (s = "") => console.log(s);
const indent = (text: string, by = "    ") => text.replace(/\n+$/, "").split("\n").map((l) => by + l).join("\n");

// ---- cleanup: in reverse order, once, also on Ctrl-C -------------------------------------------

const cleanups: { what: string; fn: () => Promise<unknown> }[] = [];
let cleaning: Promise<void> | undefined;
function onCleanup(what: string, fn: () => Promise<unknown>): void {
  cleanups.push({ what, fn });
}
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length) {
      const c = cleanups.pop()!;
      try {
        await c.fn();
        say(dim(`    stopped/removed: ${c.what}`));
      } catch (e) {
        console.error(`    could not clean up ${c.what}: ${(e as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping everything the demo started...`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- 1. packages -------------------------------------------------------------------------------

function installed(pkg: string): boolean {
  try {
    return execFileSync("dpkg-query", ["-W", "-f=${Status}", pkg], { stdio: ["ignore", "pipe", "ignore"] }).toString().includes("install ok installed");
  } catch {
    return false;
  }
}

function hasBin(bin: string): boolean {
  try {
    execFileSync("sh", ["-c", 'command -v "$1"', "sh", bin], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function ensurePackages(withDocker: boolean): Promise<string[]> {
  const wanted = [...PACKAGES, ...(withDocker ? ["busybox-static"] : [])];
  const missing = wanted.filter((p) => !installed(p));
  if (missing.length === 0) {
    say("    all packages present");
    return [];
  }
  say(`    installing: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const upd = await run("apt-get", ["update", "-qq"], { env });
  if (upd.code !== 0) throw new Error(`apt-get update failed:\n${upd.stderr}`);
  const inst = await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env, timeoutMs: 20 * 60_000 });
  if (inst.code !== 0) throw new Error(`apt-get install failed:\n${inst.stderr.slice(-3000)}`);
  return missing;
}

// ---- the demo ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = Date.now();
  if (process.getuid?.() !== 0) {
    console.error("npm run demo: run as root (it installs packages, starts sshd and a local S3 server, and edits root's crontab block).");
    process.exit(1);
  }
  if (!hasBin("apt-get") || !hasBin("dpkg-query")) {
    console.error("npm run demo: needs a Debian or Ubuntu machine (apt-get).");
    process.exit(1);
  }
  const before = await readCrontab("root").catch(() => undefined);
  if (before?.split("\n").includes(CRON_BEGIN)) {
    console.error("npm run demo: root's crontab already has a restorable block (this machine is a managed host); the demo would replace it. Stopping.");
    process.exit(1);
  }
  say(bold("restorable demo: off-site Postgres and Docker-volume backups, proven restorable"));
  say(dim("Everything runs on 127.0.0.1 and is stopped at the end. The S3 server is on this machine: NOT off-site, for the demo only."));

  step("packages");
  const withDocker = hasBin("dockerd") && hasBin("docker");
  const added = await ensurePackages(withDocker);

  // The harness modules are loaded after the packages exist.
  const { startPostgres, loadSampleData, SAMPLE_OWNER } = await import("./support/postgres");
  const { startS3Server } = await import("./support/s3server");
  const { startSshd } = await import("./support/sshd");

  step("local services");
  const work = mkdtempSync(join(tmpdir(), "restorable-demo-"));
  chmodSync(work, 0o755);
  onCleanup(`work dir ${work}`, async () => rmSync(work, { recursive: true, force: true }));
  const rootCrontab = await snapshotCrontab("root");
  onCleanup("root's crontab, as it was", () => rootCrontab.restore());
  const [s3, pg, sshd] = (await Promise.all([
    startS3Server().then((s) => (onCleanup(`S3 server ${s.endpoint}`, () => s.stop()), s)),
    startPostgres({ auth: "trust" }).then((p) => (onCleanup(`PostgreSQL 127.0.0.1:${p.port}`, () => p.stop()), p)),
    startSshd({ users: ["root"] }).then((s) => (onCleanup(`sshd 127.0.0.1:${s.port}`, () => s.stop()), s)),
  ])) as [S3Server, PgCluster, Sshd];
  say(`    S3 server (Ceph radosgw)  ${s3.endpoint}`);
  say(`    PostgreSQL 15             127.0.0.1:${pg.port}`);
  say(`    sshd                      127.0.0.1:${sshd.port} (root, key auth, no AcceptEnv)`);
  await loadSampleData(pg, "app");
  say(`    sample data               database "app": pgbench tables, app.orders, public.users (${await pg.psql("SELECT count(*) FROM public.users", { database: "app" })} rows)`);
  let dockerd: Dockerd | undefined;
  let volumeImage: string | undefined;
  if (withDocker) {
    const { startDockerd, ensureToolImage } = await import("./support/docker");
    dockerd = await startDockerd();
    const d = dockerd;
    onCleanup(`dockerd ${d.host}`, () => d.stop());
    volumeImage = await ensureToolImage(d);
    await d.dockerOk(["volume", "create", VOLUME]);
    await d.dockerOk(["run", "--rm", "-v", `${VOLUME}:/data`, volumeImage, "sh", "-c", "mkdir -p /data/avatars && for i in 1 2 3; do echo upload-$i > /data/avatars/$i.txt; done"]);
    say(`    dockerd (private)         ${d.host}, volume "${VOLUME}" with 3 files`);
  } else {
    say(dim("    dockerd not installed: the Docker volume part is left out (apt-get install docker.io to include it)"));
  }

  step("the plan (what `pulumi up` computes from Pulumi.<stack>.yaml)");
  const raw: RawConfig = {
    storage: { provider: "s3", bucket: BUCKET, endpoint: s3.endpoint, region: s3.region, allowNotOffsite: true },
    objectives: { rpo: "24h", rto: "1h" },
    retention: { daily: 7, weekly: 4, monthly: 12 },
    hosts: [
      {
        name: HOST,
        ssh: { host: "127.0.0.1", user: "root", port: sshd.port },
        postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, user: "postgres", database: "app" }],
        volumes: dockerd ? [VOLUME] : [],
        ...(volumeImage ? { volumeImage } : {}),
        schedule: { backup: "0 3 * * *", drill: "0 5 1 * *" },
        drill: {
          runtime: "local",
          checks: [
            "SELECT count(*) > 1000 FROM public.users", "SELECT count(*) = 2003 FROM app.orders",
            // restored WITH owners: the roles backup is restored first
            `SELECT tableowner = '${SAMPLE_OWNER}' FROM pg_tables WHERE schemaname = 'app' AND tablename = 'orders'`,
          ],
        },
        paths: { scriptsDir: join(work, "opt/restorable"), configDir: join(work, "etc/restorable") },
      },
    ],
  };
  const plan = buildPlan(parseConfig(raw));
  const host = plan.hosts[0]!;
  say(indent(plan.summary.join("\n")));

  step("the bucket: lifecycle rules and a scoped key, from the plan");
  const must = async (what: string, p: Promise<{ code: number | null; stderr: string; stdout: string }>) => {
    const r = await p;
    if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  await s3.createBucket(BUCKET, { versioning: true });
  await must("put-bucket-lifecycle-configuration", s3.aws(s3.admin, ["s3api", "put-bucket-lifecycle-configuration", "--bucket", BUCKET, "--lifecycle-configuration", JSON.stringify(plan.lifecycle.s3)]));
  say(`    bucket ${BUCKET}: versioning on, ${plan.lifecycle.s3.Rules.length} lifecycle rules (daily ${plan.retention.expiryDays.daily}d, weekly ${plan.retention.expiryDays.weekly}d, monthly ${plan.retention.expiryDays.monthly}d, drills, multipart cleanup)`);
  const key: S3Creds = await s3.createUser(host.iamUserName);
  await must("put-user-policy", s3.aws(s3.admin, ["iam", "put-user-policy", "--user-name", host.iamUserName, "--policy-name", "restorable-backup-writer", "--policy-document", JSON.stringify(host.access.iamPolicy)]));
  say(`    key ${key.accessKeyId} for host ${HOST}: read/write under ${host.prefix} only, never delete (policy ${host.access.iamPolicy.Statement.map((s) => s.Sid).join(", ")})`);

  step("install over SSH (the commands HostInstall hands to remote.Command)");
  const stateDir = join(work, "var/lib/restorable");
  const rendered = renderHost(plan, host, { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey, pgPasswords: {} }, { stateDir });
  const ip = installPlan(rendered, host);
  // A private dockerd is not at the default socket: tell the commands where it is (a plain
  // VAR=value prefix in the command text; nothing relies on sshd AcceptEnv).
  const envPrefix = dockerd ? `DOCKER_HOST=${dockerd.host} ` : "";
  const ssh = async (what: string, command: string, stdin?: string) => {
    const r = await sshd.ssh("root", `${envPrefix}${command}`, stdin, { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
    return r;
  };
  onCleanup("the installation on the host (uninstall over SSH)", async () => {
    const r = await sshd.ssh("root", ip.uninstall);
    say(indent(r.stdout.trim()));
  });
  say(indent((await ssh("preflight", ip.preflight)).stdout));
  say(indent((await ssh("install", ip.install.command, ip.install.stdin)).stdout));
  const again = await ssh("install (again)", ip.install.command, ip.install.stdin);
  say(indent(`${again.stdout.trim()}   ${dim("<- re-run: nothing changes")}`));

  step("backups, run on the host over SSH (yesterday's, then today's)");
  const scripts = host.config.paths.scriptsDir;
  // Yesterday's run, by the scripts' clock override: the drill then has an older restore point to
  // prove, and the retention audit finds yesterday covered (earlier periods are pending: the host
  // is younger than the promise).
  const yesterday = `${new Date(Date.now() - 86_400_000).toISOString().slice(0, 19)}Z`;
  for (const [when, prefix] of [["yesterday", `RESTORABLE_NOW=${yesterday} `], ["now", ""]] as const) {
    const b = await ssh("backup", `${prefix}${scripts}/backup`);
    say(indent(`${dim(`(${when})`)}\n${b.stderr.trim().split("\n").slice(-(when === "now" ? 6 : 1)).join("\n")}`));
    if (host.config.volumes.length) {
      const v = await ssh("backup-volumes", `${prefix}${scripts}/backup-volumes`);
      say(indent(v.stderr.trim().split("\n").slice(-(when === "now" ? 4 : 1)).join("\n")));
    }
  }

  step("restore drill: roles, the database with its owners, the volume against its listing, an older restore point, the retention audit");
  const d = await ssh("restore-drill", `${scripts}/restore-drill`);
  say(indent(d.stderr.trim().split("\n").slice(-8).join("\n")));
  const drills = join(stateDir, "drills");
  const reports = existsSync(drills) ? readdirSync(drills).filter((f) => f.endsWith(".json")).sort() : [];
  if (reports.length) {
    const report = JSON.parse(readFileSync(join(drills, reports.at(-1)!), "utf8")) as DrillReport;
    say(`\n    ${bold("what the drill proved")}:`);
    say(indent(proved(report).join("\n")));
    say(`\n    ${bold("drill report")} (${host.prefix}drills/${reports.at(-1)}):`);
    say(indent(JSON.stringify(report, null, 2)));
  }

  say(`\n    ${bold("in the bucket")} (s3://${BUCKET}/${host.prefix}, as the host's key sees it):`);
  const ls = JSON.parse((await must("list-objects-v2", s3.aws(key, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", host.prefix]))) || "{}") as { Contents?: { Key: string; Size: number }[] };
  for (const o of ls.Contents ?? []) say(`    ${String(o.Size).padStart(10)}  ${o.Key}`);

  say(`\n    ${bold("on the host")}:`);
  for (const f of ip.files) say(`    ${f.mode}  ${f.path}${f.secret ? "   (secret: the only file with credentials)" : ""}`);
  say(`    0700  ${stateDir}   (locks, logs, local copies of drill reports)`);
  say(`\n    ${bold("root's crontab block")}:`);
  say(indent(rendered.crontab));

  step("uninstall (what `pulumi destroy` runs) and stop everything");
  await cleanup();
  const after = await readCrontab("root").catch(() => undefined);
  if (after !== before) console.error("    warning: root's crontab differs from before the demo");
  say(`\n${bold("done")} in ${Math.round((Date.now() - t0) / 1000)} s. The backups lived in the demo's S3 server, which is gone now.`);
  if (added.length) say(dim(`Packages installed by the demo (kept): ${added.join(" ")}  (remove: apt-get purge ${added.join(" ")})`));
  say("Next: a real server on B2 or AWS with `pulumi up` (see README).");
}

interface DrillItem {
  database?: string; volume?: string; stamp?: string; tier?: string; result: string; chosenBecause?: string;
  roles?: number; checks?: { sql: string; ok: boolean }[]; contentVerified?: boolean; entries?: { listed: number | null };
  rto?: { achievedSeconds: number } | null; failure?: { stage: string; reason: string } | null;
}
interface DrillReport {
  result: string; globals: DrillItem | null; databases: DrillItem[]; volumes: DrillItem[]; olderPoints: DrillItem[];
  retention: { result: string; items: { kind: string; name: string | null; covered: number; pending: number; missing: string[] }[] } | null;
}
/** One line per thing the drill proved (or failed to), from its report. */
function proved(r: DrillReport): string[] {
  const mark = (i: { result: string }) => (i.result === "pass" ? "pass" : "FAIL");
  const why = (i: DrillItem) => (i.failure ? `: ${i.failure.stage}: ${i.failure.reason}` : "");
  const out: string[] = [];
  if (r.globals) out.push(`${mark(r.globals)}  the roles (${r.globals.stamp}, ${r.globals.tier}): ${r.globals.roles ?? "?"} role(s) restored first${why(r.globals)}`);
  for (const db of r.databases) {
    out.push(`${mark(db)}  database ${db.database} (${db.stamp}, ${db.tier}) restored with its owners, ${(db.checks ?? []).filter((c) => c.ok).length} check(s) true, RTO ${db.rto?.achievedSeconds ?? "?"} s${why(db)}`);
  }
  for (const v of r.volumes) {
    out.push(`${mark(v)}  volume ${v.volume} (${v.stamp}, ${v.tier}): ${v.contentVerified ? `all ${v.entries?.listed} entries identical to the listing` : "content not verified"}${why(v)}`);
  }
  for (const o of r.olderPoints) out.push(`${mark(o)}  older restore point of ${o.database ? `database ${o.database}` : `volume ${o.volume}`}: ${o.stamp} (${o.tier}), chosen: ${o.chosenBecause}${why(o)}`);
  if (r.retention) {
    const items = r.retention.items.map((i) => `${i.name ?? i.kind}: ${i.covered} covered, ${i.pending} pending${i.missing.length ? `, missing ${i.missing.join(", ")}` : ""}`);
    out.push(`${mark(r.retention)}  retention audit (pending: periods before the first backup): ${items.join("; ")}`);
  }
  return out;
}

main().catch(async (e: unknown) => {
  console.error(`\ndemo failed: ${(e as Error).message ?? String(e)}`);
  await cleanup();
  process.exit(1);
});
