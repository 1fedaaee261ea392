// Runs Pulumi programs under pulumi.runtime.setMocks and records what they register. Resource
// transforms do not run under mocks, so parents, options and dependencies are read from the
// RegisterResource requests the SDK sends to the (mock) engine.
import { vi } from "vitest";
import type * as PulumiModule from "@pulumi/pulumi";

export type Pulumi = typeof PulumiModule;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Props = Record<string, any>;

export interface Registered {
  type: string;
  name: string;
  /** Inputs as the mock provider saw them (secrets unwrapped). */
  inputs: Props;
  /** Inputs as sent on the wire: secret values are wrapped (see isSecretValue). */
  raw: Props;
  parent?: string;
  provider?: string;
  dependsOn: string[];
  retainOnDelete?: boolean;
  deleteBeforeReplace: boolean;
  additionalSecretOutputs: string[];
  /** Alias specs as sent (name, type, parentUrn, noParent; empty strings when not set). */
  aliases: Props[];
}

/** Pulumi's wire marker for a secret value: { [SIG_KEY]: SECRET_SIG, value }. */
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const isSecretValue = (v: unknown): boolean => typeof v === "object" && v !== null && (v as Props)[SIG_KEY] === SECRET_SIG;

/** A value with secret wrappers replaced by their contents. */
export function unwrapSecrets(v: unknown): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (isSecretValue(v)) return unwrapSecrets((v as Props).value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}

export function outputValue<T>(pulumi: Pulumi, o: PulumiModule.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(o).apply((v) => resolve(v as T)));
}

export interface MockRun {
  pulumi: Pulumi;
  registered: Registered[];
  /** Registered outputs of a resource (as the engine stores them), by type and name. */
  outputsOf(type: string, name: string): Props;
  /** Waits a moment for registrations still in flight. */
  settle(): Promise<void>;
}

/**
 * Fresh module graph, config and mocks. `state` adds the outputs a real provider would return.
 * Import the program or component under test after this resolves.
 */
export async function startMocks(opts: { config?: Record<string, string>; secretKeys?: string[]; state?: (type: string, name: string, inputs: Props) => Props } = {}): Promise<MockRun> {
  vi.resetModules();
  const pulumi: Pulumi = await import("@pulumi/pulumi");
  if (opts.config) pulumi.runtime.setAllConfig(opts.config, opts.secretKeys ?? []);
  const registered: Registered[] = [];
  const inputsOf = new Map<string, Props>();
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        inputsOf.set(`${args.type}::${args.name}`, args.inputs);
        return { id: `${args.name}-id`, state: { ...args.inputs, ...(opts.state?.(args.type, args.name, args.inputs) ?? {}) } };
      },
      call: (args) => args.inputs,
    },
    "restorable",
    "test",
    false,
  );
  const monitor = pulumi.runtime.getMonitor() as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, cb: (err: unknown, res: unknown) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    register(req, (err: unknown, res: unknown) => {
      registered.push({
        type: req.getType(),
        name: req.getName(),
        inputs: unwrapSecrets(inputsOf.get(`${req.getType()}::${req.getName()}`) ?? {}),
        raw: req.getObject()?.toJavaScript() ?? {},
        parent: req.getParent() || undefined,
        provider: req.getProvider() || undefined,
        dependsOn: req.getDependenciesList(),
        retainOnDelete: req.hasRetainondelete?.() ? req.getRetainondelete() : undefined,
        deleteBeforeReplace: req.getDeletebeforereplace(),
        additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        aliases: (req.getAliasesList?.() ?? []).map((a: any) => a.getSpec()?.toObject() ?? { urn: a.getUrn() }), // eslint-disable-line @typescript-eslint/no-explicit-any
      });
      cb(err, res);
    });
  };
  const outputsOf = (type: string, name: string): Props => {
    for (const [urn, r] of monitor.getRegisteredResources() as Map<string, { state: any }>) { // eslint-disable-line @typescript-eslint/no-explicit-any
      if (urn.endsWith(`${type}::${name}`)) return typeof r.state?.toJavaScript === "function" ? r.state.toJavaScript() : r.state;
    }
    throw new Error(`no ${type} ${name} registered`);
  };
  return { pulumi, registered, outputsOf, settle: () => new Promise((r) => setTimeout(r, 50)) };
}

/** The type of a registered resource's parent, from its URN. */
export const parentType = (r: Registered): string | undefined => r.parent?.split("::")[2]?.split("$").pop();
