import assert from "node:assert/strict";
import type { BucketConfig, Verdict } from "../../../src/bot/gate/bucket.ts";
import { rateLimitArgs } from "../../../src/bot/gate/bucket_script.ts";
import { gateScript } from "../../../src/bot/gate/scripts.ts";
import type { KeyValueStore, StoreKey } from "../../../src/store/store.ts";
import { testOnBothStores } from "../../support/stores.ts";

// A long window: a token takes minutes to come back, so real time between calls is no factor.
const CONFIG: BucketConfig = { capacity: 20, windowMs: 3_600_000, banAfter: 5, banMs: 60_000 };

let nextUpdateId = 1;

/** One new update from the bucket's owner through the gate script, which runs the bucket. */
async function take(store: KeyValueStore, key: StoreKey, config = CONFIG): Promise<Verdict> {
  // The gate's keys of one chat: the update's seen mark, the bucket, the dialog, the lease.
  const seen: StoreKey = ["seen", key[1], nextUpdateId++];
  const keys: StoreKey[] = [seen, key, ["fsm", key[1], "bench"], ["lease", key[1]]];
  const verdict = await store.run(gateScript, keys, [
    true,
    ...rateLimitArgs(config),
    "",
    0,
    60_000,
    60_000,
  ]);
  return (verdict.kind === "pass" ? { kind: "pass" } : verdict) as Verdict;
}

/** The steps both stores must pass; the Lua and the TS rules must answer alike. */
async function limiterSteps(t: Deno.TestContext, store: KeyValueStore): Promise<void> {
  await t.step("a burst passes up to the capacity, then one notice, then a ban", async () => {
    const key: StoreKey = ["rl", "burst"];
    const verdicts: Verdict[] = [];
    for (let i = 0; i < 27; i++) verdicts.push(await take(store, key));
    assert.deepEqual(verdicts.map((v) => v.kind), [
      ...Array(20).fill("pass"),
      ...Array(5).fill("limited"),
      "banned",
      "banned",
    ]);
    const notices = verdicts.flatMap((v) => v.kind === "pass" ? [] : [v.notify]);
    assert.deepEqual(notices, [true, false, false, false, false, true, false]);
    const firstLimit = verdicts[20] as Extract<Verdict, { kind: "limited" }>;
    // One token per 180 s (20 per hour); a few ms may have passed since the burst began.
    assert.ok(firstLimit.retryAfterMs > 179_000 && firstLimit.retryAfterMs <= 180_000);
  });

  await t.step("the bucket is stored with a TTL, so idle users cost nothing", async () => {
    const key: StoreKey = ["rl", "ttl"];
    await take(store, key);
    const entries = [];
    for await (const entry of store.scan("rl")) if (entry.key[1] === "ttl") entries.push(entry);
    assert.equal(entries.length, 1);
    // One token used: full again after 180 s.
    assert.ok(entries[0]!.ttlMs! > 170_000 && entries[0]!.ttlMs! <= 180_000);
  });

  await t.step("a ban that has run out is over, with a full bucket", async () => {
    const key: StoreKey = ["rl", "expired-ban"];
    await store.set(key, {
      tokens: 0,
      at: Date.now() - 120_000,
      violations: 6,
      told: true,
      bannedUntil: Date.now() - 1,
    });
    assert.deepEqual(await take(store, key), { kind: "pass" });
  });

  await t.step("under 200 concurrent callers exactly the capacity passes", async () => {
    const key: StoreKey = ["rl", "hammer"];
    const config = { ...CONFIG, capacity: 50, banAfter: 0 };
    const verdicts = await Promise.all(Array.from({ length: 200 }, () => take(store, key, config)));
    assert.equal(verdicts.filter((v) => v.kind === "pass").length, 50);
    assert.equal(verdicts.filter((v) => v.kind === "limited" && v.notify).length, 1);
  });

  await t.step("a value that is not a bucket is replaced by a full one", async () => {
    const key: StoreKey = ["rl", "garbage"];
    await store.set(key, "not a bucket");
    assert.deepEqual(await take(store, key), { kind: "pass" });
  });
}

testOnBothStores("the token bucket in store scripts", limiterSteps);
