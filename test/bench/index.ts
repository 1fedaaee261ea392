// npm run bench [-- --only backup|drill] [--scale N] [--runs N] [...]
//
// Runs the backup benchmark (test/bench/backup.ts: the seed's pg_dump | gzip > file; aws s3 cp
// against our streaming backup and the pg_dump floor) and then the drill benchmark
// (test/bench/drill.ts: the seed's download + gunzip | psql against our restore-drill), passing the
// remaining arguments to each. Prints ratios; asserts nothing; never a test.
import { main as backupBench } from "./backup";
import { main as drillBench } from "./drill";

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
  if (only !== undefined && only !== "backup" && only !== "drill") throw new Error(`--only takes backup or drill, not ${only}`);
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
