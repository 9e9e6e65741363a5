/**
 * The flood scripts on both stores: the Lua twin (Redis) and the TypeScript twin (Deno KV) must
 * answer alike. Windows are an hour long, so that the real time between calls plays no part.
 */
import assert from "node:assert/strict";
import type { LogRule } from "../../../src/bot/flood/limits.ts";
import {
  floodKeys,
  pauseScript,
  releaseScript,
  takeArgs,
  takeScript,
  takeSpec,
} from "../../../src/bot/flood/script.ts";
import type { KeyValueStore, StoreKey } from "../../../src/store/store.ts";
import { testOnBothStores } from "../../support/stores.ts";

const HOUR = 3_600_000;
const rule = (limit: number, keep = limit, windowMs = HOUR): LogRule => ({ limit, keep, windowMs });

function take(store: KeyValueStore, keys: StoreKey[], rules: LogRule[]): Promise<number> {
  return store.run(takeScript, keys, takeArgs(rules)).then((answer) => answer.waits[0]!);
}

testOnBothStores("flood scripts", async (t, store) => {
  const { global, chat, bulk } = floodKeys(42);

  await t.step("a log lets `limit` messages through, then answers how long to wait", async () => {
    const key: StoreKey = ["flood", "bot", "limit"];
    const waits = [];
    for (let i = 0; i < 5; i++) waits.push(await take(store, [key], [rule(3)]));
    assert.deepEqual(waits.slice(0, 3), [0, 0, 0]);
    assert.ok(waits[3]! > HOUR - 5000 && waits[3]! <= HOUR, `waited ${waits[3]}`);
  });

  await t.step("the log is stored with its window as TTL and a list of send times", async () => {
    const key: StoreKey = ["flood", "bot", "ttl"];
    await take(store, [key], [rule(3, 3, 60_000)]);
    const entries = [];
    for await (const entry of store.scan("flood")) if (entry.key[2] === "ttl") entries.push(entry);
    assert.equal(entries.length, 1);
    assert.ok(entries[0]!.ttlMs! > 55_000 && entries[0]!.ttlMs! <= 60_000);
    const value = entries[0]!.value as { t: number[]; p: number };
    assert.equal(value.t.length, 1);
    assert.ok(Math.abs(value.t[0]! - Date.now()) < 5000);
  });

  await t.step("bulk leaves the reserve: it stops at 8 of 10, replies go on to 10", async () => {
    const key: StoreKey = ["flood", "bot", "reserve"];
    const bulkWaits = [];
    for (let i = 0; i < 9; i++) bulkWaits.push(await take(store, [key], [rule(8, 10)]));
    assert.deepEqual(bulkWaits.map((w) => w === 0), [...Array(8).fill(true), false]);
    assert.equal(await take(store, [key], [rule(10)]), 0);
    assert.equal(await take(store, [key], [rule(10)]), 0);
    assert.ok(await take(store, [key], [rule(10)]) > 0);
  });

  await t.step("every key must allow it; a refused message is recorded in none", async () => {
    const rules = [rule(30), rule(2), rule(100)];
    assert.equal(await take(store, [global, chat, bulk], rules), 0);
    assert.equal(await take(store, [global, chat, bulk], rules), 0);
    assert.ok(await take(store, [global, chat, bulk], rules) > 0, "the chat is full");
    const [g, c, b] = await store.getMany([global, chat, bulk]) as { t: number[] }[];
    assert.deepEqual([g!.t.length, c!.t.length, b!.t.length], [2, 2, 2]);
    // Another chat still gets through the same bot-wide log.
    const other = floodKeys(43);
    assert.equal(await take(store, [global, other.chat, bulk], rules), 0);
  });

  await t.step("a pause holds every message until it ends, and keeps the send times", async () => {
    const key: StoreKey = ["flood", "bot", "paused"];
    await take(store, [key], [rule(30)]);
    const until = await store.run(pauseScript, [key], [5000, 1050]);
    assert.ok(Math.abs(until - (Date.now() + 5000)) < 2000);
    const wait = await take(store, [key], [rule(30)]);
    assert.ok(wait > 3000 && wait <= 5000, `waited ${wait}`);
    // A shorter pause on top does not shorten it.
    assert.equal(await store.run(pauseScript, [key], [1000, 1050]), until);
    assert.equal(((await store.get(key)) as { t: number[] }).t.length, 1);
  });

  await t.step("a pause on an empty log is read back by both twins", async () => {
    const key: StoreKey = ["flood", "bot", "paused-empty"];
    await store.run(pauseScript, [key], [5000, 1050]);
    assert.ok(await take(store, [key], [rule(30)]) > 3000);
  });

  await t.step(
    "a take ahead records its send that much later, and the log is kept until it leaves the window",
    async () => {
      const key: StoreKey = ["flood", "bot", "ahead"];
      const { waits, at } = await store.run(takeScript, [key], takeArgs([rule(2, 2, 1000)], 50));
      assert.deepEqual(waits, [0]);
      assert.deepEqual(((await store.get(key)) as { t: number[] }).t, [at + 50]);
      // Counted from now on: the limit of two leaves room for one more, then none.
      assert.equal(await take(store, [key], [rule(2, 2, 1000)]), 0);
      const wait = await take(store, [key], [rule(2, 2, 1000)]);
      assert.ok(wait > 900 && wait <= 1000, `waited ${wait}`);
      for await (const entry of store.scan("flood")) {
        if (entry.key[2] === "ahead") assert.ok(entry.ttlMs! > 1000, `kept ${entry.ttlMs} ms`);
      }
      // A pause keeps it as long, too.
      await store.run(pauseScript, [key], [10, 1000]);
      for await (const entry of store.scan("flood")) {
        if (entry.key[2] === "ahead") assert.ok(entry.ttlMs! > 1000, `kept ${entry.ttlMs} ms`);
      }
    },
  );

  await t.step("a release takes back one send recorded at its time, from every log", async () => {
    const all: StoreKey = ["flood", "bot", "release-all"];
    const one: StoreKey = ["flood", "bot", "release-one"];
    const first = await store.run(takeScript, [all, one], takeArgs([rule(3), rule(1)]));
    assert.deepEqual(first.waits, [0]);
    assert.ok(Math.abs(first.at - Date.now()) < 5000, `recorded at ${first.at}`);
    assert.ok(
      (await store.run(takeScript, [all, one], takeArgs([rule(3), rule(1)]))).waits[0]! > 0,
    );
    await store.run(takeScript, [all], takeArgs([rule(3)]));
    assert.deepEqual(
      await store.run(releaseScript, [all, one], [first.at, [HOUR, HOUR]]),
      { released: 2 },
    );
    const [a, o] = await store.getMany([all, one]) as { t: number[] }[];
    assert.equal(a!.t.length, 1, "the other send stays");
    assert.deepEqual(o!.t, []);
    // The chat's log has room again; a time no log holds changes nothing.
    assert.equal(await take(store, [one], [rule(1)]), 0);
    assert.deepEqual(await store.run(releaseScript, [all], [1, [HOUR]]), { released: 0 });
    assert.equal(((await store.get(all)) as { t: number[] }).t.length, 1);
    // The log keeps its TTL (within its window).
    for await (const entry of store.scan("flood")) {
      if (entry.key[2] === "release-all") assert.ok(entry.ttlMs! > HOUR - 60_000, `${entry.ttlMs}`);
    }
  });

  await t.step(
    "a take may first give back a send recorded at a given time: the same call frees its room",
    async () => {
      const all: StoreKey = ["flood", "bot", "back-all"];
      const one: StoreKey = ["flood", "bot", "back-one"];
      const rules = [rule(3), rule(1)];
      const first = await store.run(takeScript, [all, one], takeArgs(rules, 50));
      assert.deepEqual(first.waits, [0]);
      // The chat's log is full; giving back the send recorded ahead makes room for this one.
      assert.ok((await store.run(takeScript, [all, one], takeArgs(rules))).waits[0]! > 0);
      const again = await store.run(takeScript, [all, one], [[takeSpec(rules)], [0], [
        first.at + 50,
      ]]);
      assert.deepEqual(again.waits, [0]);
      const [a, o] = await store.getMany([all, one]) as { t: number[] }[];
      assert.deepEqual(o!.t, [again.at], "the chat's log holds the new send only");
      assert.deepEqual(a!.t, [again.at], "so does the bot's");
      // A time no log holds changes nothing but the take itself.
      const third = await store.run(takeScript, [all], [[takeSpec([rule(3)])], [0], [1]]);
      assert.deepEqual(third.waits, [0]);
      assert.equal(((await store.get(all)) as { t: number[] }).t.length, 2);
    },
  );

  await t.step(
    "a refused take still gives back its send, and a pause stays as it was",
    async () => {
      const key: StoreKey = ["flood", "bot", "back-paused"];
      const first = await store.run(takeScript, [key], takeArgs([rule(3)], 50));
      const until = await store.run(pauseScript, [key], [HOUR / 2, HOUR]);
      const refused = await store.run(takeScript, [key], [[takeSpec([rule(3)])], [0], [
        first.at + 50,
      ]]);
      assert.ok(refused.waits[0]! > HOUR / 2 - 5000, `waits ${refused.waits[0]} ms`);
      const stored = (await store.get(key)) as { t: number[]; p: number };
      assert.deepEqual(stored, { t: [], p: until });
      for await (const entry of store.scan("flood")) {
        if (entry.key[2] === "back-paused") {
          assert.ok(entry.ttlMs! > HOUR / 2 - 60_000, `kept ${entry.ttlMs} ms`);
        }
      }
      // Nothing gets through while paused.
      assert.ok(await take(store, [key], [rule(3)]) > 0);
    },
  );

  await t.step("under 200 concurrent callers exactly the limit passes", async () => {
    const key: StoreKey = ["flood", "bot", "hammer"];
    const waits = await Promise.all(
      Array.from({ length: 200 }, () => take(store, [key], [rule(30)])),
    );
    assert.equal(waits.filter((w) => w === 0).length, 30);
  });

  await t.step("one call decides several messages in order, as separate calls would", async () => {
    const shared: StoreKey = ["flood", "bot", "many-all"];
    const a: StoreKey = ["flood", "bot", "many-a"];
    const b: StoreKey = ["flood", "bot", "many-b"];
    const rules = [rule(4), rule(2)];
    const overA = takeSpec(rules, [0, 1]);
    const overB = takeSpec(rules, [0, 2]);
    const { waits } = await store.run(takeScript, [shared, a, b], [
      [overA, overA, overA, overB, overB, overB],
      [0, 0, 0, 0, 0, 0],
    ]);
    // Chat a is full after two; b gets two of what the bot-wide log has left (4 in all).
    assert.deepEqual(waits.map((wait) => wait === 0), [true, true, false, true, true, false]);
    const [all, inA, inB] = await store.getMany([shared, a, b]) as { t: number[] }[];
    assert.deepEqual([all!.t.length, inA!.t.length, inB!.t.length], [4, 2, 2]);
    assert.ok(waits[2]! > HOUR - 5000 && waits[5]! > HOUR - 5000);
  });

  await t.step("a value that is not a log counts as an empty one", async () => {
    const key: StoreKey = ["flood", "bot", "garbage"];
    await store.set(key, "not a log");
    assert.equal(await take(store, [key], [rule(1)]), 0);
    assert.ok(await take(store, [key], [rule(1)]) > 0);
  });
});
