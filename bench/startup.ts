// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Start-up benchmark: spawns the real program in polling mode against the fake Bot API, as
 * `deno task start` runs it, and measures how long it takes to become ready, how much memory
 * it holds when idle and how long a SIGTERM takes to end it.
 *
 * Run alone with `deno run --allow-net --allow-env --allow-read --allow-write --allow-run=deno
 * bench/startup.ts`.
 *
 * @module
 */
import { BotProcess, type LogLine } from "../tests/e2e/program.ts";
import { FakeBotApi } from "../tests/fake_bot_api.ts";
import { sampleSum, scrape } from "./prometheus.ts";
import { markdownTable, median, mib, ms } from "./stats.ts";

/** Options of {@link measureStartup}. */
export interface StartupOptions {
  /** How long the program idles after `ready` before its memory is read. @default 5000 */
  idleMs?: number;
}

/** What one start of the program measured. */
export interface StartupRun {
  /** Spawn to the first log line: Deno start-up, module load, config and logging set-up. */
  firstLogMs: number;
  /** Spawn to the `ready` log line (by the lines' own timestamps). */
  readyMs: number;
  /** The `startup_ms` the program logged: `start()` to ready (getMe, getWebhookInfo, ...). */
  startupMs: number;
  /** `process_resident_memory_bytes` after idling. */
  rssBytes: number;
  /** `deno_heap_used_bytes` after idling. */
  heapUsedBytes: number;
  /** SIGTERM to process exit, as seen from outside. */
  stopMs: number;
  /** The `duration_ms` of the program's own `stopped after` line. */
  loggedStopMs: number;
  /** Exit code after SIGTERM (0 is a clean stop). */
  exitCode: number;
}

/** Every run of {@link measureStartup}, the warm-up apart, and the medians of the rest. */
export interface StartupReport {
  /** The first run, which may still fill Deno's caches (reported, not in the medians). */
  coldish: StartupRun;
  /** The other runs. */
  warm: StartupRun[];
  /** Per-field medians of `warm`. */
  median: StartupRun;
  /** How long each program idled before its memory was read. */
  idleMs: number;
}

/**
 * Starts the program `runs` times (the first one counts as a warm-up for the module cache),
 * each time against a fresh fake Bot API, and measures start, idle memory and stop.
 */
export async function measureStartup(
  runs = 5,
  options: StartupOptions = {},
): Promise<StartupReport> {
  if (runs < 2) throw new RangeError("measureStartup needs at least 2 runs (1 is a warm-up)");
  const idleMs = options.idleMs ?? 5000;
  const all: StartupRun[] = [];
  for (let i = 0; i < runs; i++) all.push(await startOnce(idleMs));
  const [coldish, ...warm] = all as [StartupRun, ...StartupRun[]];
  const pick = (field: keyof StartupRun) => median(warm.map((run) => run[field]));
  return {
    coldish,
    warm,
    idleMs,
    median: {
      firstLogMs: pick("firstLogMs"),
      readyMs: pick("readyMs"),
      startupMs: pick("startupMs"),
      rssBytes: pick("rssBytes"),
      heapUsedBytes: pick("heapUsedBytes"),
      stopMs: pick("stopMs"),
      loggedStopMs: pick("loggedStopMs"),
      exitCode: pick("exitCode"),
    },
  };
}

async function startOnce(idleMs: number): Promise<StartupRun> {
  await using api = await FakeBotApi.start();
  // Made before the clock starts, so that only the program's own start is measured.
  const cwd = await Deno.makeTempDir({ prefix: "bot-bench-startup-" });
  try {
    const spawnedAt = Date.now();
    await using bot = await BotProcess.start({ api, cwd });
    await bot.waitReady();
    const ready = bot.logs(/^ready as /)[0]!;
    const first = bot.lines[0]!;
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const metrics = await scrape(`${bot.url}/metrics`);
    const stopStarted = performance.now();
    const status = await bot.stop();
    const stopMs = performance.now() - stopStarted;
    const stopped = bot.logs(/^stopped after /)[0];
    return {
      firstLogMs: logTime(first) - spawnedAt,
      readyMs: logTime(ready) - spawnedAt,
      startupMs: Number(ready.startup_ms),
      rssBytes: sampleSum(metrics, "process_resident_memory_bytes"),
      heapUsedBytes: sampleSum(metrics, "deno_heap_used_bytes"),
      stopMs,
      loggedStopMs: Number(stopped?.duration_ms ?? NaN),
      exitCode: status.code,
    };
  } finally {
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
}

/** When the program wrote a line, in ms since the epoch (same clock as `Date.now()`). */
function logTime(line: LogLine): number {
  return Date.parse(String(line.time));
}

/** The report as Markdown: one row per run, the medians, and what the columns mean. */
export function formatStartupReport(report: StartupReport): string {
  const row = (label: string, run: StartupRun) => [
    label,
    ms(run.firstLogMs),
    ms(run.readyMs),
    ms(run.startupMs),
    mib(run.rssBytes),
    mib(run.heapUsedBytes),
    ms(run.stopMs),
    ms(run.loggedStopMs),
    String(run.exitCode),
  ];
  const table = markdownTable(
    [
      "run",
      "spawn → first log",
      "spawn → ready",
      "startup_ms (logged)",
      `RSS after ${report.idleMs / 1000} s idle`,
      "heap used",
      "SIGTERM → exit",
      "stop (logged)",
      "exit",
    ],
    [
      row("1 (cold-ish)", report.coldish),
      ...report.warm.map((run, i) => row(String(i + 2), run)),
      row(`**median of ${report.warm.length}**`, report.median),
    ],
  );
  return [
    "### Start-up and idle footprint (polling mode, real program, fake Bot API)",
    "",
    table,
    "",
    "spawn → ready includes Deno start, module load, config and every Bot API call start() makes",
    "(getMe, getWebhookInfo, ...); startup_ms is the program's own figure from start() to ready.",
    "The median leaves out run 1.",
  ].join("\n");
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 5);
  console.log(formatStartupReport(await measureStartup(runs)));
}
