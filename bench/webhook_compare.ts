// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Three webhook bots side by side, in one run, on the same servers and the same load:
 *
 * - floor: `bench/floor/`, bare grammY on `Deno.serve` replying to every message: what
 *   grammY and the HTTP server cost on their own;
 * - peer: `bench/peer/`, what a typical production grammY template does per update
 *   (`limit()` and `session()` on Redis via ioredis, one Postgres upsert of the user), then
 *   the `/help` reply: the bar to beat;
 * - ours: the real program (`bench/bench_program.ts`, run as `tests/e2e/program.ts` runs it) in
 *   webhook mode on the same Redis and Postgres, rate limiting on with a limit nobody reaches,
 *   LOG_LEVEL=warning, and its flood control on with limits no burst reaches
 *   (`benchFloodLimits()`: each reply still takes its turn in the shared logs; Telegram's real
 *   30 a second would time nothing but the limiter).
 *
 * Each bot runs as its own process (floor and peer from their own deno.json and deno.lock),
 * against one throwaway Redis, one throwaway Postgres (a database per bot) and one fake Bot
 * API. All three keep running through every round. Each first gets a warm-up (every user is
 * seen, connections open, JIT warm), then the rounds run the bots in turn (floor, peer, ours,
 * floor, …): per bot and round, `updates` `/help` messages from `users` users are POSTed to
 * its webhook with the secret header, `concurrency` at a time over keep-alive connections,
 * and a POST counts when its 200 arrives (all three answer after handling the update).
 *
 * What an update costs Redis and Postgres is counted in one more burst per bot after the
 * rounds, untimed, with MONITOR attached to Redis (see `redis_script_commands.ts`): MONITOR
 * costs Redis about 2 µs per command, which the timed rounds should not pay.
 *
 * Run alone with `deno run --frozen --unstable-kv --unstable-raw-imports --allow-net
 * --allow-env --allow-read --allow-write --allow-sys
 * --allow-run=deno,redis-server,redis-cli,pg_ctl,initdb,postgres,runuser,cat,ps
 * bench/webhook_compare.ts`.
 *
 * @module
 */
import type { Update } from "grammy/types";
import { PROJECT_ROOT } from "../scripts/start_command.ts";
import { BotProcess, freePort, WEBHOOK_PATH, webhookEnv } from "../tests/e2e/program.ts";
import { BENCH_PROGRAM } from "./bench_program.ts";
import { FAKE_TOKEN, FakeBotApi } from "../tests/fake_bot_api.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";
import { startRedis } from "../tests/support/redis_server.ts";
import { textMessage } from "../tests/updates.ts";
import { QueryCounter, queryDelta, type QuerySource } from "./postgres_queries.ts";
import { childPid, sampleProcess } from "./proc.ts";
import { sampleSum, scrape } from "./prometheus.ts";
import { ScriptCommandMonitor } from "./redis_script_commands.ts";
import { perSecond } from "./stats.ts";
import { StandaloneBot } from "./standalone_bot.ts";
import { formatWebhookCompareReport } from "./webhook_compare_report.ts";
import { commandDelta, RedisCommandStats } from "./throughput.ts";

/** Options of {@link benchWebhookCompare}. */
export interface WebhookCompareOptions {
  /** Updates per bot and round. @default 3000 */
  updates?: number;
  /** Distinct users (private chats) the updates come from, in turn. @default 400 */
  users?: number;
  /** POSTs in flight at once, each on a keep-alive connection of its own. @default 64 */
  concurrency?: number;
  /**
   * Rounds; each runs every bot once. Five, so that a run's median is less at the mercy of one
   * slow phase of a shared machine (a round takes about a second per bot). @default 5
   */
  rounds?: number;
  /**
   * Updates per bot before the rounds (every user several times). With 1,200 the floor and the
   * peer were still getting faster in the fifth round (the floor from 4,042 to 6,890 /s, its
   * CPU per update from 210 to 127 µs), so the first rounds compared ours, warm, with them
   * still warming up. @default 6000
   */
  warmup?: number;
}

/** Which bot. */
export type CompareBot = "floor" | "peer" | "ours";

/** The bots, in the order each round runs them. */
export const COMPARE_BOTS: readonly CompareBot[] = ["floor", "peer", "ours"];

/** What one bot did in one round. */
export interface BurstFigures {
  bot: CompareBot;
  /** 1-based; 0 for the accounting burst. */
  round: number;
  updates: number;
  /** First POST sent to last 200 received. */
  elapsedMs: number;
  updatesPerSecond: number;
  /** POST → 200 times, one per update. */
  latenciesMs: number[];
  /** `INFO commandstats` delta by command, the bench's own INFO and ECHO left out. */
  redisCommands: Record<string, number>;
  /**
   * The part of {@link redisCommands} that Lua scripts ran inside Redis (MONITOR); null when
   * MONITOR was not attached (the timed rounds).
   */
  scriptCommands: Record<string, number> | null;
  /** Statements the bot's database ran, by text; null: the bot has none. */
  queries: Record<string, number> | null;
  /** CPU time of the bot's process (user + system), from the burst's start to its settling. */
  cpuMicros: number;
  /**
   * CPU time of the Redis server (`INFO cpu`) over the same span: the servers share the
   * machine's cores with the bots, so what an update costs them counts too.
   */
  redisCpuMicros: number;
  /** The bot's VmRSS right after the burst. */
  rssBytes: number;
  /** CPU time of this process (load generator and fake Bot API) while the POSTs ran. */
  loadCpuMicros: number;
  /**
   * Ours: what became of its replies' turns taken ahead over the burst (`used`, `given_back`:
   * too late, given back by the reply's own take, `refused`); null for the others.
   */
  turnsAhead: Record<string, number> | null;
}

/** Everything {@link benchWebhookCompare} measured. */
export interface WebhookCompareFigures {
  options: Required<WebhookCompareOptions>;
  /** Server versions. */
  description: string;
  /** Where the Postgres query counts come from. */
  querySource: QuerySource;
  /** How long each burst's CPU time ran on after the last 200. */
  settleMs: number;
  /** The timed rounds. */
  bursts: BurstFigures[];
  /** The untimed burst per bot that counts Redis commands and Postgres queries. */
  accounting: BurstFigures[];
}

/** One bot under test, whatever runs it. */
interface Contestant {
  name: CompareBot;
  pid: number;
  hook: string;
  /** Its database; null for the floor, which has none. */
  database: string | null;
  /** Its keep-alive connections, kept from the warm-up through every round. */
  client: Deno.HttpClient;
  nextUpdateId: number;
  /** Waits until work the bot does after answering (ours' event log) is done. */
  settle(): Promise<void>;
  /** Ours: its `bot_outbound_turns_ahead_total` by result, so far; null for the others. */
  turnsAhead(): Promise<Record<string, number> | null>;
}

/** What every burst measures with; `scripts` only in the accounting bursts. */
interface Meters {
  stats: RedisCommandStats;
  scripts: ScriptCommandMonitor | null;
  queries: QueryCounter;
  api: FakeBotApi;
}

const SECRET = "bench_compare-Secret_0123456789";
const FIRST_CHAT = 810_000_000;
/** Longer than ours' event-log flush interval (1 s); every bot gets the same pause. */
const SETTLE_MS = 1_200;

/** `count` private `/help` messages from `users` users in turn, with fresh update ids. */
function helpUpdates(bot: Contestant, count: number, users: number): string[] {
  const date = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, (_, i) => {
    const chatId = FIRST_CHAT + (i % users);
    const update: Update = textMessage({
      updateId: bot.nextUpdateId++,
      chatId,
      text: "/help",
      firstName: `User ${chatId}`,
      languageCode: "en",
      date,
    });
    return JSON.stringify(update);
  });
}

/** POSTs every body to the webhook, `concurrency` at a time; returns POST → 200 times in ms. */
async function postAll(bot: Contestant, bodies: string[], concurrency: number) {
  const latencies = new Array<number>(bodies.length);
  const headers = {
    "content-type": "application/json",
    "x-telegram-bot-api-secret-token": SECRET,
  };
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const i = next++;
      const started = performance.now();
      const res = await fetch(bot.hook, {
        method: "POST",
        headers,
        body: bodies[i],
        client: bot.client,
      });
      latencies[i] = performance.now() - started;
      const text = await res.text();
      if (res.status !== 200) {
        throw new Error(`${bot.name} answered ${res.status} to update #${i}: ${text}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, bodies.length) }, worker));
  return latencies;
}

/** Sends one burst to `bot` and measures it. */
async function burst(
  bot: Contestant,
  round: number,
  meters: Meters,
  options: Required<WebhookCompareOptions>,
): Promise<BurstFigures> {
  const { stats, scripts, queries, api } = meters;
  const bodies = helpUpdates(bot, options.updates, options.users);
  const scriptsBefore = await scripts?.mark();
  const commandsBefore = await stats.snapshot();
  const queriesBefore = bot.database ? await queries.snapshot(bot.database) : null;
  const sentBefore = api.sentMessages().length;
  const turnsBefore = await bot.turnsAhead();
  const cpuBefore = await sampleProcess(bot.pid);
  const redisCpuBefore = await stats.cpuMs();
  const loadBefore = await sampleProcess(Deno.pid);
  const started = performance.now();

  const latenciesMs = await postAll(bot, bodies, options.concurrency);

  const elapsedMs = performance.now() - started;
  const loadCpu = (await sampleProcess(Deno.pid)).cpuMicros - loadBefore.cpuMicros;
  const { rssBytes } = await sampleProcess(bot.pid);
  await bot.settle();
  const cpu = (await sampleProcess(bot.pid)).cpuMicros - cpuBefore.cpuMicros;
  const redisCpu = (await stats.cpuMs()) - redisCpuBefore;
  // Marks first, INFO second: the mark's ECHO falls inside this delta and is left out below.
  const scriptsAfter = await scripts?.mark();
  const commandsAfter = await stats.snapshot();
  const queriesAfter = bot.database ? await queries.snapshot(bot.database) : null;
  const turnsAfter = await bot.turnsAhead();
  const replies = api.sentMessages().length - sentBefore;
  if (replies !== options.updates) {
    throw new Error(`${bot.name} sent ${replies} replies to ${options.updates} updates`);
  }
  const redisCommands = commandDelta(commandsBefore, commandsAfter);
  delete redisCommands.echo;
  let scriptCommands: Record<string, number> | null = null;
  if (scriptsBefore && scriptsAfter) {
    scriptCommands = {};
    for (const [name, calls] of scriptsAfter) {
      const count = calls - (scriptsBefore.get(name) ?? 0);
      if (count > 0) scriptCommands[name] = count;
    }
  }
  return {
    bot: bot.name,
    round,
    updates: options.updates,
    elapsedMs,
    updatesPerSecond: options.updates / (elapsedMs / 1000),
    latenciesMs,
    redisCommands,
    scriptCommands,
    queries: queriesBefore && queriesAfter ? queryDelta(queriesBefore, queriesAfter) : null,
    cpuMicros: cpu,
    redisCpuMicros: redisCpu * 1000,
    rssBytes,
    loadCpuMicros: loadCpu,
    turnsAhead: turnsBefore && turnsAfter
      ? Object.fromEntries(
        Object.entries(turnsAfter).map(([result, n]) => [result, n - (turnsBefore[result] ?? 0)]),
      )
      : null,
  };
}

/** `bot_outbound_turns_ahead_total` of the program at `baseUrl`, by result. */
async function turnsAheadOf(baseUrl: string): Promise<Record<string, number>> {
  const text = await scrape(`${baseUrl}/metrics`);
  const counts: Record<string, number> = {};
  for (const result of ["used", "given_back", "refused"]) {
    const n = sampleSum(text, `bot_outbound_turns_ahead_total{result="${result}"}`);
    counts[result] = Number.isNaN(n) ? 0 : n;
  }
  return counts;
}

/** Waits for `GET /health` to answer 200 (LOG_LEVEL=warning hides the `ready` line). */
async function waitHealthy(bot: BotProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  bot.status.then(() => exited = true);
  for (;;) {
    const status = await bot.get("/health").then((r) => r.status, () => 0);
    if (status === 200) return;
    if (exited || Date.now() > deadline) {
      throw new Error(
        `the program ${exited ? "exited" : "was not healthy"} on start:\n` +
          `${bot.stdoutText().slice(-3000)}\n${bot.stderrText.slice(-3000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Ours writes its event log after answering; waits until its queue is empty. */
async function eventLogDrained(baseUrl: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const queued = sampleSum(await scrape(`${baseUrl}/metrics`), "bot_event_queue_size");
    // NaN: no event log in this version of the program.
    if (!(queued > 0) || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const pause = () => new Promise<void>((resolve) => setTimeout(resolve, SETTLE_MS));

function contestant(
  name: CompareBot,
  pid: number,
  baseUrl: string,
  database: string | null,
  concurrency: number,
  drained: () => Promise<void> = () => Promise.resolve(),
  turnsAhead: () => Promise<Record<string, number> | null> = () => Promise.resolve(null),
): Contestant {
  return {
    turnsAhead,
    name,
    pid,
    hook: `${baseUrl}${WEBHOOK_PATH}`,
    database,
    client: Deno.createHttpClient({ poolMaxIdlePerHost: concurrency }),
    nextUpdateId: 1_000_000,
    settle: async () => {
      await pause();
      await drained();
    },
  };
}

/** Starts the servers and the three bots, warms them up and runs the rounds. */
export async function benchWebhookCompare(
  options: WebhookCompareOptions = {},
  progress: (text: string) => void = (text) => console.error(`[compare] ${text}`),
): Promise<WebhookCompareFigures> {
  const resolved: Required<WebhookCompareOptions> = {
    updates: 3000,
    users: 400,
    concurrency: 64,
    rounds: 5,
    warmup: 6000,
    ...options,
  };
  progress("starting a throwaway Postgres (with pg_stat_statements) and Redis …");
  await using postgres = await startPostgres();
  await using queries = await QueryCounter.open(postgres);
  await using redis = await startRedis();
  await using stats = await RedisCommandStats.open(redis.url);
  await using api = await FakeBotApi.start();
  const common = { BOT_TOKEN: FAKE_TOKEN, BOT_API_ROOT: api.apiRoot, WEBHOOK_SECRET: SECRET };

  progress("starting floor, peer and ours …");
  await using floor = await StandaloneBot.start("floor", common);
  const peerDb = "compare_peer";
  await using peer = await StandaloneBot.start("peer", {
    ...common,
    REDIS_URL: redis.url,
    DATABASE_URL: await postgres.createDatabase(peerDb),
  });
  const oursDb = "compare_ours";
  await using ours = await BotProcess.start({
    api,
    entry: BENCH_PROGRAM,
    env: {
      ...webhookEnv(freePort(), SECRET),
      REDIS_URL: redis.url,
      DATABASE_URL: await postgres.createDatabase(oursDb),
      RATE_LIMIT_ENABLED: "true",
      // The most the program accepts, per 60 s window: each user sends about 35 in the run.
      RATE_LIMIT_MAX_REQUESTS: "10000",
      LOG_LEVEL: "warning",
    },
  });
  await waitHealthy(ours);

  const { concurrency } = resolved;
  const bots: Contestant[] = [
    contestant("floor", floor.pid, floor.url, null, concurrency),
    contestant("peer", peer.pid, peer.url, peerDb, concurrency),
    contestant(
      "ours",
      await childPid(`${PROJECT_ROOT}/${BENCH_PROGRAM}`),
      ours.url,
      oursDb,
      concurrency,
      () => eventLogDrained(ours.url),
      () => turnsAheadOf(ours.url),
    ),
  ];
  const meters: Meters = { stats, scripts: null, queries, api };
  try {
    for (const bot of bots) {
      progress(`${bot.name}: warm-up, ${resolved.warmup} updates …`);
      await postAll(bot, helpUpdates(bot, resolved.warmup, resolved.users), concurrency);
      await bot.settle();
    }
    const bursts: BurstFigures[] = [];
    for (let round = 1; round <= resolved.rounds; round++) {
      for (const bot of bots) {
        progress(
          `round ${round} of ${resolved.rounds}: ${bot.name}, ${resolved.updates} updates …`,
        );
        const figures = await burst(bot, round, meters, resolved);
        progress(`  ${perSecond(figures.updatesPerSecond)}`);
        bursts.push(figures);
      }
    }
    progress("accounting: one more burst per bot, untimed, with MONITOR attached to Redis …");
    const accounting: BurstFigures[] = [];
    {
      await using scripts = await ScriptCommandMonitor.open(redis.port);
      for (const bot of bots) {
        accounting.push(await burst(bot, 0, { ...meters, scripts }, resolved));
      }
    }
    const description = `Redis ${await stats.version()}, PostgreSQL ${await queries.version()}`;
    return {
      options: resolved,
      description,
      querySource: queries.source,
      settleMs: SETTLE_MS,
      bursts,
      accounting,
    };
  } finally {
    for (const bot of bots) bot.client.close();
    await ours.stop();
  }
}

if (import.meta.main) {
  console.log(formatWebhookCompareReport(await benchWebhookCompare()));
}
