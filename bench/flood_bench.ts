// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Flood control and broadcasts:
 *
 * 1. What the flood control adds to one outgoing message: the API transformer in front of a
 *    network that answers at once, against the same call without it; with a shared store
 *    (Redis: one script round trip per message) and with the embedded one (never asked: the
 *    logs live in memory). Sequential latency, and throughput with 32 callers at once.
 * 2. The store script alone with a full bot-wide log (30 send times), as at the limit.
 * 3. Broadcast throughput: the broadcast job with Postgres and Redis copying a message to
 *    subscribers through an in-memory Bot API, with the real limits at `BROADCAST_RATE` 25,
 *    and without flood control (what claiming, sending and marking cost by themselves).
 * 4. Replies asked for faster than Telegram's bot-wide limit, each taking its turn with its
 *    update's gate as the program does (recorded `aheadMs` late), and without turns taken
 *    ahead: how many go per second, and the most that ever went in one second.
 *
 * Run with `deno run --frozen --unstable-kv --unstable-raw-imports --allow-net --allow-env
 * --allow-read --allow-write --allow-sys --allow-run=redis-server,redis-cli,pg_ctl,initdb,postgres,runuser
 * bench/flood_bench.ts`.
 *
 * @module
 */
import type { Transformer } from "grammy";
import { broadcastJob } from "../src/bot/features/broadcast/sender.ts";
import { FloodControl } from "../src/bot/flood/flood_control.ts";
import { floodKeys, takeArgs, takeScript } from "../src/bot/flood/script.ts";
import { type FloodLimits, floodLimits, PREFETCH_VALID_MS } from "../src/bot/flood/limits.ts";
import { createApi } from "../src/bot/pipeline.ts";
import { BroadcastRepository } from "../src/db/broadcasts.ts";
import { openDatabase } from "../src/db/database.ts";
import { Migrator, parseMigrations } from "../src/db/migrate.ts";
import { MIGRATION_FILES } from "../src/db/migration_files.ts";
import { UserRepository } from "../src/db/users.ts";
import { logger } from "../src/log.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { openKvStore } from "../src/store/kv_store.ts";
import { openRedisStore } from "../src/store/redis_store.ts";
import type { KeyValueStore } from "../src/store/store.ts";
import { testDatabaseConfig } from "../tests/support/databases.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";
import { startRedis } from "../tests/support/redis_server.ts";
import { markdownTable, percentile, perSecond } from "./stats.ts";

/** Messages per latency and throughput measurement. */
const MESSAGES = 5000;
/** Subscribers of the broadcast at the real pace, and without flood control. */
const PACED = 300;
const UNPACED = 2000;

/** Limits that never make anyone wait, with logs as small as a real bot's. */
const UNBOUND: FloodLimits = {
  global: { count: 1000, windowMs: 1 },
  privateChat: { count: 3, windowMs: 1 },
  group: { count: 20, windowMs: 1 },
  reserve: 5,
  bulk: { count: 1000, windowMs: 1 },
  // The messages here are not replies to an update: no gate takes their turns ahead.
  aheadMs: 0,
};

type Prev = Parameters<Transformer>[0];
const answered: Prev = () => Promise.resolve({ ok: true, result: true }) as ReturnType<Prev>;

/** µs per call, one after the other, and calls per second with 32 at once. */
async function measure(call: (i: number) => Promise<unknown>) {
  for (let i = 0; i < 500; i++) await call(i);
  const each: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const started = performance.now();
    await call(i);
    each.push((performance.now() - started) * 1000);
  }
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < MESSAGES) await call(next++);
  }));
  const rate = MESSAGES / ((performance.now() - started) / 1000);
  return { p50: percentile(each, 50), p99: percentile(each, 99), rate };
}

async function transformerCost(store: KeyValueStore, metrics: Metrics) {
  const flood = new FloodControl({
    store,
    limits: UNBOUND,
    metrics: metrics.background,
    log: logger("flood"),
  });
  const limited = flood.transformer("interactive");
  return await measure((i) =>
    limited(answered, "sendMessage", { chat_id: 1_000_000 + i, text: "x" } as never, undefined)
  );
}

/** An in-memory Bot API that takes every copy and edit, and records when copies came. */
function memoryApi() {
  const copies: number[] = [];
  const fetch: typeof globalThis.fetch = (input) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (url.endsWith("/copyMessage")) copies.push(performance.now());
    return Promise.resolve(Response.json({ ok: true, result: { message_id: 1 } }));
  };
  return { fetch, copies };
}

async function broadcastRate(
  url: string,
  store: KeyValueStore,
  subscribers: number,
  paced: boolean,
): Promise<number> {
  const db = await openDatabase({ config: testDatabaseConfig(url), dataDir: "" });
  using metrics = new Metrics();
  try {
    await new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)).up();
    await db.sql`truncate users, broadcasts, broadcast_recipients, outbox cascade`;
    await db.sql`insert into users (id, first_name)
      select id, 'Subscriber' from generate_series(1, ${subscribers}) as id`;
    const broadcasts = new BroadcastRepository(db.sql);
    const draft = await broadcasts.create({
      adminId: 9,
      chatId: 9,
      locale: "en",
      sourceMessageId: 1,
    });
    await broadcasts.start(draft.id, 2);
    const { fetch, copies } = memoryApi();
    const flood = paced
      ? new FloodControl({
        store,
        limits: floodLimits(25),
        metrics: metrics.background,
        log: logger("flood"),
      })
      : undefined;
    const api = createApi({
      token: "123456:bench",
      apiRoot: "http://bench.invalid",
      metrics,
      fetch,
      ...(flood ? { flood } : {}),
    }, "bulk");
    const users = new UserRepository(db.sql);
    const job = broadcastJob({
      broadcasts,
      notifiable: (after, limit) => users.notifiable(after, limit),
      markBlocked: () => Promise.resolve(),
      api,
      instanceId: "bench",
      rate: 25,
      kickOutbox: () => {},
      metrics: metrics.background,
    });
    await job.run({
      signal: new AbortController().signal,
      log: logger("jobs", "broadcast"),
      progress: { load: () => Promise.resolve(null), save: () => Promise.resolve() },
    });
    if (copies.length !== subscribers) throw new Error(`sent ${copies.length} of ${subscribers}`);
    return (copies.length - 1) / ((copies.at(-1)! - copies[0]!) / 1000);
  } finally {
    await db.close();
  }
}

/** How long each saturation run lasts, and the start it leaves out (the first burst). */
const SATURATION_MS = 12_000;
const SATURATION_WARMUP_MS = 2000;

/**
 * Messages to private chats asked for at `rate` a second, evenly spaced (more than the bot-wide
 * limit of Telegram's, 30 a second), each as the program handles one: the turn taken ahead with
 * the gate, 2 ms of handling, the reply, the commit giving back a turn not used. Real time, a
 * fresh set of logs.
 */
async function saturation(redisUrl: string, rate: number, aheadMs: number) {
  const store = await openRedisStore({
    url: redisUrl,
    keyPrefix: `saturation-${aheadMs}-${rate}:`,
  });
  using metrics = new Metrics();
  const flood = new FloodControl({
    store,
    limits: { ...floodLimits(25), aheadMs },
    metrics: metrics.background,
    log: logger("bench"),
  });
  const sent: number[] = [];
  const prev: Prev = () => {
    sent.push(Date.now());
    return Promise.resolve({ ok: true, result: true }) as ReturnType<Prev>;
  };
  const reply = flood.transformer("interactive");
  const started = Date.now();
  const updates: Promise<unknown>[] = [];
  try {
    for (let n = 0; Date.now() - started < SATURATION_MS; n++) {
      const chat = 1000 + (n % 500);
      updates.push((async () => {
        flood.prefetch(chat);
        await new Promise((resolve) => setTimeout(resolve, 2));
        await reply(prev, "sendMessage", { chat_id: chat, text: "x" } as never, undefined);
        flood.forgo(chat);
      })());
      const next = started + ((n + 1) * 1000) / rate;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
    }
    await Promise.all(updates);
  } finally {
    await store.close();
  }
  const times = sent.toSorted((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while (times[j]! - times[i]! >= 1000) i++;
    most = Math.max(most, j - i + 1);
  }
  // Sends go in bursts as the windows open: the rate is read over whole windows' worth of them
  // (every 30th send from the first after the warm-up), not by counting a span of time.
  const first = times.findIndex((at) => at >= started + SATURATION_WARMUP_MS);
  const last = times.findLastIndex((at) => at < started + SATURATION_MS);
  const span = Math.floor((last - first) / 30) * 30;
  const turns = (await metrics.background.outboundTurnsAhead.get()).values;
  const count = (result: string) => turns.find((v) => v.labels.result === result)?.value ?? 0;
  return {
    rate: span / ((times[first + span]! - times[first]!) / 1000),
    most,
    used: count("used"),
    refused: count("refused"),
    givenBack: count("given_back"),
  };
}

/** Runs the measurements above on throwaway Redis and Postgres servers; returns the report. */
export async function benchFlood(): Promise<string> {
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const shared = await openRedisStore({ url: redis.url, keyPrefix: "bench:" });
  const dir = await Deno.makeTempDir({ prefix: "flood-bench-" });
  const embedded = await openKvStore(`${dir}/kv.sqlite3`);
  using metrics = new Metrics();
  try {
    const none = await measure((i) =>
      answered("sendMessage", { chat_id: i, text: "x" } as never, undefined)
    );
    const redisCost = await transformerCost(shared, metrics);
    const memoryCost = await transformerCost(embedded, metrics);
    const full = floodKeys(77);
    const rules = [
      { limit: 1e9, keep: 30, windowMs: 60_000 },
      { limit: 1e9, keep: 3, windowMs: 60_000 },
    ];
    const script = await measure((i) =>
      shared.run(takeScript, [full.global, floodKeys(i).chat], takeArgs(rules))
    );
    const url = await pg.createDatabase("flood_bench");
    const paced = await broadcastRate(url, shared, PACED, true);
    const unpaced = await broadcastRate(url, shared, UNPACED, false);
    const saturated = [];
    for (const rate of [32, 40]) {
      for (const aheadMs of [PREFETCH_VALID_MS, 0]) {
        saturated.push({ asked: rate, aheadMs, ...await saturation(redis.url, rate, aheadMs) });
      }
    }
    const us = (v: number) => `${v.toFixed(v < 10 ? 1 : 0)} µs`;
    const row = (name: string, m: { p50: number; p99: number; rate: number }) => [
      name,
      us(m.p50),
      us(m.p99),
      perSecond(m.rate),
    ];
    return [
      "### Flood control: cost per outgoing message",
      "",
      markdownTable(["path", "p50", "p99", "32 callers at once"], [
        row("no flood control", none),
        row("shared store (Redis, one EVALSHA)", redisCost),
        row("embedded store (in memory)", memoryCost),
        row("the script alone, full 30-entry log", script),
      ]),
      "",
      "### Broadcast throughput (Postgres, Redis, in-memory Bot API)",
      "",
      markdownTable(["run", "subscribers", "copies per second"], [
        ["BROADCAST_RATE=25 with the shared limits", String(PACED), perSecond(paced)],
        ["without flood control (claim, copy, mark)", String(UNPACED), perSecond(unpaced)],
      ]),
      "",
      "### Replies beyond the bot-wide limit (Telegram's limits, Redis)",
      "",
      markdownTable(
        [
          "asked",
          "turns taken with the gate",
          "sent a second (after the first 2 s)",
          "most in one second",
          "turns used / refused / given back",
        ],
        saturated.map((run) => [
          `${run.asked} /s`,
          run.aheadMs > 0 ? `yes, recorded ${run.aheadMs} ms late` : "no",
          `${run.rate.toFixed(2)} /s`,
          `${run.most} (Telegram: 30)`,
          run.aheadMs > 0 ? `${run.used} / ${run.refused} / ${run.givenBack}` : "–",
        ]),
      ),
      "",
      "Each message: the turn taken with its update's gate, 2 ms of handling, the reply, the",
      "commit (a turn not used goes back). Limits with their 50 ms guard: 30 in 1.05 s at most,",
      "28.6 a second. Real time, so the figures move a little from run to run.",
    ].join("\n");
  } finally {
    await shared.close();
    await embedded.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) console.log(await benchFlood());
