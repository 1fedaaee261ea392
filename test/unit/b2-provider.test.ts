/**
 * The B2 dynamic providers (infra/components/b2/provider.ts) and their native-API client
 * (infra/components/b2/api.ts), driven directly — create/diff/update/read/delete — against the
 * B2 contract double in test/support/b2-double.ts: a local HTTP server that speaks the documented
 * subset of the B2 native API v3 (the B2 cloud cannot be reached from here).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import ts from "typescript";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as api from "../../infra/components/b2/api";
import {
  B2ApplicationKey,
  B2Bucket,
  b2ApplicationKeyProvider,
  b2BucketProvider,
  type B2ApplicationKeyInputs,
  type B2ApplicationKeyOutputs,
  type B2BucketInputs,
  type B2BucketOutputs,
  type B2LifecycleRule,
} from "../../infra/components/b2";
import { startB2Double, type B2Double } from "../support/b2-double";
import { run } from "../support/proc";

// The provider interface marks every method optional except create; these tests need them all.
const bucketP = b2BucketProvider as Required<pulumi.dynamic.ResourceProvider<B2BucketInputs, B2BucketOutputs>>;
const keyP = b2ApplicationKeyProvider as Required<pulumi.dynamic.ResourceProvider<B2ApplicationKeyInputs, B2ApplicationKeyOutputs>>;

/** Per host and tier, as the plan renders them: hide after N days, delete hidden after 1, abort uploads after 2. */
function rules(daily: number, weekly: number, monthly: number): B2LifecycleRule[] {
  return [
    { fileNamePrefix: "web-1/daily/", daysFromUploadingToHiding: daily, daysFromHidingToDeleting: 1, daysFromStartingToCancelingUnfinishedLargeFiles: 2 },
    { fileNamePrefix: "web-1/weekly/", daysFromUploadingToHiding: weekly, daysFromHidingToDeleting: 1, daysFromStartingToCancelingUnfinishedLargeFiles: 2 },
    { fileNamePrefix: "web-1/monthly/", daysFromUploadingToHiding: monthly, daysFromHidingToDeleting: 1, daysFromStartingToCancelingUnfinishedLargeFiles: 2 },
  ];
}

let double: B2Double;
let nameSeq = 0;

function bucketInputs(over: Partial<B2BucketInputs> = {}): B2BucketInputs {
  nameSeq += 1;
  return {
    apiBase: double.apiBase,
    keyId: double.masterKeyId,
    key: double.masterKey,
    bucketName: `acme-prod-backups-${nameSeq}`,
    lifecycleRules: rules(8, 36, 375),
    fileLock: null,
    ...over,
  };
}

function keyInputs(bucketId: string, over: Partial<B2ApplicationKeyInputs> = {}): B2ApplicationKeyInputs {
  return {
    apiBase: double.apiBase,
    keyId: double.masterKeyId,
    key: double.masterKey,
    keyName: "restorable-web-1",
    bucketId,
    namePrefix: "web-1/",
    capabilities: ["listBuckets", "listFiles", "readFiles", "writeFiles"],
    ...over,
  };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the promise to reject");
}

/** Every way an error could end up in a log or a UI. */
function everyRendering(e: Error): string {
  return [String(e), e.message, e.stack ?? "", JSON.stringify(e), JSON.stringify(Object.assign({}, e))].join("\n");
}

beforeAll(async () => {
  double = await startB2Double();
});
afterAll(async () => {
  await double.stop();
});
beforeEach(() => {
  double.state.calls.length = 0;
});

describe("B2Bucket provider", () => {
  it("creates a private SSE-B2 bucket with the lifecycle rules and file lock (default retention set right after)", async () => {
    const inputs = bucketInputs({ fileLock: { mode: "governance", days: 7 } });
    const { id, outs } = await bucketP.create(inputs);

    const live = double.state.buckets.get(id)!;
    expect(live).toBeDefined();
    expect(live.bucketName).toBe(inputs.bucketName);
    expect(live.bucketType).toBe("allPrivate");
    expect(live.sse).toEqual({ mode: "SSE-B2", algorithm: "AES256" });
    expect(live.lifecycleRules).toEqual(expect.arrayContaining(inputs.lifecycleRules));
    expect(live.lifecycleRules).toHaveLength(3);
    expect(live.fileLockEnabled).toBe(true);
    expect(live.defaultRetention).toEqual({ mode: "governance", period: { duration: 7, unit: "days" } });

    expect(outs).toMatchObject({ bucketId: id, bucketName: inputs.bucketName, accountId: double.accountId, revision: live.revision });
    expect(outs!.fileLock).toEqual({ mode: "governance", days: 7 });
    expect(outs!.defaultServerSideEncryption).toEqual({ mode: "SSE-B2", algorithm: "AES256" });

    const ops = double.state.calls.map((c) => `${c.op} ${c.status}`);
    expect(ops).toEqual(["b2_authorize_account 200", "b2_create_bucket 200", "b2_update_bucket 200"]);
    const create = double.state.calls[1]!.body!;
    expect(create).toMatchObject({ accountId: double.accountId, bucketType: "allPrivate", fileLockEnabled: true, defaultServerSideEncryption: { mode: "SSE-B2", algorithm: "AES256" } });
    expect(double.state.calls[2]!.body).toMatchObject({ bucketId: id, ifRevisionIs: 1, defaultRetention: { mode: "governance", period: { duration: 7, unit: "days" } } });
  });

  it("creates without file lock: fileLockEnabled false, no retention call", async () => {
    const { id } = await bucketP.create(bucketInputs());
    expect(double.state.buckets.get(id)!.fileLockEnabled).toBe(false);
    expect(double.state.calls.map((c) => c.op)).toEqual(["b2_authorize_account", "b2_create_bucket"]);
  });

  it("reports no diff for unchanged inputs, also when the rules come back in another order", async () => {
    const inputs = bucketInputs({ fileLock: { mode: "compliance", days: 30 } });
    const { id, outs } = await bucketP.create(inputs);
    expect(await bucketP.diff(id, outs!, inputs)).toMatchObject({ changes: false, replaces: [] });
    const reordered = { ...inputs, lifecycleRules: [...inputs.lifecycleRules].reverse() };
    expect(await bucketP.diff(id, outs!, reordered)).toMatchObject({ changes: false, replaces: [] });
  });

  it("updates a lifecycle change in place: same bucket, new revision, rules replaced, guarded by ifRevisionIs", async () => {
    const inputs = bucketInputs();
    const { id, outs } = await bucketP.create(inputs);
    const news = { ...inputs, lifecycleRules: rules(8, 36, 740) };

    const diff = await bucketP.diff(id, outs!, news);
    expect(diff.changes).toBe(true);
    expect(diff.replaces).toEqual([]);

    double.state.calls.length = 0;
    const { outs: after } = await bucketP.update(id, outs!, news);
    expect(after!.bucketId).toBe(id);
    expect(after!.revision).toBe(outs!.revision + 1);
    const monthly = double.state.buckets.get(id)!.lifecycleRules.find((r) => r.fileNamePrefix === "web-1/monthly/");
    expect(monthly?.daysFromUploadingToHiding).toBe(740);
    const upd = double.state.calls.find((c) => c.op === "b2_update_bucket")!;
    expect(upd.body).toMatchObject({ bucketId: id, ifRevisionIs: outs!.revision });
    expect(double.state.calls.some((c) => c.op === "b2_create_bucket" || c.op === "b2_delete_bucket")).toBe(false);
    // and the new state diffs clean against the same inputs
    expect((await bucketP.diff(id, after!, news)).changes).toBe(false);
  });

  it("updates a default-retention change in place", async () => {
    const inputs = bucketInputs({ fileLock: { mode: "governance", days: 7 } });
    const { id, outs } = await bucketP.create(inputs);
    const news = { ...inputs, fileLock: { mode: "governance" as const, days: 14 } };
    expect(await bucketP.diff(id, outs!, news)).toMatchObject({ changes: true, replaces: [] });
    const { outs: after } = await bucketP.update(id, outs!, news);
    expect(double.state.buckets.get(id)!.defaultRetention).toEqual({ mode: "governance", period: { duration: 14, unit: "days" } });
    expect(after!.fileLock).toEqual({ mode: "governance", days: 14 });
  });

  it("replaces on a new bucket name or when file lock would be turned off; turning it on updates in place", async () => {
    const inputs = bucketInputs();
    const { id, outs } = await bucketP.create(inputs);

    const renamed = await bucketP.diff(id, outs!, { ...inputs, bucketName: `${inputs.bucketName}-new` });
    expect(renamed).toMatchObject({ changes: true, replaces: ["bucketName"] });

    const lockOn = { ...inputs, fileLock: { mode: "governance" as const, days: 7 } };
    expect(await bucketP.diff(id, outs!, lockOn)).toMatchObject({ changes: true, replaces: [] });
    const { outs: locked } = await bucketP.update(id, outs!, lockOn);
    expect(double.state.buckets.get(id)!.fileLockEnabled).toBe(true);
    expect(double.state.buckets.get(id)!.defaultRetention.mode).toBe("governance");

    expect(await bucketP.diff(id, locked!, inputs)).toMatchObject({ changes: true, replaces: ["fileLock"] });
  });

  it("converges after an out-of-band change: 409 conflict, re-read, update against the fresh revision", async () => {
    const inputs = bucketInputs();
    const { id, outs } = await bucketP.create(inputs);
    double.state.buckets.get(id)!.revision += 3; // someone edited the bucket in the web UI
    double.state.calls.length = 0;
    const news = { ...inputs, lifecycleRules: rules(9, 36, 375) };
    const { outs: after } = await bucketP.update(id, outs!, news);
    expect(double.state.calls.map((c) => `${c.op} ${c.status}`)).toEqual([
      "b2_authorize_account 200",
      "b2_update_bucket 409",
      "b2_list_buckets 200",
      "b2_update_bucket 200",
    ]);
    expect(after!.revision).toBe(outs!.revision + 4);
  });

  it("read refreshes from b2_list_buckets and reports a bucket deleted outside Pulumi as gone", async () => {
    const inputs = bucketInputs();
    const { id, outs } = await bucketP.create(inputs);
    const live = double.state.buckets.get(id)!;
    live.lifecycleRules = [{ fileNamePrefix: "", daysFromUploadingToHiding: null, daysFromHidingToDeleting: 3 }];
    live.revision += 1;

    const r = await bucketP.read(id, outs!);
    expect(r.id).toBe(id);
    expect(r.props!.revision).toBe(live.revision);
    expect(r.props!.lifecycleRules).toEqual([
      { fileNamePrefix: "", daysFromUploadingToHiding: null, daysFromHidingToDeleting: 3, daysFromStartingToCancelingUnfinishedLargeFiles: null },
    ]);
    expect((await bucketP.diff(id, r.props!, inputs)).changes).toBe(true);
    expect(double.state.calls.some((c) => c.op === "b2_list_buckets" && c.body?.bucketId === id)).toBe(true);

    double.state.buckets.delete(id);
    expect((await bucketP.read(id, outs!)).id).toBe("");
  });

  it("deletes an empty bucket; a non-empty one fails clearly and the backups stay", async () => {
    const { id: empty, outs: emptyOuts } = await bucketP.create(bucketInputs());
    await bucketP.delete(empty, emptyOuts!);
    expect(double.state.buckets.has(empty)).toBe(false);
    await bucketP.delete(empty, emptyOuts!); // already gone: nothing to do

    const { id, outs } = await bucketP.create(bucketInputs());
    double.addFile(id, "web-1/daily/postgres/app/20250101T030000Z.dump.zst");
    const e = await rejection(bucketP.delete(id, outs!));
    expect(api.isB2Error(e)).toBe(true);
    expect(e.message).toMatch(/^b2_delete_bucket failed \(400 cannot_delete_non_empty_bucket\): /);
    expect(e.message).toContain(`bucket "${outs!.bucketName}" (${id}) still holds file versions`);
    expect(double.state.buckets.has(id)).toBe(true);
  });

  it("a 400 from b2_create_bucket becomes a clear error naming the call, status and B2 code", async () => {
    const invalid = await rejection(bucketP.create(bucketInputs({ bucketName: "b2-reserved-name" })));
    expect(invalid.message).toBe("b2_create_bucket failed (400 bad_request): Invalid bucketName: b2-reserved-name");

    const elsewhere = bucketInputs();
    double.takeNameElsewhere(elsewhere.bucketName);
    const taken = await rejection(bucketP.create(elsewhere));
    expect(taken).toMatchObject({ operation: "b2_create_bucket", status: 400, code: "duplicate_bucket_name" });
    expect(taken.message).toMatch(/^b2_create_bucket failed \(400 duplicate_bucket_name\): Bucket name is already in use\./);
    expect(taken.message).toContain("taken; choose another name");

    const mine = bucketInputs();
    const { id } = await bucketP.create(mine);
    const again = await rejection(bucketP.create(mine));
    expect(again.message).toContain(`already exists in this B2 account (bucketId ${id}); adopt it with \`pulumi import\``);
  });

  it("a bad master key fails in b2_authorize_account with a clear 401 that never contains the key", async () => {
    const wrongKey = "K000thisIsNotTheRightKeyAtAll123";
    const e = await rejection(bucketP.create(bucketInputs({ key: wrongKey })));
    expect(api.isB2Error(e)).toBe(true);
    expect(e.message).toMatch(/^b2_authorize_account failed \(401 unauthorized\): .* — check restorable:b2 key id\/key and its capabilities$/);
    const rendered = everyRendering(e);
    expect(rendered).not.toContain(wrongKey);
    expect(rendered).not.toContain(double.masterKey);
    expect(double.state.calls.map((c) => c.op)).toEqual(["b2_authorize_account"]);
  });

  it("scrubs the key from messages even if the service were to echo it back", async () => {
    double.failNext("b2_authorize_account", 401, "unauthorized", `key ${double.masterKey} is not valid`);
    const e = await rejection(api.authorizeAccount(double.masterKeyId, double.masterKey, double.apiBase));
    expect(e.message).toContain("key [redacted] is not valid");
    expect(everyRendering(e)).not.toContain(double.masterKey);
  });

  it("a key without the needed capability gets the 401 hint too", async () => {
    const { id } = await bucketP.create(bucketInputs());
    const { outs: scoped } = await keyP.create(keyInputs(id));
    const e = await rejection(bucketP.create(bucketInputs({ keyId: scoped!.applicationKeyId, key: scoped!.applicationKey })));
    expect(e.message).toMatch(/^b2_create_bucket failed \(401 unauthorized\): .*writeBuckets.* — check restorable:b2 key id\/key and its capabilities$/);
    expect(everyRendering(e)).not.toContain(scoped!.applicationKey);
  });

  it("check() rejects what B2 would refuse, naming the property and never echoing the key", async () => {
    const bad = {
      ...bucketInputs(),
      key: "",
      bucketName: "no_underscores",
      lifecycleRules: [
        { fileNamePrefix: "web-1/", daysFromUploadingToHiding: 7, daysFromHidingToDeleting: 1 },
        { fileNamePrefix: "web-1/daily/", daysFromUploadingToHiding: 0, daysFromHidingToDeleting: null },
      ],
      fileLock: { mode: "legal-hold", days: 0 },
    } as unknown as B2BucketInputs;
    const r = await bucketP.check({} as B2BucketInputs, bad);
    const by = (p: string) => r.failures!.filter((f) => f.property === p).map((f) => f.reason).join("\n");
    expect(by("key")).toBe("the B2 application key must be a non-empty string");
    expect(by("bucketName")).toContain('may only contain letters, digits and "-"');
    expect(by("lifecycleRules")).toContain("[1].daysFromUploadingToHiding must be a positive whole number of days or null");
    expect(by("lifecycleRules")).toContain('rules for "web-1/" and "web-1/daily/" overlap');
    expect(by("fileLock")).toContain('mode must be "governance" or "compliance"');
    expect(by("fileLock")).toContain("days must be a positive whole number");

    expect((await bucketP.check({} as B2BucketInputs, bucketInputs())).failures).toEqual([]);
    // during a preview, values from other resources are still unknown: nothing to check yet
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    expect((await keyP.check({} as B2ApplicationKeyInputs, keyInputs(unknown))).failures).toEqual([]);
    const keyBad = await keyP.check({} as B2ApplicationKeyInputs, keyInputs("", { keyName: "web_1", capabilities: ["readFiles", "deleteEverything"] }));
    expect(keyBad.failures!.map((f) => f.property).sort()).toEqual(["bucketId", "capabilities", "keyName"]);
  });
});

describe("B2ApplicationKey provider", () => {
  let bucketId: string;
  beforeAll(async () => {
    bucketId = (await bucketP.create(bucketInputs())).id;
  });

  it("creates a key scoped to the bucket and the host prefix, without deleteFiles, and returns its secret", async () => {
    const inputs = keyInputs(bucketId);
    const { id, outs } = await keyP.create(inputs);
    expect(id).toBe(outs!.applicationKeyId);
    expect(outs!.applicationKey).toMatch(/^K000[0-9a-f]{30}$/);
    expect(outs!.capabilities).not.toContain("deleteFiles");
    expect(outs).toMatchObject({ namePrefix: "web-1/", bucketId, keyName: "restorable-web-1", accountId: double.accountId });
    expect(double.state.calls.find((c) => c.op === "b2_create_key")!.body).toEqual({
      accountId: double.accountId,
      keyName: "restorable-web-1",
      capabilities: ["listBuckets", "listFiles", "readFiles", "writeFiles"],
      bucketId,
      namePrefix: "web-1/",
    });

    // what the key may do, as B2 reports it to whoever logs in with it
    const s = await api.authorizeAccount(outs!.applicationKeyId, outs!.applicationKey, double.apiBase);
    expect({ bucketId: s.bucketId, namePrefix: s.namePrefix }).toEqual({ bucketId, namePrefix: "web-1/" });
    expect(s.capabilities).not.toContain("deleteFiles");
  });

  it("any change to what the key is replaces it; new master credentials only update the stored ones", async () => {
    const inputs = keyInputs(bucketId);
    const { id, outs } = await keyP.create(inputs);
    expect(await keyP.diff(id, outs!, inputs)).toMatchObject({ changes: false, replaces: [] });
    expect(await keyP.diff(id, outs!, { ...inputs, capabilities: [...inputs.capabilities].reverse() })).toMatchObject({ changes: false });
    expect((await keyP.diff(id, outs!, { ...inputs, namePrefix: "web-2/" })).replaces).toEqual(["namePrefix"]);
    expect((await keyP.diff(id, outs!, { ...inputs, capabilities: [...inputs.capabilities, "deleteFiles"] })).replaces).toEqual(["capabilities"]);
    expect((await keyP.diff(id, outs!, { ...inputs, bucketId: "other" })).replaces).toEqual(["bucketId"]);
    expect((await keyP.diff(id, outs!, { ...inputs, keyName: "restorable-web-2" })).replaces).toEqual(["keyName"]);

    const rotated = { ...inputs, key: `${double.masterKey}` , keyId: double.accountId };
    const credsOnly = await keyP.diff(id, outs!, { ...rotated, key: "K000rotated" });
    expect(credsOnly).toMatchObject({ changes: true, replaces: [] });
  });

  it("deletes the key (and a key already gone is not an error); read reports it gone", async () => {
    const { id, outs } = await keyP.create(keyInputs(bucketId));
    expect((await keyP.read(id, outs!)).props).toMatchObject({ applicationKeyId: id, applicationKey: outs!.applicationKey, namePrefix: "web-1/" });
    await keyP.delete(id, outs!);
    expect(double.state.keys.has(id)).toBe(false);
    expect(double.state.calls.some((c) => c.op === "b2_delete_key" && c.body?.applicationKeyId === id && c.status === 200)).toBe(true);
    await keyP.delete(id, outs!);
    expect((await keyP.read(id, outs!)).id).toBe("");
  });
});

describe("B2 client behaviour", () => {
  it("retries 503 and 429 (honouring Retry-After) and then succeeds", async () => {
    double.failNext("b2_create_bucket", 503, "service_unavailable", "c001 is too busy", { retryAfterSeconds: 0 });
    double.failNext("b2_create_bucket", 429, "too_many_requests", "slow down", { retryAfterSeconds: 0 });
    const { id } = await bucketP.create(bucketInputs());
    expect(double.state.buckets.has(id)).toBe(true);
    expect(double.state.calls.map((c) => `${c.op} ${c.status}`)).toEqual([
      "b2_authorize_account 200",
      "b2_create_bucket 503",
      "b2_create_bucket 429",
      "b2_create_bucket 200",
    ]);
  });

  it("gives up after maxRetries with the last error", async () => {
    const s = await api.authorizeAccount(double.masterKeyId, double.masterKey, double.apiBase, { maxRetries: 1, retryBaseMs: 1 });
    double.failNext("b2_list_buckets", 503, "service_unavailable", "busy");
    double.failNext("b2_list_buckets", 503, "service_unavailable", "still busy");
    const e = await rejection(api.getBucket(s, { bucketName: "whatever-bucket" }));
    expect(e.message).toBe("b2_list_buckets failed (503 service_unavailable): still busy");
    expect(double.state.calls.filter((c) => c.op === "b2_list_buckets")).toHaveLength(2);
  });

  it("does not repeat a non-idempotent call after a 500 (it may have happened)", async () => {
    const { id } = await bucketP.create(bucketInputs());
    double.state.calls.length = 0;
    double.failNext("b2_create_key", 500, "internal_error", "oops");
    const e = await rejection(keyP.create(keyInputs(id)));
    expect(e.message).toBe("b2_create_key failed (500 internal_error): oops");
    expect(double.state.calls.filter((c) => c.op === "b2_create_key")).toHaveLength(1);
  });

  it("re-authorizes once when the token expired, then repeats the call", async () => {
    const s = await api.authorizeAccount(double.masterKeyId, double.masterKey, double.apiBase);
    const { outs } = await bucketP.create(bucketInputs());
    double.expireTokens();
    double.state.calls.length = 0;
    const b = await api.getBucket(s, { bucketName: outs!.bucketName });
    expect(b?.bucketId).toBe(outs!.bucketId);
    expect(double.state.calls.map((c) => `${c.op} ${c.status}`)).toEqual([
      "b2_list_buckets 401",
      "b2_authorize_account 200",
      "b2_list_buckets 200",
    ]);
  });

  it("a network failure is a B2Error naming the call", async () => {
    const e = await rejection(api.authorizeAccount("id", "secret-key-value", "http://127.0.0.1:9", { maxRetries: 0 }));
    expect(e).toMatchObject({ operation: "b2_authorize_account", status: 0, code: "network_error" });
    expect(e.message).toMatch(/^b2_authorize_account failed \(network_error\): /);
    expect(everyRendering(e)).not.toContain("secret-key-value");
  });
});

describe("as Pulumi runs them", () => {
  it("the serialized providers (what Pulumi stores as __provider) are self-contained and work in another process", async () => {
    // Compile the way the Pulumi program is compiled (tsc, CommonJS, ES2022), serialize both
    // providers with Pulumi's closure serializer in one process, throw the compiled modules away,
    // and run the serialized copies in a fresh process, as the dynamic-provider host does.
    const root = process.cwd();
    const dir = mkdtempSync(join(tmpdir(), "b2-provider-"));
    const build = join(dir, "build");
    try {
      mkdirSync(build);
      for (const f of ["api", "provider", "index"]) {
        const src = readFileSync(join(root, "infra/components/b2", `${f}.ts`), "utf8");
        const js = ts.transpileModule(src, {
          compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        }).outputText;
        writeFileSync(join(build, `${f}.js`), js);
      }
      const env = { ...process.env, NODE_PATH: join(root, "node_modules") };
      const serialize = `
        const pulumi = require("@pulumi/pulumi");
        const fs = require("fs");
        const m = require(${JSON.stringify(join(build, "index.js"))});
        (async () => {
          const out = {};
          for (const [name, p] of [["bucket", m.b2BucketProvider], ["key", m.b2ApplicationKeyProvider]]) {
            const sf = await pulumi.runtime.serializeFunction(() => p, { allowSecrets: false });
            fs.writeFileSync(${JSON.stringify(dir)} + "/" + name + "-provider.js", sf.text);
            out[name] = { containsSecrets: sf.containsSecrets, requires: (sf.text.match(/\\brequire\\s*\\(/g) || []).length };
          }
          console.log(JSON.stringify(out));
        })().catch((e) => { console.error(e); process.exit(1); });`;
      const s1 = await run(process.execPath, ["--no-warnings", "-e", serialize], { env, cwd: dir });
      expect(s1.stderr).toBe("");
      expect(JSON.parse(s1.stdout)).toEqual({
        bucket: { containsSecrets: false, requires: 0 },
        key: { containsSecrets: false, requires: 0 },
      });
      rmSync(build, { recursive: true, force: true });

      const inputs = bucketInputs({ fileLock: { mode: "governance", days: 7 } });
      const use = `
        const bucketP = require("./bucket-provider.js").handler();
        const keyP = require("./key-provider.js").handler();
        const inputs = JSON.parse(process.env.INPUTS);
        (async () => {
          const b = await bucketP.create(inputs);
          const news = { ...inputs, lifecycleRules: inputs.lifecycleRules.map((r) => ({ ...r, daysFromHidingToDeleting: 2 })) };
          const diff = await bucketP.diff(b.id, b.outs, news);
          const u = await bucketP.update(b.id, b.outs, news);
          const base = { apiBase: inputs.apiBase, keyId: inputs.keyId, key: inputs.key };
          const k = await keyP.create({ ...base, keyName: "restorable-web-1", bucketId: b.id, namePrefix: "web-1/", capabilities: ["listFiles", "readFiles", "writeFiles"] });
          await keyP.delete(k.id, k.outs);
          const keyCheck = await keyP.check({}, { ...base, keyName: "k", bucketId: b.id, namePrefix: "", capabilities: ["readFiles", "nope"] });
          const errors = [];
          for (const attempt of [
            () => bucketP.create({ ...inputs, key: "K000wrong" }),
            () => bucketP.create(inputs),
          ]) {
            try { await attempt(); errors.push(null); } catch (e) { errors.push({ name: e.name, code: e.code, message: e.message }); }
          }
          console.log(JSON.stringify({ id: b.id, diff, revision: u.outs.revision, keyId: k.id, keyHasSecret: typeof k.outs.applicationKey === "string", keyCheck, errors }));
        })().catch((e) => { console.error(e); process.exit(1); });`;
      const s2 = await run(process.execPath, ["--no-warnings", "-e", use], { env: { ...env, INPUTS: JSON.stringify(inputs) }, cwd: dir });
      expect(s2.stderr).toBe("");
      const r = JSON.parse(s2.stdout);
      expect(double.state.buckets.get(r.id)?.lifecycleRules.every((x) => x.daysFromHidingToDeleting === 2)).toBe(true);
      expect(r.diff).toMatchObject({ changes: true, replaces: [] });
      expect(r.revision).toBe(double.state.buckets.get(r.id)!.revision);
      expect(r.keyHasSecret).toBe(true);
      expect(r.keyCheck.failures).toEqual([{ property: "capabilities", reason: '"nope" is not a B2 capability' }]);
      expect(double.state.keys.has(r.keyId)).toBe(false);
      expect(r.errors[0]).toMatchObject({ name: "B2Error", code: "unauthorized" });
      expect(r.errors[0].message).toMatch(/^b2_authorize_account failed \(401 unauthorized\): /);
      expect(r.errors[1]).toMatchObject({ name: "B2Error", code: "duplicate_bucket_name" });
      expect(r.errors[1].message).toContain("already exists in this B2 account");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("resource classes under pulumi.runtime.setMocks", () => {
    const registered: Array<{ type: string; name: string; inputs: Record<string, unknown> }> = [];
    beforeAll(async () => {
      await pulumi.runtime.setMocks(
        {
          newResource(args) {
            registered.push({ type: args.type, name: args.name, inputs: args.inputs });
            const state: Record<string, unknown> = { ...args.inputs };
            if (args.type.endsWith(":B2Bucket")) Object.assign(state, { bucketId: "bkt-1", accountId: "acct-1", revision: 2 });
            if (args.type.endsWith(":B2ApplicationKey")) Object.assign(state, { applicationKeyId: "key-1", applicationKey: "K000mocked" });
            return { id: `${args.name}-id`, state };
          },
          call: () => ({}),
        },
        "restorable",
        "test",
        false,
      );
    });
    afterEach(() => {
      registered.length = 0;
    });

    const value = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply((v) => resolve(v)));
    const secret = (o: pulumi.Output<unknown>): Promise<boolean> => pulumi.isSecret(o);

    it("registers both with their inputs; applicationKey and the master key are secrets", async () => {
      const seenOpts: Record<string, pulumi.CustomResourceOptions> = {};
      const capture: pulumi.ResourceTransformation = (a) => {
        seenOpts[a.name] = a.opts as pulumi.CustomResourceOptions;
        return undefined;
      };
      const bucket = new B2Bucket(
        "backups",
        { keyId: "master-id", key: pulumi.secret("master-key"), bucketName: "acme-prod-backups", lifecycleRules: rules(8, 36, 375), fileLock: { mode: "governance", days: 7 } },
        { retainOnDelete: true, transformations: [capture] },
      );
      const key = new B2ApplicationKey(
        "web-1",
        { keyId: "master-id", key: "master-key-plain", keyName: "restorable-web-1", bucketId: bucket.bucketId, namePrefix: "web-1/", capabilities: ["listFiles", "readFiles", "writeFiles"] },
        { transformations: [capture] },
      );

      expect(await value(bucket.bucketId)).toBe("bkt-1");
      expect(await value(bucket.revision)).toBe(2);
      expect(await value(key.applicationKeyId)).toBe("key-1");
      expect(await value(key.bucketId)).toBe("bkt-1");

      expect(seenOpts["web-1"]?.additionalSecretOutputs).toEqual(expect.arrayContaining(["applicationKey", "key"]));
      expect(seenOpts["backups"]?.additionalSecretOutputs).toEqual(expect.arrayContaining(["key"]));
      expect(seenOpts["backups"]?.retainOnDelete).toBe(true);
      // the master key is made secret even when the caller passed a plain string
      expect(await secret((key as unknown as { key: pulumi.Output<string> }).key)).toBe(true);
      expect(await secret(bucket.bucketId)).toBe(false);

      const b = registered.find((r) => r.name === "backups")!;
      expect(b.type).toBe("pulumi-nodejs:dynamic/restorable:B2Bucket");
      expect(b.inputs).toMatchObject({ apiBase: "https://api.backblazeb2.com", bucketName: "acme-prod-backups", fileLock: { mode: "governance", days: 7 } });
      expect(typeof b.inputs.__provider).toBe("string");
      expect(b.inputs.__provider as string).not.toContain("master-key");
      const k = registered.find((r) => r.name === "web-1")!;
      expect(k.inputs).toMatchObject({ keyName: "restorable-web-1", bucketId: "bkt-1", namePrefix: "web-1/", capabilities: ["listFiles", "readFiles", "writeFiles"] });
    });
  });
});
