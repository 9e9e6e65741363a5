// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * What `deno task bench` runs: the start-up and throughput measurements of the real program,
 * printed as a Markdown report, then the in-process micro-benchmarks (`deno bench`).
 *
 * @module
 */
import { PROJECT_ROOT } from "../scripts/start_command.ts";
import { BENCH_ROWS, benchBackup } from "./backup_bench.ts";
import { formatStartupReport, measureStartup } from "./startup.ts";
import { markdownTable, median, perSecond } from "./stats.ts";
import { benchStorage, formatStorageReport } from "./storage_bench.ts";
import {
  formatThroughputReport,
  measurePollingThroughput,
  measureWebhookThroughput,
  type ThroughputResult,
} from "./throughput.ts";

/** How many times each throughput measurement runs, each against a fresh program. */
export const THROUGHPUT_REPEATS = 3;

/** The `deno bench` command line for the micro-benchmarks; `--frozen` keeps deno.lock as is. */
export const MICRO_BENCH_ARGS = [
  "bench",
  "--frozen",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "bench/pipeline_bench.ts",
];

/** {@link benchBackup}'s figures as a Markdown table, one row per backend. */
export function formatBackupReport(figures: Record<string, number>): string {
  const cell = (key: string, unit: string) =>
    Number.isFinite(figures[key]) ? `${figures[key]} ${unit}` : "n/a";
  const rows = ["postgres", "pglite"].map((backend) => [
    backend,
    cell(`backup_${backend}_ms`, "ms"),
    cell(`backup_file_mib_${backend}`, "MiB"),
    cell(`verify_${backend}_ms`, "ms"),
    cell(`restore_${backend}_ms`, "ms"),
  ]);
  const rowsText = BENCH_ROWS.toLocaleString("en-US");
  return [
    "### Backup and restore",
    "",
    `${rowsText} users and ${rowsText} requests: createBackup, verifyBackup alone, then`,
    "restoreBackup into a fresh database (its time includes its own verification pass).",
    "",
    markdownTable(["backend", "backup", "file", "verify", "restore"], rows),
  ].join("\n");
}

/** Runs every benchmark, prints the report and returns the exit code of `deno bench`. */
export async function runAll(): Promise<number> {
  const began = performance.now();
  const progress = (text: string) => console.error(`[bench] ${text}`);
  console.log(
    [
      "## Benchmarks",
      "",
      `deno ${Deno.version.deno} (v8 ${Deno.version.v8}), ${Deno.build.os}/${Deno.build.arch}, ` +
      `${navigator.hardwareConcurrency} CPUs, ${new Date().toISOString()}`,
      "",
    ].join("\n"),
  );

  progress("start-up: 5 runs, 5 s idle each …");
  console.log(formatStartupReport(await measureStartup(5)));
  console.log();

  const results: ThroughputResult[] = [];
  const modes = { webhook: measureWebhookThroughput, polling: measurePollingThroughput };
  for (const [mode, measure] of Object.entries(modes)) {
    // A burst takes about a second, so one run alone would be mostly noise.
    for (let i = 1; i <= THROUGHPUT_REPEATS; i++) {
      progress(`throughput: ${mode} mode, run ${i} of ${THROUGHPUT_REPEATS} …`);
      results.push(await measure());
    }
  }
  console.log(formatThroughputReport(results));
  console.log();
  for (const mode of Object.keys(modes)) {
    const rates = results.filter((r) => r.mode === mode).map((r) => r.updatesPerSecond);
    console.log(`- ${mode}: median ${perSecond(median(rates))} over ${rates.length} runs`);
  }
  console.log();

  progress("storage: server (Postgres + Redis) and embedded (PGlite + Deno KV) …");
  console.log(formatStorageReport(await benchStorage((text) => progress(`storage: ${text}`))));
  console.log();

  progress(`backup and restore: ${BENCH_ROWS} users and requests on both backends …`);
  console.log(formatBackupReport(await benchBackup()));
  console.log();

  progress(`micro-benchmarks: deno ${MICRO_BENCH_ARGS.join(" ")}`);
  console.log("### Micro-benchmarks (in-process, no network)\n");
  const { code } = await new Deno.Command("deno", {
    args: MICRO_BENCH_ARGS,
    cwd: PROJECT_ROOT,
    // deno bench colours its table even into a pipe; keep files and CI logs readable.
    env: Deno.stdout.isTerminal() ? {} : { NO_COLOR: "1" },
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  progress(`done in ${Math.round((performance.now() - began) / 1000)} s`);
  return code;
}

if (import.meta.main) Deno.exit(await runAll());
