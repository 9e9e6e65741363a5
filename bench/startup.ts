// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Start-up benchmark: spawns the real program in polling mode against the fake Bot API, as
 * `deno task start` runs it (the same flags, V8's included), and measures how long it takes
 * to become ready, how much memory it holds when idle and how long a SIGTERM takes to end it,
 * on three kinds of start:
 *
 * - embedded, first start: an empty working directory, so PGlite's database is made (from
 *   the template shipped with the program) and migrated, and Deno KV's file created;
 * - embedded, later start: the same directory again, as after a restart;
 * - server backends: `REDIS_URL` and `DATABASE_URL` on a throwaway Redis and Postgres (one
 *   database, already migrated after the warm-up; a fresh key prefix each time).
 *
 * Memory is read twice: {@link EARLY_IDLE_MS} after `ready`, and after `idleMs`, by when V8's
 * memory reducer (which starts 30 s after the first full collection) has returned what the
 * start-up left behind: the figure an idle bot keeps.
 *
 * Run alone with `deno run --unstable-no-legacy-abort --allow-net --allow-env --allow-read
 * --allow-write --allow-sys --allow-run=deno,redis-server,redis-cli,pg_ctl,initdb,postgres,runuser
 * bench/startup.ts`.
 *
 * @module
 */
import { BotProcess, type LogLine } from "../tests/e2e/program.ts";
import { FakeBotApi } from "../tests/fake_bot_api.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";
import { startRedis } from "../tests/support/redis_server.ts";
import { sampleSum, scrape } from "./prometheus.ts";
import { markdownTable, median, mib, ms } from "./stats.ts";

/** When the first memory reading is taken, in ms after `ready`. */
export const EARLY_IDLE_MS = 5000;

/** The kinds of start, in the order they run. */
export const START_KINDS = ["embedded-first", "embedded-later", "server"] as const;
/** One of {@link START_KINDS}. */
export type StartKind = typeof START_KINDS[number];

/** What each kind of start should achieve (the performance issue's goals). */
export const GOALS: Record<StartKind, { readyMs: number; idleRssMiB: number }> = {
  "embedded-first": { readyMs: 3000, idleRssMiB: 150 },
  "embedded-later": { readyMs: 1000, idleRssMiB: 150 },
  server: { readyMs: 1000, idleRssMiB: 80 },
};

const LABELS: Record<StartKind, string> = {
  "embedded-first": "embedded (PGlite + Deno KV), first start",
  "embedded-later": "embedded, later start",
  server: "server backends (Redis + Postgres)",
};

/** Options of {@link measureStartup}. */
export interface StartupOptions {
  /** Measured starts of each kind (after one warm-up of each). @default 3 */
  runs?: number;
  /** How long the program idles after `ready` before its memory is read. @default 40000 */
  idleMs?: number;
  /** Called with what is being done, for a progress line. */
  progress?: (text: string) => void;
}

/** What one start of the program measured. */
export interface StartupRun {
  /** Spawn to the first log line: Deno start-up, module load, config and logging set-up. */
  firstLogMs: number;
  /** Spawn to the `ready` log line (by the lines' own timestamps). */
  readyMs: number;
  /** The `startup_ms` the program logged: `start()` to ready (storage, getMe, ...). */
  startupMs: number;
  /** `process_resident_memory_bytes` {@link EARLY_IDLE_MS} after ready. */
  earlyRssBytes: number;
  /** `process_resident_memory_bytes` after idling `idleMs`. */
  rssBytes: number;
  /** `deno_heap_used_bytes` after idling `idleMs`. */
  heapUsedBytes: number;
  /** SIGTERM to process exit, as seen from outside. */
  stopMs: number;
  /** Exit code after SIGTERM (0 is a clean stop). */
  exitCode: number;
}

/** The runs of each kind of start and their medians. */
export interface StartupReport {
  runs: Record<StartKind, StartupRun[]>;
  median: Record<StartKind, StartupRun>;
  /** How long each program idled before its memory was read. */
  idleMs: number;
}

/**
 * Starts the program `runs` times for each kind of start (after a warm-up of each, which
 * fills Deno's caches, makes the later starts' directory and migrates the server database)
 * and measures start, idle memory and stop.
 */
export async function measureStartup(options: StartupOptions = {}): Promise<StartupReport> {
  const runs = options.runs ?? 3;
  const idleMs = options.idleMs ?? 40_000;
  const progress = options.progress ?? (() => {});
  if (runs < 1) throw new RangeError("measureStartup needs at least 1 run of each kind");
  await using postgres = await startPostgres();
  await using redis = await startRedis();
  const databaseUrl = await postgres.createDatabase("startup_bench");
  const laterDir = await Deno.makeTempDir({ prefix: "bot-bench-startup-later-" });
  try {
    const env = (kind: StartKind, run: number): Record<string, string> =>
      kind === "server"
        ? { DATABASE_URL: databaseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: `startup${run}:` }
        : {};
    const all = {} as Record<StartKind, StartupRun[]>;
    for (const kind of START_KINDS) {
      all[kind] = [];
      for (let run = 0; run <= runs; run++) {
        progress(`${LABELS[kind]}: ${run === 0 ? "warm-up" : `run ${run} of ${runs}`} …`);
        const cwd = kind === "embedded-later" ? laterDir : undefined;
        const measured = await startOnce({ cwd, env: env(kind, run), idleMs: run ? idleMs : 0 });
        if (run > 0) all[kind].push(measured);
      }
    }
    const medianRun = (list: StartupRun[]): StartupRun => {
      const pick = (field: keyof StartupRun) => median(list.map((run) => run[field]));
      return {
        firstLogMs: pick("firstLogMs"),
        readyMs: pick("readyMs"),
        startupMs: pick("startupMs"),
        earlyRssBytes: pick("earlyRssBytes"),
        rssBytes: pick("rssBytes"),
        heapUsedBytes: pick("heapUsedBytes"),
        stopMs: pick("stopMs"),
        exitCode: pick("exitCode"),
      };
    };
    const medians = Object.fromEntries(
      START_KINDS.map((kind) => [kind, medianRun(all[kind])]),
    ) as Record<StartKind, StartupRun>;
    return { runs: all, median: medians, idleMs };
  } finally {
    await Deno.remove(laterDir, { recursive: true }).catch(() => {});
  }
}

async function startOnce(
  options: { cwd: string | undefined; env: Record<string, string>; idleMs: number },
): Promise<StartupRun> {
  await using api = await FakeBotApi.start();
  // Made before the clock starts, so that only the program's own start is measured.
  const cwd = options.cwd ?? await Deno.makeTempDir({ prefix: "bot-bench-startup-" });
  try {
    const spawnedAt = Date.now();
    await using bot = await BotProcess.start({ api, cwd, env: options.env });
    await bot.waitReady(60_000);
    const ready = bot.logs(/^ready as /)[0]!;
    const first = bot.lines[0]!;
    const readAfter = async (idleMs: number) => {
      const at = logTime(ready) + idleMs;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
      return await scrape(`${bot.url}/metrics`);
    };
    const early = await readAfter(Math.min(EARLY_IDLE_MS, options.idleMs));
    const late = await readAfter(options.idleMs);
    const stopStarted = performance.now();
    const status = await bot.stop();
    const stopMs = performance.now() - stopStarted;
    return {
      firstLogMs: logTime(first) - spawnedAt,
      readyMs: logTime(ready) - spawnedAt,
      startupMs: Number(ready.startup_ms),
      earlyRssBytes: sampleSum(early, "process_resident_memory_bytes"),
      rssBytes: sampleSum(late, "process_resident_memory_bytes"),
      heapUsedBytes: sampleSum(late, "deno_heap_used_bytes"),
      stopMs,
      exitCode: status.code,
    };
  } finally {
    if (options.cwd === undefined) await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
}

/** When the program wrote a line, in ms since the epoch (same clock as `Date.now()`). */
function logTime(line: LogLine): number {
  return Date.parse(String(line.time));
}

/** `✓` or `✗` against a ceiling. */
function mark(value: number, ceiling: number): string {
  return value <= ceiling ? "✓" : "✗";
}

/** The report as Markdown: the medians against the goals, every run, what the columns mean. */
export function formatStartupReport(report: StartupReport): string {
  const idle = `${report.idleMs / 1000} s`;
  const summary = markdownTable(
    ["start", "spawn → ready (goal)", `RSS after ${idle} idle (goal)`],
    START_KINDS.map((kind) => {
      const run = report.median[kind];
      const goal = GOALS[kind];
      return [
        `${LABELS[kind]}, median of ${report.runs[kind].length}`,
        `${ms(run.readyMs)} (≤ ${goal.readyMs / 1000} s ${mark(run.readyMs, goal.readyMs)})`,
        `${mib(run.rssBytes)} (≤ ${goal.idleRssMiB} MiB ` +
        `${mark(run.rssBytes / 1024 / 1024, goal.idleRssMiB)})`,
      ];
    }),
  );
  const row = (label: string, run: StartupRun) => [
    label,
    ms(run.firstLogMs),
    ms(run.readyMs),
    ms(run.startupMs),
    mib(run.earlyRssBytes),
    mib(run.rssBytes),
    mib(run.heapUsedBytes),
    ms(run.stopMs),
    String(run.exitCode),
  ];
  const details = markdownTable(
    [
      "start",
      "spawn → first log",
      "spawn → ready",
      "startup_ms (logged)",
      `RSS ${EARLY_IDLE_MS / 1000} s after ready`,
      `RSS after ${idle} idle`,
      "heap used",
      "SIGTERM → exit",
      "exit",
    ],
    START_KINDS.flatMap((kind) => [
      ...report.runs[kind].map((run, i) => row(`${LABELS[kind]} #${i + 1}`, run)),
      row(`**${LABELS[kind]}, median**`, report.median[kind]),
    ]),
  );
  return [
    "### Start-up and idle footprint (polling mode, real program, fake Bot API)",
    "",
    summary,
    "",
    details,
    "",
    "spawn → ready includes Deno start, module load, config, opening the storage (a first start",
    "unpacks PGlite's database and migrates it) and every Bot API call start() makes (getMe,",
    "getWebhookInfo, ...); startup_ms is the program's own figure from start() to ready. Each",
    "kind had one warm-up start first, left out. The memory is `process_resident_memory_bytes`",
    `${EARLY_IDLE_MS / 1000} s after ready, and after ${idle} of idling, once V8's memory reducer`,
    "(30 s after the first full collection) has returned what the start-up left behind.",
  ].join("\n");
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 3);
  const progress = (text: string) => console.error(`[startup] ${text}`);
  console.log(formatStartupReport(await measureStartup({ runs, progress })));
}
