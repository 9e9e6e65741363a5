import assert from "node:assert/strict";
import type { BucketConfig } from "../../src/bot/token_bucket.ts";
import { type GateArgs, gateScript, type GateVerdict } from "../../src/store/scripts/gate.ts";
import { rateLimitArgs } from "../../src/store/scripts/rate_limit.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { testOnBothStores } from "../support/stores.ts";

const LIMIT: BucketConfig = { capacity: 3, windowMs: 3_600_000, banAfter: 0, banMs: 60_000 };
const DAY_MS = 86_400_000;

async function gate(
  store: KeyValueStore,
  sender: number,
  updateId: number,
  limit = true,
): Promise<GateVerdict> {
  const args: GateArgs = [DAY_MS, limit, ...rateLimitArgs(LIMIT)];
  return await store.run(
    gateScript,
    [["seen", sender, updateId], ["rl", sender]],
    args,
  ) as GateVerdict;
}

testOnBothStores("gateScript", async (t, store) => {
  await t.step("an update delivered twice passes once; the copy takes no token", async () => {
    assert.deepEqual(await gate(store, 1, 100), { kind: "pass" });
    assert.deepEqual(await gate(store, 1, 100), { kind: "duplicate" });
    assert.deepEqual(await gate(store, 1, 101), { kind: "pass" });
    assert.deepEqual(await gate(store, 1, 102), { kind: "pass" });
    // The bucket (3) is spent by 100, 101 and 102, not by the duplicate.
    assert.equal((await gate(store, 1, 103)).kind, "limited");
  });

  await t.step("the update id is remembered for a day", async () => {
    await gate(store, 2, 200);
    const seen = [];
    for await (const entry of store.scan("seen")) if (entry.key[1] === "2") seen.push(entry);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]!.ttlMs! > DAY_MS - 60_000 && seen[0]!.ttlMs! <= DAY_MS);
  });

  await t.step("an exempt sender is never limited but still deduplicated", async () => {
    const verdicts = [];
    for (let id = 300; id < 310; id++) verdicts.push((await gate(store, 3, id, false)).kind);
    assert.deepEqual(verdicts, Array(10).fill("pass"));
    assert.equal((await gate(store, 3, 300, false)).kind, "duplicate");
  });

  await t.step("200 concurrent deliveries of one update: exactly one passes", async () => {
    const verdicts = await Promise.all(Array.from({ length: 200 }, () => gate(store, 4, 400)));
    assert.equal(verdicts.filter((v) => v.kind === "pass").length, 1);
    assert.equal(verdicts.filter((v) => v.kind === "duplicate").length, 199);
  });
});
