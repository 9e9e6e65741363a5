// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Storage benchmark, on both backend pairs: server (a throwaway Postgres and Redis) and
 * embedded (PGlite and Deno KV in a temp `DATA_DIR`), each opened with `openStorage`:
 *
 * 1. database queries per update for a returning user, and the cost of a cache hit;
 * 2. the cache hit rate over a Zipf-like mix of users with occasional profile changes;
 * 3. event writer throughput, and what `record()` costs the handler;
 * 4. per-update latency through the real grammY pipeline with and without the event writer;
 * 5. updates per second through that pipeline, per backend pair.
 *
 * Run alone with `deno run --frozen --unstable-kv --unstable-raw-imports --allow-net
 * --allow-env --allow-read --allow-write --allow-sys
 * --allow-run=deno,redis-server,redis-cli,pg_ctl,initdb,postgres,runuser
 * bench/storage_bench.ts`.
 *
 * @module
 */
import type { Update } from "grammy/types";
import { BOT_INFO, cannedFetch } from "./in_memory_bot_api.ts";
import { createBot } from "../src/bot/pipeline.ts";
import { type Env, loadConfig } from "../src/config.ts";
import type { EventRecord } from "../src/db/events.ts";
import type { TelegramProfile } from "../src/db/users.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { openStorage, type Storage } from "../src/storage.ts";
import { UserCache } from "../src/store/user_cache.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";
import { startRedis } from "../tests/support/redis_server.ts";
import { textMessage } from "../tests/updates.ts";
import { markdownTable, median, percentile, perSecond } from "./stats.ts";

/** Returning-user `resolve` calls measured after the first (a miss). */
export const RETURNING_CALLS = 1000;
/** The cache mix: updates, users, Zipf exponent, share of changed profiles, PRNG seed. */
export const MIX = { updates: 10_000, users: 2_000, zipfS: 1.1, changeRate: 0.03, seed: 0x5eed };
/** Events recorded per event-writer measurement. */
export const WRITER_EVENTS = 100_000;
/** The event writer's default queue capacity (`EventWriterOptions.capacity`). */
const WRITER_CAPACITY = 50_000;
/** `/help` updates per pipeline run, and how many returning users send them. */
export const PIPELINE = { updates: 5_000, users: 500 };

/** What one backend pair measured. */
export interface BackendFigures {
  /** `server` (Postgres + Redis) or `embedded` (PGlite + Deno KV). */
  pair: "server" | "embedded";
  /** `Storage.describe()` and the database's `server_version`. */
  description: string;
  hotPath: {
    /** Queries the first `resolve` (a miss) sent. */
    missQueries: number;
    /** Time of that first `resolve`, in µs. */
    missUs: number;
    /** Returning-user calls measured. */
    calls: number;
    /** Queries those calls sent, in total. */
    queries: number;
    /** Hits `bot_user_cache_total` counted over those calls. */
    counterHits: number;
    /** Per-call time of the hits, in µs. */
    hitMedianUs: number;
    hitP99Us: number;
    /** A bare `store.get` of the same key, median µs: the store round trip alone. */
    storeGetMedianUs: number;
  };
  mix: {
    updates: number;
    /** Distinct users that sent at least one update. */
    distinctUsers: number;
    hits: number;
    misses: number;
    errors: number;
    /** Updates that were a user's first in the mix (a miss on a cold cache). */
    firstSightings: number;
    /** Updates that carried a changed username from a user seen before. */
    profileChanges: number;
    queries: number;
  };
  writer: { burst: WriterRun; paced: WriterRun };
  pipeline: { withWriter: PipelineRun; withoutWriter: PipelineRun };
}

/** One event-writer measurement. */
export interface WriterRun {
  events: number;
  /** Time inside `record()` loops while the queue was below capacity, and its call count. */
  belowCapacity: { ms: number; calls: number };
  /** The same once the queue was full (burst only; each call then drops old events). */
  atCapacity: { ms: number; calls: number };
  /** First `record()` until `pending === 0`, in ms. */
  elapsedMs: number;
  /** Rows that reached the `events` table (a count before and after). */
  rows: number;
  /** `bot_events_dropped_total{reason="queue_full"}` over the run. */
  dropped: number;
  /** Statements the writer sent (`bot_db_queries_total` over the run). */
  queries: number;
}

/** One (warm) pipeline run. */
export interface PipelineRun {
  updates: number;
  elapsedMs: number;
  /** `handleUpdate` times in µs, one per update. */
  latenciesUs: number[];
  /** Queries during the run, plus those of draining the event writer after it. */
  queries: number;
  /** `bot_events_written_total` over the run and the drain. */
  eventsWritten: number;
}

/** Everything {@link benchStorage} measured. */
export interface StorageFigures {
  /** The machine line, as `run.ts` prints it. */
  machine: string;
  backends: BackendFigures[];
}

const TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";
const HOT_USER = 900_000_001;
const MIX_FIRST_USER = 910_000_000;
const PIPELINE_FIRST_USER = 920_000_000;
/** Longest any drain of the event writer may take before the benchmark gives up, in ms. */
const DRAIN_TIMEOUT_MS = 120_000;

/** The machine line `run.ts` prints. */
function machineLine(): string {
  return `deno ${Deno.version.deno} (v8 ${Deno.version.v8}), ${Deno.build.os}/${Deno.build.arch}, ` +
    `${navigator.hardwareConcurrency} CPUs, ${new Date().toISOString()}`;
}

/** mulberry32: a tiny seeded PRNG, so that every run draws the same mix. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws ranks 0..n-1 with P(k) ∝ 1/(k+1)^s. */
function zipfSampler(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) cdf[k] = total += 1 / Math.pow(k + 1, s);
  return () => {
    const u = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

async function total(metric: Metrics["dbQueries"] | Metrics["eventsWritten"]): Promise<number> {
  return (await metric.get()).values[0]?.value ?? 0;
}

async function labelled(
  metric: Metrics["userCache"] | Metrics["eventsDropped"],
  label: string,
  value: string,
): Promise<number> {
  return (await metric.get()).values
    .filter((v) => (v.labels as Record<string, unknown>)[label] === value)
    .reduce((sum, v) => sum + v.value, 0);
}

async function eventRows(storage: Storage): Promise<number> {
  const [row] = await storage.db.sql<{ n: number }[]>`select count(*)::int as n from events`;
  return row?.n ?? 0;
}

/** Flushes until nothing is queued or in flight; throws when that takes too long. */
async function drain(storage: Storage): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (storage.events.pending > 0) {
    await storage.events.flush();
    if (performance.now() > deadline) {
      throw new Error(`the event writer still holds ${storage.events.pending} events`);
    }
    // A failed write leaves its batch queued; do not spin on it.
    if (storage.events.pending > 0) await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function profile(id: number, username: string | null = null): TelegramProfile {
  return { id, username, firstName: `User ${id}`, lastName: null, languageCode: "en" };
}

async function measureHotPath(
  storage: Storage,
  metrics: Metrics,
): Promise<BackendFigures["hotPath"]> {
  const user = profile(HOT_USER, "hot_user");
  let before = await total(metrics.dbQueries);
  let started = performance.now();
  await storage.userCache.resolve(user);
  const missUs = (performance.now() - started) * 1000;
  const missQueries = (await total(metrics.dbQueries)) - before;

  const hitsBefore = await labelled(metrics.userCache, "result", "hit");
  before = await total(metrics.dbQueries);
  const times: number[] = [];
  for (let i = 0; i < RETURNING_CALLS; i++) {
    started = performance.now();
    // A new object each time, as every update brings its own `from`.
    await storage.userCache.resolve({ ...user });
    times.push((performance.now() - started) * 1000);
  }
  const queries = (await total(metrics.dbQueries)) - before;
  const counterHits = (await labelled(metrics.userCache, "result", "hit")) - hitsBefore;

  const gets: number[] = [];
  for (let i = 0; i < RETURNING_CALLS; i++) {
    started = performance.now();
    await storage.store.get(UserCache.key(HOT_USER));
    gets.push((performance.now() - started) * 1000);
  }
  return {
    missQueries,
    missUs,
    calls: RETURNING_CALLS,
    queries,
    counterHits,
    hitMedianUs: median(times),
    hitP99Us: percentile(times, 99),
    storeGetMedianUs: median(gets),
  };
}

async function measureMix(storage: Storage, metrics: Metrics): Promise<BackendFigures["mix"]> {
  const random = seededRandom(MIX.seed);
  const nextRank = zipfSampler(MIX.users, MIX.zipfS, random);
  const usernames = new Map<number, string>();
  let firstSightings = 0;
  let profileChanges = 0;
  const read = async () => ({
    hits: await labelled(metrics.userCache, "result", "hit"),
    misses: await labelled(metrics.userCache, "result", "miss"),
    errors: await labelled(metrics.userCache, "result", "error"),
    queries: await total(metrics.dbQueries),
  });
  const before = await read();
  for (let i = 0; i < MIX.updates; i++) {
    const id = MIX_FIRST_USER + nextRank();
    const changed = random() < MIX.changeRate;
    const known = usernames.get(id);
    if (known === undefined) firstSightings++;
    else if (changed) profileChanges++;
    // A user who changed their username keeps the new one in later updates.
    const username = changed ? `u${id}_${i}` : known ?? `u${id}`;
    usernames.set(id, username);
    await storage.userCache.resolve(profile(id, username));
  }
  const after = await read();
  return {
    updates: MIX.updates,
    distinctUsers: usernames.size,
    hits: after.hits - before.hits,
    misses: after.misses - before.misses,
    errors: after.errors - before.errors,
    firstSightings,
    profileChanges,
    queries: after.queries - before.queries,
  };
}

/** Events from the mix's users, so that the writer's `last_seen_at` update finds rows. */
function writerEvents(firstUpdateId: number): EventRecord[] {
  const at = new Date();
  return Array.from({ length: WRITER_EVENTS }, (_, i) => {
    const user = MIX_FIRST_USER + (i % MIX.users);
    return {
      updateId: firstUpdateId + i,
      userId: user,
      chatId: user,
      type: "message",
      command: "/help",
      outcome: "handled",
      durationMs: 1.5,
      at,
    };
  });
}

/**
 * `paced: false` records everything in one synchronous loop, as fast as possible; the writer
 * can only start after it. `paced: true` yields to the event loop after every 1,000 records,
 * as handlers do between updates, and waits while 10,000 or more are queued.
 */
async function measureWriter(
  storage: Storage,
  metrics: Metrics,
  paced: boolean,
  firstUpdateId: number,
): Promise<WriterRun> {
  await drain(storage);
  const events = writerEvents(firstUpdateId);
  const writer = storage.events;
  const rowsBefore = await eventRows(storage);
  const droppedBefore = await labelled(metrics.eventsDropped, "reason", "queue_full");
  const queriesBefore = await total(metrics.dbQueries);
  const below = { ms: 0, calls: 0 };
  const full = { ms: 0, calls: 0 };
  // Loops end where the queue reaches capacity, so that the two costs are timed apart.
  const chunk = paced ? 1000 : WRITER_CAPACITY;
  const started = performance.now();
  for (let offset = 0; offset < events.length; offset += chunk) {
    const end = Math.min(events.length, offset + chunk);
    const into = writer.pending >= WRITER_CAPACITY ? full : below;
    const loop = performance.now();
    for (let i = offset; i < end; i++) writer.record(events[i]!);
    into.ms += performance.now() - loop;
    into.calls += end - offset;
    if (paced) {
      do {
        await new Promise((resolve) => setTimeout(resolve, 0));
      } while (writer.pending >= 10_000);
    }
  }
  await drain(storage);
  const elapsedMs = performance.now() - started;
  const queries = (await total(metrics.dbQueries)) - queriesBefore;
  return {
    events: events.length,
    belowCapacity: below,
    atCapacity: full,
    elapsedMs,
    rows: (await eventRows(storage)) - rowsBefore,
    dropped: (await labelled(metrics.eventsDropped, "reason", "queue_full")) - droppedBefore,
    queries,
  };
}

function helpUpdates(firstUpdateId: number): Update[] {
  return Array.from({ length: PIPELINE.updates }, (_, i) => {
    const chatId = PIPELINE_FIRST_USER + (i % PIPELINE.users);
    return textMessage({
      updateId: firstUpdateId + i,
      chatId,
      text: "/help",
      firstName: `User ${chatId}`,
      languageCode: "en",
    });
  });
}

async function runPipeline(
  storage: Storage,
  metrics: Metrics,
  withWriter: boolean,
  firstUpdateId: number,
): Promise<PipelineRun> {
  const bot = createBot({
    token: TOKEN,
    apiRoot: "http://127.0.0.1:1",
    defaultLocale: "en",
    metrics,
    botInfo: BOT_INFO,
    fetch: cannedFetch,
    users: storage.userCache,
    ...(withWriter ? { events: storage.events } : {}),
  });
  const updates = helpUpdates(firstUpdateId);
  await drain(storage);
  const queriesBefore = await total(metrics.dbQueries);
  const writtenBefore = await total(metrics.eventsWritten);
  const latenciesUs: number[] = [];
  const started = performance.now();
  for (const update of updates) {
    const t0 = performance.now();
    await bot.handleUpdate(update);
    latenciesUs.push((performance.now() - t0) * 1000);
  }
  const elapsedMs = performance.now() - started;
  // The writer's batches belong to this run, not to the next one.
  await drain(storage);
  return {
    updates: updates.length,
    elapsedMs,
    latenciesUs,
    queries: (await total(metrics.dbQueries)) - queriesBefore,
    eventsWritten: (await total(metrics.eventsWritten)) - writtenBefore,
  };
}

async function measurePipeline(
  storage: Storage,
  metrics: Metrics,
): Promise<BackendFigures["pipeline"]> {
  // Every sender is a returning user: their profile is cached before the first run.
  for (let k = 0; k < PIPELINE.users; k++) {
    await storage.userCache.resolve(profile(PIPELINE_FIRST_USER + k));
  }
  let nextUpdateId = 5_000_000;
  const run = async (withWriter: boolean) => {
    const result = await runPipeline(storage, metrics, withWriter, nextUpdateId);
    nextUpdateId += PIPELINE.updates;
    return result;
  };
  // Each variant twice, interleaved; the first of each warms up and is thrown away.
  await run(true);
  await run(false);
  const withWriter = await run(true);
  const withoutWriter = await run(false);
  return { withWriter, withoutWriter };
}

async function measureBackend(
  pair: BackendFigures["pair"],
  env: Env,
  progress: (text: string) => void,
): Promise<BackendFigures> {
  using metrics = new Metrics();
  const storage = await openStorage(loadConfig({ BOT_TOKEN: TOKEN, ...env }), { metrics });
  try {
    await storage.migrator.up();
    const [version] = await storage.db.sql<{ v: string }[]>`
      select current_setting('server_version') as v`;
    const description = `${storage.describe()} (server_version ${version?.v ?? "?"})`;
    progress(`${pair}: hot path, ${RETURNING_CALLS} returning-user lookups …`);
    const hotPath = await measureHotPath(storage, metrics);
    progress(`${pair}: cache mix, ${MIX.updates} lookups from ${MIX.users} users …`);
    const mix = await measureMix(storage, metrics);
    progress(`${pair}: event writer, ${WRITER_EVENTS} events, burst then paced …`);
    const burst = await measureWriter(storage, metrics, false, 1_000_000);
    const paced = await measureWriter(storage, metrics, true, 2_000_000);
    progress(`${pair}: pipeline, 4 runs of ${PIPELINE.updates} /help updates …`);
    const pipeline = await measurePipeline(storage, metrics);
    return { pair, description, hotPath, mix, writer: { burst, paced }, pipeline };
  } finally {
    await storage.close(10_000);
  }
}

async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Measures both backend pairs; stops and removes everything it started before returning. */
export async function benchStorage(
  progress: (text: string) => void = (text) => console.error(`[storage] ${text}`),
): Promise<StorageFigures> {
  const machine = machineLine();
  const backends: BackendFigures[] = [];
  {
    progress("server: starting a throwaway Postgres and Redis …");
    await using postgres = await startPostgres();
    await using redis = await startRedis();
    await using dir = await tempDir("storage-bench-server-");
    const env: Env = {
      DATABASE_URL: await postgres.createDatabase("storage_bench"),
      REDIS_URL: redis.url,
      DATA_DIR: dir.path,
    };
    backends.push(await measureBackend("server", env, progress));
  }
  {
    await using dir = await tempDir("storage-bench-embedded-");
    progress(`embedded: PGlite and Deno KV in ${dir.path} …`);
    backends.push(await measureBackend("embedded", { DATA_DIR: dir.path }, progress));
  }
  return { machine, backends };
}

const finite = (format: (value: number) => string) => (value: number) =>
  Number.isFinite(value) ? format(value) : "n/a";
const us = finite((value) => `${Math.round(value)} µs`);
const ms = finite((value) => `${value.toFixed(1)} ms`);
const ns = finite((value) => `${Math.round(value)} ns`);
const pct = finite((value) => `${(value * 100).toFixed(1)} %`);
const ratio = finite((value) => value.toFixed(4));
const count = (value: number) => value.toLocaleString("en-US");
const signedUs = (value: number) => `${value >= 0 ? "+" : "−"}${us(Math.abs(value))}`;

function summary(run: PipelineRun): { p50: number; p99: number; rate: number } {
  return {
    p50: percentile(run.latenciesUs, 50),
    p99: percentile(run.latenciesUs, 99),
    rate: run.updates / (run.elapsedMs / 1000),
  };
}

type Row = [label: string, cell: (b: BackendFigures) => string];

function writerRows(name: string, pick: (b: BackendFigures) => WriterRun): Row[] {
  const perCall = (part: { ms: number; calls: number }) =>
    part.calls === 0
      ? "–"
      : `${ms(part.ms)} / ${count(part.calls)} = ${ns((part.ms * 1e6) / part.calls)}`;
  return [
    [
      `${name}: record() below capacity (total / calls = per call)`,
      (b) => perCall(pick(b).belowCapacity),
    ],
    [`${name}: record() with the queue full`, (b) => perCall(pick(b).atCapacity)],
    [`${name}: first record() → drained`, (b) => ms(pick(b).elapsedMs)],
    [
      `${name}: rows/s reaching the table`,
      (b) => `**${perSecond(pick(b).rows / (pick(b).elapsedMs / 1000))}**`,
    ],
    [`${name}: rows in events table / recorded`, (b) => {
      const r = pick(b);
      const dropped = r.dropped > 0 ? ` (**${count(r.dropped)} dropped**, queue full)` : "";
      return `${count(r.rows)} / ${count(r.events)}${dropped}`;
    }],
    [`${name}: statements sent`, (b) => count(pick(b).queries)],
  ];
}

/** The figures as Markdown, one column per backend pair. */
export function formatStorageReport(figures: StorageFigures): string {
  const { backends } = figures;
  const table = (rows: Row[]) =>
    markdownTable(
      ["", ...backends.map((b) => b.pair)],
      rows.map(([label, cell]) => [label, ...backends.map(cell)]),
    );

  const hot = table([
    ["first lookup (miss): queries", (b) => String(b.hotPath.missQueries)],
    ["first lookup (miss): time", (b) => us(b.hotPath.missUs)],
    [
      `returning user, ${RETURNING_CALLS} lookups: queries per update`,
      (b) => `**${ratio(b.hotPath.queries / b.hotPath.calls)}** (${b.hotPath.queries} in all)`,
    ],
    ["returning user: hits counted", (b) => `${b.hotPath.counterHits} of ${b.hotPath.calls}`],
    [
      "returning user: resolve p50 / p99",
      (b) => `${us(b.hotPath.hitMedianUs)} / ${us(b.hotPath.hitP99Us)}`,
    ],
    ["bare store.get p50 (the round trip alone)", (b) => us(b.hotPath.storeGetMedianUs)],
  ]);

  const mix = table([
    ["distinct users seen", (b) => count(b.mix.distinctUsers)],
    ["hit rate", (b) => `**${pct(b.mix.hits / b.mix.updates)}** (${count(b.mix.hits)} hits)`],
    ["misses = first sight + profile change", (b) => {
      const errors = b.mix.errors > 0 ? `, ${count(b.mix.errors)} store errors` : "";
      return `${count(b.mix.misses)} = ${count(b.mix.firstSightings)} + ${
        count(b.mix.profileChanges)
      }${errors}`;
    }],
    [
      "queries per update",
      (b) => `**${ratio(b.mix.queries / b.mix.updates)}** (${count(b.mix.queries)} in all)`,
    ],
  ]);

  const writer = table([
    ...writerRows("burst", (b) => b.writer.burst),
    ...writerRows("paced", (b) => b.writer.paced),
  ]);

  const pipeline = table([
    ["p50 without / with writer", (b) => {
      const [off, on] = [summary(b.pipeline.withoutWriter), summary(b.pipeline.withWriter)];
      return `${us(off.p50)} / ${us(on.p50)} (${signedUs(on.p50 - off.p50)})`;
    }],
    ["p99 without / with writer", (b) => {
      const [off, on] = [summary(b.pipeline.withoutWriter), summary(b.pipeline.withWriter)];
      return `${us(off.p99)} / ${us(on.p99)} (${signedUs(on.p99 - off.p99)})`;
    }],
    ["updates/s without writer", (b) => `**${perSecond(summary(b.pipeline.withoutWriter).rate)}**`],
    ["updates/s with writer", (b) => `**${perSecond(summary(b.pipeline.withWriter).rate)}**`],
    ["queries without writer", (b) => {
      const r = b.pipeline.withoutWriter;
      return `${count(r.queries)} (${ratio(r.queries / r.updates)} per update)`;
    }],
    ["queries with writer, incl. drain", (b) => {
      const r = b.pipeline.withWriter;
      return `${count(r.queries)} (${ratio(r.queries / r.updates)} per update)`;
    }],
    ["events written with writer", (b) => count(b.pipeline.withWriter.eventsWritten)],
  ]);

  return [
    "### Storage",
    "",
    figures.machine,
    "",
    ...backends.map((b) => `- ${b.pair}: ${b.description}`),
    "",
    `#### Hot path: one user's first lookup, then ${RETURNING_CALLS} returning lookups`,
    "",
    hot,
    "",
    "Queries are `bot_db_queries_total`; the lookup is `UserCache.resolve` with the same",
    "profile. The first lookups of the server pair include JIT warm-up; the embedded pair runs",
    "second in the same process.",
    "",
    `#### Cache mix: ${count(MIX.updates)} lookups from ${count(MIX.users)} users, ` +
    `Zipf s=${MIX.zipfS}, ${MIX.changeRate * 100} % with a changed username, ` +
    `seed ${MIX.seed}, cold cache`,
    "",
    mix,
    "",
    `#### Event writer: ${count(WRITER_EVENTS)} events, queue capacity ${count(WRITER_CAPACITY)}`,
    "",
    writer,
    "",
    "burst: one synchronous loop of record() calls; the writer can only start after it, so",
    "what exceeds the capacity is dropped. paced: yields to the event loop after every 1,000",
    "record() calls and waits while 10,000 or more are queued, as handlers do between updates.",
    "A batch is two statements: insert into events, update users.last_seen_at.",
    "",
    `#### Pipeline: ${count(PIPELINE.updates)} /help updates from ${PIPELINE.users} ` +
    "returning users, one at a time",
    "",
    pipeline,
    "",
    "`bot.handleUpdate` through the real stages (context, errors, user, features) with an",
    "in-memory Bot API `fetch`; latency is per update, updates/s is sequential (one in flight).",
    "Each variant ran twice, interleaved (with, without, with, without); the warm second run",
    "is shown. The writer is drained after each run and its statements counted with it.",
  ].join("\n");
}

if (import.meta.main) console.log(formatStorageReport(await benchStorage()));
