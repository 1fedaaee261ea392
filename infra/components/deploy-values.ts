// Values of the Backups args that are only known at deploy time (a Pulumi Output or Promise: a
// server's address, its host key, a generated recipient...), kept out of the pure plan.
//
//   construction  splitDeployValues() replaces each with a stand-in that passes the schema (unique
//                 per host where the schema compares hosts), so the whole config is validated and
//                 the plan decides which resources exist before anything resolves. The plan records
//                 the paths (Plan.deferred): its summary says "known after deploy" there.
//   deploy        resolvedPlan() waits for the values, puts them in place of the stand-ins and runs
//                 the same parseConfig + buildPlan: the same validation with the same messages, now
//                 on the real values. What goes into resources (rendered files, the install
//                 connection) comes from that plan; a bad value fails the deployment with the
//                 message naming its key (a RunError: no stack trace).
//
// Only the paths in DEPLOY_TIME may be Inputs: everything else decides which resources exist, or
// what they are named, and must be known when the program runs.
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseConfig, withoutNamespace } from "../config";
import { buildPlan, type HostPlan, type Plan } from "../plan";
import type { BackupsArgs } from "./backups-args";

/** A stand-in age recipient: "age1" + 58 bech32 characters (the schema's shape). */
const AGE_STAND_IN = `age1${"q".repeat(58)}`;

/** The key paths that may hold a pulumi.Input, and the stand-in used while it is unknown. */
export const DEPLOY_TIME: ReadonlyArray<{ path: RegExp; pattern: string; standIn: (host: number) => unknown }> = [
  { pattern: "hosts[].ssh.host", path: /^hosts\[(\d+)\]\.ssh\.host$/, standIn: (i) => `deploy-time-host-${i}.invalid` },
  { pattern: "hosts[].ssh.user", path: /^hosts\[(\d+)\]\.ssh\.user$/, standIn: (i) => `deploy-time-user-${i}` },
  { pattern: "hosts[].ssh.port", path: /^hosts\[(\d+)\]\.ssh\.port$/, standIn: (i) => 65535 - i },
  { pattern: "hosts[].ssh.hostKey", path: /^hosts\[(\d+)\]\.ssh\.hostKey$/, standIn: () => "ssh-ed25519 AAAA" },
  { pattern: "hosts[].encryption.ageRecipients", path: /^hosts\[(\d+)\]\.encryption\.ageRecipients$/, standIn: () => [AGE_STAND_IN] },
  { pattern: "hosts[].encryption.ageRecipients[]", path: /^hosts\[(\d+)\]\.encryption\.ageRecipients\[\d+\]$/, standIn: () => AGE_STAND_IN },
  { pattern: "notify.pingUrl", path: /^notify\.pingUrl$/, standIn: () => "https://known-after-deploy.invalid/" },
];

export interface DeployValue {
  /** Key path without namespace, e.g. "hosts[0].ssh.host". */
  path: string;
  /** Where it is in the raw config: object keys and array indices. */
  at: (string | number)[];
  value: pulumi.Input<unknown>;
}

export interface SplitConfig {
  /** The raw config with a stand-in at every deploy-time path (what the construction plan is built from). */
  raw: Record<string, unknown>;
  deployValues: DeployValue[];
}

const isDeployTime = (v: unknown): boolean =>
  pulumi.Output.isInstance(v) || (typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function");

function pathText(at: (string | number)[]): string {
  let out = "";
  for (const p of at) out += typeof p === "number" ? `[${p}]` : out === "" ? p : `.${p}`;
  return out;
}

/** The key prefix of messages: "restorable:" on the stack-config path, "" for component args. */
export interface MessageStyle {
  namespace?: string;
}

/** A ConfigError with the problems said the way the caller's user writes the keys. */
export function styled(e: ConfigError, style: MessageStyle): ConfigError {
  return style.namespace ? e : new ConfigError(e.problems.map((p) => withoutNamespace(p)));
}

/**
 * Copies the plain parts of `args` (objects, arrays, literals) and takes out every Output or
 * Promise: at a deploy-time path it becomes a stand-in, anywhere else it is a ConfigError naming the key.
 */
export function splitDeployValues(args: Record<string, unknown>, style: MessageStyle = {}): SplitConfig {
  const deployValues: DeployValue[] = [];
  const problems: string[] = [];
  const ns = style.namespace ? `${style.namespace}:` : "";
  const walk = (v: unknown, at: (string | number)[]): unknown => {
    if (isDeployTime(v)) {
      const path = pathText(at);
      const rule = DEPLOY_TIME.find((r) => r.path.test(path));
      if (!rule) {
        problems.push(`${ns}${path}: must be a plain value, not a pulumi Output or Promise: it decides which resources exist (values that may come from other resources: ${DEPLOY_TIME.map((r) => r.pattern).join(", ")})`);
        return undefined;
      }
      deployValues.push({ path, at: [...at], value: v as pulumi.Input<unknown> });
      return rule.standIn(Number(rule.path.exec(path)?.[1] ?? 0));
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...at, i]));
    if (typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...at, k])]));
    }
    return v;
  };
  const raw = walk(args, []) as Record<string, unknown>;
  if (problems.length) throw new ConfigError(problems);
  return { raw, deployValues };
}

/** `raw` with `values[i]` at `deployValues[i].at` (undefined: the key is left out). */
export function withDeployValues(raw: Record<string, unknown>, deployValues: DeployValue[], values: unknown[]): Record<string, unknown> {
  const out = structuredClone(raw);
  deployValues.forEach((d, i) => {
    let node = out as Record<string | number, unknown>;
    for (const k of d.at.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
    const last = d.at[d.at.length - 1]!;
    if (values[i] === undefined && !Array.isArray(node)) delete node[last];
    else node[last] = values[i];
  });
  return out;
}

/** Fails the program (or the deployment, inside apply) with the ConfigError text and no stack trace. */
export function fail(e: unknown, style: MessageStyle = {}): never {
  if (e instanceof ConfigError) throw new pulumi.RunError(styled(e, style).message);
  throw e;
}

/**
 * The plan with the deploy-time values in place, once they resolve: the same parseConfig and
 * buildPlan as at construction (so the same checks and messages), and the same hosts.
 */
export function resolvedPlan(split: SplitConfig, plan: Plan, style: MessageStyle = {}): pulumi.Output<Plan> {
  if (split.deployValues.length === 0) return pulumi.output(plan);
  return pulumi.all(split.deployValues.map((d) => d.value)).apply((values) => {
    let resolved: Plan;
    try {
      resolved = buildPlan(parseConfig(withDeployValues(split.raw, split.deployValues, values as unknown[])));
    } catch (e) {
      return fail(e, style);
    }
    const names = (p: Plan) => p.hosts.map((h) => h.name).join(",");
    if (names(resolved) !== names(plan)) throw new Error(`internal error: hosts changed at deploy time (${names(plan)} -> ${names(resolved)})`);
    return resolved;
  });
}

/** The config part of the Backups args (no secrets): what the lower components accept instead of a Plan. */
export type BackupsConfigArgs = Omit<BackupsArgs, "sshPrivateKey" | "b2Credentials" | "s3Credentials" | "dbPasswords">;

/** A lower component's `plan` arg: the internal Plan, or config-shaped args a user writes. */
export type PlanArgs = Plan | BackupsConfigArgs;

const plans = new WeakMap<object, { plan: Plan; deployPlan: pulumi.Output<Plan> }>();

const isPlan = (p: PlanArgs): p is Plan => "lifecycle" in p && "summary" in p && "deferred" in p;

/**
 * The construction plan and the deploy plan of a lower component's `plan` arg (computed once per
 * args object, so components given the same object agree). Bad config fails with the messages
 * of Backups (keys as in the args).
 */
export function planOf(p: PlanArgs, style: MessageStyle = {}): { plan: Plan; deployPlan: pulumi.Output<Plan> } {
  if (isPlan(p)) return { plan: p, deployPlan: pulumi.output(p) };
  const known = plans.get(p);
  if (known) return known;
  try {
    const split = splitDeployValues(p as unknown as Record<string, unknown>, style);
    const plan = buildPlan(parseConfig(split.raw), { deferred: split.deployValues.map((d) => d.path) });
    const out = { plan, deployPlan: resolvedPlan(split, plan, style) };
    plans.set(p, out);
    return out;
  } catch (e) {
    return fail(e, style);
  }
}

/** A lower component's `host` arg: the host's plan, or its name in the config. */
export function hostOf(plan: Plan, host: HostPlan | string): HostPlan {
  if (typeof host !== "string") return host;
  const h = plan.hosts.find((x) => x.name === host);
  if (!h) fail(new ConfigError([`host: "${host}" is not one of the config's hosts (${plan.hosts.map((x) => x.name).join(", ")})`]));
  return h;
}
