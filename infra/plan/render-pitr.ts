// What PITR adds to a host's rendered files: its settings in restorable.conf and its cron jobs.
// Kept apart from ./render.ts, which calls these two functions.
import { PITR_DEFAULT_SHIP_SECONDS } from "../config/pitr";
import type { HostPlan } from "./index";
import { shAssign } from "./shell";

/** restorable.conf lines (contract for the PITR scripts); empty cluster arrays when PITR is off. */
export function renderPitrConfig(host: HostPlan): string[] {
  const p = host.pitr;
  return [
    "# PITR (WAL archive + base backups): parallel arrays, one entry per cluster; empty when off.",
    shAssign("RESTORABLE_PITR_CLUSTER", p ? p.clusters.map((c) => c.name) : []),
    shAssign("RESTORABLE_PITR_SOURCE", p ? p.clusters.map((c) => String(c.source)) : []),
    shAssign("RESTORABLE_PITR_SLOT", p ? p.clusters.map((c) => replicationSlotName(c.name)) : []),
    shAssign("RESTORABLE_PITR_WINDOW_SECONDS", p ? p.window : 0),
    shAssign("RESTORABLE_PITR_SHIP_SECONDS", PITR_DEFAULT_SHIP_SECONDS),
    shAssign("RESTORABLE_PITR_SERVER_WAL_LIMIT", p ? p.serverWalLimit : ""),
  ];
}

/** The replication slot the WAL archiver creates on a cluster: restorable_<cluster>, [a-z0-9_], at most 63. */
export function replicationSlotName(cluster: string): string {
  return `restorable_${cluster.toLowerCase().replace(/[^a-z0-9_]+/g, "_")}`.slice(0, 63);
}

/**
 * Cron jobs PITR adds: the base backups on their schedule, and the WAL archiver every minute as a
 * keepalive (a running archiver holds its lock; the new one exits at once, quietly). Cron works
 * the same on hosts with and without systemd, and brings the archiver back after a reboot.
 */
export function pitrCronJobs(host: HostPlan): { schedule: string; script: string }[] {
  if (!host.pitr) return [];
  return [
    { schedule: host.pitr.baseBackup, script: "backup-base" },
    { schedule: "* * * * *", script: "wal-archiver" },
  ];
}
