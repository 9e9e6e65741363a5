/**
 * Opens and closes everything durable the bot uses: the database (Postgres or embedded
 * PGlite), the key-value store (Redis or embedded Deno KV), and what is built on them.
 * Used by the running bot and by the `migrate`, `backup`, `restore` and `doctor` commands.
 */
import type { Config } from "./config.ts";
import { type Database, openDatabase } from "./db/database.ts";
import { errorMessage, isPermanent } from "./errors.ts";
import { EventWriter, type EventWriterMetrics } from "./db/event_writer.ts";
import { insertEvents } from "./db/events.ts";
import { describeWait } from "./db/lock_wait.ts";
import { Migrator, parseMigrations, prepareSchema } from "./db/migrate.ts";
import { MIGRATION_FILES } from "./db/migration_files.ts";
import { OutboxRepository } from "./db/outbox.ts";
import { RequestLifecycle } from "./db/request_lifecycle.ts";
import { RequestMessages } from "./db/request_messages.ts";
import { RequestRepository } from "./db/requests.ts";
import { UserRepository } from "./db/users.ts";
import type { Health } from "./health.ts";
import type { Logger } from "./log.ts";
import type { Startup } from "./startup.ts";
import type { Metrics } from "./metrics/metrics.ts";
import { openKvStore } from "./store/kv_store.ts";
import type { KeyValueStore } from "./store/store.ts";
import { UserCache } from "./store/user_cache.ts";

/** The open storage layer. */
export interface Storage {
  db: Database;
  store: KeyValueStore;
  migrator: Migrator;
  users: UserRepository;
  requests: RequestRepository;
  /** What staff and users do with requests after filing. */
  lifecycle: RequestLifecycle;
  /** Requests' conversations. */
  messages: RequestMessages;
  outbox: OutboxRepository;
  userCache: UserCache;
  /** The background event-log writer. */
  events: EventWriter;
  /** One line for logs: which backends are in use and where. */
  describe(): string;
  /** Flushes the event writer (within `timeoutMs`), then closes the store and the database. */
  close(timeoutMs: number): Promise<void>;
}

/** Options of {@link openStorage}. */
export interface OpenStorageOptions {
  /** Counters; absent for one-shot commands. */
  metrics?: Metrics;
  /** `share` lets a command use the running bot's embedded database (see `openDatabase`). */
  embedded?: "own" | "share";
  /** The database connections' `application_name`. @default APPLICATION_NAME */
  applicationName?: string;
  /**
   * How often the event writer writes a partial batch by itself; null when a job drives it.
   * @default 1000
   */
  eventFlushMs?: number | null;
}

/** Where the embedded key-value store keeps its file. */
export function kvPath(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, "")}/kv.sqlite3`;
}

/** Opens the key-value store the configuration names. */
export async function openStore(config: Config): Promise<KeyValueStore> {
  if (config.store.url !== null) {
    // The Redis client (hundreds of modules) is loaded only when it is used.
    const { openRedisStore } = await import("./store/redis_store.ts");
    return await openRedisStore({
      url: config.store.url,
      keyPrefix: config.store.keyPrefix,
      connectTimeoutMs: config.database.connectTimeoutMs,
    });
  }
  await Deno.mkdir(config.dataDir, { recursive: true });
  return await openKvStore(kvPath(config.dataDir));
}

/** Opens the database and the store; closes what it opened when either fails. */
export async function openStorage(
  config: Config,
  options: OpenStorageOptions = {},
): Promise<Storage> {
  const { metrics } = options;
  // Both at once: the store opens while the database does (PGlite takes most of a start).
  const opening = [
    openStore(config),
    openDatabase({
      config: config.database,
      dataDir: config.dataDir,
      embedded: options.embedded ?? "own",
      ...(options.applicationName ? { applicationName: options.applicationName } : {}),
      ...(metrics ? { onQuery: () => metrics.dbQueries.inc() } : {}),
    }).then(async (db) => {
      try {
        await db.ping();
        return db;
      } catch (error) {
        await db.close().catch(() => {});
        throw error;
      }
    }),
  ] as const;
  // A failure no retry can mend (refused credentials) ends the wait at once: the other side may
  // still be retrying its connection until its own deadline.
  const { promise: hopeless, reject: giveUp } = Promise.withResolvers<never>();
  for (const side of opening) side.catch((error) => isPermanent(error) && giveUp(error));
  const [opened, connected] = await Promise.race([Promise.allSettled(opening), hopeless])
    .catch((error) => {
      for (const side of opening) side.then((open) => open.close()).catch(() => {});
      throw error;
    });
  if (opened.status === "rejected" || connected.status === "rejected") {
    if (opened.status === "fulfilled") await opened.value.close();
    if (connected.status === "fulfilled") await connected.value.close().catch(() => {});
    throw opened.status === "rejected"
      ? opened.reason
      : (connected as PromiseRejectedResult).reason;
  }
  const store = opened.value;
  const db = connected.value;
  const users = new UserRepository(db.sql);
  const sql = db.sql;
  const writerMetrics: EventWriterMetrics | undefined = metrics;
  const events = new EventWriter({
    write: async (batch) => {
      await insertEvents(sql, batch);
      const sightings = batch.flatMap((e) => e.userId === null ? [] : [{ id: e.userId, at: e.at }]);
      await users.touch(sightings);
    },
    ...(writerMetrics ? { metrics: writerMetrics } : {}),
    flushIntervalMs: options.eventFlushMs === undefined ? 1000 : options.eventFlushMs,
  });
  let closing: Promise<void> | null = null;
  return {
    db,
    store,
    migrator: new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)),
    users,
    requests: new RequestRepository(db.sql),
    lifecycle: new RequestLifecycle(db.sql),
    messages: new RequestMessages(db.sql),
    outbox: new OutboxRepository(db.sql),
    userCache: new UserCache({
      store,
      users,
      ttlMs: config.userCacheTtlMs,
      ...(metrics ? { metrics } : {}),
    }),
    events,
    describe: () =>
      `database ${db.description}, store ${
        config.store.url === null
          ? `deno-kv ${kvPath(config.dataDir)}`
          : `redis ${new URL(config.store.url).host}`
      }`,
    close(timeoutMs) {
      closing ??= (async () => {
        await events.close(timeoutMs);
        await store.close();
        await db.close();
      })();
      return closing;
    },
  };
}

/** Registers the database and store checks on `/health`. */
export function registerStorageChecks(
  health: Health,
  storage: Storage,
  metrics?: Pick<Metrics, "dbRoundTrip">,
): void {
  health.register("database:responseTime", async () => {
    const ms = await storage.db.ping();
    metrics?.dbRoundTrip.observe(ms / 1000);
    const current = await storage.migrator.current();
    const latest = storage.migrator.latest;
    const observedValue = Math.round(ms * 10) / 10;
    if (current === latest) return { status: "pass", observedValue };
    return {
      status: "warn",
      observedValue,
      output: `${storage.db.backend}: schema version ${current}, this program expects ${latest}`,
    };
  }, { timeoutMs: 5000, componentType: "datastore" });
  health.register("store:responseTime", async () => {
    const ms = await storage.store.ping();
    return { status: "pass", observedValue: Math.round(ms * 10) / 10 };
  }, { timeoutMs: 5000, componentType: "datastore" });
}

/**
 * {@link startStorage} while `alongside` (the start's `getMe`) runs: a start waits for the
 * slower of the two, not for both in turn, and the first failure that no retry mends ends it
 * also while the other is still being waited for. `keep` gets the storage as soon as it is
 * open, so that a stop meanwhile closes it; one that opens after the start has ended (its
 * signal aborted) is closed here.
 */
export async function startStorageWhile<T>(
  config: Config,
  alongside: Promise<T>,
  options: StartStorageOptions & { keep(storage: Storage): void },
): Promise<[Storage, T]> {
  let settled = false;
  const other = alongside.finally(() => settled = true);
  const opening = startStorage(config, options);
  opening.then((storage) => {
    if (options.startup.signal.aborted) return void storage.close(5000).catch(() => {});
    options.keep(storage);
    if (!settled) options.startup.step("connecting to Telegram");
  }, () => {});
  return await Promise.all([opening, other]);
}

/** What {@link startStorage} needs. */
export interface StartStorageOptions {
  metrics: Metrics;
  health: Health;
  startup: Startup;
  log: Logger;
}

/**
 * Opens the storage for the running bot, under the start-up's retry policy: both backends,
 * then the schema (migrated, or checked with `MIGRATE_ON_START=false`), then its `/health`
 * checks. The event log is written by a job, so the writer keeps no timer of its own.
 */
export async function startStorage(
  config: Config,
  options: StartStorageOptions,
): Promise<Storage> {
  const { metrics, health, startup, log } = options;
  startup.step("opening the database and the store");
  const storage = await startup.until(
    "opening storage",
    () => openStorage(config, { metrics, eventFlushMs: null }),
  );
  startup.step("applying database migrations");
  const applied = await startup.until(
    "preparing the schema",
    () =>
      prepareSchema(storage.migrator, config.database.migrateOnStart, (wait) => {
        const line = describeWait(wait);
        log.warning("{wait}", {
          wait: line,
          migration: wait.migration,
          waited_ms: Math.round(wait.waitedMs),
        });
        startup.step(`applying database migrations: ${line}`);
      }),
  );
  for (const name of applied) log.info("applied migration {name}", { name });
  registerStorageChecks(health, storage, metrics);
  log.info("storage: {storage}", { storage: storage.describe() });
  await warnOfLoss(storage.store, log);
  return storage;
}

/**
 * Logs a warning for each way the store may lose the bot's keys (a Redis that evicts or saves
 * nothing); the bot runs on regardless, as the operator may have reasons.
 */
async function warnOfLoss(store: KeyValueStore, log: Logger): Promise<void> {
  try {
    for (const note of await store.durability?.() ?? []) {
      if (note.verdict === "warn") log.warning("{note}", { note: note.text });
    }
  } catch (error) {
    log.warning("cannot read how the store keeps data: {error}", { error: errorMessage(error) });
  }
}
