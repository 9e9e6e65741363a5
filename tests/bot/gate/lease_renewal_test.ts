import assert from "node:assert/strict";
import { Composer } from "grammy";
import type { BotContext } from "../../../src/bot/context.ts";
import { LeaseRenewals } from "../../../src/bot/gate/lease_renewal.ts";
import { createBot } from "../../../src/bot/pipeline.ts";
import { openRedisStore } from "../../../src/store/redis_store.ts";
import { startRedis } from "../../support/redis_server.ts";
import { recordingFetch, testBotOptions, testGate } from "../../support/bots.ts";
import { textMessage } from "../../updates.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("LeaseRenewals renews what is held once it is due, and stops ticking when idle", async () => {
  const renewed: string[] = [];
  const renewals = new LeaseRenewals<{ name: string; renewedAt: number }>(
    (lease) => renewed.push(lease.name),
    50,
  );
  const a = { name: "a", renewedAt: performance.now() };
  renewals.add(a);
  await sleep(180);
  renewals.delete(a);
  const count = renewed.length;
  assert.ok(count >= 2, `renewed ${count} times in 180 ms at 50 ms`);
  assert.deepEqual(new Set(renewed), new Set(["a"]));
  await sleep(150);
  assert.equal(renewed.length, count, "nothing renewed after delete");
  // A fresh lease is not renewed before it is due.
  const b = { name: "b", renewedAt: performance.now() };
  renewals.add(b);
  await sleep(30);
  renewals.delete(b);
  assert.equal(renewed.length, count);
});

Deno.test("a long update keeps its chat's lease: another instance waits for it, not for the TTL", async () => {
  await using redis = await startRedis();
  const store = await openRedisStore({ url: redis.url, keyPrefix: "renew:" });
  try {
    const finished: string[] = [];
    const instance = (name: string, workMs: number) => {
      const composer = new Composer<BotContext>();
      composer.on("message", async () => {
        await sleep(workMs);
        finished.push(name);
      });
      return createBot(testBotOptions({
        fetch: recordingFetch([]),
        gate: testGate(store, { leaseMs: 300, instanceId: name }),
        features: [{ name: "slow", composer }],
      }));
    };
    const slow = instance("slow", 1_200);
    const quick = instance("quick", 0);
    const running = slow.handleUpdate(textMessage({ updateId: 1, chatId: 77, text: "a" }));
    await sleep(100);
    // Same chat on the other instance: the lease (300 ms, renewed) holds it back until done.
    await quick.handleUpdate(textMessage({ updateId: 2, chatId: 77, text: "b" }));
    await running;
    assert.deepEqual(finished, ["slow", "quick"]);
  } finally {
    await store.close();
  }
});
