// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * What `deno task bench` runs: the start-up and throughput measurements of the real program,
 * the polling delay with a slow chat (`polling_delay.ts`), storage, dialogs, the webhook
 * comparison with a bare grammY bot and a typical template (`webhook_compare.ts`), backups,
 * flood control and broadcasts (`flood_bench.ts`), printed as a Markdown report, then the
 * in-process micro-benchmarks (`deno bench`).
 *
 * @module
 */
import { PROJECT_ROOT } from "../scripts/start_command.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";
import { startRedis } from "../tests/support/redis_server.ts";
import { BENCH_ROWS, benchBackup } from "./backup_bench.ts";
import { formatPollingDelayReport, measurePollingDelay } from "./polling_delay.ts";
import { benchFlood } from "./flood_bench.ts";
import { formatStartupReport, measureStartup } from "./startup.ts";
import { markdownTable, median, perSecond } from "./stats.ts";
import { benchStorage, formatStorageReport } from "./storage_bench.ts";
import { benchWebhookCompare } from "./webhook_compare.ts";
import { formatWebhookCompareReport } from "./webhook_compare_report.ts";
import {
  formatServerThroughputReport,
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

/** The config of `bench/plugins/`, whose comparison imports grammY's plugins. */
export const PLUGINS_CONFIG = `${PROJECT_ROOT}/bench/plugins/deno.json`;

/**
 * Runs `bench/plugins/plugins_compare.ts` with its own config (the plugins are no dependency
 * of the project) on the given servers, and returns its report. Its progress goes to stderr.
 */
export async function pluginsCompareReport(
  servers: { redisUrl: string; databaseUrl: string },
): Promise<string> {
  const { code, stdout } = await new Deno.Command("deno", {
    args: ["task", "--quiet", "--config", PLUGINS_CONFIG, "bench"],
    env: {
      REDIS_URL: servers.redisUrl,
      DATABASE_URL: servers.databaseUrl,
      ...(Deno.stdout.isTerminal() ? {} : { NO_COLOR: "1" }),
    },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`deno task --config ${PLUGINS_CONFIG} bench exited with ${code}`);
  return new TextDecoder().decode(stdout).trimEnd();
}

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

/**
 * The dialogs-and-protection section on one throwaway Redis and Postgres: the real program in
 * webhook mode on them ({@link THROUGHPUT_REPEATS} runs, each on a fresh database and key
 * prefix), then our pipeline against grammY's plugins in process ({@link pluginsCompareReport}).
 */
export async function dialogsSection(progress: (text: string) => void): Promise<string> {
  progress("dialogs: starting a throwaway Postgres and Redis …");
  await using postgres = await startPostgres();
  await using redis = await startRedis();
  const webhook: ThroughputResult[] = [];
  for (let i = 1; i <= THROUGHPUT_REPEATS; i++) {
    progress(`dialogs: webhook mode on Redis + Postgres, run ${i} of ${THROUGHPUT_REPEATS} …`);
    webhook.push(
      await measureWebhookThroughput({
        env: {
          REDIS_URL: redis.url,
          // Each run starts afresh: its update ids would be duplicates under an older prefix.
          REDIS_KEY_PREFIX: `bench${i}:`,
          DATABASE_URL: await postgres.createDatabase(`webhook_bench_${i}`),
        },
      }),
    );
  }
  progress("dialogs: our pipeline vs grammY plugins (bench/plugins, its own config) …");
  const compare = await pluginsCompareReport({
    redisUrl: redis.url,
    databaseUrl: await postgres.createDatabase("plugins_compare"),
  });
  const rates = webhook.map((r) => r.updatesPerSecond);
  return [
    "### Dialogs and protection: our pipeline vs grammY plugins",
    "",
    "#### The real program in webhook mode with Redis and Postgres",
    "",
    formatServerThroughputReport(webhook),
    "",
    `- median ${perSecond(median(rates))} over ${rates.length} runs`,
    "",
    "The same `/start` burst as the webhook rows above (first update sent to last reply), with",
    "REDIS_URL and DATABASE_URL on throwaway servers: gate, chat lease, commit and the event log",
    "all on. Redis commands are the `INFO commandstats` delta over the burst, including what the",
    "Lua scripts run inside Redis: alone, an update's round trips are 2 EVALSHA (gate with its",
    "reply's flood turn, commit), shared by the updates in flight, plus the user cache's SET",
    "after each miss. Postgres queries are `bot_db_queries_total` over",
    "the burst and the event log's batches for it. The chats are 500 and the warm-up 100",
    "updates, so 400 of the measured updates are a user's first: the cache misses, each",
    "registering the user (one upsert).",
    "",
    compare,
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

  progress("start-up: embedded (first and later) and server backends, 3 runs each, 40 s idle …");
  console.log(
    formatStartupReport(
      await measureStartup({ progress: (text) => progress(`start-up: ${text}`) }),
    ),
  );
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

  const delays = [];
  for (const slowChat of [false, true]) {
    progress(`polling delay: ${slowChat ? "one chat slow" : "no slow chat"} …`);
    delays.push(await measurePollingDelay({ slowChat }));
  }
  console.log(formatPollingDelayReport(delays));
  console.log();

  progress("storage: server (Postgres + Redis) and embedded (PGlite + Deno KV) …");
  console.log(formatStorageReport(await benchStorage((text) => progress(`storage: ${text}`))));
  console.log();

  const dialogsStarted = performance.now();
  console.log(await dialogsSection(progress));
  console.log();
  progress(`dialogs: done in ${Math.round((performance.now() - dialogsStarted) / 1000)} s`);

  const compareStarted = performance.now();
  const compare = await benchWebhookCompare({}, (text) => progress(`webhook compare: ${text}`));
  console.log(formatWebhookCompareReport(compare));
  console.log();
  progress(
    `webhook compare: done in ${Math.round((performance.now() - compareStarted) / 1000)} s`,
  );

  progress(`backup and restore: ${BENCH_ROWS} users and requests on both backends …`);
  console.log(formatBackupReport(await benchBackup()));
  console.log();

  progress("flood control and broadcasts: Redis, Postgres, an in-memory Bot API …");
  console.log(await benchFlood());
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
