// Cron end to end, with real components only: the real renderHost output installed over a real
// SSH connection (non-root users) with the install plan's commands, the real cron daemon, a real
// PostgreSQL and a real S3 server (Ceph radosgw).
//
// The backup: with the backup scheduled `* * * * *`, the installed crontab line runs the installed
// backup in cron's own bare environment (not ours, not the SSH session's), and a manifest appears
// in the bucket. Then the installed restore-drill, run over SSH, proves that backup restores;
// uninstall leaves the user's crontab and the disk as they were.
//
// The WAL archiver (pitr), for a second host and user: cron's `* * * * *` keepalive line starts the
// installed wal-archiver and a committed row reaches the bucket; after SIGKILL of its whole process
// tree (a crash, or a reboot: pg_receivewal gone too, the spool left as it was) cron starts a new
// one, a row committed while none ran reaches the bucket, and the archive has no gap; the install
// plan's uninstall stops it and drops its replication slot.
//
// Only one cron daemon may run machine-wide: both share this file's one daemon (and sshd, S3,
// PostgreSQL), and vitest runs a file's tests one after the other.
import { chownSync, chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../infra/config";
import { buildPlan } from "../../infra/plan";
import { installPlan } from "../../infra/plan/install";
import { renderHost } from "../../infra/plan/render";
import { replicationSlotName } from "../../infra/plan/render-pitr";
import { readCrontab, startCron, writeCrontab, type CronDaemon } from "../support/cron";
import { loadSampleData, startPostgres, type PgCluster } from "../support/postgres";
import { descendants, procInfo, processAlive, waitFor } from "../support/proc";
import { startS3Server, type S3Creds, type S3Server } from "../support/s3server";
import { startSshd, testUserName, type Sshd } from "../support/sshd";
import { requireTools } from "../support/tools";
import { hostBucketAccess, type BucketAccess } from "../support/backup-env";
import { getObject, listKeys } from "../support/drill-fixtures";
import { expectNoGap, keyHolding, receiverPids, type BucketReader } from "../support/wal-archive";

const tools = requireTools(
  "/usr/sbin/sshd", "ssh", "ssh-keygen", "ssh-keyscan", "cron", "crontab",
  "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "/usr/bin/aws",
  "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl", "pg_dump", "psql", "pg_restore",
  "zstd", "jq", "flock", "curl", "pg_receivewal",
);

const BUCKET = "cron-backups";
const USER_LINES = "# the user's own job\n23 4 * * * /usr/bin/true users-own-job\n";

describe.skipIf(!tools.ok)("cron, the real daemon, runs what the install plan installed", () => {
  let cron: CronDaemon | undefined;
  let s3: S3Server;
  let pg: PgCluster;
  let sshd: Sshd;
  const user = testUserName("rcr");
  const pitrUser = testUserName("rcw");

  beforeAll(async () => {
    // Only one cron daemon may run machine-wide. None running (a container, CI): start ours and
    // stop it afterwards. One running that we did not start (e.g. cron.service on a systemd
    // machine, started by apt): use it, it is the real daemon all the same, and leave it running.
    cron = await startCron({ reuseRunning: true });
    if (!cron.started) console.warn(`cron test: using the cron daemon already running (pid ${cron.pid}); it is left running`);
    [s3, pg, sshd] = await Promise.all([startS3Server(), startPostgres({ auth: "trust" }), startSshd({ users: [user, pitrUser] })]);
    await s3.createBucket(BUCKET, { versioning: true });
  });

  afterAll(async () => {
    // Every step runs even when an earlier one fails.
    const steps: Array<() => Promise<unknown>> = [async () => cron?.stop(), async () => sshd?.stop(), async () => pg?.stop(), async () => s3?.stop()];
    for (const s of steps) await s().catch(() => undefined);
  });

  describe("the backup", () => {
    let base: string;
    let hostKey: S3Creds;
    let plan: ReturnType<typeof installPlan>;
    let stateDir: string;

    beforeAll(async () => {
      hostKey = await s3.createUser("cron-host");
      // The bucket owner grants the host key its prefix (as a bucket policy: radosgw honours it).
      const policy = {
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Principal: { AWS: ["arn:aws:iam:::user/cron-host"] }, Action: ["s3:PutObject", "s3:GetObject"], Resource: [`arn:aws:s3:::${BUCKET}/web-1/*`] },
          { Effect: "Allow", Principal: { AWS: ["arn:aws:iam:::user/cron-host"] }, Action: ["s3:ListBucket"], Resource: [`arn:aws:s3:::${BUCKET}`] },
        ],
      };
      const put = await s3.aws(s3.admin, ["s3api", "put-bucket-policy", "--bucket", BUCKET, "--policy", JSON.stringify(policy)]);
      expect(put.code, put.stderr).toBe(0);
      await loadSampleData(pg, "app");

      base = mkdtempSync(join(tmpdir(), "restorable-cron-"));
      chmodSync(base, 0o755);
      chownSync(base, sshd.users[user]!.uid, sshd.users[user]!.gid);
      stateDir = join(base, "state");
      const cfg = parseConfig({
        storage: { provider: "s3", bucket: BUCKET, endpoint: s3.endpoint, region: s3.region, allowNotOffsite: true },
        objectives: { rpo: "24h", rto: "1h" },
        hosts: [
          {
            name: "web-1",
            ssh: { host: "127.0.0.1", user, port: sshd.port },
            postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, user: "postgres", database: "app" }],
            schedule: { backup: "* * * * *", drill: "0 5 1 * *" },
            drill: { runtime: "local", checks: ["SELECT count(*) > 0 FROM public.users"] },
            paths: { scriptsDir: join(base, "opt"), configDir: join(base, "etc") },
          },
        ],
      });
      const p = buildPlan(cfg);
      const host = p.hosts[0]!;
      const rendered = renderHost(p, host, { accessKeyId: hostKey.accessKeyId, secretAccessKey: hostKey.secretAccessKey, pgPasswords: {} }, { stateDir });
      plan = installPlan(rendered, host);
      await writeCrontab(user, USER_LINES);
    });

    afterAll(async () => {
      if (plan) await sshd.ssh(user, plan.uninstall).catch(() => undefined);
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it("preflight passes for the user with cron's PATH", async () => {
      const r = await sshd.ssh(user, plan.preflight);
      expect(r.stderr).not.toMatch(/not ready/);
      expect(r.code).toBe(0);
    });

    it("installs, and within a minute or two cron's run of the installed backup leaves a manifest in the bucket", async () => {
      const r = await sshd.ssh(user, plan.install.command, plan.install.stdin);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const cronText = (await readCrontab(user))!;
      expect(cronText.startsWith("# BEGIN restorable (managed by Pulumi; do not edit)\n* * * * * ")).toBe(true);
      expect(cronText.endsWith(USER_LINES)).toBe(true);

      const manifest = await waitFor(
        "a manifest uploaded by the cron-run backup",
        async () => {
          const ls = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/", "--output", "json"]);
          if (ls.code !== 0 || !ls.stdout.trim()) return undefined;
          const keys = ((JSON.parse(ls.stdout) as { Contents?: { Key: string }[] }).Contents ?? []).map((c) => c.Key);
          return keys.find((k) => /^web-1\/(daily|weekly|monthly)\/postgres\/app\/\d{8}T\d{6}Z\.manifest\.json$/.test(k));
        },
        150_000,
        2_000,
      );
      // It was cron that ran it: the crontab line's log in the state dir, written by that run.
      const log = readFileSync(join(stateDir, "backup.log"), "utf8");
      expect(log).not.toMatch(/FAILED/);
      const out = join(tmpdir(), `restorable-cron-manifest-${process.pid}.json`);
      const get = await s3.aws(hostKey, ["s3api", "get-object", "--bucket", BUCKET, "--key", manifest, out]);
      expect(get.code, get.stderr).toBe(0);
      const text = readFileSync(out, "utf8");
      rmSync(out, { force: true });
      const m = JSON.parse(text) as { host: string; database: string; kind: string; tables: { name: string }[] };
      expect(m).toMatchObject({ host: "web-1", database: "app", kind: "postgres" });
      expect(m.tables.map((t) => t.name)).toContain("users");
    });

    it("the installed restore-drill, run over SSH, restores that backup and reports to the bucket", async () => {
      const r = await sshd.ssh(user, `${base}/opt/restore-drill`, "", { timeoutMs: 300_000 });
      expect(r.stderr).not.toMatch(/FAILED/);
      expect(r.code).toBe(0);
      const ls = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/drills/", "--output", "json"]);
      const keys = ((JSON.parse(ls.stdout || "{}") as { Contents?: { Key: string }[] }).Contents ?? []).map((c) => c.Key);
      expect(keys.length).toBeGreaterThan(0);
    });

    it("uninstall stops the schedule and leaves only the user's own crontab and nothing on disk", async () => {
      const r = await sshd.ssh(user, plan.uninstall);
      expect(r.code).toBe(0);
      expect(await readCrontab(user)).toBe(USER_LINES);
      expect(readdirSync(base)).toEqual([]);
      expect(existsSync(stateDir)).toBe(false);
      // Backups in the bucket are never touched by uninstall.
      const ls = await s3.aws(s3.admin, ["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", "web-1/", "--output", "json"]);
      expect(JSON.parse(ls.stdout).Contents.length).toBeGreaterThan(0);
    });
  });

  describe("the WAL archiver (pitr), kept running by cron's keepalive line", () => {
    const HOST = "web-2";
    let base: string;
    let stateDir: string;
    let access: BucketAccess;
    let bucket: BucketReader;
    let plan: ReturnType<typeof installPlan>;
    let scriptsDir: string;
    let slot: string;
    let prefix: string;
    const cache = new Map<string, Buffer>();
    /** Every archiver pid seen: afterAll stops any still running (a failed test must not leave one). */
    const seen = new Set<number>();
    const markers: { note: string; key: string }[] = [];

    /** The running wal-archiver of this install (its pid file, checked against its command line and owner). */
    function archiverPid(): number | undefined {
      let pid: number;
      try {
        pid = Number(readFileSync(join(stateDir, "wal-archiver.pid"), "utf8").trim());
      } catch {
        return undefined;
      }
      if (!(pid > 0) || !processAlive(pid)) return undefined;
      const proc = userProcesses(sshd.users[pitrUser]!.uid).find((p) => p.pid === pid);
      if (!proc?.args.includes(`${scriptsDir}/wal-archiver`)) return undefined;
      seen.add(pid);
      return pid;
    }
    /** pid's ancestors, nearest first. */
    function ancestors(pid: number): number[] {
      const out: number[] = [];
      for (let p = procInfo(pid)?.ppid; p !== undefined && p > 0; p = procInfo(p)?.ppid) out.push(p);
      return out;
    }
    const archiverLog = () => {
      try {
        return readFileSync(join(stateDir, "wal-archiver.log"), "utf8");
      } catch {
        return "";
      }
    };
    /** An archiver cron started (other than `not`), with its receiver streaming. */
    async function cronStartsArchiver(not?: number): Promise<number> {
      const pid = await waitFor(
        "cron to start the installed wal-archiver",
        () => {
          const p = archiverPid();
          return p !== undefined && p !== not && receiverPids(stateDir).length === 1 ? p : undefined;
        },
        150_000,
        1_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- wal-archiver.log:\n${archiverLog().slice(-3000)}`);
      });
      // It was cron that started it: the cron daemon is its ancestor (cron, its job's sh, the
      // archiver), and it started in cron's bare environment (PATH=/usr/bin:/bin, nothing of ours).
      expect(ancestors(pid)).toContain(cron!.pid);
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      expect(env).toContain("PATH=/usr/bin:/bin");
      expect(env.filter((v) => v.startsWith("VITEST"))).toEqual([]);
      return pid;
    }
    async function commitMarker(label: string): Promise<string> {
      const note = `cron-marker-${label}-${Date.now()}`;
      await pg.psql(`INSERT INTO marker (note) VALUES ('${note}')`, { database: "walapp" });
      return note;
    }
    async function reachesBucket(note: string): Promise<string> {
      const key = await waitFor(`"${note}" to reach the bucket`, () => keyHolding(bucket, prefix, note, cache), 120_000, 1_000).catch((err: Error) => {
        throw new Error(`${err.message}\n--- wal-archiver.log:\n${archiverLog().slice(-3000)}`);
      });
      markers.push({ note, key });
      return key;
    }
    const slots = () => pg.psql("SELECT coalesce(string_agg(slot_name, ' '), '') FROM pg_replication_slots");

    beforeAll(async () => {
      access = await hostBucketAccess(s3, BUCKET, HOST);
      bucket = { list: (p) => listKeys(access, p), get: (k) => getObject(access, k) };
      await pg.psql("CREATE DATABASE walapp");
      await pg.psql("CREATE TABLE marker (id serial PRIMARY KEY, note text NOT NULL)", { database: "walapp" });
      base = mkdtempSync(join(tmpdir(), "restorable-cron-wal-"));
      chmodSync(base, 0o755);
      chownSync(base, sshd.users[pitrUser]!.uid, sshd.users[pitrUser]!.gid);
      stateDir = join(base, "state");
      scriptsDir = join(base, "opt");
      const cfg = parseConfig({
        storage: { provider: "s3", bucket: BUCKET, endpoint: s3.endpoint, region: s3.region, allowNotOffsite: true },
        objectives: { rpo: "24h", rto: "1h" },
        hosts: [
          {
            name: HOST,
            ssh: { host: "127.0.0.1", user: pitrUser, port: sshd.port },
            // The archiver's pg_receivewal connects for replication: PostgreSQL 15's defaults
            // (wal_level replica, max_wal_senders 10) and initdb's trust lines for replication.
            postgres: [{ via: "local", host: "127.0.0.1", port: pg.port, user: "postgres", database: "walapp" }],
            schedule: { backup: "0 3 * * *", drill: "0 5 1 * *" },
            drill: { runtime: "local" },
            pitr: { enabled: true },
            paths: { scriptsDir, configDir: join(base, "etc") },
          },
        ],
      });
      const p = buildPlan(cfg);
      const host = p.hosts[0]!;
      const cluster = host.pitr!.clusters[0]!.name;
      prefix = `${HOST}/wal/${cluster}/`;
      slot = replicationSlotName(cluster);
      const rendered = renderHost(p, host, { accessKeyId: access.creds.accessKeyId, secretAccessKey: access.creds.secretAccessKey, pgPasswords: {} }, { stateDir });
      plan = installPlan(rendered, host);
      await writeCrontab(pitrUser, USER_LINES);
    });

    afterAll(async () => {
      if (plan) await sshd.ssh(pitrUser, plan.uninstall).catch(() => undefined);
      // Whatever the uninstall did not stop (a failed test): by pid, the archivers seen (still
      // running this install's wal-archiver, not a reused pid) and the receivers in our spool.
      const ours = userProcesses(sshd.users[pitrUser]!.uid).filter((p) => seen.has(p.pid) && p.args.includes(`${scriptsDir}/wal-archiver`));
      for (const pid of [...ours.map((p) => p.pid), ...receiverPids(stateDir)]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await pg?.psql(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`).catch(() => undefined);
      if (base) rmSync(base, { recursive: true, force: true });
    });

    it("installs over SSH; within a minute or two cron has started the installed wal-archiver, and a committed row reaches the bucket", async () => {
      const pre = await sshd.ssh(pitrUser, plan.preflight);
      expect(pre.stderr).not.toMatch(/not ready/);
      expect(pre.code).toBe(0);
      const r = await sshd.ssh(pitrUser, plan.install.command, plan.install.stdin);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const cronText = (await readCrontab(pitrUser))!;
      expect(cronText.split("\n").filter((l) => l.startsWith("* * * * * ") && l.includes(`${scriptsDir}/wal-archiver`))).toHaveLength(1);
      expect(cronText.endsWith(USER_LINES)).toBe(true);

      await cronStartsArchiver();
      expect(archiverLog()).toMatch(/archiving WAL of 1 cluster\(s\)/);
      expect(await slots()).toBe(slot);
      await reachesBucket(await commitMarker("first"));
      expect(archiverLog()).not.toMatch(/FAILED/);
    }, 300_000);

    it("SIGKILL of the archiver's whole process tree (a crash, a reboot): cron starts a new one, a row committed while none ran reaches the bucket, no gap", async () => {
      const old = archiverPid()!;
      expect(old).toBeDefined();
      // Everything of it, like a reboot: the archiver, its children (pg_receivewal among them)
      // and any receiver writing into its spool. The spool stays as it was.
      const tree = [old, ...descendants(old).map((d) => d.pid), ...receiverPids(stateDir)];
      expect(tree.length).toBeGreaterThan(1);
      for (const pid of tree) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await waitFor("the killed tree to be gone", () => tree.every((p) => !processAlive(p)), 10_000);
      expect(receiverPids(stateDir)).toEqual([]);
      const whileDown = await commitMarker("while-down");

      const fresh = await cronStartsArchiver(old);
      expect(fresh).not.toBe(old);
      expect(archiverLog().match(/archiving WAL of 1 cluster\(s\)/g)).toHaveLength(2);
      const key = await reachesBucket(whileDown);
      await reachesBucket(await commitMarker("after-restart"));
      // No hole anywhere in the archive, so every segment from the first row's to these is there.
      const names = await expectNoGap(bucket, prefix);
      const segment = (k: string) => k.slice(prefix.length).replace(/\.zst$/, "");
      expect(names).toContain(segment(markers[0]!.key));
      expect(names).toContain(segment(key));
      expect(await slots()).toBe(slot);
    }, 300_000);

    it("the install plan's uninstall (pulumi destroy), over SSH: no archiver or receiver left, the slot dropped, the user's own crontab lines kept", async () => {
      const pid = archiverPid()!;
      expect(pid).toBeDefined();
      const r = await sshd.ssh(pitrUser, plan.uninstall);
      expect(r.stderr).not.toMatch(/FAILED|pitr-uninstall failed/);
      expect(r.code).toBe(0);
      expect(processAlive(pid)).toBe(false);
      expect(receiverPids(stateDir)).toEqual([]);
      expect(userProcesses(sshd.users[pitrUser]!.uid).filter((p) => p.args.some((a) => /wal-archiver|pg_receivewal/.test(a)))).toEqual([]);
      expect(await slots()).toBe("");
      expect(await readCrontab(pitrUser)).toBe(USER_LINES);
      expect(existsSync(stateDir)).toBe(false);
      // The archive in the bucket is never touched by uninstall.
      expect(await keyHolding(bucket, prefix, markers.at(-1)!.note, new Map())).toBe(markers.at(-1)!.key);
    }, 180_000);
  });
});

/** Live processes of `uid`, with their arguments, from /proc. */
function userProcesses(uid: number): { pid: number; args: string[] }[] {
  const out: { pid: number; args: string[] }[] = [];
  for (const e of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${e}/status`, "utf8"))![1]) !== uid || !processAlive(Number(e))) continue;
      out.push({ pid: Number(e), args: readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").filter(Boolean) });
    } catch {
      /* gone */
    }
  }
  return out;
}
