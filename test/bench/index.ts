// npm run bench [-- --only backup|drill|pitr] [--scale N] [--runs N] [...]
//
// Runs the backup benchmark (test/bench/backup.ts: the seed's pg_dump | gzip > file; aws s3 cp
// against our streaming backup and the pg_dump floor) and then the drill benchmark
// (test/bench/drill.ts: the seed's download + gunzip | psql against our restore-drill), passing the
// remaining arguments to each. `--only pitr` runs the point-in-time benchmark instead
// (test/bench/pitr.ts: restore-to-queryable, backup time and bytes, RPO and the archiver's CPU,
// ours against pgBackRest); it is not part of the default run (it needs pgbackrest installed and
// takes minutes of RPO probes). Prints ratios; asserts nothing; never a test.
import { main as backupBench } from "./backup";
import { main as drillBench } from "./drill";
import { main as pitrBench } from "./pitr";

/** Only the `--name value` pairs a benchmark knows (each takes its own options). */
function pick(argv: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i]!.split("=", 2);
    if (!names.includes(name!)) continue;
    if (inline !== undefined) out.push(argv[i]!);
    else out.push(argv[i]!, argv[++i] ?? "");
  }
  return out;
}

async function run(argv: string[]): Promise<void> {
  const i = argv.indexOf("--only");
  const only = i >= 0 ? argv[i + 1] : undefined;
  const rest = i >= 0 ? [...argv.slice(0, i), ...argv.slice(i + 2)] : argv;
  if (only !== undefined && only !== "backup" && only !== "drill" && only !== "pitr") throw new Error(`--only takes backup, drill or pitr, not ${only}`);
  if (only === "pitr") {
    console.log("== point in time: ours (backup-base, wal-archiver, restore --cluster) vs logical dump vs pgBackRest");
    await pitrBench(pick(rest, ["--scale", "--probes", "--load-tps", "--measure", "--runs"]));
    return;
  }
  if (only !== "drill") {
    console.log("== backup: seed vs ours vs floor");
    await backupBench(pick(rest, ["--scale", "--runs", "--data", "--level"]));
  }
  if (only !== "backup") {
    console.log("== restore drill: seed (download, gunzip | psql) vs ours (restore-drill)");
    await drillBench(rest);
  }
}

run(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
