import assert from "node:assert/strict";
import type { BucketConfig } from "../../src/bot/token_bucket.ts";
import {
  type GateArgs,
  gateScript,
  type GateVerdict,
  markSeen,
  SEEN_TTL_MS,
  seenKey,
} from "../../src/store/scripts/gate.ts";
import { rateLimitArgs } from "../../src/store/scripts/bucket.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { testOnBothStores } from "../support/stores.ts";

const LIMIT: BucketConfig = { capacity: 3, windowMs: 3_600_000, banAfter: 0, banMs: 60_000 };

async function gate(
  store: KeyValueStore,
  sender: number,
  updateId: number,
  limit = true,
): Promise<GateVerdict> {
  const args: GateArgs = [limit, ...rateLimitArgs(LIMIT)];
  const keys = [seenKey(sender, updateId), ["rl", sender] as const];
  return await store.run(gateScript, keys, args) as GateVerdict;
}

testOnBothStores("gateScript", async (t, store) => {
  await t.step(
    "an update delivered again after it was handled is a duplicate and takes no token",
    async () => {
      assert.deepEqual(await gate(store, 1, 100), { kind: "pass" });
      await markSeen(store, 1, 100);
      assert.deepEqual(await gate(store, 1, 100), { kind: "duplicate" });
      assert.deepEqual(await gate(store, 1, 101), { kind: "pass" });
      assert.deepEqual(await gate(store, 1, 102), { kind: "pass" });
      // The bucket (3) is spent by 100, 101 and 102, not by the duplicate.
      assert.equal((await gate(store, 1, 103)).kind, "limited");
    },
  );

  await t.step("an update not marked as handled (abandoned, crashed) passes again", async () => {
    assert.deepEqual(await gate(store, 5, 500), { kind: "pass" });
    assert.deepEqual(await gate(store, 5, 500), { kind: "pass" });
  });

  await t.step("a handled update id is remembered for a day", async () => {
    await markSeen(store, 2, 200);
    const seen = [];
    for await (const entry of store.scan("seen")) if (entry.key[1] === "2") seen.push(entry);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]!.ttlMs! > SEEN_TTL_MS - 60_000 && seen[0]!.ttlMs! <= SEEN_TTL_MS);
  });

  await t.step("an exempt sender is never limited but still deduplicated", async () => {
    const verdicts = [];
    for (let id = 300; id < 310; id++) verdicts.push((await gate(store, 3, id, false)).kind);
    assert.deepEqual(verdicts, Array(10).fill("pass"));
    await markSeen(store, 3, 300);
    assert.equal((await gate(store, 3, 300, false)).kind, "duplicate");
  });
});
