// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Dialogs and protection: our pipeline against a bot built from grammY's own plugins, on the
 * same workload, the same throwaway Redis and the same in-memory Bot API.
 *
 * - ours: `createBot` with the Redis store (gate and commit: one Lua call each, those of
 *   concurrent updates sent together), the user cache on Postgres, rate limiting on (a capacity
 *   it never reaches), a 10 s chat lease as in webhook mode with Redis, the shared flood
 *   control (under limits no burst reaches, `benchFloodLimits()` of `bench/bench_program.ts`), and
 *   a one-step dialog defined here;
 * - theirs: `new Bot()` with `limit()` from `@grammyjs/ratelimiter` and `session()` on
 *   `RedisAdapter` from `@grammyjs/storage-redis`, both on one ioredis client, and the same
 *   handlers on `ctx.session`.
 *
 * Every user is known and inside the dialog before anything is measured. Two variants: "hot
 * path" reads the dialog and replies; "state change" adds one to a counter in the dialog's
 * data and replies. Each update is timed around `bot.handleUpdate`, `concurrency` of them in
 * flight at once, each from a different chat.
 *
 * The plugins are no dependency of the project: this file runs with its own config,
 * `bench/plugins/deno.json`, which pins the project's imports and the plugins. Run alone with
 * `deno task --config bench/plugins/deno.json bench`; with REDIS_URL and DATABASE_URL set, it
 * uses those servers instead of starting throwaway ones (as `bench/run.ts` does).
 *
 * @module
 */
import { limit } from "@grammyjs/ratelimiter";
import { RedisAdapter } from "@grammyjs/storage-redis";
import { Bot, Composer, type Context, session, type SessionFlavor } from "grammy";
import type { Update } from "grammy/types";
import { Redis } from "ioredis";
import { cpuUsage } from "node:process";
import { z } from "zod";
import type { BotContext } from "../../src/bot/context.ts";
import { defineDialog } from "../../src/bot/dialog/dialog.ts";
import { FloodControl } from "../../src/bot/flood/flood_control.ts";
import { createBot } from "../../src/bot/pipeline.ts";
import { logger } from "../../src/log.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { openStorage, type Storage } from "../../src/storage.ts";
import { gateKeys } from "../../src/bot/gate/scripts.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { UserCache } from "../../src/store/user_cache.ts";
import { startPostgres } from "../../tests/support/postgres_server.ts";
import { startRedis } from "../../tests/support/redis_server.ts";
import { textMessage } from "../../tests/updates.ts";
import { benchFloodLimits } from "../bench_program.ts";
import { BOT_INFO, cannedFetch } from "../in_memory_bot_api.ts";
import { assertSamePins } from "../pins.ts";
import { markdownTable, median, ms, percentile, perSecond } from "../stats.ts";
import { commandDelta, commandsPerUpdate, RedisCommandStats } from "../throughput.ts";

/** Options of {@link benchPluginsCompare}. */
export interface CompareOptions {
  /** Users, each in a private chat, known and inside the dialog. @default 500 */
  users?: number;
  /** Updates measured per bot and variant, over all rounds. @default 10000 */
  updates?: number;
  /**
   * Rounds the measurement is split into; each runs both bots on both variants, alternating
   * which bot goes first, so that load from elsewhere on the machine hits both alike.
   * @default 10
   */
  rounds?: number;
  /** Updates per bot before the measurement, half of each variant. @default 2000 */
  warmup?: number;
  /** `handleUpdate` calls in flight at once, each from a different chat. @default 32 */
  concurrency?: number;
}

/** Which bot. */
export type BotName = "ours" | "plugins";
/** Which workload: `hot` reads the dialog, `change` increments its counter. */
export type Variant = "hot" | "change";

/** One bot on one variant. */
export interface CompareRun {
  bot: BotName;
  variant: Variant;
  /** Updates measured, over all rounds. */
  updates: number;
  /** First `handleUpdate` started until the last one returned, summed over the rounds. */
  elapsedMs: number;
  /** Updates per second of each round, in round order. */
  roundRates: number[];
  /** `handleUpdate` times in ms, one per update, all rounds together. */
  latenciesMs: number[];
  /**
   * Round trips to Redis over the run: calls on the plugins' client; on ours, the EVALSHA and
   * EVAL Redis counted plus the store's other calls (user cache reads and writes).
   */
  redisRoundTrips: number;
  /**
   * Redis commands by name over the run (`INFO commandstats` delta), including those that
   * ours' Lua scripts run inside Redis.
   */
  redisCommands: Record<string, number>;
  /** CPU time of the Redis server over the run (`INFO cpu`), in ms. */
  redisCpuMs: number;
  /** CPU time of this process (all threads) over the run, in ms. */
  processCpuMs: number;
  /** `bot_db_queries_total` over the run; null for the plugins' bot, which has no database. */
  dbQueries: number | null;
}

/** Everything {@link benchPluginsCompare} measured. */
export interface CompareFigures {
  options: Required<CompareOptions>;
  /** Server versions. */
  description: string;
  runs: CompareRun[];
  /** Increments sent to each bot in all, and the sum of the counters it stored at the end. */
  increments: Record<BotName, { sent: number; stored: number }>;
}

/** Where {@link benchPluginsCompare} keeps its state; both servers may be shared with others. */
export interface CompareServers {
  /** A Redis used by nothing else during the run (its command counts are server-wide). */
  redisUrl: string;
  /** An empty Postgres database. */
  databaseUrl: string;
}

const TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";
const API_ROOT = "http://127.0.0.1:1";
const FIRST_CHAT = 930_000_000;
const BOT_NAMES: readonly BotName[] = ["ours", "plugins"];
const TEXT: Record<Variant, string> = { hot: "?", change: "+" };

/** Our bench dialog: one step, a counter. */
const tally = defineDialog({
  name: "tally",
  steps: ["counting"],
  schema: z.object({ count: z.number().int() }),
});

/** `/count` enters the dialog; `?` tells the count; `+` adds one. */
function ourFeature(): Composer<BotContext> {
  const feature = new Composer<BotContext>();
  feature.command("count", async (ctx) => {
    tally.enter(ctx, "counting", { count: 0 });
    await ctx.reply("Counting: send + to add one, ? to see the count.");
  });
  const counting = feature.filter(tally.at("counting"));
  counting.hears("?", async (ctx) => {
    await ctx.reply(`count=${tally.current(ctx)!.data.count}`);
  });
  counting.hears("+", async (ctx) => {
    const count = tally.current(ctx)!.data.count + 1;
    tally.update(ctx, { count });
    await ctx.reply(`count=${count}`);
  });
  return feature;
}

/** Ours as `src/app.ts` builds it in webhook mode with Redis, but on a store counting its calls. */
function ourBot(
  storage: Storage,
  store: KeyValueStore,
  config: Config,
  metrics: Metrics,
): Bot<BotContext> {
  return createBot({
    token: TOKEN,
    apiRoot: API_ROOT,
    defaultLocale: "en",
    metrics,
    botInfo: BOT_INFO,
    fetch: cannedFetch,
    // As `openStorage` builds it, on the counting store.
    users: new UserCache({ store, users: storage.users, ttlMs: config.userCacheTtlMs, metrics }),
    gate: {
      store,
      // On, with a bucket nobody empties: the token bucket is paid for, never triggered.
      rateLimit: { ...config.rateLimit, enabled: true, capacity: 1_000_000 },
      fsm: config.fsm,
      adminIds: [],
      // As in webhook mode with Redis (CHAT_LEASE_MS).
      leaseMs: 10_000,
      instanceId: "bench",
    },
    features: [{ name: "tally", composer: ourFeature(), dialogs: [tally] }],
    // As `buildBot` makes it: every reply takes its turn in the logs shared through the store.
    flood: new FloodControl({
      store,
      limits: benchFloodLimits(),
      metrics: metrics.background,
      log: logger("flood"),
    }),
  });
}

/** The plugins' bot's session: the same dialog, as grammY users usually keep one. */
interface TallySession {
  step: "counting" | null;
  count: number;
}

type PluginContext = Context & SessionFlavor<TallySession>;

/** The same bot from grammY's plugins, as their READMEs set them up. */
function pluginBot(redis: Redis, config: Config): Bot<PluginContext> {
  const bot = new Bot<PluginContext>(TOKEN, {
    botInfo: BOT_INFO,
    client: { apiRoot: API_ROOT, fetch: cannedFetch as never },
  });
  bot.use(limit({
    timeFrame: config.rateLimit.windowMs,
    limit: 1_000_000,
    storageClient: redis,
    keyGenerator: (ctx) => ctx.from?.id.toString(),
  }));
  bot.use(session({
    initial: (): TallySession => ({ step: null, count: 0 }),
    storage: new RedisAdapter<TallySession>({
      instance: redis,
      ttl: Math.round(config.fsm.stateTtlMs / 1000),
    }),
  }));
  bot.command("count", async (ctx) => {
    ctx.session = { step: "counting", count: 0 };
    await ctx.reply("Counting: send + to add one, ? to see the count.");
  });
  const counting = bot.filter((ctx) => ctx.session.step === "counting");
  counting.hears("?", async (ctx) => {
    await ctx.reply(`count=${ctx.session.count}`);
  });
  counting.hears("+", async (ctx) => {
    ctx.session.count += 1;
    await ctx.reply(`count=${ctx.session.count}`);
  });
  return bot;
}

/**
 * `target` with every method call counted, but those named in `uncounted`: the bots' Redis
 * clients, where each such call is one round trip. Our store's `run` is left out: it sends the
 * script calls made at the same time as one EVALSHA, counted from Redis instead.
 */
function countingCalls<T extends object>(
  target: T,
  uncounted: readonly string[] = [],
): { proxy: T; calls: () => number } {
  let calls = 0;
  const proxy = new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object);
      if (typeof value !== "function") return value;
      if (uncounted.includes(String(property))) return value.bind(object);
      return (...args: unknown[]) => {
        calls++;
        return value.apply(object, args);
      };
    },
  });
  return { proxy, calls: () => calls };
}

/** Runs `updates` through `bot`, `concurrency` at a time, timing each `handleUpdate`. */
async function drive(
  bot: { handleUpdate(update: Update): Promise<void> },
  updates: readonly Update[],
  concurrency: number,
): Promise<{ elapsedMs: number; latenciesMs: number[] }> {
  const latenciesMs = new Array<number>(updates.length);
  let next = 0;
  const worker = async () => {
    while (next < updates.length) {
      const i = next++;
      const started = performance.now();
      await bot.handleUpdate(updates[i]!);
      latenciesMs[i] = performance.now() - started;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, updates.length) }, worker));
  return { elapsedMs: performance.now() - started, latenciesMs };
}

async function dbQueries(metrics: Metrics): Promise<number> {
  return (await metrics.dbQueries.get()).values[0]?.value ?? 0;
}

/** The sum of the counters each bot stored, read straight from Redis. */
async function storedCounts(
  storage: Storage,
  redis: Redis,
  users: number,
): Promise<Record<BotName, number>> {
  let ours = 0;
  let plugins = 0;
  for (let k = 0; k < users; k++) {
    const chat = FIRST_CHAT + k;
    const raw = await storage.store.get(gateKeys(chat, chat, 0).dialog);
    const record = (typeof raw === "string" ? JSON.parse(raw) : raw) as { d: string | null };
    ours += record.d === null ? 0 : (JSON.parse(record.d) as { count: number }).count;
    const stored = await redis.get(String(chat));
    plugins += stored === null ? 0 : (JSON.parse(stored) as TallySession).count;
  }
  return { ours, plugins };
}

/** What the rounds run on. */
interface Bench {
  bots: Record<BotName, { handleUpdate(update: Update): Promise<void> }>;
  clients: Record<BotName, { calls: () => number }>;
  stats: RedisCommandStats;
  metrics: Metrics;
  /** `count` private messages from the users in turn, with fresh update ids. */
  messages(count: number, text: (i: number) => string): Update[];
}

function emptyRun(bot: BotName, variant: Variant): CompareRun {
  return {
    bot,
    variant,
    updates: 0,
    elapsedMs: 0,
    roundRates: [],
    latenciesMs: [],
    redisRoundTrips: 0,
    redisCommands: {},
    redisCpuMs: 0,
    processCpuMs: 0,
    dbQueries: bot === "ours" ? 0 : null,
  };
}

/** Runs `count` updates of `variant` through one bot and adds what it measured to `run`. */
async function measureInto(run: CompareRun, bench: Bench, count: number, concurrency: number) {
  const { stats, metrics } = bench;
  const client = bench.clients[run.bot];
  const batch = bench.messages(count, () => TEXT[run.variant]);
  const queriesBefore = await dbQueries(metrics);
  const commandsBefore = await stats.snapshot();
  const redisCpuBefore = await stats.cpuMs();
  const tripsBefore = client.calls();
  const cpuBefore = cpuUsage();
  const { elapsedMs, latenciesMs } = await drive(bench.bots[run.bot], batch, concurrency);
  const cpu = cpuUsage(cpuBefore);
  run.redisCpuMs += (await stats.cpuMs()) - redisCpuBefore;
  const commands = commandDelta(commandsBefore, await stats.snapshot());
  // Ours' script calls travel as EVALSHA (or EVAL after a Redis restart), one per batch.
  const scriptTrips = run.bot === "ours" ? (commands.evalsha ?? 0) + (commands.eval ?? 0) : 0;
  run.redisRoundTrips += client.calls() - tripsBefore + scriptTrips;
  const queries = (await dbQueries(metrics)) - queriesBefore;
  run.updates += count;
  run.elapsedMs += elapsedMs;
  run.roundRates.push(count / (elapsedMs / 1000));
  run.latenciesMs.push(...latenciesMs);
  for (const [command, calls] of Object.entries(commands)) {
    run.redisCommands[command] = (run.redisCommands[command] ?? 0) + calls;
  }
  run.processCpuMs += (cpu.user + cpu.system) / 1000;
  if (run.dbQueries !== null) run.dbQueries += queries;
}

/** Seeds both bots, warms them up and measures the rounds. */
async function compare(
  bench: Bench,
  options: Required<CompareOptions>,
  progress: (text: string) => void,
): Promise<{ runs: CompareRun[]; sent: Record<BotName, number> }> {
  const { users, updates, rounds, warmup, concurrency } = options;
  const sent: Record<BotName, number> = { ours: 0, plugins: 0 };
  for (const name of BOT_NAMES) {
    // The first update of each user registers them (ours) and enters the dialog.
    progress(`${name}: ${users} users enter the dialog, then ${warmup} warm-up updates …`);
    await drive(bench.bots[name], bench.messages(users, () => "/count"), concurrency);
    await drive(bench.bots[name], bench.messages(warmup, (i) => i % 2 ? "+" : "?"), concurrency);
    sent[name] += Math.floor(warmup / 2);
  }
  const runs = (["hot", "change"] as const).flatMap((variant) =>
    BOT_NAMES.map((bot) => emptyRun(bot, variant))
  );
  const perRound = Math.ceil(updates / rounds);
  for (let round = 0; round < rounds; round++) {
    progress(`round ${round + 1} of ${rounds}: ${perRound} updates per bot and variant …`);
    // Alternate who goes first, so that neither always runs on the other's leftovers.
    const order = round % 2 === 0 ? BOT_NAMES : [...BOT_NAMES].reverse();
    for (const variant of ["hot", "change"] as const) {
      for (const bot of order) {
        const run = runs.find((r) => r.bot === bot && r.variant === variant)!;
        await measureInto(run, bench, perRound, concurrency);
        if (variant === "change") sent[bot] += perRound;
      }
    }
  }
  return { runs, sent };
}

/** Measures both bots on both variants; the caller owns the servers. */
export async function benchPluginsCompare(
  servers: CompareServers,
  options: CompareOptions = {},
  progress: (text: string) => void = (text) => console.error(`[plugins] ${text}`),
): Promise<CompareFigures> {
  const resolved: Required<CompareOptions> = {
    users: 500,
    updates: 10_000,
    rounds: 10,
    warmup: 2000,
    concurrency: 32,
    ...options,
  };
  await using dir = await tempDir("plugins-compare-");
  using metrics = new Metrics();
  const config = loadConfig({
    BOT_TOKEN: TOKEN,
    DATABASE_URL: servers.databaseUrl,
    REDIS_URL: servers.redisUrl,
    DATA_DIR: dir.path,
  });
  const storage = await openStorage(config, { metrics });
  try {
    await storage.migrator.up();
    await using stats = await RedisCommandStats.open(servers.redisUrl);
    const redis = new Redis(servers.redisUrl);
    try {
      const [pg] = await storage.db.sql<{ v: string }[]>`
        select current_setting('server_version') as v`;
      const description = `Redis ${await stats.version()}, PostgreSQL ${pg?.v ?? "?"}`;
      const ours = countingCalls(storage.store, ["run"]);
      const plugins = countingCalls(redis);
      let nextUpdateId = 40_000_000;
      const bench: Bench = {
        bots: {
          ours: ourBot(storage, ours.proxy, config, metrics),
          plugins: pluginBot(plugins.proxy, config),
        },
        clients: { ours, plugins },
        stats,
        metrics,
        messages: (count, text) =>
          Array.from({ length: count }, (_, i) => {
            const chatId = FIRST_CHAT + (i % resolved.users);
            return textMessage({
              updateId: nextUpdateId++,
              chatId,
              text: text(i),
              firstName: `User ${chatId}`,
              languageCode: "en",
            });
          }),
      };
      const { runs, sent } = await compare(bench, resolved, progress);
      const stored = await storedCounts(storage, redis, resolved.users);
      return {
        options: resolved,
        description,
        runs,
        increments: {
          ours: { sent: sent.ours, stored: stored.ours },
          plugins: { sent: sent.plugins, stored: stored.plugins },
        },
      };
    } finally {
      await redis.quit();
    }
  } finally {
    await storage.close(10_000);
  }
}

async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

const VARIANT_LABEL: Record<Variant, string> = {
  hot: "hot path (read dialog, reply)",
  change: "state change (counter + 1, reply)",
};
const BOT_LABEL: Record<BotName, string> = {
  ours: "ours (createBot)",
  plugins: "grammY plugins",
};

/** Median rate over the rounds, and latency percentiles over all of them. */
function summary(run: CompareRun) {
  return {
    rate: median(run.roundRates),
    p50: percentile(run.latenciesMs, 50),
    p99: percentile(run.latenciesMs, 99),
  };
}

const perUpdate = (value: number, updates: number, digits = 2) => (value / updates).toFixed(digits);

/** The figures as Markdown: one row per bot and variant, then the ratios. */
export function formatPluginsCompareReport(figures: CompareFigures): string {
  const { options, runs, increments } = figures;
  const rows = runs.map((run) => {
    const s = summary(run);
    const commands = Object.values(run.redisCommands).reduce((sum, n) => sum + n, 0);
    return [
      VARIANT_LABEL[run.variant],
      BOT_LABEL[run.bot],
      `**${perSecond(s.rate)}**`,
      ms(s.p50),
      ms(s.p99),
      `${Math.round((run.processCpuMs * 1000) / run.updates)} µs`,
      perUpdate(run.redisRoundTrips, run.updates),
      perUpdate(commands, run.updates),
      `${Math.round((run.redisCpuMs * 1000) / run.updates)} µs`,
      run.dbQueries === null ? "– (none)" : perUpdate(run.dbQueries, run.updates),
    ];
  });
  const breakdown = runs.map((run) =>
    `- ${VARIANT_LABEL[run.variant]}, ${BOT_LABEL[run.bot]}: ` +
    commandsPerUpdate(run.redisCommands, run.updates)
  );
  const ratios = (["hot", "change"] as const).map((variant) => {
    const find = (bot: BotName) => runs.find((r) => r.bot === bot && r.variant === variant);
    const [ours, plugins] = [find("ours"), find("plugins")];
    if (!ours || !plugins) return [VARIANT_LABEL[variant], "n/a", "n/a", "n/a", "n/a", "n/a"];
    const [o, p] = [summary(ours), summary(plugins)];
    // Rounds pair the bots in time: the median of the per-round ratios resists machine noise.
    const rateRatios = ours.roundRates.map((rate, i) => rate / plugins.roundRates[i]!);
    return [
      VARIANT_LABEL[variant],
      `**${median(rateRatios).toFixed(2)}** (rounds: ${
        rateRatios.map((r) => r.toFixed(2)).join(", ")
      })`,
      (o.p50 / p.p50).toFixed(2),
      (o.p99 / p.p99).toFixed(2),
      ((ours.processCpuMs / ours.updates) / (plugins.processCpuMs / plugins.updates)).toFixed(2),
      ((ours.redisCpuMs / ours.updates) / (plugins.redisCpuMs / plugins.updates)).toFixed(2),
    ];
  });
  const kept = (bot: BotName) =>
    `${increments[bot].stored.toLocaleString("en-US")} of ${
      increments[bot].sent.toLocaleString("en-US")
    }`;
  return [
    "#### In process: `bot.handleUpdate` on both bots",
    "",
    `${figures.description}. ${options.users} users in private chats, each registered, cached ` +
    `and inside a one-step dialog; ${options.warmup} warm-up updates per bot, then ` +
    `${options.updates} updates per bot and variant in ${options.rounds} rounds (each runs ` +
    "both bots on both variants, alternating which goes first), " +
    `${options.concurrency} in flight at once ` +
    "from different chats; in-memory Bot API; load generator, bots and Redis client in one " +
    "process.",
    "",
    markdownTable(
      [
        "variant",
        "bot",
        "updates/s",
        "p50",
        "p99",
        "process CPU per update",
        "Redis round trips per update",
        "Redis commands per update",
        "Redis CPU per update",
        "Postgres queries per update",
      ],
      rows,
    ),
    "",
    "Redis commands per update by name (`INFO commandstats`; ours' GET/SET/EXISTS/DEL run inside",
    "its scripts, so they cost no round trip):",
    "",
    ...breakdown,
    "",
    markdownTable(
      [
        "ours / plugins",
        "throughput",
        "p50",
        "p99",
        "process CPU per update",
        "Redis CPU per update",
      ],
      ratios,
    ),
    "",
    "updates/s is the median over the rounds; p50 and p99 are over all rounds' updates.",
    "Throughput below 1 and latency or CPU above 1 mean ours is slower or costlier. Round trips",
    "are calls on the plugins' Redis client, and ours' EVALSHA/EVAL as Redis counts them (the",
    "script calls of concurrent updates travel as one) plus its other store calls; process CPU",
    "is user + system time of this process",
    "(all threads) over the runs, Redis CPU the server's (`INFO cpu`). The CPU ratios depend",
    "least on other load on the machine.",
    "Counters stored at the end (warm-up and measured increments): " +
    `ours ${kept("ours")}, plugins ${kept("plugins")}.`,
    "",
    "What each bot does that the other does not:",
    "",
    "- ours: drops a repeated `update_id` (Telegram redelivers after a timeout), holds a per-chat",
    "  lease so that instances sharing Redis handle one chat's updates in order, a token bucket",
    "  with bans and a notice, the user's profile (cached, from Postgres on a miss) and locale,",
    "  a dialog state/data TTL with an expiry notice, a version check on the dialog write,",
    "  metrics per update and per API call, retries of failed API calls, and the flood control",
    "  shared by all instances (each reply takes its turn in logs in Redis). Gate, commit and",
    "  flood take are one script call each (the reply's take travels with the gate), those of",
    "  concurrent updates sent as one EVALSHA;",
    "  an unchanged dialog is not written. No event log here (the webhook runs have it).",
    "- plugins: no dedup (a redelivered update runs twice), no order across instances (two",
    "  instances can read the same session and the later write wins), a fixed-window counter",
    "  (INCR, PEXPIRE once per window) that silently drops excess updates, and `session()` writes",
    "  the session back whenever a handler read it, changed or not (GET + SET per update).",
    "- clients: ours talks to Redis through its own RESP client (`src/store/resp.ts`, one",
    "  connection), the plugins through one ioredis connection, as their READMEs suggest.",
  ].join("\n");
}

if (import.meta.main) {
  await assertSamePins(new URL("./deno.json", import.meta.url), { complete: true });
  const shared = { redisUrl: Deno.env.get("REDIS_URL"), databaseUrl: Deno.env.get("DATABASE_URL") };
  let figures: CompareFigures;
  if (shared.redisUrl && shared.databaseUrl) {
    figures = await benchPluginsCompare({
      redisUrl: shared.redisUrl,
      databaseUrl: shared.databaseUrl,
    });
  } else {
    await using postgres = await startPostgres();
    await using redis = await startRedis();
    figures = await benchPluginsCompare({
      redisUrl: redis.url,
      databaseUrl: await postgres.createDatabase("plugins_compare"),
    });
  }
  console.log(formatPluginsCompareReport(figures));
}
