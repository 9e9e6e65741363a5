/**
 * Micro-benchmarks of the in-process pieces: one update through the real grammY pipeline
 * (with an in-memory `fetch`, so no network), bare and with everything the program runs per
 * update in webhook mode with Redis (gate, user cache, commit, chat lease, rate limit, flood
 * control) on a store in memory (`memory_store.ts`: the pipeline's own CPU, no store I/O), and
 * the per-chat scheduler.
 *
 * Run with `deno bench --allow-net --allow-env --allow-read --allow-write
 * bench/pipeline_bench.ts`.
 *
 * @module
 */
import type { Update } from "grammy/types";
import { BOT_INFO, cannedFetch } from "./in_memory_bot_api.ts";
import { FloodControl } from "../src/bot/flood/flood_control.ts";
import { createBot } from "../src/bot/pipeline.ts";
import type { UserRepository, UserRow } from "../src/db/users.ts";
import { logger } from "../src/log.ts";
import { UserCache } from "../src/store/user_cache.ts";
import { benchFloodLimits } from "./bench_program.ts";
import { MemoryStore } from "./memory_store.ts";
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

const HOUR = 3_600_000;
const store = new MemoryStore();
/** The database's side of the user cache: every user is known. */
const users = {
  upsert: (profile) =>
    Promise.resolve(
      {
        ...profile,
        locale: null,
        notifications: true,
        createdAt: new Date(0),
        lastSeenAt: new Date(0),
        blockedAt: null,
        bannedAt: null,
      } satisfies UserRow,
    ),
} as Pick<UserRepository, "upsert"> as UserRepository;

const protectedBot = createBot({
  token: "123456:BENCH-token_abcdefghijklmnopqrstuvwxyz",
  apiRoot: "http://bot-api.invalid",
  defaultLocale: "en",
  metrics,
  botInfo: BOT_INFO,
  fetch: cannedFetch,
  users: new UserCache({ store, users, ttlMs: HOUR, metrics }),
  gate: {
    store,
    // On, with a bucket nobody empties: paid for, never triggered.
    rateLimit: {
      enabled: true,
      capacity: 1_000_000,
      windowMs: 60_000,
      banAfter: 5,
      banMs: 60_000,
      adminExempt: false,
    },
    fsm: { stateTtlMs: HOUR, dataTtlMs: HOUR },
    adminIds: [],
    leaseMs: 10_000,
    instanceId: "bench",
  },
  flood: new FloodControl({
    store,
    limits: benchFloodLimits(),
    metrics: metrics.background,
    log: logger("flood"),
  }),
});

let nextUpdateId = 1_000;
Deno.bench({
  name: "handleUpdate: plain text with gate, commit, lease, limiter and flood control",
  group: "pipeline",
  async fn() {
    const updateId = nextUpdateId++;
    // Different chats in turn: each update is new, no chat exceeds its flood limit.
    await protectedBot.handleUpdate(privateText(updateId, 5_000 + (updateId % 1_000), "hi"));
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
