// config -> plan. Pure: no Pulumi imports. Everything a component or a test needs to know
// about what should exist is computed here.
import type { HostConfig, RestorableConfig } from "../config/schema";
import { formatDuration } from "../config/schema";
import { b2HostKey, hostIamPolicy, publicAccessBlockFor, type B2KeySpec, type IamPolicy, type PublicAccessBlock } from "./access";
import { hostPrefix } from "./layout";
import { hostPitrPlan, walB2Rules, walRules, walS3Rules, type HostPitrPlan, type WalRule } from "./pitr";
import { objectLockSummary, s3ObjectLockConfiguration, type S3ObjectLockConfiguration } from "./object-lock";
import { b2Lifecycle, retentionRules, s3Lifecycle, tierExpiryDays, type B2LifecycleRule, type RetentionRule, type S3LifecycleRule, type TierExpiry } from "./retention";

export * from "./layout";
export * from "./retention";
export * from "./promise";
export * from "./access";
export * from "./pitr";
export * from "./object-lock";

export interface HostPlan {
  name: string;
  prefix: string;
  config: HostConfig;
  access: { iamPolicy: IamPolicy; b2: B2KeySpec };
  /** IAM user name for aws. */
  iamUserName: string;
  /** Point-in-time recovery (WAL archive + base backups); undefined when off. */
  pitr: HostPitrPlan | undefined;
}

export interface Plan {
  config: RestorableConfig;
  bucket: string;
  provider: RestorableConfig["storage"]["provider"];
  endpoint: string;
  region: string;
  offsite: boolean;
  retention: { counts: RestorableConfig["retention"]; expiryDays: TierExpiry; rules: RetentionRule[]; walRules: WalRule[] };
  lifecycle: { s3: { Rules: S3LifecycleRule[] }; b2: B2LifecycleRule[] };
  /** The bucket's public access block (aws, s3); undefined where not managed. */
  publicAccessBlock: PublicAccessBlock | undefined;
  /** The bucket's default object lock retention (aws, s3); undefined without storage.objectLock. */
  objectLock: S3ObjectLockConfiguration | undefined;
  hosts: HostPlan[];
  /** Short human summary of the policy, for PR review and `pulumi stack output`. */
  summary: string[];
  /**
   * Key paths (without namespace, e.g. "hosts[0].ssh.host") whose values are only known at deploy
   * time (a Pulumi Output in the Backups args). `config` holds a stand-in there that passed the
   * schema; summaries and review output say KNOWN_AFTER_DEPLOY instead of showing it.
   */
  deferred: string[];
}

/** What summaries and review output show for a value that is only known at deploy time. */
export const KNOWN_AFTER_DEPLOY = "<known after deploy>";

export interface BuildPlanOptions {
  /** Key paths of values only known at deploy time (see Plan.deferred). */
  deferred?: Iterable<string>;
}

/** True when `path` (or any element under it, "a.b[0]" for "a.b") is known only at deploy time. */
export function isDeferred(plan: Pick<Plan, "deferred">, path: string): boolean {
  return plan.deferred.some((d) => d === path || d.startsWith(`${path}[`) || d.startsWith(`${path}.`));
}

export function buildPlan(cfg: RestorableConfig, opts: BuildPlanOptions = {}): Plan {
  const bucket = cfg.storage.bucket;
  const rules = retentionRules(cfg.hosts.map((h) => h.name), cfg.retention);
  const expiryDays = tierExpiryDays(cfg.retention);
  const hosts: HostPlan[] = cfg.hosts.map((h) => ({
    name: h.name,
    prefix: hostPrefix(h.name),
    config: h,
    access: { iamPolicy: hostIamPolicy(bucket, h.name), b2: b2HostKey(bucket, h.name) },
    iamUserName: `restorable-${bucket}-${h.name}`.slice(0, 64),
    pitr: hostPitrPlan(h),
  }));
  const wal = walRules(hosts);
  const plan: Plan = {
    config: cfg,
    bucket,
    provider: cfg.storage.provider,
    endpoint: cfg.storage.endpoint,
    region: cfg.storage.region,
    offsite: !cfg.storage.allowNotOffsite,
    retention: { counts: cfg.retention, expiryDays, rules, walRules: wal },
    // The WAL rules are their own prefix (<host>/wal/); the per-host housekeeping rule covers it too.
    lifecycle: { s3: { Rules: [...s3Lifecycle(rules).Rules, ...walS3Rules(wal)] }, b2: [...b2Lifecycle(rules), ...walB2Rules(wal)] },
    publicAccessBlock: publicAccessBlockFor(cfg.storage.provider, cfg.storage.publicAccessBlock),
    objectLock: s3ObjectLockConfiguration(cfg.storage.objectLock),
    hosts,
    summary: [],
    deferred: [...(opts.deferred ?? [])],
  };
  plan.summary = summarize(plan);
  return plan;
}

export function summarize(plan: Plan): string[] {
  const { config: cfg } = plan;
  const r = cfg.retention;
  const lines: string[] = [];
  if (!plan.offsite) lines.push("WARNING: NOT OFF-SITE (restorable:storage.allowNotOffsite is true): a loss of the host may take the backups with it. For demos and tests only.");
  lines.push(`Storage: ${plan.provider} bucket ${plan.bucket} at ${plan.endpoint} (region ${plan.region})${cfg.storage.objectLock ? `, object lock ${cfg.storage.objectLock.mode} ${cfg.storage.objectLock.days}d` : ""}.`);
  if (plan.provider === "s3" && !plan.publicAccessBlock) lines.push("WARNING: restorable:storage.publicAccessBlock is false: a host key may be able to make its own backups public with an ACL on this store.");
  lines.push(`Objectives: lose at most ${formatDuration(cfg.objectives.rpo)} of data (RPO), restore within ${formatDuration(cfg.objectives.rto)} (RTO).`);
  const archived = plan.hosts.filter((h) => h.pitr).map((h) => h.name);
  if (archived.length) lines.push(`  The RPO for the databases of ${archived.join(", ")} is met by the continuous WAL archive (PITR), not by the dump schedule.`);
  lines.push(
    `Retention: a restore point for each of the last ${r.daily} days, ${r.weekly} weeks and ${r.monthly} months (objects expire after ${plan.retention.expiryDays.daily}/${plan.retention.expiryDays.weekly}/${plan.retention.expiryDays.monthly} days in daily/weekly/monthly).`,
  );
  lines.push(...objectLockSummary(cfg.storage.objectLock, plan.retention.expiryDays, plan.provider));
  plan.hosts.forEach((h, i) => {
    const c = h.config;
    const known = <T>(key: string, v: T): T | string => (isDeferred(plan, `hosts[${i}].${key}`) ? KNOWN_AFTER_DEPLOY : v);
    const what = [
      ...c.postgres.map((p) => `postgres ${p.database} (${p.via === "compose" ? `compose ${p.project} service ${p.service}` : p.via === "container" ? `container ${p.container}` : `local ${p.host}:${p.port}`})`),
      ...(c.postgres.length ? ["roles (globals)"] : []),
      ...c.volumes.map((v) => `volume ${v}`),
    ];
    lines.push(`Host ${h.name} (${known("ssh.user", c.ssh.user)}@${known("ssh.host", c.ssh.host)}:${known("ssh.port", c.ssh.port)}) -> s3://${plan.bucket}/${h.prefix}: ${what.join(", ")}.`);
    if (c.encryption && (c.postgres.length || c.volumes.length) && !c.drill.ageIdentityFile) {
      lines.push(`  WARNING: ${h.name} encrypts but has no drill.ageIdentityFile: its restore drill cannot decrypt and will fail until one is set.`);
    }
    if (h.pitr) {
      const p = h.pitr;
      lines.push(
        `  PITR: every second of the last ${formatDuration(p.window)} restorable: WAL of ${p.clusters.map((k) => k.name).join(", ")} archived continuously to s3://${plan.bucket}/${h.prefix}wal/ (each segment off-site within ${formatDuration(Math.min(cfg.objectives.rpo, 60))}, which meets the RPO; kept ${p.walExpireDays} days), base backups "${p.baseBackup}" (up to ${formatDuration(p.baseGap)} apart, in the tiers), at most ${p.serverWalLimit} of WAL held on the server for a stalled archiver.`,
      );
    }
    lines.push(`  backup "${c.schedule.backup}", volumes "${c.schedule.volumes}", restore drill "${c.schedule.drill}" (${c.drill.runtime}${c.drill.runtime === "docker" ? ` ${c.drill.image}` : ""}, ${c.drill.checks.length} SQL checks)${c.encryption ? `, encrypted to ${known("encryption.ageRecipients", c.encryption.ageRecipients.length)} age recipient(s)` : ", not encrypted client-side"}.`);
  });
  return lines;
}
