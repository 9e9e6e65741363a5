/**
 * Micro-benchmarks of the in-process pieces: one update through the real grammY pipeline
 * (with an in-memory `fetch`, so no network), and the per-chat scheduler.
 *
 * Run with `deno bench --allow-net --allow-env --allow-read --allow-write
 * bench/pipeline_bench.ts`.
 *
 * @module
 */
import type { Update } from "grammy/types";
import { BOT_INFO, cannedFetch } from "./in_memory_bot_api.ts";
import { createBot } from "../src/bot/pipeline.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { UpdateScheduler } from "../src/transport/scheduler.ts";
import { textMessage } from "../tests/updates.ts";

// The event-loop lag probe is Metrics' only timer; disposing it now leaves the counters and
// histograms working and nothing running once the benchmarks are done.
const metrics = new Metrics();
metrics[Symbol.dispose]();

const bot = createBot({
  token: "123456:BENCH-token_abcdefghijklmnopqrstuvwxyz",
  apiRoot: "http://bot-api.invalid",
  defaultLocale: "en",
  metrics,
  botInfo: BOT_INFO,
  fetch: cannedFetch,
});

function privateText(updateId: number, chatId: number, text: string): Update {
  return textMessage({ updateId, chatId, text, firstName: "Ada", languageCode: "en" });
}

const startUpdate = privateText(1, 42, "/start");
const textUpdate = privateText(2, 42, "my printer is on fire");

Deno.bench({
  name: "handleUpdate: /start (start feature, sendMessage)",
  group: "pipeline",
  baseline: true,
  async fn() {
    await bot.handleUpdate(startUpdate);
  },
});

Deno.bench({
  name: "handleUpdate: plain text (fallback, sendMessage)",
  group: "pipeline",
  async fn() {
    await bot.handleUpdate(textUpdate);
  },
});

const CHATS = 100;
const burst = Array.from({ length: 1000 }, (_, i) => privateText(i + 1, 1000 + (i % CHATS), "hi"));
const noop = () => Promise.resolve();

Deno.bench({
  name: `UpdateScheduler: 1000 updates over ${CHATS} chats, no-op handler`,
  group: "scheduler",
  async fn() {
    const scheduler = new UpdateScheduler({ handle: noop, metrics });
    await Promise.all(burst.map((update) => scheduler.schedule(update)));
  },
});
