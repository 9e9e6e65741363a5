import assert from "node:assert/strict";
import {
  acquireLeaseScript,
  type LeaseAnswer,
  leaseKey,
  releaseLeaseScript,
} from "../../src/store/lease.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { testOnBothStores } from "../support/stores.ts";

function acquire(
  store: KeyValueStore,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<LeaseAnswer> {
  return store.run(acquireLeaseScript, [leaseKey(name)], [holder, ttlMs]);
}

function release(store: KeyValueStore, name: string, holder: string): Promise<boolean> {
  return store.run(releaseLeaseScript, [leaseKey(name)], [holder]);
}

async function ttlOf(store: KeyValueStore, name: string): Promise<number | null> {
  for await (const entry of store.scan("leader")) {
    if (entry.key[1] === name) return entry.ttlMs;
  }
  return null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

testOnBothStores("lease scripts", async (t, store) => {
  await t.step("acquireLeaseScript takes a free lease for the TTL", async () => {
    assert.deepEqual(await acquire(store, "free", "a", 60_000), {
      held: true,
      holder: "a",
      ttlMs: 60_000,
    });
    const ttl = await ttlOf(store, "free");
    assert.ok(ttl !== null && ttl > 59_000 && ttl <= 60_000, `ttl ${ttl}`);
  });

  await t.step(
    "acquireLeaseScript leaves another holder's lease and says whose it is",
    async () => {
      await acquire(store, "taken", "a", 60_000);
      const answer = await acquire(store, "taken", "b", 60_000);
      assert.equal(answer.held, false);
      assert.equal(answer.holder, "a");
      assert.ok(answer.ttlMs > 59_000 && answer.ttlMs <= 60_000, `ttlMs ${answer.ttlMs}`);
    },
  );

  await t.step("acquireLeaseScript renews the holder's own lease with a fresh TTL", async () => {
    await acquire(store, "renew", "a", 1_000);
    assert.deepEqual(await acquire(store, "renew", "a", 60_000), {
      held: true,
      holder: "a",
      ttlMs: 60_000,
    });
    const ttl = await ttlOf(store, "renew");
    assert.ok(ttl !== null && ttl > 59_000, `ttl ${ttl}`);
  });

  await t.step("a lease nobody renews ends after its TTL and another holder takes it", async () => {
    await acquire(store, "expire", "a", 200);
    assert.equal((await acquire(store, "expire", "b", 200)).held, false);
    await sleep(300);
    assert.deepEqual(await acquire(store, "expire", "b", 5_000), {
      held: true,
      holder: "b",
      ttlMs: 5_000,
    });
  });

  await t.step("releaseLeaseScript deletes only the caller's own lease", async () => {
    await acquire(store, "release", "a", 60_000);
    assert.equal(await release(store, "release", "b"), false);
    assert.equal((await acquire(store, "release", "b", 60_000)).holder, "a");
    assert.equal(await release(store, "release", "a"), true);
    assert.equal(await release(store, "release", "a"), false, "already gone");
    assert.equal((await acquire(store, "release", "b", 60_000)).held, true);
  });

  await t.step("leases of different names are independent", async () => {
    assert.equal((await acquire(store, "one", "a", 60_000)).held, true);
    assert.equal((await acquire(store, "two", "b", 60_000)).held, true);
  });

  await t.step("of many concurrent takers exactly one gets a free lease", async () => {
    const holders = Array.from({ length: 10 }, (_, i) => `h${i}`);
    const answers = await Promise.all(holders.map((h) => acquire(store, "race", h, 60_000)));
    const winners = answers.filter((answer) => answer.held);
    assert.equal(winners.length, 1);
    assert.ok(answers.every((answer) => answer.holder === winners[0]!.holder));
  });
});
