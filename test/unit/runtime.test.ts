import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { descendants, processAlive, waitFor } from "../support/proc";

// The one shell runtime (scripts/lib.sh): restorable_traps, the handlers every script runs under,
// and restorable_load_config, the one config loader. The jobs' own tests (interrupt.test.ts,
// drill.test.ts, backup-faults.test.ts, ...) show the same through the real scripts.
const LIB = join(__dirname, "../../scripts/lib.sh");
const dir = mkdtempSync(join(tmpdir(), "restorable-runtime-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** bash -c: lib.sh sourced, the handlers on, SCRIPT after. */
function job(script: string): string[] {
  return ["-c", `set -euo pipefail; . ${JSON.stringify(LIB)}; RESTORABLE_SCRIPT=t; restorable_traps; ${script}`];
}
const last = (stderr: string) => stderr.trimEnd().split("\n").pop();

describe("restorable_traps: one handler set", () => {
  it("a TERM while a child runs: the child (with its children) is stopped, the cleanups run, then the one failure line; exit 1", async () => {
    const p = spawn("bash", job(`c() { echo "cleanup rc=$1" >&2; }; restorable_on_exit c; RESTORABLE_STAGE=work; echo ready; restorable_run bash -c 'sleep 300 & wait'`), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => p.on("close", (code) => resolve(code)));
    const sleeps = await waitFor("the child's sleep", () => out.includes("ready") && descendants(p.pid!).filter((d) => d.comm === "sleep").map((d) => d.pid)[0], 10_000);
    p.kill("SIGTERM");
    expect(await exited).toBe(1);
    expect(processAlive(sleeps)).toBe(false);
    const lines = err.trimEnd().split("\n");
    expect(lines.at(-2)).toBe("cleanup rc=1");
    expect(lines.at(-1)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ restorable t: FAILED at stage work: interrupted by SIGTERM$/);
    expect(lines.filter((l) => l.includes("FAILED"))).toHaveLength(1);
  });

  it("restorable_fail records the first failure; the EXIT handler prints it once and keeps its status", () => {
    const r = spawnSync("bash", job(`restorable_fail lock "another t run holds x.lock" 3`), { encoding: "utf8" });
    expect(r.status).toBe(3);
    expect(last(r.stderr)).toMatch(/restorable t: FAILED at stage lock: another t run holds x\.lock$/);
    expect(r.stderr.match(/FAILED/g)).toHaveLength(1);
  });

  it("an unexpected error names the stage and the failing command", () => {
    const r = spawnSync("bash", job(`RESTORABLE_STAGE=upload; false`), { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(last(r.stderr)).toMatch(/FAILED at stage upload: unexpected error at line \d+: false \(exit 1\)$/);
  });

  it("the script's restorable_on_finish can fail a run that succeeded; a quiet end (RESTORABLE__REPORTED) says nothing", () => {
    const r = spawnSync("bash", job(`restorable_on_finish() { RESTORABLE_FAIL_STAGE=report RESTORABLE_FAIL_REASON="cannot upload the report"; }; exit 0`), { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(last(r.stderr)).toMatch(/FAILED at stage report: cannot upload the report$/);
    const q = spawnSync("bash", job(`RESTORABLE__REPORTED=1; exit 0`), { encoding: "utf8" });
    expect(q.status).toBe(0);
    expect(q.stderr).toBe("");
  });
});

describe("restorable_load_config: one loader, the job's required keys, the shared defaults", () => {
  const conf = (name: string, body: string) => {
    const f = join(dir, name);
    writeFileSync(f, body);
    return f;
  };
  const load = (file: string, keys: string, print: string) =>
    spawnSync("bash", job(`RESTORABLE_CONFIG=${JSON.stringify(file)}; restorable_load_config ${keys}; ${print}`), { encoding: "utf8" });

  it("applies the defaults to what the file leaves out", () => {
    const f = conf("min.conf", "RESTORABLE_HOST=web-1\nRESTORABLE_BUCKET=b\nRESTORABLE_ENDPOINT=http://127.0.0.1:1\n");
    const r = load(f, "", `printf '%s\\n' "$RESTORABLE_REGION" "$RESTORABLE_PREFIX" "$RESTORABLE_RPO_SECONDS" "$RESTORABLE_RETENTION_MONTHLY" "$RESTORABLE_VOLUME_IMAGE" "$RESTORABLE_DRILL_RUNTIME" "\${#RESTORABLE_PG_DATABASE[@]}"`);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["us-east-1", "web-1/", "86400", "12", "busybox:1.36", "docker", "0"]);
  });

  it("fails at stage config (exit 2) naming the first of the job's keys that is not set", () => {
    const f = conf("nozstd.conf", "RESTORABLE_HOST=web-1\nRESTORABLE_BUCKET=b\nRESTORABLE_ENDPOINT=http://127.0.0.1:1\n");
    const r = load(f, "RESTORABLE_HOST RESTORABLE_BUCKET RESTORABLE_ZSTD_LEVEL", "echo loaded");
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(last(r.stderr)).toMatch(/ FAILED at stage config: RESTORABLE_ZSTD_LEVEL is not set in /);
    expect(last(r.stderr)!.endsWith(` is not set in ${f}`)).toBe(true);
  });

  it("refuses a malformed number, and a missing file, with the key or path named", () => {
    const f = conf("bad.conf", "RESTORABLE_HOST=web-1\nRESTORABLE_BUCKET=b\nRESTORABLE_ENDPOINT=e\nRESTORABLE_RETENTION_DAILY=seven\n");
    const r = load(f, "", "echo loaded");
    expect(r.status).toBe(2);
    expect(last(r.stderr)).toMatch(/FAILED at stage config: RESTORABLE_RETENTION_DAILY must be a whole number of restore points$/);
    const missing = load(join(dir, "nope.conf"), "", "echo loaded");
    expect(missing.status).toBe(2);
    expect(last(missing.stderr)).toMatch(/FAILED at stage config: cannot read config file .*nope\.conf \(set RESTORABLE_CONFIG or reinstall with pulumi up\)$/);
  });
});

describe("the log's timestamps are UTC whatever the host's zone", () => {
  it("a host 9 hours east of UTC (TZ=JST-9) still logs the UTC time, labelled Z", () => {
    const before = Math.floor(Date.now() / 1000);
    const r = spawnSync("bash", job(`restorable_log hello; restorable_utc`), { encoding: "utf8", env: { ...process.env, TZ: "JST-9" } });
    const after = Math.ceil(Date.now() / 1000);
    expect(r.status, r.stderr).toBe(0);
    const logged = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) restorable t: hello$/m.exec(r.stderr)?.[1];
    expect(logged, r.stderr).toBeDefined();
    for (const stamp of [logged!, r.stdout.trim()]) {
      const t = Date.parse(stamp) / 1000;
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
  });
});

describe("restorable_wide_pipe: a decoded stream's pipe is 1 MiB, not 64 KiB", () => {
  // F_GETPIPE_SZ (1032) of stdout, as the reader at the other end of the pipe sees it.
  const pipeSize = `perl -e 'print STDERR fcntl(STDOUT, 1032, 0) // "not a pipe", "\\n"'`;

  it("widens the pipe its stdout is, and the bytes pass unchanged", () => {
    const r = spawnSync("bash", job(`{ restorable_wide_pipe; ${pipeSize}; printf 'abc'; } | od -An -c | tr -d ' \\n'`), { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe("1048576");
    expect(r.stdout).toBe("abc");
  });

  it("a plain pipe stays 64 KiB without it; a file is left alone", () => {
    const plain = spawnSync("bash", job(`{ ${pipeSize}; } | cat`), { encoding: "utf8" });
    expect(plain.stderr.trim()).toBe("65536");
    const file = join(dir, "wide-pipe.out");
    const r = spawnSync("bash", job(`restorable_wide_pipe >${JSON.stringify(file)}; echo done`), { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("done");
    expect(r.stderr).toBe("");
  });
});
