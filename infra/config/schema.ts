// The stack config (contract: keys under the `restorable:` namespace), validated by zod.
// Defaults are filled here and nowhere else. Every error names the key path and says what
// is wrong; see ./errors.ts for the formatting.
import { isIP } from "node:net";
import { z } from "zod";
import { maxGapSeconds, parseCron } from "./cron";
import { checkPitr, parseSizeMB } from "./pitr";

// ---------------------------------------------------------------------------------------------
// Building blocks

/** "24h", "90m", "7d", "1h30m", "45s" -> seconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
  if (!m || text.trim() === "") return undefined;
  const [, d, h, mi, s] = m;
  return Number(d ?? 0) * 86400 + Number(h ?? 0) * 3600 + Number(mi ?? 0) * 60 + Number(s ?? 0);
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "never";
  const parts: string[] = [];
  let rest = Math.round(seconds);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join("") || "0s";
}

const duration = z.string().transform((text, ctx) => {
  const s = parseDuration(text);
  if (s === undefined || s <= 0) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not a duration like 24h, 90m, 7d or 1h30m` });
    return z.NEVER;
  }
  return s;
});

const cron = z.string().superRefine((text, ctx) => {
  try {
    parseCron(text);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
  }
});

/** Names that end up as the first segment of object keys and in file names on the host. */
const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/**
 * The name rules that restore and restore-drill enforce on their arguments too: scripts/lib-restore.sh
 * carries the same patterns and texts (RESTORABLE_*_NAME_RE / RESTORABLE_*_NAME_RULE; test/unit/name-rules.test.ts
 * keeps them equal), so every name a config may hold is one the disaster tools accept.
 * - pg: PostgreSQL databases and roles. ASCII, at most 63 bytes (NAMEDATALEN - 1); always quoted in SQL.
 * - docker: Docker volumes and containers (the daemon's own rule: two characters at least).
 */
export const NAME_RULES = {
  pg: { pattern: /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, rule: "must start with a letter or _ and contain only letters, digits, _, $ and - (at most 63 characters)" },
  docker: { pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]+$/, rule: "must start with a letter or digit and contain only letters, digits, _, . and - (at least 2 characters)" },
} as const;
const PG_IDENT = NAME_RULES.pg.pattern;
const DOCKER_NAME = NAME_RULES.docker.pattern;
/** Compose service names (compose allows one character). */
const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** age X25519 recipient: "age1" + 58 bech32 characters. */
const AGE_RECIPIENT = /^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/;
/** Cron/shell-safe absolute directory path. */
const ABS_DIR = /^\/[A-Za-z0-9._/-]*$/;

/** S3 bucket naming rules (the strictest common subset of AWS, B2 and S3-compatible stores). */
export function bucketNameProblem(name: string, provider: string): string | undefined {
  if (name.length < 3 || name.length > 63) return "must be 3-63 characters long";
  if (provider === "b2" && name.length < 6) return "must be at least 6 characters long on B2";
  if (!/^[a-z0-9.-]+$/.test(name)) return "may contain only lowercase letters, digits, dots and hyphens";
  if (!/^[a-z0-9].*[a-z0-9]$/.test(name)) return "must start and end with a letter or digit";
  if (name.includes("..")) return "must not contain two adjacent dots";
  if (isIP(name)) return "must not be formatted as an IP address";
  if (name.startsWith("xn--") || name.startsWith("sthree-")) return "must not start with xn-- or sthree-";
  if (name.endsWith("-s3alias") || name.endsWith("--ol-s3")) return "must not end with -s3alias or --ol-s3";
  if (provider === "b2" && name.startsWith("b2-")) return "must not start with b2- on B2";
  if (provider === "b2" && name.includes(".")) return "must not contain dots on B2";
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Sections

const objectLock = z.strictObject({
  mode: z.enum(["governance", "compliance"]),
  days: z.number().int().min(1).max(36500),
});

const storage = z.strictObject({
  provider: z.enum(["b2", "aws", "s3"]),
  bucket: z.string(),
  region: z.string().regex(/^[a-z0-9-]+$/, "must be a region name like us-west-002 or eu-central-1").optional(),
  endpoint: z.url({ protocol: /^https?$/, error: "must be an http(s) URL such as https://s3.us-west-002.backblazeb2.com" }).optional(),
  objectLock: objectLock.optional(),
  /**
   * Manage the bucket's public access block (aws: always). For s3, on by default so a host key
   * cannot publish its backups with an ACL at upload time; set false only for stores that do not
   * implement the PutPublicAccessBlock API (the error from `pulumi up` says NotImplemented).
   */
  publicAccessBlock: z.boolean().default(true),
  /**
   * Explicitly accept storage that is not off-site (an endpoint on a backed-up host, loopback,
   * or plain http). For demos and tests only; every summary flags it.
   */
  allowNotOffsite: z.boolean().default(false),
});

const objectives = z.strictObject({
  /** Recovery point objective: how much data may be lost (max age of the newest backup). */
  rpo: duration,
  /** Recovery time objective: how long a restore may take (download + restore + checks). */
  rto: duration,
});

const count = (max: number) => z.number().int("must be a whole number").min(1, "must be at least 1").max(max);

const retention = z.strictObject({
  daily: count(366).default(7),
  weekly: count(260).default(4),
  monthly: count(1200).default(12),
});

const notify = z.strictObject({
  pingUrl: z
    .url({ protocol: /^https$/, error: "must be an https URL (the ping carries log lines), e.g. https://hc-ping.com/<uuid>" })
    .optional(),
});

const ssh = z.strictObject({
  host: z.string().min(1).regex(/^[A-Za-z0-9.:_-]+$/, "must be a hostname or IP address"),
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name").default("root"),
  port: z.number().int().min(1).max(65535).default(22),
  /**
   * The host's SSH public key (`ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-`), so Pulumi verifies
   * it is talking to the right server. Strongly recommended; without it any host key is accepted.
   */
  hostKey: z
    .string()
    .regex(/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+=*$/, "must be a public host key like \"ssh-ed25519 AAAA...\"")
    .optional(),
});

const pgCommon = {
  database: z.string().regex(PG_IDENT, NAME_RULES.pg.rule),
  user: z.string().regex(PG_IDENT, NAME_RULES.pg.rule).default("postgres"),
};

const pgCompose = z.strictObject({
  via: z.literal("compose"),
  /** Directory of the Compose project (where docker-compose.yml lives). */
  project: z.string().regex(ABS_DIR, "must be an absolute directory path"),
  service: z.string().regex(SERVICE_NAME, "must be a Compose service name"),
  ...pgCommon,
});

const pgContainer = z.strictObject({
  via: z.literal("container"),
  container: z.string().regex(DOCKER_NAME, NAME_RULES.docker.rule),
  ...pgCommon,
});

const pgLocal = z.strictObject({
  via: z.literal("local"),
  host: z.string().regex(/^[A-Za-z0-9.:_/-]+$/, "must be a hostname, IP or socket directory").default("127.0.0.1"),
  port: z.number().int().min(1).max(65535).default(5432),
  ...pgCommon,
});

const postgresSource = z.discriminatedUnion("via", [pgCompose, pgContainer, pgLocal], {
  error: (iss) =>
    iss.code === "invalid_union" && (iss.input as { via?: unknown } | undefined)?.via === undefined
      ? "needs via: compose, container or local"
      : `via must be compose, container or local`,
});

const schedule = z.strictObject({
  backup: cron.default("0 3 * * *"),
  /** Volume backups; defaults to the backup schedule. */
  volumes: cron.optional(),
  drill: cron.default("0 5 1 * *"),
});

const drill = z.strictObject({
  /** Where the throwaway Postgres runs: a container from `image`, or an initdb cluster in a temp dir. */
  runtime: z.enum(["docker", "local"]).default("docker"),
  image: z.string().min(1).regex(/^[A-Za-z0-9._/:@-]+$/, "must be an image reference").default("postgres:16"),
  /** SQL statements that must each return true on the restored database. */
  checks: z.array(z.string().min(1)).default([]),
  /**
   * With encryption: the age identity file on the host the drill decrypts with. Keeping it on
   * the backed-up host weakens what the encryption protects against; without it the drill of an
   * encrypted backup fails (loudly) every month.
   */
  ageIdentityFile: z.string().regex(ABS_DIR, "must be an absolute file path").optional(),
});

const encryption = z.strictObject({
  ageRecipients: z.array(z.string().regex(AGE_RECIPIENT, "must be an age X25519 recipient (age1 followed by 58 characters)")).min(1),
});

const paths = z.strictObject({
  scriptsDir: z.string().regex(ABS_DIR, "must be an absolute directory path").default("/opt/restorable"),
  configDir: z.string().regex(ABS_DIR, "must be an absolute directory path").default("/etc/restorable"),
  /** Lock files, run directories and cron logs; a non-root SSH user needs it writable. */
  stateDir: z.string().regex(ABS_DIR, "must be an absolute directory path").default("/var/lib/restorable"),
});

/** Point-in-time recovery (see ./pitr.ts for the rules and the README for what it changes). */
const pitr = z.strictObject({
  enabled: z.boolean().default(true),
  /** How far back every second is restorable. */
  window: duration.default(7 * 86400),
  /** Cron schedule of the physical base backups (pg_basebackup). */
  baseBackup: cron.default("0 2 * * 0"),
  /** max_slot_wal_keep_size on the server: the most WAL a dead or stuck archiver can pin there. */
  serverWalLimit: z
    .string()
    .default("4GB")
    .superRefine((t, ctx) => {
      const mb = parseSizeMB(t);
      if (mb === undefined) ctx.addIssue({ code: "custom", message: `"${t}" is not a size like 512MB, 4GB or 1TB` });
      else if (mb < 256) ctx.addIssue({ code: "custom", message: `"${t}" is below 256MB: the server would drop WAL the archiver has not fetched yet during a short outage` });
    }),
});

/** Rotation of the cron logs (<stateDir>/<job>.log): by the jobs themselves, see restorable_rotate_log. */
const logs = z.strictObject({
  /** A log that has reached this size is rotated when the next run of its job starts. */
  maxMiB: z.number().int().min(1).max(10240).default(10),
  /** Rotated generations kept (<job>.log.1 .. .N); the oldest is dropped. */
  keep: z.number().int().min(1).max(100).default(5),
});

/** The default install paths (the scripts' and install plan's fallbacks derive from these). */
export const DEFAULT_PATHS = paths.parse({});

const host = z.strictObject({
  name: z.string().regex(HOST_NAME, "must be 1-63 lowercase letters, digits or hyphens (it becomes the object prefix)"),
  ssh,
  postgres: z.array(postgresSource).default([]),
  volumes: z.array(z.string().regex(DOCKER_NAME, NAME_RULES.docker.rule)).default([]),
  /** Image used to tar volumes (needs `tar`); kept pulled on the host. */
  volumeImage: z.string().min(1).regex(/^[A-Za-z0-9._/:@-]+$/, "must be an image reference").default("busybox:1.36"),
  // prefault: an omitted section is parsed as {}, so the field defaults above are the only ones.
  schedule: schedule.prefault({}),
  drill: drill.prefault({}),
  encryption: encryption.optional(),
  paths: paths.prefault({}),
  logs: logs.prefault({}),
  /** node_exporter textfile collector directory: every job writes restorable.prom there. */
  metrics: z.strictObject({ textfileDir: z.string().regex(ABS_DIR, "must be an absolute directory path") }).optional(),
  /** zstd compression level for dumps and volume tarballs. */
  zstdLevel: z.number().int().min(1).max(19).default(3),
  pitr: pitr.optional(),
});

// ---------------------------------------------------------------------------------------------
// The whole config, with the rules that span sections.

export const ENDPOINTS = {
  b2: (region: string) => `https://s3.${region}.backblazeb2.com`,
  aws: (region: string) => `https://s3.${region}.amazonaws.com`,
};

function isLoopbackOrLocal(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127\./.test(h) || h === "0.0.0.0";
}

export const configSchema = z
  .strictObject({
    storage,
    objectives,
    retention: retention.prefault({}),
    notify: notify.prefault({}),
    hosts: z.array(host).min(1, "needs at least one host"),
  })
  .superRefine((cfg, ctx) => {
    const { storage: st } = cfg;
    const problem = bucketNameProblem(st.bucket, st.provider);
    if (problem) ctx.addIssue({ code: "custom", path: ["storage", "bucket"], message: `"${st.bucket}" ${problem}` });
    if ((st.provider === "b2" || st.provider === "aws") && !st.region) {
      ctx.addIssue({ code: "custom", path: ["storage", "region"], message: `is required for provider ${st.provider}` });
    }
    if (st.provider === "s3" && !st.endpoint) {
      ctx.addIssue({ code: "custom", path: ["storage", "endpoint"], message: "is required for provider s3 (any S3-compatible store): the store's URL" });
    }
    const url = st.endpoint ? URL.parse(st.endpoint) : null;
    if (st.endpoint && url) {
      const where = ["storage", "endpoint"];
      if (!st.allowNotOffsite) {
        if (url.protocol !== "https:") {
          ctx.addIssue({ code: "custom", path: where, message: `${st.endpoint} is plain http; use https (or set restorable:storage.allowNotOffsite: true for demos and tests)` });
        }
        const hostnames = cfg.hosts.map((h) => h.ssh.host.toLowerCase());
        const onHost = cfg.hosts.find((h) => h.ssh.host.toLowerCase() === url.hostname.toLowerCase());
        if (isLoopbackOrLocal(url.hostname) || hostnames.includes(url.hostname.toLowerCase())) {
          ctx.addIssue({
            code: "custom",
            path: where,
            message: `${st.endpoint} is not off-site: it is ${onHost ? `the backed-up host ${onHost.name} itself` : "on the backed-up host itself (loopback)"}; set restorable:storage.allowNotOffsite: true only for demos and tests`,
          });
        }
      }
    }
    // Hosts: unique names, sources and volumes.
    const seen = new Map<string, number>();
    const targets = new Map<string, number>();
    cfg.hosts.forEach((h, i) => {
      // Each host owns one marked crontab block and one config dir on its SSH target.
      const target = `${h.ssh.user}@${h.ssh.host.toLowerCase()}:${h.ssh.port}`;
      const other = targets.get(target);
      if (other !== undefined) {
        ctx.addIssue({ code: "custom", path: ["hosts", i, "ssh"], message: `${target} is already the target of hosts[${other}]; two hosts on one SSH target would overwrite each other's crontab block and files` });
      } else targets.set(target, i);
      const prev = seen.get(h.name);
      if (prev !== undefined) {
        ctx.addIssue({ code: "custom", path: ["hosts", i, "name"], message: `"${h.name}" is already used by hosts[${prev}]; host names must be unique (they are the object prefix)` });
      } else seen.set(h.name, i);
      if (h.postgres.length === 0 && h.volumes.length === 0) {
        ctx.addIssue({ code: "custom", path: ["hosts", i], message: `host ${h.name} backs up nothing: add postgres sources or volumes` });
      }
      const dbs = new Map<string, number>();
      h.postgres.forEach((p, j) => {
        const k = dbs.get(p.database);
        if (k !== undefined) {
          ctx.addIssue({ code: "custom", path: ["hosts", i, "postgres", j, "database"], message: `"${p.database}" is already backed up by postgres[${k}]; database names must be unique per host (they name the objects)` });
        } else dbs.set(p.database, j);
      });
      const vols = new Set<string>();
      h.volumes.forEach((v, j) => {
        if (vols.has(v)) ctx.addIssue({ code: "custom", path: ["hosts", i, "volumes", j], message: `"${v}" is listed twice` });
        vols.add(v);
      });
      // The backup schedule must be able to meet the RPO (with PITR, the WAL archive meets it for the databases).
      const archived = h.pitr?.enabled === true;
      // (volumes default to the backup schedule; with PITR that schedule is no longer checked above)
      const volumes = h.schedule.volumes ?? (archived && h.volumes.length > 0 ? h.schedule.backup : undefined);
      for (const [key, expr] of [["backup", h.schedule.backup], ["volumes", volumes]] as const) {
        if (expr === undefined || (key === "backup" && archived)) continue;
        let gap: number;
        try {
          gap = maxGapSeconds(expr);
        } catch {
          continue; // already reported by the cron check
        }
        if (gap > cfg.objectives.rpo) {
          ctx.addIssue({
            code: "custom",
            path: ["hosts", i, "schedule", key],
            message: `"${expr}" leaves up to ${formatDuration(gap)} between backups, which cannot meet restorable:objectives.rpo ${formatDuration(cfg.objectives.rpo)}`,
          });
        }
      }
      if (h.pitr) {
        for (const p of checkPitr(h.pitr, i, h.postgres, cfg.objectives.rpo, cfg.retention)) ctx.addIssue({ code: "custom", path: p.path, message: p.message });
      }
      if (h.drill.runtime === "local" && h.postgres.length === 0) {
        // Nothing to drill; harmless, no error.
      }
    });
    // 4 rules per host (three tiers, drills) and one more for the WAL of a host with PITR.
    const b2Rules = cfg.hosts.reduce((n, h) => n + 4 + (h.pitr?.enabled ? 1 : 0), 0);
    if (st.provider === "b2" && b2Rules > 100) {
      ctx.addIssue({ code: "custom", path: ["hosts"], message: `B2 allows 100 lifecycle rules per bucket and each host needs 4 (5 with pitr): these hosts need ${b2Rules}` });
    }
  })
  .transform((cfg) => {
    const region = cfg.storage.region ?? "us-east-1";
    const endpoint =
      cfg.storage.endpoint ?? (cfg.storage.provider === "s3" ? "" : ENDPOINTS[cfg.storage.provider](region));
    return {
      ...cfg,
      storage: { ...cfg.storage, region, endpoint: endpoint.replace(/\/+$/, "") },
      hosts: cfg.hosts.map((h) => ({
        ...h,
        schedule: { ...h.schedule, volumes: h.schedule.volumes ?? h.schedule.backup },
      })),
    };
  });

export type RawConfig = z.input<typeof configSchema>;
export type RestorableConfig = z.output<typeof configSchema>;
export type HostConfig = RestorableConfig["hosts"][number];
export type PostgresSource = HostConfig["postgres"][number];
export type Tier = "daily" | "weekly" | "monthly";
