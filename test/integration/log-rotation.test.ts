/**
 * Cron log rotation (restorable_rotate_log in scripts/lib.sh): the jobs run exactly as the
 * crontab line runs them (`job >>STATE/<job>.log 2>&1`), with `hosts[].logs` from the config.
 * A log filled past the cap is shifted to .1 (older generations up, the oldest dropped) when the
 * next run has its lock, and that run writes into a fresh file; a small log, or a stdout that is
 * not a log in the state dir, is left alone. The bucket is unreachable on purpose: each run
 * fails fast at preflight, after taking its lock, which is all rotation needs.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackupEnv, type BackupEnv } from "../support/backup-env";
import { freePort, run } from "../support/proc";
import { requireTools } from "../support/tools";

const tools = requireTools("flock", "curl", "jq", "zstd");
const MiB = 1024 * 1024;

describe.skipIf(!tools.ok)("cron log rotation", () => {
  let e: BackupEnv;
  beforeAll(async () => {
    const port = await freePort(); // nothing listens here
    e = createBackupEnv({
      s3: { endpoint: `http://127.0.0.1:${port}`, region: "us-east-1", bucket: "nowhere", creds: { accessKeyId: "AK", secretAccessKey: "SK" } },
      postgres: [{ via: "local", host: "127.0.0.1", port: 1, user: "postgres", database: "app" }],
      logs: { maxMiB: 1, keep: 2 },
    });
    mkdirSync(e.stateDir, { recursive: true, mode: 0o700 });
  });
  afterAll(() => e?.remove());

  /** Runs a job the way its crontab line does, appending stdout and stderr to `log`. */
  async function cronRun(job: string, log: string): Promise<number | null> {
    const r = await run("bash", ["-c", `"$1" "$2" >>"$3" 2>&1`, "cron", "bash", e.scriptPath(job), log], { env: e.env(), timeoutMs: 120_000 });
    expect(r.stdout + r.stderr).toBe("");
    return r.code;
  }
  const read = (p: string) => readFileSync(p, "utf8");
  const filler = (tag: string) => `${tag} ${"x".repeat(99)}\n`.repeat(Math.ceil((1.1 * MiB) / 104));

  it("renders the cap and the generations from hosts[].logs", () => {
    expect(read(e.configPath)).toMatch(new RegExp(`^RESTORABLE_LOG_MAX_BYTES='?${MiB}'?$`, "m"));
    expect(read(e.configPath)).toMatch(/^RESTORABLE_LOG_KEEP='?2'?$/m);
  });

  it("backup: rotates a full log, leaves a small one, keeps `keep` generations", async () => {
    const log = join(e.stateDir, "backup.log");
    writeFileSync(log, filler("first"));
    expect(await cronRun("backup", log)).toBe(1);
    expect(read(`${log}.1`).startsWith(filler("first"))).toBe(true);
    const fresh = read(log);
    expect(fresh).toMatch(/^\d{4}-\d\d-\d\dT[\d:]+Z restorable backup: rotated .*backup\.log \(\d+ bytes\) to .*backup\.log\.1, keeping 2 generations\n/);
    expect(fresh).toMatch(/FAILED at stage /);
    expect(fresh).not.toContain("first x");

    // Small: appended to, not rotated.
    expect(await cronRun("backup", log)).toBe(1);
    expect(read(log).startsWith(fresh)).toBe(true);
    expect(read(log).length).toBeGreaterThan(fresh.length);
    expect(existsSync(`${log}.2`)).toBe(false);

    writeFileSync(log, filler("second"));
    expect(await cronRun("backup", log)).toBe(1);
    expect(read(`${log}.2`).startsWith(filler("first"))).toBe(true);
    expect(read(`${log}.1`).startsWith(filler("second"))).toBe(true);

    writeFileSync(log, filler("third"));
    expect(await cronRun("backup", log)).toBe(1);
    expect(read(`${log}.2`).startsWith(filler("second"))).toBe(true);
    expect(read(`${log}.1`).startsWith(filler("third"))).toBe(true);
    expect(existsSync(`${log}.3`)).toBe(false); // the oldest ("first") is gone
    expect(read(log)).toMatch(/rotated /);
  });

  it("restore-drill rotates its own log too", async () => {
    const log = join(e.stateDir, "restore-drill.log");
    writeFileSync(log, filler("drill"));
    expect(await cronRun("restore-drill", log)).not.toBe(0);
    expect(read(`${log}.1`).startsWith(filler("drill"))).toBe(true);
    expect(read(log)).toMatch(/restorable restore-drill: rotated /);
  });

  it("a stdout that is not a log in the state dir is never rotated", async () => {
    const other = join(e.dir, "elsewhere.log");
    writeFileSync(other, filler("mine"));
    expect(await cronRun("backup", other)).toBe(1);
    expect(existsSync(`${other}.1`)).toBe(false);
    expect(read(other).startsWith(filler("mine"))).toBe(true);
    expect(read(other)).toMatch(/FAILED at stage /);
  });
});
