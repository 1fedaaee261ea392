// The bad-config table: each row mutates a good config and names the message the YAML path
// gives (with the restorable: namespace). test/unit/config.test.ts runs it through parseConfig,
// test/unit/bad-config-paths.test.ts through the stack program and the Backups component.
import type { RawConfig } from "../../infra/config";

/** The seed's example host: Postgres in a Compose service `db`, database `app`, volume `uploads`. */
export function good(): RawConfig {
  return {
    storage: { provider: "b2", bucket: "acme-prod-backups", region: "us-west-002" },
    objectives: { rpo: "24h", rto: "1h" },
    hosts: [
      {
        name: "web-1",
        ssh: { host: "203.0.113.10" },
        postgres: [{ via: "compose", project: "/srv/app", service: "db", user: "app", database: "app" }],
        volumes: ["uploads"],
      },
    ],
  };
}

export type Mutator = (c: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
export const host0 = (c: any) => c.hosts[0]; // eslint-disable-line @typescript-eslint/no-explicit-any

// At least 20 distinct bad configs; each error must name the key path and say what is wrong.
// A fourth element is what the stack program says instead, where it differs: there a top-level
// key is a `restorable:<key>` config key, refused before parsing by unknownKeyProblems.
export const BAD: Array<[string, Mutator, RegExp, RegExp?]> = [
  ["4-field cron", (c) => (host0(c).schedule = { backup: "0 3 * *" }), /restorable:hosts\[0\]\.schedule\.backup: "0 3 \* \*" is not a 5-field cron expression/],
  ["cron value out of range", (c) => (host0(c).schedule = { drill: "0 25 1 * *" }), /restorable:hosts\[0\]\.schedule\.drill: hour 25 is outside 0-23/],
  ["cron @daily shortcut", (c) => (host0(c).schedule = { backup: "@daily" }), /restorable:hosts\[0\]\.schedule\.backup: "@daily" uses an @-shortcut/],
  ["weekly backups cannot meet a 24h RPO", (c) => (host0(c).schedule = { backup: "0 3 * * 0" }), /restorable:hosts\[0\]\.schedule\.backup: "0 3 \* \* 0" leaves up to 7d between backups, which cannot meet restorable:objectives\.rpo 1d/],
  ["volume schedule cannot meet the RPO", (c) => (host0(c).schedule = { volumes: "0 3 */2 * *" }), /restorable:hosts\[0\]\.schedule\.volumes: .*cannot meet restorable:objectives\.rpo/],
  ["retention 0", (c) => (c.retention = { daily: 0 }), /restorable:retention\.daily: must be at least 1/],
  ["retention 1.5", (c) => (c.retention = { weekly: 1.5 }), /restorable:retention\.weekly: must be a whole number/],
  ["retention as a string", (c) => (c.retention = { monthly: "12" }), /restorable:retention\.monthly: .*expected number/],
  ["unknown retention key (typo)", (c) => (c.retention = { montly: 12 }), /restorable:retention: unknown key "montly"/],
  ["unknown provider", (c) => (c.storage.provider = "gcs"), /restorable:storage\.provider: .*"b2"\|"aws"\|"s3"/],
  ["s3 without endpoint", (c) => (c.storage = { provider: "s3", bucket: "backups" }), /restorable:storage\.endpoint: is required for provider s3/],
  ["b2 without region", (c) => delete c.storage.region, /restorable:storage\.region: is required for provider b2/],
  ["bucket name with uppercase", (c) => (c.storage.bucket = "Acme-Backups"), /restorable:storage\.bucket: "Acme-Backups" may contain only lowercase letters/],
  ["bucket name too short", (c) => (c.storage.bucket = "ab"), /restorable:storage\.bucket: "ab" must be 3-63 characters long/],
  ["bucket name like an IP", (c) => ((c.storage.provider = "aws"), (c.storage.bucket = "192.168.1.10")), /restorable:storage\.bucket: "192\.168\.1\.10" must not be formatted as an IP address/],
  ["bucket name with adjacent dots", (c) => ((c.storage.provider = "aws"), (c.storage.bucket = "acme..backups")), /must not contain two adjacent dots/],
  ["B2 bucket starting with b2-", (c) => (c.storage.bucket = "b2-backups"), /restorable:storage\.bucket: "b2-backups" must not start with b2- on B2/],
  ["endpoint not a URL", (c) => (c.storage.endpoint = "s3.example.com"), /restorable:storage\.endpoint: must be an http\(s\) URL/],
  ["endpoint on loopback (not off-site)", (c) => (c.storage = { provider: "s3", bucket: "backups", endpoint: "https://localhost:9000" }), /restorable:storage\.endpoint: https:\/\/localhost:9000 is not off-site.*allowNotOffsite/],
  ["endpoint on the backed-up host itself", (c) => (c.storage = { provider: "s3", bucket: "backups", endpoint: "https://203.0.113.10:9000" }), /restorable:storage\.endpoint: .* is not off-site: it is the backed-up host web-1 itself/],
  ["plain http endpoint", (c) => (c.storage = { provider: "s3", bucket: "backups", endpoint: "http://minio.example.com" }), /restorable:storage\.endpoint: http:\/\/minio\.example\.com is plain http/],
  ["object lock with an unknown mode", (c) => (c.storage.objectLock = { mode: "strict", days: 7 }), /restorable:storage\.objectLock\.mode: .*"governance"\|"compliance"/],
  ["objectives missing", (c) => delete c.objectives, /restorable:objectives: is required/],
  ["RPO not a duration", (c) => (c.objectives.rpo = "one day"), /restorable:objectives\.rpo: "one day" is not a duration/],
  ["no hosts", (c) => (c.hosts = []), /restorable:hosts: needs at least one host/],
  ["duplicate host names", (c) => c.hosts.push({ ...host0(c), ssh: { host: "203.0.113.11" } }), /restorable:hosts\[1\]\.name: "web-1" is already used by hosts\[0\]/],
  ["two hosts on one SSH target", (c) => c.hosts.push({ ...host0(c), name: "web-2" }), /restorable:hosts\[1\]\.ssh: root@203\.0\.113\.10:22 is already the target of hosts\[0\]/],
  ["host name unsafe as an object prefix", (c) => (host0(c).name = "web/1"), /restorable:hosts\[0\]\.name: must be 1-63 lowercase letters, digits or hyphens/],
  ["host name with uppercase and dots", (c) => (host0(c).name = "Web.1"), /restorable:hosts\[0\]\.name: must be 1-63 lowercase/],
  ["compose source without service", (c) => delete host0(c).postgres[0].service, /restorable:hosts\[0\]\.postgres\[0\]\.service: is required/],
  ["compose project not absolute", (c) => (host0(c).postgres[0].project = "srv/app"), /restorable:hosts\[0\]\.postgres\[0\]\.project: must be an absolute directory path/],
  ["unknown access mode", (c) => (host0(c).postgres[0].via = "kubectl"), /restorable:hosts\[0\]\.postgres\[0\]\.via: via must be compose, container or local/],
  ["postgres source without via", (c) => delete host0(c).postgres[0].via, /restorable:hosts\[0\]\.postgres\[0\]\.via: needs via: compose, container or local/],
  ["database name with shell metacharacters", (c) => (host0(c).postgres[0].database = "app; rm -rf /"), /restorable:hosts\[0\]\.postgres\[0\]\.database: must start with a letter or _ and contain only letters, digits, _, \$ and -/],
  ["same database twice on a host", (c) => host0(c).postgres.push({ via: "local", database: "app" }), /restorable:hosts\[0\]\.postgres\[1\]\.database: "app" is already backed up by postgres\[0\]/],
  ["host that backs up nothing", (c) => ((host0(c).postgres = []), (host0(c).volumes = [])), /restorable:hosts\[0\]: host web-1 backs up nothing/],
  ["volume name with a slash", (c) => (host0(c).volumes = ["../etc"]), /restorable:hosts\[0\]\.volumes\[0\]: must start with a letter or digit and contain only letters, digits, _, \. and -/],
  ["non-https ping URL", (c) => (c.notify = { pingUrl: "http://hc-ping.com/abc" }), /restorable:notify\.pingUrl: must be an https URL/],
  ["malformed age recipient", (c) => (host0(c).encryption = { ageRecipients: ["age1notakey"] }), /restorable:hosts\[0\]\.encryption\.ageRecipients\[0\]: must be an age X25519 recipient/],
  ["empty age recipients", (c) => (host0(c).encryption = { ageRecipients: [] }), /restorable:hosts\[0\]\.encryption\.ageRecipients: /],
  ["unknown drill runtime", (c) => (host0(c).drill = { runtime: "podman" }), /restorable:hosts\[0\]\.drill\.runtime: .*"docker"\|"local"/],
  ["ssh port out of range", (c) => (host0(c).ssh.port = 70000), /restorable:hosts\[0\]\.ssh\.port: /],
  ["relative scripts dir", (c) => (host0(c).paths = { scriptsDir: "opt/restorable" }), /restorable:hosts\[0\]\.paths\.scriptsDir: must be an absolute directory path/],
  ["unknown top-level key", (c) => (c.retension = { daily: 7 }), /restorable:: unknown key "retension"|restorable: unknown key "retension"/, /restorable:retension: unknown key \(known: /],
];

