import assert from "node:assert/strict";
import type { Update } from "grammy/types";
import { Metrics } from "../../src/metrics/metrics.ts";
import { UpdateScheduler } from "../../src/transport/scheduler.ts";
import { textMessage } from "../updates.ts";

function message(updateId: number, chatId: number, text = "hi"): Update {
  return textMessage({ updateId, chatId, text, firstName: "A" });
}

/** Lets every pending callback run, so that whatever can start has started. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * A handler whose every call waits until the test releases it, and that records the order
 * of starts and how many ran at once.
 */
class ControlledHandler {
  readonly started: number[] = [];
  readonly finished: number[] = [];
  active = 0;
  maxActive = 0;
  readonly #gates = new Map<number, PromiseWithResolvers<void>>();

  readonly handle = async (update: Update): Promise<void> => {
    this.started.push(update.update_id);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await this.#gate(update.update_id).promise;
    } finally {
      this.active--;
      this.finished.push(update.update_id);
    }
  };

  /** Lets update `id` finish (or fail with `error`). */
  release(id: number, error?: Error): void {
    if (error) this.#gate(id).reject(error);
    else this.#gate(id).resolve();
  }

  #gate(id: number): PromiseWithResolvers<void> {
    let gate = this.#gates.get(id);
    if (!gate) this.#gates.set(id, gate = Promise.withResolvers<void>());
    return gate;
  }
}

Deno.test("UpdateScheduler runs one chat's updates strictly in order", async () => {
  const handler = new ControlledHandler();
  const scheduler = new UpdateScheduler({ handle: handler.handle });
  const done = [1, 2, 3].map((id) => scheduler.schedule(message(id, 5)));
  await settle();
  assert.deepEqual(handler.started, [1], "the second update of a chat started too early");
  handler.release(1);
  await settle();
  assert.deepEqual(handler.started, [1, 2]);
  handler.release(3); // released early: must still wait for 2
  await settle();
  assert.deepEqual(handler.started, [1, 2]);
  handler.release(2);
  await Promise.all(done);
  assert.deepEqual(handler.finished, [1, 2, 3]);
  assert.equal(handler.maxActive, 1);
  assert.equal(scheduler.inFlight, 0);
  assert.equal(scheduler.handled, 3);
});

Deno.test("UpdateScheduler handles different chats at the same time", async () => {
  const handler = new ControlledHandler();
  const scheduler = new UpdateScheduler({ handle: handler.handle });
  const done = [
    scheduler.schedule(message(1, 5)),
    scheduler.schedule(message(2, 6)),
    scheduler.schedule(message(3, 7)),
    scheduler.schedule(message(4, 5)),
  ];
  await settle();
  assert.deepEqual(handler.started, [1, 2, 3]);
  assert.equal(handler.active, 3);
  assert.deepEqual(scheduler.pendingIds(), [1, 2, 3, 4]);
  assert.ok(scheduler.pendingIds().includes(4));
  // A later chat finishing first is fine; chat 5's second update still waits for its first.
  handler.release(3);
  handler.release(2);
  await settle();
  assert.deepEqual(handler.finished, [3, 2]);
  assert.deepEqual(scheduler.pendingIds(), [1, 4]);
  handler.release(1);
  handler.release(4);
  await Promise.all(done);
  assert.deepEqual(handler.finished, [3, 2, 1, 4]);
  assert.deepEqual(scheduler.pendingIds(), []);
});

Deno.test("UpdateScheduler never exceeds its concurrency bound", async () => {
  const handler = new ControlledHandler();
  const scheduler = new UpdateScheduler({ handle: handler.handle, concurrency: 3 });
  const ids = Array.from({ length: 10 }, (_, i) => i + 1);
  const done = ids.map((id) => scheduler.schedule(message(id, 100 + id)));
  await settle();
  assert.equal(handler.active, 3);
  assert.equal(scheduler.inFlight, 10, "waiting updates count as in flight");
  for (const id of ids) {
    handler.release(id);
    await settle();
    assert.ok(handler.active <= 3, `${handler.active} handlers ran at once`);
  }
  await Promise.all(done);
  assert.equal(handler.maxActive, 3);
  assert.deepEqual([...handler.finished].sort((a, b) => a - b), ids);
});

Deno.test("UpdateScheduler counts a handler that throws as finished and reports it", async () => {
  const errors: Array<{ id: number; error: unknown }> = [];
  const handler = new ControlledHandler();
  const scheduler = new UpdateScheduler({
    handle: handler.handle,
    concurrency: 1,
    onError: (update, error) => errors.push({ id: update.update_id, error }),
  });
  const failure = new Error("handler blew up");
  const first = scheduler.schedule(message(1, 5));
  const second = scheduler.schedule(message(2, 5));
  const other = scheduler.schedule(message(3, 6));
  handler.release(1, failure);
  // schedule() never rejects, even for a failing update.
  await first;
  assert.deepEqual(errors, [{ id: 1, error: failure }]);
  // The slot and the chat are free again: the next updates run.
  handler.release(2);
  handler.release(3);
  await Promise.all([second, other]);
  assert.equal(scheduler.handled, 3);
  assert.equal(scheduler.inFlight, 0);
});

Deno.test("UpdateScheduler runs an update scheduled twice only once", async () => {
  const handler = new ControlledHandler();
  const scheduler = new UpdateScheduler({ handle: handler.handle });
  const a = scheduler.schedule(message(1, 5));
  const b = scheduler.schedule(message(1, 5));
  assert.equal(a, b);
  assert.equal(scheduler.inFlight, 1);
  handler.release(1);
  await Promise.all([a, b]);
  assert.deepEqual(handler.started, [1]);
  assert.equal(scheduler.handled, 1);
});

Deno.test("UpdateScheduler.drain()", async (t) => {
  await t.step("returns at once with nothing in flight", async () => {
    const scheduler = new UpdateScheduler({ handle: () => Promise.resolve() });
    assert.deepEqual(await scheduler.drain(50), { finished: 0, abandoned: [] });
  });

  await t.step("waits for every update in flight", async () => {
    const handler = new ControlledHandler();
    const scheduler = new UpdateScheduler({ handle: handler.handle });
    scheduler.schedule(message(1, 5));
    scheduler.schedule(message(2, 5));
    scheduler.schedule(message(3, 6));
    const draining = scheduler.drain(60_000);
    await settle();
    handler.release(1);
    handler.release(3);
    await settle();
    handler.release(2);
    assert.deepEqual(await draining, { finished: 3, abandoned: [] });
  });

  await t.step("returns finished count and abandoned ids when a handler hangs", async () => {
    const handler = new ControlledHandler();
    const scheduler = new UpdateScheduler({ handle: handler.handle });
    const done = [
      scheduler.schedule(message(1, 5)),
      scheduler.schedule(message(2, 6)),
      scheduler.schedule(message(3, 6)),
      scheduler.schedule(message(4, 7)),
    ];
    handler.release(1);
    handler.release(4);
    // Update 2 never finishes, so 3 (same chat) never starts.
    const result = await scheduler.drain(50);
    assert.deepEqual(result, { finished: 2, abandoned: [2, 3] });
    assert.deepEqual(handler.started.sort(), [1, 2, 4]);
    // Let the hanging handler end so that no promise outlives the test.
    handler.release(2);
    handler.release(3);
    await Promise.all(done);
    assert.equal(scheduler.inFlight, 0);
  });
});

Deno.test("UpdateScheduler keeps the in-flight gauge equal to unfinished updates", async () => {
  using metrics = new Metrics();
  const gauge = async () => {
    const text = await metrics.registry.getSingleMetricAsString("bot_updates_in_flight");
    return Number(
      text.split("\n").find((l) => l.startsWith("bot_updates_in_flight "))?.split(" ")[1],
    );
  };
  const handler = new ControlledHandler();
  const scheduler = new UpdateScheduler({ handle: handler.handle, metrics, concurrency: 1 });
  const done = [
    scheduler.schedule(message(1, 5)),
    scheduler.schedule(message(2, 6)),
    scheduler.schedule(message(1, 5)), // a duplicate is not counted twice
  ];
  assert.equal(await gauge(), 2);
  handler.release(1);
  await done[0];
  assert.equal(await gauge(), 1);
  handler.release(2, new Error("failed"));
  await Promise.all(done);
  assert.equal(await gauge(), 0);
});
