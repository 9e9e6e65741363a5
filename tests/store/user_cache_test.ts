import assert from "node:assert/strict";
import { join } from "node:path";
import { Migrator, parseMigrations } from "../../src/db/migrate.ts";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import { type TelegramProfile, UserRepository } from "../../src/db/users.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { openKvStore } from "../../src/store/kv_store.ts";
import { openRedisStore } from "../../src/store/redis_store.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { UserCache } from "../../src/store/user_cache.ts";
import { testOnBothBackends } from "../support/databases.ts";
import { type RedisServer, startRedis } from "../support/redis_server.ts";

/** Opens an empty store of one kind; each call gives a store no other step sees. */
type StoreFactory = () => Promise<KeyValueStore & AsyncDisposable>;

function disposable(store: KeyValueStore): KeyValueStore & AsyncDisposable {
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}

/** Deno KV stores in files of one temp dir; the dir is removed on dispose. */
async function kvStores(): Promise<{ open: StoreFactory } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "user-cache-test-" });
  let count = 0;
  return {
    open: async () => disposable(await openKvStore(join(dir, `kv-${++count}.sqlite3`))),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Redis stores on `server`, each under its own random key prefix. */
function redisStores(server: RedisServer): { open: StoreFactory } {
  return {
    open: async () =>
      disposable(
        await openRedisStore({
          url: server.url,
          keyPrefix: `test:${crypto.randomUUID().slice(0, 8)}:`,
        }),
      ),
  };
}

function profile(id: number, overrides: Partial<TelegramProfile> = {}): TelegramProfile {
  return {
    id,
    username: `user${id}`,
    firstName: "Ada",
    lastName: "Lovelace",
    languageCode: "en",
    ...overrides,
  };
}

/** Lookups counted with `result`, as `/metrics` shows them. */
async function lookups(metrics: Metrics, result: "hit" | "miss" | "error"): Promise<number> {
  const { values } = await metrics.userCache.get();
  return values.find((v) => v.labels.result === result)?.value ?? 0;
}

// The database backends take turns with the stores, so that both stores and both databases
// are covered without running all four pairs: Postgres with Deno KV, PGlite with Redis.
testOnBothBackends("UserCache over Deno KV (postgres) or Redis (pglite)", async (t, ctx) => {
  let sent = 0;
  const db = await ctx.fresh({ onQuery: () => sent++ });
  await new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)).up();
  const users = new UserRepository(db.sql);
  await using redis = ctx.backend === "pglite" ? await startRedis() : null;
  await using kv = redis ? null : await kvStores();
  const stores = redis ? redisStores(redis) : kv!;

  /** Runs `fn` and returns its result with the number of queries it sent. */
  async function counted<T>(fn: () => Promise<T>): Promise<[T, number]> {
    const before = sent;
    const result = await fn();
    return [result, sent - before];
  }

  await t.step("resolve() upserts a new user once, then answers from the store", async () => {
    await using store = await stores.open();
    using metrics = new Metrics();
    const cache = new UserCache({ store, users, ttlMs: 60_000, metrics });

    const [registered, first] = await counted(() => cache.resolve(profile(1)));
    assert.equal(first, 1, "a new user costs one upsert");
    assert.deepEqual(await users.get(1), registered);

    const [again, second] = await counted(() => cache.resolve(profile(1)));
    assert.equal(second, 0, "a returning user costs no query");
    assert.deepEqual(again, registered);
    assert.equal(await lookups(metrics, "miss"), 1);
    assert.equal(await lookups(metrics, "hit"), 1);
    assert.equal(await lookups(metrics, "error"), 0);
    assert.match(
      await metrics.registry.getSingleMetricAsString("bot_user_cache_total"),
      /^bot_user_cache_total\{result="hit"\} 1$/m,
    );
  });

  await t.step("resolve() stores what Telegram changed, with one upsert", async (t) => {
    const changes: Array<[string, Partial<TelegramProfile>]> = [
      ["a new username", { username: "countess" }],
      ["a removed username", { username: null }],
      ["a new first name", { firstName: "Augusta Ada" }],
      ["a new last name", { lastName: "King" }],
      ["a new language", { languageCode: "de" }],
    ];
    for (const [index, [name, change]] of changes.entries()) {
      await t.step(name, async () => {
        await using store = await stores.open();
        using metrics = new Metrics();
        const cache = new UserCache({ store, users, ttlMs: 60_000, metrics });
        const id = 100 + index;
        await cache.resolve(profile(id));

        const changed = profile(id, change);
        const [row, queries] = await counted(() => cache.resolve(changed));
        assert.equal(queries, 1);
        assert.deepEqual({ ...row, ...changed }, row, "the answer has the new profile");
        assert.deepEqual(await users.get(id), row, "the database has the new profile");

        const [cached, next] = await counted(() => cache.resolve(changed));
        assert.equal(next, 0, "the new profile is cached");
        assert.deepEqual(cached, row);
        assert.equal(await lookups(metrics, "miss"), 2);
        assert.equal(await lookups(metrics, "hit"), 1);
      });
    }
  });

  await t.step("setLocale() and setNotifications() update the cached copy", async () => {
    await using store = await stores.open();
    using metrics = new Metrics();
    const cache = new UserCache({ store, users, ttlMs: 60_000, metrics });
    await cache.resolve(profile(2));

    assert.equal((await cache.setLocale(2, "uk"))!.locale, "uk");
    const [german, queries] = await counted(() => cache.resolve(profile(2)));
    assert.equal(queries, 0);
    assert.equal(german.locale, "uk");

    assert.equal((await cache.setNotifications(2, false))!.notifications, false);
    const [muted, again] = await counted(() => cache.resolve(profile(2)));
    assert.equal(again, 0);
    assert.equal(muted.notifications, false);
    assert.equal(muted.locale, "uk");
    assert.equal(await lookups(metrics, "hit"), 2);

    assert.equal(await cache.setLocale(404, "uk"), null);
    assert.equal(await cache.setNotifications(404, true), null);
  });

  await t.step("resolve() after markBlocked() makes the user reachable again", async () => {
    await using store = await stores.open();
    using metrics = new Metrics();
    const cache = new UserCache({ store, users, ttlMs: 60_000, metrics });
    await cache.resolve(profile(3));
    await cache.markBlocked(3);
    assert.ok((await users.get(3))!.blockedAt instanceof Date);
    assert.notDeepEqual(await users.notifiable(2, 1), [3], "announcements skip the user");

    const [row, queries] = await counted(() => cache.resolve(profile(3)));
    assert.equal(queries, 1, "a user who writes again is upserted");
    assert.equal(row.blockedAt, null);
    assert.equal((await users.get(3))!.blockedAt, null);
    assert.deepEqual(await users.notifiable(2, 1), [3], "announcements reach the user again");
    assert.equal(await lookups(metrics, "miss"), 2);
  });

  await t.step("resolve() answers from the database when the store is down", async () => {
    // Its own Redis, so that stopping it leaves the other steps' server alone.
    await using own = redis ? await startRedis() : null;
    await using store = own ? await redisStores(own).open() : await stores.open();
    using metrics = new Metrics();
    const cache = new UserCache({ store, users, ttlMs: 60_000, metrics });
    await cache.resolve(profile(4));
    if (own) await own.stop();
    else await store.close();

    const changed = profile(4, { username: "offline" });
    const [row, queries] = await counted(() => cache.resolve(changed));
    assert.equal(row.username, "offline");
    assert.equal(queries, 1);
    assert.equal((await users.get(4))!.username, "offline");
    assert.equal((await cache.resolve(changed)).username, "offline");
    assert.equal(await lookups(metrics, "error"), 2);
    assert.equal(await lookups(metrics, "hit"), 0);
  });

  await t.step("resolve() of an expired entry is a miss", async () => {
    await using store = await stores.open();
    using metrics = new Metrics();
    const cache = new UserCache({ store, users, ttlMs: 5, metrics });
    await cache.resolve(profile(5));
    await new Promise((resolve) => setTimeout(resolve, 30));

    const [row, queries] = await counted(() => cache.resolve(profile(5)));
    assert.equal(queries, 1);
    assert.equal(row.id, 5);
    assert.equal(await lookups(metrics, "miss"), 2);
    assert.equal(await lookups(metrics, "hit"), 0);
  });
});
