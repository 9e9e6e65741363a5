// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Throughput benchmark: the real program answers a burst of `/start` messages from many chats,
 * once in webhook mode (the benchmark posts the updates itself, a bounded number at a time)
 * and once in polling mode (every update queued in the fake Bot API at once).
 *
 * Run alone with `deno run --allow-net --allow-env --allow-read --allow-write --allow-run=deno
 * bench/throughput.ts`.
 *
 * @module
 */
import { BotProcess, freePort, WEBHOOK_PATH, webhookEnv } from "../tests/e2e/program.ts";
import type { Update } from "grammy/types";
import { FakeBotApi } from "../tests/fake_bot_api.ts";
import { textMessage } from "../tests/updates.ts";
import { sampleSum, scrape } from "./prometheus.ts";
import { markdownTable, mib, ms, percentile, perSecond } from "./stats.ts";

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
  const { updates, chats, concurrency, warmup, timeoutMs } = withDefaults(options);
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, env: webhookEnv(freePort(), SECRET) });
  await bot.waitReady();
  const hook = `${bot.url}${WEBHOOK_PATH}`;
  const bodies = startMessages(warmup + updates, chats).map((update) => JSON.stringify(update));

  await postAll(hook, bodies.slice(0, warmup), concurrency);
  await api.waitFor(() => api.sentMessages().length >= warmup, timeoutMs, "warm-up replies");
  const before = await scrapeCounted(bot.url, warmup, timeoutMs);
  const { elapsedMs, result: latenciesMs } = await timeReplies(
    api,
    updates,
    timeoutMs,
    () => postAll(hook, bodies.slice(warmup), concurrency),
  );

  const after = await scrapeCounted(bot.url, warmup + updates, timeoutMs);
  await bot.stop();
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
  await using bot = await BotProcess.start({ api });
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
  };
}

function withDefaults(options: ThroughputOptions): Required<ThroughputOptions> {
  return {
    updates: 2000,
    chats: 500,
    concurrency: 32,
    warmup: 100,
    timeoutMs: 120_000,
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

if (import.meta.main) {
  const webhook = await measureWebhookThroughput();
  const polling = await measurePollingThroughput();
  console.log(formatThroughputReport([webhook, polling]));
}
