import assert from "node:assert/strict";
import type { Api } from "grammy";
import type { Update } from "grammy/types";
import { logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { Poller, type UpdateJournal } from "../../src/transport/polling.ts";
import { UpdateScheduler } from "../../src/transport/scheduler.ts";
import { textMessage } from "../updates.ts";

/**
 * Telegram's side of `getUpdates`: a queue confirmed by `offset`, a long poll that answers as
 * soon as something is queued at or above the offset.
 */
class FakeTelegram {
  queue: Update[] = [];
  /** The offset of every poll, in order. */
  readonly offsets: number[] = [];
  #wake: (() => void) | null = null;

  push(update: Update): void {
    this.queue.push(update);
    this.#wake?.();
  }

  readonly api = {
    getUpdates: async (params: { offset: number; timeout: number }, signal?: AbortSignal) => {
      this.offsets.push(params.offset);
      this.queue = this.queue.filter((u) => u.update_id >= params.offset);
      if (this.queue.length === 0 && params.timeout > 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          signal?.addEventListener("abort", () => resolve(), { once: true });
        });
        this.#wake = null;
        if (signal?.aborted) throw signal.reason;
      }
      return [...this.queue];
    },
  } as unknown as Api;
}

/** A journal whose answers the test chooses. */
class StubJournal implements UpdateJournal {
  readonly batches: number[][] = [];
  readonly finishedIds: number[] = [];
  answer: () => Promise<boolean> = () => Promise.resolve(true);

  record(updates: readonly Update[]): Promise<boolean> {
    this.batches.push(updates.map((u) => u.update_id));
    return this.answer();
  }

  finished(updateId: number): void {
    this.finishedIds.push(updateId);
  }
}

/** A scheduler whose updates of chat 1 wait until released; the others finish at once. */
function harness(
  inbox: UpdateJournal | null,
  options: { recordTimeoutMs?: number; maxInFlight?: number } = {},
) {
  const telegram = new FakeTelegram();
  const handled: number[] = [];
  const slow = Promise.withResolvers<void>();
  const metrics = new Metrics();
  const scheduler = new UpdateScheduler({
    handle: async (update) => {
      if (update.message?.chat.id === 1) await slow.promise;
      handled.push(update.update_id);
    },
  });
  const poller = new Poller({
    api: telegram.api,
    scheduler,
    allowedUpdates: ["message"],
    log: logger("test"),
    metrics,
    timeoutSeconds: 30,
    inbox,
    ...options,
  });
  return {
    telegram,
    handled,
    poller,
    scheduler,
    release: () => slow.resolve(),
    async [Symbol.asyncDispose]() {
      slow.resolve();
      await poller.stop();
      await scheduler.drain(1000);
      metrics[Symbol.dispose]();
    },
  };
}

const message = (updateId: number, chatId: number) =>
  textMessage({ updateId, chatId, text: "/help" });

async function until(probe: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("Poller: once the inbox recorded a batch, the next poll confirms it and a slow update holds up nobody", async () => {
  const journal = new StubJournal();
  await using h = harness(journal);
  h.poller.run();
  h.telegram.push(message(10, 1));
  await until(() => journal.batches.length === 1, "the batch recorded");
  // The poll after the batch asks past it at once, while update 10 still runs.
  await until(() => h.telegram.offsets.includes(11), "a poll past the slow update");
  assert.equal(h.scheduler.inFlight, 1);
  const started = performance.now();
  h.telegram.push(message(11, 2));
  await until(() => h.handled.includes(11), "another chat's update");
  assert.ok(performance.now() - started < 300, "not held up by a pause");
  assert.deepEqual(h.handled, [11]);
  assert.equal(h.telegram.offsets.filter((o) => o === 10).length, 0, "10 never re-fetched");
  assert.deepEqual(h.poller.status.lastError, null);

  h.release();
  await until(() => h.handled.includes(10), "the slow update");
  assert.deepEqual(journal.finishedIds.sort(), [10, 11]);
  assert.deepEqual(journal.batches, [[10], [11]]);
});

Deno.test("Poller: an update the inbox could not record stays unconfirmed until handled", async () => {
  const journal = new StubJournal();
  journal.answer = () => Promise.resolve(false);
  await using h = harness(journal);
  h.poller.run();
  h.telegram.push(message(20, 1));
  await until(() => h.telegram.offsets.filter((o) => o === 20).length >= 2, "a poll from 20");
  // Telegram sends 20 again with each poll; it runs once.
  h.telegram.push(message(21, 2));
  await until(() => h.handled.includes(21), "the next update");
  assert.equal(h.poller.offset, 20, "20 is not confirmed while it runs");
  h.release();
  await until(() => h.handled.includes(20), "the slow update");
  await until(() => h.poller.offset === 22, "the offset past both");
  assert.deepEqual(h.handled, [21, 20]);
});

Deno.test("Poller: an inbox that does not answer in time counts as not recording", async () => {
  const journal = new StubJournal();
  journal.answer = () => new Promise(() => {});
  await using h = harness(journal, { recordTimeoutMs: 50 });
  h.poller.run();
  h.telegram.push(message(30, 1));
  await until(() => h.telegram.offsets.filter((o) => o === 30).length >= 2, "a poll from 30");
  assert.equal(h.poller.offset, 30);
});

Deno.test("Poller: without an inbox, the offset is the lowest update in flight", async () => {
  await using h = harness(null);
  h.poller.run();
  h.telegram.push(message(40, 1));
  h.telegram.push(message(41, 2));
  await until(() => h.handled.includes(41), "the quick update");
  assert.equal(h.poller.offset, 40);
  h.release();
  await until(() => h.poller.offset === 42, "the offset past both");
});

Deno.test("Poller: a stop confirms what was recorded or finished, not what was not recorded", async () => {
  const journal = new StubJournal();
  await using h = harness(journal);
  h.poller.run();
  h.telegram.push(message(50, 1));
  await until(() => h.telegram.offsets.includes(51), "a poll past 50");
  journal.answer = () => Promise.resolve(false);
  h.telegram.push(message(51, 1));
  await until(() => journal.batches.length === 2, "the second batch");
  await h.poller.stop();
  // 50 is recorded (the inbox replays it if need be); 51 was not, and is still in flight.
  await h.poller.confirm();
  assert.equal(h.telegram.offsets.at(-1), 51);
});

Deno.test("Poller: with maxInFlight updates in flight it fetches no more until some finish", async () => {
  const journal = new StubJournal();
  await using h = harness(journal, { maxInFlight: 2 });
  h.poller.run();
  h.telegram.push(message(60, 1));
  h.telegram.push(message(61, 1));
  await until(() => h.scheduler.inFlight === 2, "two in flight");
  h.telegram.push(message(62, 2));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(h.scheduler.inFlight, 2, "62 stays at Telegram");
  assert.deepEqual(h.handled, []);
  h.release();
  await until(() => h.handled.includes(62), "62 once the backlog finished");
  assert.deepEqual(h.handled, [60, 61, 62]);
});
