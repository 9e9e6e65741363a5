// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Throughput benchmark: the real program answers a burst of `/start` messages from many chats,
 * once in webhook mode (the benchmark posts the updates itself, a bounded number at a time)
 * and once in polling mode (every update queued in the fake Bot API at once).
 *
 * Run alone with `deno run --unstable-no-legacy-abort --allow-net --allow-env --allow-read
 * --allow-write --allow-run=deno bench/throughput.ts`.
 *
 * @module
 */
import { BotProcess, freePort, WEBHOOK_PATH, webhookEnv } from "../tests/e2e/program.ts";
import { BENCH_PROGRAM } from "./bench_program.ts";
import type { Update } from "grammy/types";
import { FakeBotApi } from "../tests/fake_bot_api.ts";
import { textMessage } from "../tests/updates.ts";
import { sampleSum, scrape } from "./prometheus.ts";
import { markdownTable, mib, ms, percentile, perSecond } from "./stats.ts";
import { RespClient } from "../src/store/resp.ts";

/** Options of {@link measureWebhookThroughput} and {@link measurePollingThroughput}. */
export interface ThroughputOptions {
  /** Updates measured. @default 2000 */
  updates?: number;
  /** Distinct private chats the updates come from, in turn. @default 500 */
  chats?: number;
  /** Webhook requests in flight at once (webhook mode only). @default 32 */
  concurrency?: number;
  /** Updates handled before the measurement, so that JIT and connections are warm. @default 100 */
  warmup?: number;
  /** Longest wait for all replies before giving up, in ms. @default 120000 */
  timeoutMs?: number;
  /**
   * Extra environment for the program, e.g. `REDIS_URL` and `DATABASE_URL` of throwaway
   * servers (webhook mode only). With `REDIS_URL` the run counts the Redis commands of the
   * burst; with `DATABASE_URL`, its Postgres queries. @default {}
   */
  env?: Record<string, string>;
}

/** What the measured burst cost the servers of a run with `REDIS_URL` or `DATABASE_URL`. */
export interface ServerCosts {
  /** Redis commands by name (`INFO commandstats` delta, INFO itself left out); null: no Redis. */
  redisCommands: Record<string, number> | null;
  /**
   * `bot_db_queries_total` over the burst and the event log's writes of its updates; null:
   * the embedded PGlite.
   */
  dbQueries: number | null;
  /** `bot_user_cache_total{result="miss"}` over the burst: first sightings, changed profiles. */
  cacheMisses: number;
  /** Updates the event log wrote over the burst and its drain. */
  eventsWritten: number;
}

/** What one throughput run measured. */
export interface ThroughputResult {
  /** How the updates reached the program. */
  mode: "webhook" | "polling";
  /** Updates measured (warm-up excluded). */
  updates: number;
  /** Distinct chats they came from. */
  chats: number;
  /** Webhook requests in flight at once; null in polling mode. */
  concurrency: number | null;
  /** First update sent (or queued) to the last reply seen by the fake Bot API. */
  elapsedMs: number;
  /** `updates / elapsed`. */
  updatesPerSecond: number;
  /** Webhook POST → 200 latencies in ms, one per update; empty in polling mode. */
  latenciesMs: number[];
  /** Mean of `bot_update_duration_seconds` over the measured updates, in ms. */
  pipelineMeanMs: number;
  /** How many updates `bot_update_duration_seconds` counted during the measurement. */
  pipelineCount: number;
  /** `process_resident_memory_bytes` right after the burst. */
  rssAfterBytes: number;
  /** Mode-specific notes, e.g. how many polls it took. */
  notes: string;
  /** Server costs, when the run was given `REDIS_URL` or `DATABASE_URL`; else null. */
  servers: ServerCosts | null;
}

const SECRET = "bench_webhook-Secret_0123456789";
const FIRST_CHAT = 700_000;

/**
 * Webhook mode: posts the updates straight to the program's webhook URL with the secret
 * header, `concurrency` at a time, and measures until every POST got its 200 and every reply
 * reached the fake Bot API.
 */
export async function measureWebhookThroughput(
  options: ThroughputOptions = {},
): Promise<ThroughputResult> {
  const { updates, chats, concurrency, warmup, timeoutMs, env } = withDefaults(options);
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({
    api,
    entry: BENCH_PROGRAM,
    env: { ...webhookEnv(freePort(), SECRET), ...env },
  });
  await bot.waitReady();
  await using redis = env.REDIS_URL ? await RedisCommandStats.open(env.REDIS_URL) : null;
  const hook = `${bot.url}${WEBHOOK_PATH}`;
  const bodies = startMessages(warmup + updates, chats).map((update) => JSON.stringify(update));

  await postAll(hook, bodies.slice(0, warmup), concurrency);
  await api.waitFor(() => api.sentMessages().length >= warmup, timeoutMs, "warm-up replies");
  const warmedUp = await scrapeCounted(bot.url, warmup, timeoutMs);
  // So that the event log's batches of the warm-up are not counted with the burst.
  const before = env.DATABASE_URL
    ? await scrapeEventsWritten(bot.url, warmup, timeoutMs)
    : warmedUp;
  const commandsBefore = await redis?.snapshot();
  const { elapsedMs, result: latenciesMs } = await timeReplies(
    api,
    updates,
    timeoutMs,
    () => postAll(hook, bodies.slice(warmup), concurrency),
  );

  const after = await scrapeCounted(bot.url, warmup + updates, timeoutMs);
  const commandsAfter = await redis?.snapshot();
  // The event log writes in the background: its statements for the burst count too.
  const drained = env.DATABASE_URL
    ? await scrapeEventsWritten(bot.url, warmup + updates, timeoutMs)
    : after;
  await bot.stop();
  const delta = (name: string) => sampleSum(drained, name) - (sampleSum(before, name) || 0);
  const servers: ServerCosts | null = env.REDIS_URL || env.DATABASE_URL
    ? {
      redisCommands: commandsBefore && commandsAfter
        ? commandDelta(commandsBefore, commandsAfter)
        : null,
      dbQueries: env.DATABASE_URL ? delta("bot_db_queries_total") : null,
      cacheMisses: sampleSum(drained, 'bot_user_cache_total{result="miss"}') -
        (sampleSum(before, 'bot_user_cache_total{result="miss"}') || 0),
      eventsWritten: delta("bot_events_written_total"),
    }
    : null;
  return {
    mode: "webhook",
    updates,
    chats,
    concurrency,
    elapsedMs,
    updatesPerSecond: updates / (elapsedMs / 1000),
    latenciesMs,
    ...pipelineFigures(before, after),
    rssAfterBytes: sampleSum(after, "process_resident_memory_bytes"),
    notes: `all ${updates} POSTs answered 200`,
    servers,
  };
}

/**
 * Polling mode: queues every update in the fake Bot API at once and measures until every
 * reply reached it.
 */
export async function measurePollingThroughput(
  options: ThroughputOptions = {},
): Promise<ThroughputResult> {
  const { updates, chats, warmup, timeoutMs } = withDefaults(options);
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, entry: BENCH_PROGRAM });
  await bot.waitReady();
  const push = (count: number, offset: number) => {
    for (let i = offset; i < offset + count; i++) {
      const chatId = FIRST_CHAT + (i % chats);
      api.pushMessage({ chatId, text: "/start", firstName: `User ${chatId}` });
    }
  };

  push(warmup, 0);
  await api.waitFor(() => api.sentMessages().length >= warmup, timeoutMs, "warm-up replies");
  const before = await scrapeCounted(bot.url, warmup, timeoutMs);
  const pollsBefore = api.callsOf("getUpdates").length;
  const { elapsedMs } = await timeReplies(api, updates, timeoutMs, () => push(updates, warmup));

  const after = await scrapeCounted(bot.url, warmup + updates, timeoutMs);
  const polls = api.callsOf("getUpdates").length - pollsBefore;
  await bot.stop();
  return {
    mode: "polling",
    updates,
    chats,
    concurrency: null,
    elapsedMs,
    updatesPerSecond: updates / (elapsedMs / 1000),
    latenciesMs: [],
    ...pipelineFigures(before, after),
    rssAfterBytes: sampleSum(after, "process_resident_memory_bytes"),
    notes: `${polls} getUpdates calls, ${api.redelivered().length} updates delivered twice`,
    servers: null,
  };
}

function withDefaults(options: ThroughputOptions): Required<ThroughputOptions> {
  return {
    updates: 2000,
    chats: 500,
    concurrency: 32,
    warmup: 100,
    timeoutMs: 120_000,
    env: {},
    ...options,
  };
}

/** `count` private `/start` messages shaped like Telegram's, from `chats` chats in turn. */
function startMessages(count: number, chats: number): Update[] {
  const date = Math.floor(Date.now() / 1000);
  const nextMessageId = new Map<number, number>();
  return Array.from({ length: count }, (_, i) => {
    const chatId = FIRST_CHAT + (i % chats);
    const messageId = (nextMessageId.get(chatId) ?? 0) + 1;
    nextMessageId.set(chatId, messageId);
    return textMessage({
      updateId: 1_000_000 + i,
      chatId,
      text: "/start",
      firstName: `User ${chatId}`,
      languageCode: "en",
      messageId,
      date,
    });
  });
}

/** Runs `send` and times it until `count` more replies have reached the fake Bot API. */
async function timeReplies<T>(
  api: FakeBotApi,
  count: number,
  timeoutMs: number,
  send: () => T | Promise<T>,
): Promise<{ elapsedMs: number; result: T }> {
  const sentBefore = api.sentMessages().length;
  const started = performance.now();
  const result = await send();
  await api.waitFor(
    () => api.sentMessages().length >= sentBefore + count,
    timeoutMs,
    `${count} replies`,
  );
  return { elapsedMs: performance.now() - started, result };
}

/** Posts every body to the webhook, `concurrency` at a time; returns POST → 200 times in ms. */
async function postAll(url: string, bodies: string[], concurrency: number): Promise<number[]> {
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
      const res = await fetch(url, { method: "POST", headers, body: bodies[i] });
      latencies[i] = performance.now() - started;
      const text = await res.text();
      if (res.status !== 200) {
        throw new Error(`the webhook answered ${res.status} to body #${i}: ${text}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, bodies.length) }, worker));
  return latencies;
}

/**
 * Scrapes `/metrics` until `bot_update_duration_seconds` has counted `expected` updates. The
 * fake sees a reply a moment before the pipeline records the update's duration, so a scrape
 * right after the last reply can miss the tail of a polling batch.
 */
async function scrapeCounted(baseUrl: string, expected: number, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const text = await scrape(`${baseUrl}/metrics`);
    const count = sampleSum(text, "bot_update_duration_seconds_count") || 0;
    if (count >= expected) return text;
    if (performance.now() > deadline) {
      throw new Error(`/metrics counted ${count} updates, expected ${expected}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Scrapes `/metrics` until the event log has written `expected` rows, so that the batches of
 * the last updates are counted with them; gives up quietly after `timeoutMs` (the figures then
 * miss the tail, which the report's events column shows).
 */
async function scrapeEventsWritten(
  baseUrl: string,
  expected: number,
  timeoutMs: number,
): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const text = await scrape(`${baseUrl}/metrics`);
    const written = sampleSum(text, "bot_events_written_total") || 0;
    if (written >= expected || performance.now() > deadline) return text;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Counts a Redis's commands by name from `INFO commandstats`, over one connection of its own
 * that sends nothing but INFO (which {@link commandDelta} leaves out).
 */
export class RedisCommandStats implements AsyncDisposable {
  readonly #client: RespClient;

  private constructor(client: RespClient) {
    this.#client = client;
  }

  /** Connects to `url`. */
  static async open(url: string): Promise<RedisCommandStats> {
    const client = await RespClient.connect({
      url,
      connectTimeoutMs: 5_000,
      reconnect: (_retries, cause) => cause,
    });
    return new RedisCommandStats(client);
  }

  /** Calls so far per command (`evalsha`, `get`, `client|setinfo`, …) since the server started. */
  async snapshot(): Promise<Map<string, number>> {
    const text = String(await this.#client.send(["INFO", "commandstats"]));
    const calls = new Map<string, number>();
    for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      calls.set(match[1]!, Number(match[2]));
    }
    return calls;
  }

  /** CPU time the server has used since it started (`used_cpu_user` + `used_cpu_sys`), in ms. */
  async cpuMs(): Promise<number> {
    const text = String(await this.#client.send(["INFO", "cpu"]));
    const seconds = (name: string) => Number(new RegExp(`^${name}:(\\S+)`, "m").exec(text)?.[1]);
    return (seconds("used_cpu_user") + seconds("used_cpu_sys")) * 1000;
  }

  /** The server's `redis_version`. */
  async version(): Promise<string> {
    const text = String(await this.#client.send(["INFO", "server"]));
    return /^redis_version:(\S+)/m.exec(text)?.[1] ?? "?";
  }

  /** Closes the connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#client.close();
  }
}

/** Commands called between two snapshots, INFO (the counting itself) left out. */
export function commandDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [name, calls] of after) {
    const count = calls - (before.get(name) ?? 0);
    if (count > 0 && name !== "info") delta[name] = count;
  }
  return delta;
}

/** Commands per update in all, and the biggest by name: `3.00 (evalsha 2.00, get 1.00)`. */
export function commandsPerUpdate(commands: Record<string, number>, updates: number): string {
  const entries = Object.entries(commands).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  const parts = entries.map(([name, count]) => `${name} ${(count / updates).toFixed(2)}`);
  return `${(total / updates).toFixed(2)} (${parts.join(", ")})`;
}

/** Mean pipeline time over what the histogram counted between two scrapes. */
function pipelineFigures(
  before: string,
  after: string,
): { pipelineMeanMs: number; pipelineCount: number } {
  const delta = (name: string) => sampleSum(after, name) - (sampleSum(before, name) || 0);
  const count = delta("bot_update_duration_seconds_count");
  const sum = delta("bot_update_duration_seconds_sum");
  return { pipelineMeanMs: (sum / count) * 1000, pipelineCount: count };
}

/** The results as a Markdown table, with what the columns mean. */
export function formatThroughputReport(results: ThroughputResult[]): string {
  const table = markdownTable(
    [
      "mode",
      "updates (chats)",
      "in flight",
      "elapsed",
      "updates/s",
      "POST→200 p50",
      "p99",
      "max",
      "pipeline mean (metrics)",
      "RSS after",
      "notes",
    ],
    results.map((r) => {
      const hasLatency = r.latenciesMs.length > 0;
      return [
        r.mode,
        `${r.updates} (${r.chats})`,
        r.concurrency === null ? "poll ≤100" : String(r.concurrency),
        ms(r.elapsedMs),
        perSecond(r.updatesPerSecond),
        hasLatency ? ms(percentile(r.latenciesMs, 50)) : "–",
        hasLatency ? ms(percentile(r.latenciesMs, 99)) : "–",
        hasLatency ? ms(Math.max(...r.latenciesMs)) : "–",
        `${ms(r.pipelineMeanMs)} over ${r.pipelineCount}`,
        mib(r.rssAfterBytes),
        r.notes,
      ];
    }),
  );
  return [
    "### Throughput: `/start` bursts through the real program (fake Bot API on loopback)",
    "",
    table,
    "",
    "elapsed runs from the first update sent or queued to the last reply seen by the fake;",
    "pipeline mean is bot_update_duration_seconds sum/count (includes the sendMessage round",
    "trip). Warm-up updates are excluded. The load generator and the fake share one process.",
  ].join("\n");
}

/**
 * Webhook runs with `REDIS_URL` and `DATABASE_URL` as a Markdown table: the columns of
 * {@link formatThroughputReport} that apply, plus what the burst cost Redis and Postgres.
 */
export function formatServerThroughputReport(results: ThroughputResult[]): string {
  return markdownTable(
    [
      "mode",
      "updates (chats)",
      "in flight",
      "updates/s",
      "POST→200 p50",
      "p99",
      "pipeline mean (metrics)",
      "Redis commands per update",
      "Postgres queries per update",
      "cache misses",
      "RSS after",
    ],
    results.map((r) => {
      const servers = r.servers;
      return [
        `${r.mode}, Redis + Postgres`,
        `${r.updates} (${r.chats})`,
        String(r.concurrency ?? "–"),
        perSecond(r.updatesPerSecond),
        ms(percentile(r.latenciesMs, 50)),
        ms(percentile(r.latenciesMs, 99)),
        `${ms(r.pipelineMeanMs)} over ${r.pipelineCount}`,
        servers?.redisCommands ? commandsPerUpdate(servers.redisCommands, r.updates) : "–",
        servers?.dbQueries == null
          ? "–"
          : `${(servers.dbQueries / r.updates).toFixed(2)} (${servers.dbQueries} in all; ` +
            `event log: ${servers.eventsWritten} rows)`,
        servers ? String(servers.cacheMisses) : "–",
        mib(r.rssAfterBytes),
      ];
    }),
  );
}

if (import.meta.main) {
  const webhook = await measureWebhookThroughput();
  const polling = await measurePollingThroughput();
  console.log(formatThroughputReport([webhook, polling]));
}
