import { describe, expect, it } from "vitest";
import { ConfigError, maxGapSeconds, parseConfig, parseCron, parseDuration } from "../../infra/config";
import { BAD, good, host0, type Mutator } from "../support/bad-configs";

function errorOf(mutate: Mutator): string {
  const cfg = good();
  mutate(cfg);
  try {
    parseConfig(cfg);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("config was accepted");
}

describe("parseConfig: good configs", () => {
  it("fills defaults in one place", () => {
    const cfg = parseConfig(good());
    expect(cfg.retention).toEqual({ daily: 7, weekly: 4, monthly: 12 });
    expect(cfg.storage.endpoint).toBe("https://s3.us-west-002.backblazeb2.com");
    expect(cfg.objectives).toEqual({ rpo: 86400, rto: 3600 });
    const h = cfg.hosts[0]!;
    expect(h.ssh).toEqual({ host: "203.0.113.10", user: "root", port: 22 });
    expect(h.schedule).toEqual({ backup: "0 3 * * *", volumes: "0 3 * * *", drill: "0 5 1 * *" });
    expect(h.drill).toEqual({ runtime: "docker", image: "postgres:16", checks: [] });
    expect(h.paths).toEqual({ scriptsDir: "/opt/restorable", configDir: "/etc/restorable", stateDir: "/var/lib/restorable" });
    expect(cfg.storage.allowNotOffsite).toBe(false);
  });

  it("derives the AWS endpoint and keeps an explicit one", () => {
    const c = good();
    c.storage = { provider: "aws", bucket: "acme.prod.backups", region: "eu-central-1" };
    expect(parseConfig(c).storage.endpoint).toBe("https://s3.eu-central-1.amazonaws.com");
    c.storage = { provider: "s3", bucket: "acme", endpoint: "https://abc.r2.cloudflarestorage.com/" };
    const s = parseConfig(c).storage;
    expect(s.endpoint).toBe("https://abc.r2.cloudflarestorage.com");
    expect(s.region).toBe("us-east-1");
  });

  it("accepts every access mode, age recipients, object lock and a loopback store when explicitly allowed", () => {
    const c = good();
    c.storage = { provider: "s3", bucket: "demo-bucket", endpoint: "http://127.0.0.1:7480", allowNotOffsite: true, objectLock: { mode: "governance", days: 7 } };
    c.hosts[0]!.postgres = [
      { via: "compose", project: "/srv/app", service: "db", database: "app" },
      { via: "container", container: "pg", database: "crm" },
      { via: "local", database: "ledger", port: 5433 },
    ];
    c.hosts[0]!.encryption = { ageRecipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"] };
    c.hosts[0]!.drill = { runtime: "local", checks: ["SELECT count(*) > 0 FROM users"] };
    const cfg = parseConfig(c);
    expect(cfg.hosts[0]!.postgres.map((p) => p.via)).toEqual(["compose", "container", "local"]);
    expect(cfg.storage.allowNotOffsite).toBe(true);
  });

  it("accepts a backup schedule that meets the RPO exactly, and a tighter one", () => {
    const c = good();
    host0(c).schedule = { backup: "30 */6 * * *" };
    c.objectives.rpo = "6h";
    expect(() => parseConfig(c)).not.toThrow();
  });
});

describe("parseConfig: bad configs name the key and say what is wrong", () => {
  it("covers at least 20 distinct bad configs", () => {
    expect(new Set(BAD.map(([name]) => name)).size).toBeGreaterThanOrEqual(20);
  });

  it.each(BAD)("%s", (_name, mutate, expected, _stackProgram) => {
    expect(errorOf(mutate)).toMatch(expected);
  });

  it("reports every problem at once, not just the first", () => {
    const msg = errorOf((c) => {
      c.retention = { daily: 0 };
      host0(c).schedule = { backup: "0 3 * *" };
    });
    expect(msg).toMatch(/retention\.daily/);
    expect(msg).toMatch(/schedule\.backup/);
  });
});

describe("cron and durations", () => {
  it("parses durations", () => {
    expect(parseDuration("24h")).toBe(86400);
    expect(parseDuration("1h30m")).toBe(5400);
    expect(parseDuration("7d")).toBe(604800);
    expect(parseDuration("1 day")).toBeUndefined();
  });

  it("computes the longest gap between runs", () => {
    expect(maxGapSeconds("0 3 * * *")).toBe(86400);
    expect(maxGapSeconds("0 */6 * * *")).toBe(6 * 3600);
    expect(maxGapSeconds("0 3 * * 1-5")).toBe(3 * 86400); // Friday -> Monday
    expect(maxGapSeconds("0 5 1 * *")).toBe(31 * 86400);
    expect(maxGapSeconds("0 0 29 2 *")).toBe(4 * 365 * 86400 + 86400); // leap days only
    expect(maxGapSeconds("0 0 30 2 *")).toBe(Infinity);
  });

  it("follows Vixie cron's day-of-month OR day-of-week rule", () => {
    // "1st of the month or any Sunday": both restricted -> either matches.
    expect(maxGapSeconds("0 3 1 * 0")).toBeLessThanOrEqual(7 * 86400);
    expect(parseCron("0 3 * * sun,7").daysOfWeek).toEqual(new Set([0]));
  });
});
