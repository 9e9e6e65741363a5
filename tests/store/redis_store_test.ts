import assert from "node:assert/strict";
import { StoreUnavailableError } from "../../src/errors.ts";
import { setupLogging } from "../../src/log.ts";
import { openRedisStore } from "../../src/store/redis_store.ts";
import type { AtomicScript, KeyValueStore } from "../../src/store/store.ts";
import { redisCli, type RedisServer, startRedis } from "../support/redis_server.ts";
import { counterWithCap, storeContract, type StoreHarness } from "./contract.ts";

/** A Redis server plus stores on it, each under its own random prefix. */
async function redisHarness(): Promise<StoreHarness & { server: RedisServer }> {
  const server = await startRedis();
  const stores: KeyValueStore[] = [];
  return {
    server,
    async open() {
      const store = await openRedisStore({ url: server.url, keyPrefix: randomPrefix() });
      stores.push(store);
      return store;
    },
    async [Symbol.asyncDispose]() {
      for (const store of stores) await store.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

function randomPrefix(): string {
  return `test:${crypto.randomUUID().slice(0, 8)}:`;
}

/** Rejects unless `promise` rejects with StoreUnavailableError within `withinMs`. */
async function rejectsUnavailable(promise: Promise<unknown>, withinMs = 1_000): Promise<void> {
  const started = performance.now();
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof StoreUnavailableError, String(error));
    assert.match(error.message, /unreachable/);
    assert.ok(error.cause !== undefined);
    return true;
  });
  const elapsed = performance.now() - started;
  assert.ok(elapsed < withinMs, `took ${Math.round(elapsed)} ms`);
}

storeContract("RedisStore", redisHarness);

Deno.test("RedisStore on a real Redis", async (t) => {
  await using redis = await redisHarness();

  await t.step("keys carry the prefix and the entity as hash tag", async () => {
    const prefix = randomPrefix();
    await using store = disposable(
      await openRedisStore({ url: redis.server.url, keyPrefix: prefix }),
    );
    await store.set(["chat", 42, "state"], { step: 1 });
    await store.set(["chat", "a:b"], 2);
    const keys = (await redisCli(redis.server, "--raw", "KEYS", `${prefix}*`)).trim().split("\n");
    assert.deepEqual(keys.sort(), [`${prefix}chat:{42}:state`, `${prefix}chat:{a%3Ab}`]);
    assert.equal(
      (await redisCli(redis.server, "--raw", "GET", `${prefix}chat:{42}:state`)).trim(),
      '{"step":1}',
    );
  });

  await t.step("stores with different prefixes do not see each other's keys", async () => {
    const a = await redis.open();
    const b = await redis.open();
    await a.set(["user", 1], "in a");
    assert.equal(await b.get(["user", 1]), null);
    assert.deepEqual(await Array.fromAsync(b.scan("user")), []);
    assert.equal((await Array.fromAsync(a.scan("user"))).length, 1);
  });

  await t.step("a script still runs after SCRIPT FLUSH", async () => {
    const store = await redis.open();
    assert.deepEqual(await store.run(counterWithCap, [["c", "x"]], [5]), [true, 1]);
    await redisCli(redis.server, "SCRIPT", "FLUSH");
    assert.deepEqual(await store.run(counterWithCap, [["c", "x"]], [5]), [true, 2]);
  });

  await t.step("a failing script rejects with an error naming it", async () => {
    const store = await redis.open();
    const broken: AtomicScript<[], null> = {
      name: "test_broken",
      lua: "return redis.call('NO_SUCH_COMMAND')",
      apply: () => ({ writes: [], result: null }),
    };
    await assert.rejects(store.run(broken, [["b", "x"]], []), (error: unknown) => {
      assert.ok(error instanceof Error && !(error instanceof StoreUnavailableError));
      assert.match(error.message, /test_broken/);
      return true;
    });
  });
});

Deno.test("RedisStore fails fast while Redis is down and recovers when it is back", async () => {
  const lines: string[] = [];
  const closeLogging = await setupLogging({
    level: "info",
    format: "json",
    file: null,
    secrets: [],
    write: (line) => lines.push(line),
  });
  try {
    await using server = await startRedis();
    await using store = disposable(
      await openRedisStore({ url: server.url, keyPrefix: randomPrefix() }),
    );
    await store.set(["k", 1], "before");
    assert.deepEqual(await store.run(counterWithCap, [["c", 1]], [10]), [true, 1]);

    await server.stop();
    await rejectsUnavailable(store.get(["k", 1]));
    await rejectsUnavailable(store.set(["k", 1], "during"));
    await rejectsUnavailable(store.getMany([["k", 1], ["k", 2]]));
    await rejectsUnavailable(store.run(counterWithCap, [["c", 1]], [10]));
    await rejectsUnavailable(store.ping());
    await rejectsUnavailable(Array.fromAsync(store.scan("k")));
    // Long enough for several reconnect attempts, which must not flood the log.
    await new Promise((resolve) => setTimeout(resolve, 800));

    await server.start();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await store.ping();
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    // The restarted Redis is empty and has forgotten every script: NOSCRIPT, then EVAL.
    assert.equal(await store.get(["k", 1]), null);
    assert.deepEqual(await store.run(counterWithCap, [["c", 1]], [10]), [true, 1]);
    await store.set(["k", 1], "after");
    assert.equal(await store.get(["k", 1]), "after");

    const messages = lines.map((line) => JSON.parse(line).msg as string);
    const refused = messages.filter((msg) => /refused/.test(msg));
    assert.equal(refused.length, 1, messages.join("\n"));
    assert.ok(messages.includes("redis connection restored"), messages.join("\n"));
  } finally {
    await closeLogging();
  }
});

Deno.test("RedisStore.ping() fails while a full Redis refuses writes, and passes once it takes them again", async () => {
  await using server = await startRedis();
  await using store = disposable(
    await openRedisStore({ url: server.url, keyPrefix: randomPrefix() }),
  );
  assert.ok(await store.ping() >= 0);
  // Full, as with Compose's --maxmemory and noeviction: reads still work, writes are refused.
  await redisCli(server, "config", "set", "maxmemory-policy", "noeviction");
  await redisCli(server, "config", "set", "maxmemory", "1");
  assert.equal(await store.get(["k", 1]), null);
  await assert.rejects(store.ping(), (error: unknown) => {
    assert.ok(error instanceof StoreUnavailableError, String(error));
    assert.match(error.message, /^Redis refused a write: OOM /);
    return true;
  });
  await redisCli(server, "config", "set", "maxmemory", "0");
  assert.ok(await store.ping() >= 0);
});

Deno.test("RedisStore.durability() says when Redis may evict or forget the bot's keys", async (t) => {
  await using server = await startRedis();
  await using store = disposable(
    await openRedisStore({ url: server.url, keyPrefix: randomPrefix() }),
  );
  const notes = async () => (await store.durability()).map((n) => `${n.verdict}: ${n.text}`);

  await t.step(
    "a Redis with neither AOF nor snapshots: a warning that a restart loses them",
    async () => {
      const [eviction, persistence] = await notes();
      assert.equal(eviction, "ok: Redis never evicts the bot's keys (no maxmemory)");
      assert.match(
        persistence!,
        /^warn: Redis keeps nothing across a restart \(appendonly no, no save schedule\): .*set appendonly yes$/,
      );
    },
  );

  await t.step("an evicting Redis (set up as a cache): a warning naming the policy", async () => {
    await redisCli(server, "config", "set", "maxmemory", "100mb");
    await redisCli(server, "config", "set", "maxmemory-policy", "allkeys-lru");
    assert.match(
      (await notes())[0]!,
      /^warn: Redis evicts keys when full \(maxmemory 100 MiB, maxmemory-policy allkeys-lru\): .*handled twice; set maxmemory-policy noeviction$/,
    );
    await redisCli(server, "config", "set", "maxmemory-policy", "noeviction");
    assert.match(
      (await notes())[0]!,
      /^ok: Redis never evicts .*noeviction: a full Redis refuses writes/,
    );
  });

  await t.step("snapshots, then the append-only file: fine, and what a restart loses", async () => {
    await redisCli(server, "config", "set", "save", "3600 1");
    assert.match((await notes())[1]!, /^ok: Redis saves snapshots \(save "3600 1"\): /);
    await redisCli(server, "config", "set", "appendonly", "yes");
    assert.equal(
      (await notes())[1],
      "ok: Redis keeps its data across a restart (appendonly yes, appendfsync everysec)",
    );
  });

  await t.step("a Redis that refuses CONFIG (a managed one): the schedule is unknown", async () => {
    await redisCli(server, "config", "set", "appendonly", "no");
    await redisCli(
      server,
      "acl",
      "setuser",
      "bot",
      "on",
      ">secret-pw",
      "~*",
      "&*",
      "+@all",
      "-config",
    );
    await using limited = disposable(
      await openRedisStore({
        url: `redis://bot:secret-pw@127.0.0.1:${server.port}`,
        keyPrefix: randomPrefix(),
      }),
    );
    const [, persistence] = await limited.durability();
    assert.equal(persistence!.verdict, "warn");
    assert.match(persistence!.text, /^Redis has appendonly no and refused CONFIG GET/);
  });
});

Deno.test("openRedisStore() rejects with StoreUnavailableError when nothing listens", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  // The test's op and timer sanitizers fail it if a reconnect loop survives the rejection.
  await rejectsUnavailable(
    openRedisStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: "x:", connectTimeoutMs: 300 }),
    3_000,
  );
});

function disposable<T extends KeyValueStore>(store: T): T & AsyncDisposable {
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}

Deno.test("openRedisStore() with a wrong password fails at once, for good, saying so", async () => {
  await using server = await startRedis({ password: "right" });
  const started = performance.now();
  await assert.rejects(
    openRedisStore({ url: `redis://:wrong@127.0.0.1:${server.port}`, keyPrefix: "x:" }),
    (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.equal(error.permanent, true);
      assert.match(
        error.message,
        /^Redis at 127\.0\.0\.1:\d+ refused the credentials \(WRONGPASS [^)]*[^.]\): check the password in REDIS_URL$/,
      );
      // The URL's password never shows.
      assert.doesNotMatch(error.message, /wrong/);
      return true;
    },
  );
  assert.ok(performance.now() - started < 1_000);
  // The right one works.
  await using store = disposable(await openRedisStore({ url: server.url, keyPrefix: "x:" }));
  assert.ok(await store.ping() >= 0);
});
