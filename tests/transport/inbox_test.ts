import assert from "node:assert/strict";
import { join } from "node:path";
import type { Update } from "grammy/types";
import { logger } from "../../src/log.ts";
import { openKvStore } from "../../src/store/kv_store.ts";
import { openRedisStore } from "../../src/store/redis_store.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { UpdateInbox } from "../../src/transport/inbox.ts";
import { chunked, type InboxIndex, inboxKeys } from "../../src/transport/inbox_scripts.ts";
import { startRedis } from "../support/redis_server.ts";
import { textMessage } from "../updates.ts";

const log = logger("test");

const update = (id: number, text = "/help"): Update =>
  textMessage({ updateId: id, chatId: 1000 + id, text });

const ids = (updates: readonly Update[]) => updates.map((u) => u.update_id);

/** What a heartbeat with `adopt` takes over. */
async function take(inbox: UpdateInbox, adopt = true): Promise<Update[]> {
  return (await inbox.heartbeat({ adopt })).updates;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function settle(): Promise<void> {
  // Trims run after the finished update's microtasks.
  for (let i = 0; i < 5; i++) await sleep(5);
}

/** The contract both stores keep; `shared` stores respect the other instances' claims. */
async function inboxContract(t: Deno.TestContext, open: () => Promise<KeyValueStore>) {
  await t.step("a recorded batch is trimmed once every update finished", async () => {
    const store = await open();
    const inbox = new UpdateInbox({ store, owner: "a", log });
    assert.equal(await inbox.record([update(1), update(2)]), true);
    const index = await store.get(inboxKeys.index) as InboxIndex;
    assert.deepEqual(Object.values(index).map((e) => [e.o, e.ids, e.n]), [["a", [1, 2], 1]]);
    inbox.finished(1);
    await settle();
    assert.equal(inbox.openBatches, 1);
    inbox.finished(2);
    await settle();
    assert.equal(inbox.openBatches, 0);
    assert.equal(await store.get(inboxKeys.index), null);
    const [batch] = Object.keys(index);
    assert.equal(await store.get(inboxKeys.chunk(batch!, 0)), null);
    await inbox.stop();
  });

  await t.step("another instance replays an unfinished batch exactly as received", async () => {
    const store = await open();
    const first = new UpdateInbox({ store, owner: "first", log, claimTtlMs: 300 });
    // Ids and numbers past 2^53 / 10^14 would not survive a Lua decode and encode.
    const big = { ...update(10), extra: { id: -1001234567890123, text: 'é 😀 "q"' } };
    await first.record([big as Update, update(11)]);
    first.finished(11);
    await settle();
    const second = new UpdateInbox({ store, owner: "second", log, claimTtlMs: 300 });
    // The first one's claim is alive on a shared store: nothing to take yet.
    const early = await second.heartbeat({ adopt: true });
    if (store.shared) {
      assert.deepEqual(early, { updates: [], claimed: 1 }, "its owner still runs");
      await sleep(400);
      const late = await take(second);
      assert.deepEqual(ids(late), [10, 11]);
      assert.deepEqual(late[0], big);
    } else {
      assert.equal(early.claimed, 0);
      assert.deepEqual(ids(early.updates), [10, 11]);
      assert.deepEqual(early.updates[0], big);
    }
    if (store.shared) {
      // The batch is the second one's now, and its claim is alive: a third takes nothing.
      const third = new UpdateInbox({ store, owner: "third", log });
      assert.deepEqual(await take(third), []);
    }
    second.finished(10);
    second.finished(11);
    await settle();
    assert.equal(await store.get(inboxKeys.index), null);
  });

  await t.step("a heartbeat without adopt takes nothing", async () => {
    const store = await open();
    const first = new UpdateInbox({ store, owner: "p", log, claimTtlMs: 200 });
    await first.record([update(20)]);
    await sleep(250);
    const second = new UpdateInbox({ store, owner: "q", log });
    assert.deepEqual(await second.heartbeat({ adopt: false }), { updates: [], claimed: 0 });
    assert.deepEqual(ids(await take(second)), [20]);
  });

  await t.step("large batches are split into chunks under Deno KV's value limit", async () => {
    const store = await open();
    const inbox = new UpdateInbox({ store, owner: "big", log });
    const batch = Array.from({ length: 100 }, (_, i) => update(100 + i, "x".repeat(1500)));
    assert.equal(await inbox.record(batch), true);
    const [entry] = Object.values(await store.get(inboxKeys.index) as InboxIndex);
    assert.ok(entry!.n >= 5, `${entry!.n} chunks`);
    const other = new UpdateInbox({ store, owner: "other", log, claimTtlMs: 100 });
    if (store.shared) await store.delete(inboxKeys.claim("big"));
    assert.deepEqual(ids(await take(other)), ids(batch));
  });

  await t.step("a stop keeps the claim only while updates were abandoned", async () => {
    const store = await open();
    const idle = new UpdateInbox({ store, owner: "idle", log });
    await idle.record([update(30)]);
    idle.finished(30);
    await idle.stop();
    assert.equal(await store.get(inboxKeys.claim("idle")), null);

    const busy = new UpdateInbox({ store, owner: "busy", log, claimTtlMs: 200, exitGraceMs: 200 });
    await busy.record([update(31)]);
    await busy.stop();
    const taker = new UpdateInbox({ store, owner: "taker", log });
    if (store.shared) {
      await sleep(250);
      // Claimed past the TTL, but as exiting: a new leader need not wait for it to poll.
      assert.deepEqual(await taker.heartbeat({ adopt: true }), { updates: [], claimed: 0 });
      await sleep(250);
    }
    assert.deepEqual(ids(await take(taker)), [31]);
  });

  await t.step("a store that fails makes record answer false, never throw", async () => {
    const store = await open();
    const inbox = new UpdateInbox({ store, owner: "z", log });
    await store.close();
    assert.equal(await inbox.record([update(40)]), false);
    assert.deepEqual(await inbox.heartbeat({ adopt: true }), { updates: [], claimed: 0 });
    inbox.finished(40);
    await inbox.stop();
  });
}

Deno.test("UpdateInbox on Deno KV (one instance, no claims)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "inbox-test-" });
  const stores: KeyValueStore[] = [];
  try {
    await inboxContract(t, async () => {
      const store = await openKvStore(join(dir, `kv-${stores.length}.sqlite3`));
      stores.push(store);
      return store;
    });
  } finally {
    for (const store of stores) await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("UpdateInbox on Redis (shared: claims)", async (t) => {
  await using server = await startRedis();
  const stores: KeyValueStore[] = [];
  try {
    await inboxContract(t, async () => {
      const store = await openRedisStore({
        url: server.url,
        keyPrefix: `t${stores.length}:`,
      });
      stores.push(store);
      return store;
    });
  } finally {
    for (const store of stores) await store.close();
  }
});

Deno.test("chunked() keeps order and splits by the JSON size", () => {
  assert.deepEqual(chunked([]), []);
  assert.deepEqual(chunked(["a", "b"]), [["a", "b"]]);
  const parts = chunked(["aaaa", "bbbb", "cccc"], 16);
  assert.deepEqual(parts, [["aaaa", "bbbb"], ["cccc"]]);
  // An item larger than the limit gets a chunk of its own.
  assert.deepEqual(chunked(["x".repeat(50), "y"], 16), [["x".repeat(50)], ["y"]]);
});
