/**
 * The behaviour every {@link KeyValueStore} must show, run against Redis and Deno KV alike so
 * that features never notice which one they got.
 */

import assert from "node:assert/strict";
import { StoreUnavailableError } from "../../src/errors.ts";
import type { AtomicScript, Json, KeyValueStore, StoreEntry } from "../../src/store/store.ts";

/** Opens stores for one test run; disposing it releases whatever they share (a server, a dir). */
export interface StoreHarness extends AsyncDisposable {
  /** A fresh, empty store that sees no key of any other store opened here. */
  open(): Promise<KeyValueStore>;
}

/** Increments `KEYS[1]` unless it reached the cap `args[0]`; answers `[passed, count]`. */
export const counterWithCap: AtomicScript<[cap: number], [boolean, number]> = {
  name: "test_counter_with_cap",
  lua: `
    local count = tonumber(redis.call('GET', KEYS[1])) or 0
    local cap = cjson.decode(ARGV[2])
    if count >= cap then return cjson.encode({false, count}) end
    count = count + 1
    redis.call('SET', KEYS[1], tostring(count))
    return cjson.encode({true, count})`,
  apply([current], [cap]) {
    const count = typeof current === "number" ? current : 0;
    if (count >= cap) return { writes: [], result: [false, count] };
    return { writes: [{ value: count + 1, ttlMs: null }], result: [true, count + 1] };
  },
};

/** Moves the value of the first key to the second unless the second is taken. */
const move: AtomicScript<[], boolean> = {
  name: "test_move",
  lua: `
    local value = redis.call('GET', KEYS[1])
    if not value or redis.call('EXISTS', KEYS[2]) == 1 then return cjson.encode(false) end
    redis.call('SET', KEYS[2], value)
    redis.call('DEL', KEYS[1])
    return cjson.encode(true)`,
  apply([from, to]) {
    if (from === null || from === undefined || to !== null) return { writes: [], result: false };
    return { writes: [null, { value: from, ttlMs: null }], result: true };
  },
};

/** Stores `args[0]` for `args[1]` ms; answers the expiry time computed from the script's clock. */
const setWithTtl: AtomicScript<[value: Json, ttlMs: number], number> = {
  name: "test_set_with_ttl",
  lua: `
    local ttl = cjson.decode(ARGV[3])
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
    return cjson.encode(tonumber(ARGV[1]) + ttl)`,
  apply(_current, [value, ttlMs], nowMs) {
    return { writes: [{ value, ttlMs }], result: nowMs + ttlMs };
  },
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function collect(entries: AsyncIterable<StoreEntry>): Promise<StoreEntry[]> {
  const all: StoreEntry[] = [];
  for await (const entry of entries) all.push(entry);
  // Code unit order, so that the expected lists below do not depend on the locale.
  const byKey = (entry: StoreEntry) => JSON.stringify(entry.key);
  return all.sort((a, b) => byKey(a) < byKey(b) ? -1 : byKey(a) > byKey(b) ? 1 : 0);
}

/** Registers one test whose steps are the contract, each on a fresh store of `setup()`. */
export function storeContract(name: string, setup: () => Promise<StoreHarness>): void {
  Deno.test(`${name} passes the KeyValueStore contract`, async (t) => {
    await using harness = await setup();
    const step = (title: string, fn: (store: KeyValueStore) => Promise<void>) =>
      t.step(title, async () => {
        const store = await harness.open();
        try {
          await fn(store);
        } finally {
          await store.close();
        }
      });

    await step("get() returns null for a missing key", async (store) => {
      assert.equal(await store.get(["missing", "x"]), null);
    });

    await step("get() returns what set() stored, nested JSON intact", async (store) => {
      const values: Json[] = [
        { a: [1, 2.5, { b: null, c: "ünïcödé ✓" }], d: true, e: { f: { g: [] } } },
        ["x", 0, -1, false],
        "plain",
        42,
        false,
      ];
      for (const [i, value] of values.entries()) await store.set(["json", i], value);
      for (const [i, value] of values.entries()) {
        assert.deepEqual(await store.get(["json", i]), value);
      }
    });

    await step("set() replaces the previous value", async (store) => {
      await store.set(["over", "k"], { v: 1 });
      await store.set(["over", "k"], [2]);
      assert.deepEqual(await store.get(["over", "k"]), [2]);
    });

    await step("delete() removes a key and accepts a missing one", async (store) => {
      await store.set(["del", "k"], 1);
      await store.delete(["del", "k"]);
      assert.equal(await store.get(["del", "k"]), null);
      await store.delete(["del", "never-there"]);
    });

    await step("getMany() answers in order with null for missing keys", async (store) => {
      await store.set(["many", "a"], "A");
      await store.set(["many", "c"], { c: 3 });
      const keys = [["many", "a"], ["many", "b"], ["many", "c"], ["many", "a"]] as const;
      assert.deepEqual(await store.getMany(keys), ["A", null, { c: 3 }, "A"]);
      assert.deepEqual(await store.getMany([]), []);
      // More keys than Deno KV reads in one getMany.
      const twelve = Array.from({ length: 12 }, (_, i) => ["many", `n${i}`] as const);
      await Promise.all(twelve.map((key, i) => store.set(key, i)));
      assert.deepEqual(await store.getMany(twelve), twelve.map((_, i) => i));
    });

    await step("a value with ttlMs is gone after it expires, one without stays", async (store) => {
      await store.set(["ttl", "short"], "s", { ttlMs: 100 });
      await store.set(["ttl", "forever"], "f", { ttlMs: null });
      assert.equal(await store.get(["ttl", "short"]), "s");
      await sleep(300);
      assert.equal(await store.get(["ttl", "short"]), null);
      assert.deepEqual(await store.getMany([["ttl", "short"], ["ttl", "forever"]]), [null, "f"]);
    });

    await step('123 and "123" are the same key', async (store) => {
      await store.set(["num", 123, 7], "n");
      assert.equal(await store.get(["num", "123", "7"]), "n");
      await store.set(["num", "123", "7"], "s");
      assert.equal(await store.get(["num", 123, 7]), "s");
      assert.deepEqual((await collect(store.scan("num"))).map((e) => e.key), [["num", "123", "7"]]);
    });

    await step("parts with : { } % survive a scan and never collide", async (store) => {
      const odd = ["odd:ns{%}", "a:b{c}%d", "x%3Ay", "}{", ":"] as const;
      await store.set(odd, "odd");
      await store.set(["odd:ns{%}", "a:b{c}%d", "x:y", "}{", ":"], "decoded");
      await store.set(["odd", "ns{%}"], "decoy");
      assert.equal(await store.get(odd), "odd");
      const entries = await collect(store.scan("odd:ns{%}"));
      assert.deepEqual(entries.map((e) => [e.key, e.value]), [
        [["odd:ns{%}", "a:b{c}%d", "x%3Ay", "}{", ":"], "odd"],
        [["odd:ns{%}", "a:b{c}%d", "x:y", "}{", ":"], "decoded"],
      ]);
    });

    await step("scan() yields exactly the namespace's live entries", async (store) => {
      await store.set(["s", "a"], 1);
      await store.set(["s", "b", "x"], { n: 2 }, { ttlMs: 60_000 });
      await store.set(["s", 3], [3]);
      await store.set(["s", "gone"], "expired", { ttlMs: 1 });
      for (const ns of ["s2", "t", "s:x", "S"]) await store.set([ns, "a"], "other");
      await sleep(20);
      const entries = await collect(store.scan("s"));
      assert.deepEqual(entries.map((e) => [e.key, e.value]), [
        [["s", "3"], [3]],
        [["s", "a"], 1],
        [["s", "b", "x"], { n: 2 }],
      ]);
      assert.equal(entries[0]!.ttlMs, null);
      assert.equal(entries[1]!.ttlMs, null);
      const ttl = entries[2]!.ttlMs;
      assert.ok(ttl !== null && ttl > 0 && ttl <= 60_000, `ttlMs ${ttl}`);
      assert.deepEqual(await collect(store.scan("empty")), []);
    });

    await step("scan() yields every entry of a large namespace once", async (store) => {
      const n = 1_200;
      await Promise.all(Array.from({ length: n }, (_, i) => store.set(["big", i], i)));
      const values = (await collect(store.scan("big"))).map((e) => e.value as number);
      assert.equal(values.length, n);
      assert.equal(new Set(values).size, n);
    });

    await step(
      "run() is atomic: 200 concurrent capped increments pass exactly the cap",
      async (store) => {
        const cap = 150;
        const results = await Promise.all(
          Array.from({ length: 200 }, () => store.run(counterWithCap, [["counter", "c1"]], [cap])),
        );
        const passed = results.filter(([ok]) => ok).map(([, count]) => count).sort((a, b) => a - b);
        assert.deepEqual(passed, Array.from({ length: cap }, (_, i) => i + 1));
        assert.ok(results.every(([ok, count]) => ok || count === cap));
        assert.equal(await store.get(["counter", "c1"]), cap);
      },
    );

    await step("run() moves a value between two keys atomically", async (store) => {
      const from = ["box", "e1", "from"] as const;
      const to = ["box", "e1", "to"] as const;
      await store.set(from, { item: "parcel" });
      assert.equal(await store.run(move, [from, to], []), true);
      assert.deepEqual(await store.getMany([from, to]), [null, { item: "parcel" }]);
      await store.set(from, "second");
      assert.equal(await store.run(move, [from, to], []), false);
      assert.deepEqual(await store.getMany([from, to]), ["second", { item: "parcel" }]);
    });

    await step("run() writes with a TTL and passes the current time", async (store) => {
      const before = Date.now();
      const expiresAt = await store.run(setWithTtl, [["lease", "l1"]], [{ owner: "a" }, 200]);
      assert.ok(expiresAt >= before + 200 && expiresAt <= Date.now() + 200, `${expiresAt}`);
      assert.deepEqual(await store.get(["lease", "l1"]), { owner: "a" });
      const [entry] = await collect(store.scan("lease"));
      assert.ok(entry && entry.ttlMs !== null && entry.ttlMs > 0 && entry.ttlMs <= 200);
      await sleep(300);
      assert.equal(await store.get(["lease", "l1"]), null);
    });

    await step("close() twice is fine and later calls reject", async (store) => {
      await store.set(["closing", "k"], 1);
      await Promise.all([store.close(), store.close()]);
      await store.close();
      await assert.rejects(store.get(["closing", "k"]), StoreUnavailableError);
      await assert.rejects(store.set(["closing", "k"], 2), StoreUnavailableError);
      await assert.rejects(
        store.run(counterWithCap, [["closing", "k"]], [5]),
        StoreUnavailableError,
      );
    });
  });
}
