// The install plan's commands, run for real over a real OpenSSH connection (loopback sshd), as a
// non-root user and as root: install, re-install unchanged (byte for byte), a schedule change,
// the user's own cron lines, uninstall (twice), and preflight naming what is missing.
import { createHash } from "node:crypto";
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CRON_BEGIN, CRON_END, installPlan, RECORD_NAME } from "../../infra/plan/install";
import { readCrontab, snapshotCrontab, spoolPath, writeCrontab, type CrontabSnapshot } from "../support/cron";
import { startSshd, testUserName, type Sshd } from "../support/sshd";
import { requireTools } from "../support/tools";
import { fixture } from "./install-fixture";

const tools = requireTools("/usr/sbin/sshd", "ssh", "ssh-keygen", "ssh-keyscan", "crontab");

interface Entry {
  kind: "file" | "dir" | "link";
  mode: number;
  uid: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
  sha?: string;
}

/** Everything about a tree that a write, chmod, rename or touch would change. */
function snapshotTree(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (p: string): void => {
    const st = lstatSync(p);
    const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "link" : "file";
    out[p] = { kind, mode: st.mode & 0o7777, uid: st.uid, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
    if (kind === "file") out[p]!.sha = createHash("sha256").update(readFileSync(p)).digest("hex");
    if (kind === "dir") for (const e of readdirSync(p).sort()) walk(join(p, e));
  };
  if (existsSync(root)) walk(root);
  return out;
}

function spoolSnapshot(user: string): { bytes: string; mtimeMs: number; ino: number } | undefined {
  const p = spoolPath(user);
  if (!existsSync(p)) return undefined;
  const st = statSync(p);
  return { bytes: readFileSync(p, "utf8"), mtimeMs: st.mtimeMs, ino: st.ino };
}

function countLines(text: string, line: string): number {
  return text.split("\n").filter((l) => l === line).length;
}

const USER_LINES = "MAILTO=\"\"\n# my own job, not restorable's\n17 4 * * * /usr/bin/true my-own-job\n";

describe.skipIf(!tools.ok)("install over SSH (real sshd, real crontab)", () => {
  let sshd: Sshd;
  const user = testUserName();
  let rootCrontab: CrontabSnapshot;
  let work: string;

  beforeAll(async () => {
    rootCrontab = await snapshotCrontab("root");
    sshd = await startSshd({ users: ["root", user] });
    work = mkdtempSync(join(tmpdir(), "restorable-install-"));
    chmodSync(work, 0o755);
  });

  afterAll(async () => {
    await rootCrontab?.restore();
    await sshd?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  for (const who of ["nonroot", "root"] as const) {
    describe(who === "root" ? "as root" : "as a non-root user", () => {
      let login: string;
      let base: string;

      beforeAll(async () => {
        login = who === "root" ? "root" : user;
        base = join(work, who);
        mkdirSync(base, { mode: 0o755 });
        if (who === "nonroot") chownSync(base, sshd.users[user]!.uid, sshd.users[user]!.gid);
        // root: start without any crontab, to prove uninstall leaves none behind.
        await writeCrontab(login, who === "root" ? undefined : USER_LINES);
      });

      it("preflight passes when tools and directories are in place", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base });
        const p = installPlan(f.rendered, f.host);
        const r = await sshd.ssh(login, p.preflight);
        expect(r.stderr).not.toMatch(/not ready/);
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/ready \(user /);
        expect(existsSync(`${base}/opt`)).toBe(false); // changes nothing
      });

      it("installs every file atomically with its mode, the state dir, the crontab block and the record", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base });
        const p = installPlan(f.rendered, f.host);
        const before = await readCrontab(login);
        const r = await sshd.ssh(login, p.install.command, p.install.stdin);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/5 files written, 0 unchanged/);
        const uid = sshd.users[login]!.uid;
        for (const file of f.rendered.files) {
          const st = statSync(file.path);
          expect(readFileSync(file.path, "utf8")).toBe(file.content);
          expect((st.mode & 0o777).toString(8)).toBe(file.mode.toString(8));
          expect(st.uid).toBe(uid);
        }
        expect(statSync(`${base}/etc/restorable/credentials`).mode & 0o777).toBe(0o600);
        expect(statSync(f.stateDir).mode & 0o777).toBe(0o700);
        // No temp files left behind.
        for (const d of [`${base}/opt/restorable`, `${base}/etc/restorable`]) {
          expect(readdirSync(d).filter((e) => e.startsWith(".restorable.") )).toEqual([]);
        }
        const record = readFileSync(`${base}/etc/restorable/${RECORD_NAME}`, "utf8");
        expect(record).toContain(`hash ${f.rendered.hash}`);
        expect(record).toContain(`dir ${base}/opt`);
        expect(record).toContain(`dir ${f.stateDir}`);
        expect(record).not.toContain(f.secret);
        const cron = (await readCrontab(login))!;
        expect(cron.startsWith(`${CRON_BEGIN}\n0 3 * * * ${base}/opt/restorable/backup\n`)).toBe(true);
        expect(countLines(cron, CRON_BEGIN)).toBe(1);
        expect(countLines(cron, CRON_END)).toBe(1);
        // The user's own lines survive, unchanged and in order, after our block.
        expect(cron).toBe(f.rendered.crontab + (before ?? ""));
        // Secrets appear nowhere but the credentials file.
        expect(cron).not.toContain(f.secret);
        expect(p.install.command).not.toContain(f.secret);
      });

      it("re-installing unchanged content changes nothing, byte for byte", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base });
        const p = installPlan(f.rendered, f.host);
        const tree = snapshotTree(base);
        const spool = spoolSnapshot(login);
        const r = await sshd.sshOk(login, p.install.command, p.install.stdin);
        expect(r.stdout).toMatch(/0 files written, 5 unchanged, 0 stale removed; crontab block of \S+ unchanged/);
        expect(snapshotTree(base)).toEqual(tree);
        expect(spoolSnapshot(login)).toEqual(spool);
      });

      it("a schedule change updates the block in place without duplicating it", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base, backupSchedule: "30 2 * * *" });
        const p = installPlan(f.rendered, f.host);
        await sshd.sshOk(login, p.install.command, p.install.stdin);
        const cron = (await readCrontab(login))!;
        expect(countLines(cron, CRON_BEGIN)).toBe(1);
        expect(countLines(cron, CRON_END)).toBe(1);
        expect(cron).toContain(`30 2 * * * ${base}/opt/restorable/backup`);
        expect(cron).not.toContain(`0 3 * * * ${base}/opt/restorable/backup`);
        if (who === "nonroot") expect(cron.endsWith(USER_LINES)).toBe(true);
      });

      it("keeps the block where it is when the user added lines above it, and the lines themselves", async () => {
        const cur = (await readCrontab(login))!;
        await writeCrontab(login, `# added above by the user\n5 5 * * * /usr/bin/true above\n${cur}`);
        const f = fixture({ sshUser: login, sshPort: sshd.port, base, backupSchedule: "45 1 * * *" });
        const p = installPlan(f.rendered, f.host);
        await sshd.sshOk(login, p.install.command, p.install.stdin);
        const cron = (await readCrontab(login))!;
        expect(cron.startsWith("# added above by the user\n5 5 * * * /usr/bin/true above\n# BEGIN restorable")).toBe(true);
        expect(countLines(cron, CRON_BEGIN)).toBe(1);
        expect(cron).toContain(`45 1 * * * ${base}/opt/restorable/backup`);
        // Back to the usual shape for the tests below.
        await writeCrontab(login, cron.replace("# added above by the user\n5 5 * * * /usr/bin/true above\n", ""));
      });

      it("a new content rewrites only what changed and removes files no longer rendered", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base, backupSchedule: "45 1 * * *", scriptVersion: 2, withoutDrill: true, secretKey: "rotated-secret-key-0000000000000000000000" });
        const p = installPlan(f.rendered, f.host);
        const libBefore = statSync(`${base}/opt/restorable/lib.sh`);
        const r = await sshd.sshOk(login, p.install.command, p.install.stdin);
        expect(r.stdout).toMatch(/2 files written, 2 unchanged, 1 stale removed/);
        expect(existsSync(`${base}/opt/restorable/restore-drill`)).toBe(false);
        expect(readFileSync(`${base}/opt/restorable/backup`, "utf8")).toContain("backup v2");
        expect(readFileSync(`${base}/etc/restorable/credentials`, "utf8")).toContain("rotated-secret-key");
        expect(statSync(`${base}/etc/restorable/credentials`).mode & 0o777).toBe(0o600);
        const libAfter = statSync(`${base}/opt/restorable/lib.sh`);
        expect([libAfter.ino, libAfter.mtimeMs]).toEqual([libBefore.ino, libBefore.mtimeMs]);
        const cron = (await readCrontab(login))!;
        expect(cron).not.toContain("restore-drill");
      });

      it("a truncated payload changes nothing", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base, scriptVersion: 3 });
        const p = installPlan(f.rendered, f.host);
        const tree = snapshotTree(base);
        const spool = spoolSnapshot(login);
        const cut = p.install.stdin.slice(0, p.install.stdin.indexOf("\ncron "));
        const r = await sshd.ssh(login, p.install.command, cut);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/incomplete.*nothing was changed/);
        expect(snapshotTree(base)).toEqual(tree);
        expect(spoolSnapshot(login)).toEqual(spool);
      });

      it("uninstall removes only ours, and is safe to run twice", async () => {
        const f = fixture({ sshUser: login, sshPort: sshd.port, base, backupSchedule: "45 1 * * *", scriptVersion: 2, withoutDrill: true });
        const p = installPlan(f.rendered, f.host);
        // A file of the user's in a directory the install created: the directory must stay.
        writeFileSync(`${base}/opt/restorable/users-notes.txt`, "mine\n");
        if (who === "nonroot") chownSync(`${base}/opt/restorable/users-notes.txt`, sshd.users[user]!.uid, sshd.users[user]!.gid);
        // A lock file the scripts would leave in the state dir: goes with the state dir.
        writeFileSync(join(f.stateDir, "backup.lock"), "");
        const r = await sshd.ssh(login, p.uninstall);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/4 files removed; crontab block of \S+ removed/);
        expect(r.stdout).toMatch(/kept directories that hold files we did not write: .*opt\/restorable/);
        for (const file of f.rendered.files) expect(existsSync(file.path)).toBe(false);
        expect(existsSync(`${base}/etc/restorable/${RECORD_NAME}`)).toBe(false);
        expect(existsSync(`${base}/etc`)).toBe(false);
        expect(existsSync(`${base}/var`)).toBe(false);
        expect(readFileSync(`${base}/opt/restorable/users-notes.txt`, "utf8")).toBe("mine\n");
        expect(existsSync(base)).toBe(true);
        // The crontab is exactly what the user had before the install (none for root).
        const cron = await readCrontab(login);
        expect(cron).toBe(who === "root" ? undefined : USER_LINES);
        // Twice: nothing to do, no error, nothing changes.
        const tree = snapshotTree(base);
        const spool = spoolSnapshot(login);
        const again = await sshd.ssh(login, p.uninstall);
        expect(again.stderr).toBe("");
        expect(again.stdout).toMatch(/0 files removed; crontab block of \S+ absent/);
        expect(again.code).toBe(0);
        expect(snapshotTree(base)).toEqual(tree);
        expect(spoolSnapshot(login)).toEqual(spool);
        rmSync(`${base}/opt`, { recursive: true, force: true });
      });

      it("uninstall keeps directories that existed before the install", async () => {
        mkdirSync(`${base}/etc/restorable`, { recursive: true, mode: 0o755 });
        if (who === "nonroot") {
          for (const d of [`${base}/etc`, `${base}/etc/restorable`]) chownSync(d, sshd.users[user]!.uid, sshd.users[user]!.gid);
        }
        const f = fixture({ sshUser: login, sshPort: sshd.port, base });
        const p = installPlan(f.rendered, f.host);
        await sshd.sshOk(login, p.install.command, p.install.stdin);
        await sshd.sshOk(login, p.uninstall);
        expect(readdirSync(`${base}/etc/restorable`)).toEqual([]);
        expect(existsSync(`${base}/opt`)).toBe(false);
        expect(await readCrontab(login)).toBe(who === "root" ? undefined : USER_LINES);
        rmSync(`${base}/etc`, { recursive: true, force: true });
      });
    });
  }

  it("preflight names a missing tool and how to install it, and changes nothing", async () => {
    // A PATH with every tool of /usr/bin and /usr/sbin except zstd.
    const bin = join(work, "path-without-zstd");
    mkdirSync(bin);
    for (const d of ["/usr/bin", "/usr/sbin"]) {
      for (const e of readdirSync(d)) {
        if (e === "zstd" || existsSync(join(bin, e))) continue;
        symlinkSync(join(d, e), join(bin, e));
      }
    }
    const base = join(work, "preflight");
    mkdirSync(base, { mode: 0o755 });
    const f = fixture({ sshUser: "root", sshPort: sshd.port, base, rawHost: { encryption: { ageRecipients: [`age1${"q".repeat(58)}`] } } });
    const p = installPlan(f.rendered, f.host, { searchPath: bin });
    const r = await sshd.ssh("root", p.preflight);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/missing tools .*: zstd\n/);
    expect(r.stderr).toContain("apt-get install -y zstd\n");
    expect(readdirSync(base)).toEqual([]);
  });

  it("preflight tells a non-root user that the default directories are not writable, and what to do", async () => {
    const f = fixture({ sshUser: user, sshPort: sshd.port });
    const p = installPlan(f.rendered, f.host);
    const r = await sshd.ssh(user, p.preflight);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${user} cannot create /opt/restorable (/opt is not writable by ${user})`);
    expect(r.stderr).toContain(`${user} cannot create /etc/restorable (/etc is not writable by ${user})`);
    expect(r.stderr).toMatch(/connect as root \(ssh.user: root\), or set paths.scriptsDir and paths.configDir of host web-1 to directories \S+ owns/);
    expect(r.stderr).toContain(`and have root create the state directory once: install -d -m 0700 -o ${user} /var/lib/restorable`);
  });

  it("a crontab with our BEGIN line but no END line is refused, not guessed at", async () => {
    const base = join(work, "broken");
    mkdirSync(base, { mode: 0o755 });
    chownSync(base, sshd.users[user]!.uid, sshd.users[user]!.gid);
    await writeCrontab(user, `${CRON_BEGIN}\n0 3 * * * /somewhere/backup\n${USER_LINES}`);
    const f = fixture({ sshUser: user, sshPort: sshd.port, base });
    const p = installPlan(f.rendered, f.host);
    const r = await sshd.ssh(user, p.install.command, p.install.stdin);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/without a matching "# END restorable": fix it with crontab -e/);
    expect(await readCrontab(user)).toBe(`${CRON_BEGIN}\n0 3 * * * /somewhere/backup\n${USER_LINES}`);
    await writeCrontab(user, undefined);
  });
});
