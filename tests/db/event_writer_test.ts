import assert from "node:assert/strict";
import { EventWriter, type EventWriterOptions } from "../../src/db/event_writer.ts";
import { type EventRecord, insertEvents } from "../../src/db/events.ts";
import { Migrator, parseMigrations } from "../../src/db/migrate.ts";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import { UserRepository } from "../../src/db/users.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { testOnBothBackends } from "../support/databases.ts";

function event(updateId: number, userId: number | null = null): EventRecord {
  return {
    updateId,
    userId,
    chatId: userId,
    type: "message",
    command: null,
    outcome: "handled",
    durationMs: 1,
    at: new Date(Date.UTC(2025, 0, 1) + updateId),
  };
}

/**
 * A fake database write: records each batch it is given, fails while `failing` is set, and
 * after {@link FakeWrite.hold} waits until the test lets it succeed or fail.
 */
class FakeWrite {
  /** Update ids of every batch passed to `write`, in call order, failed ones included. */
  readonly calls: number[][] = [];
  /** Update ids of the batches written successfully. */
  readonly written: number[][] = [];
  failing = false;
  /** Update ids the database refuses for their data, as Postgres does a NUL in a text. */
  readonly refused = new Set<number>();
  #held: PromiseWithResolvers<"ok" | "fail"> | null = null;
  #waiters: Array<() => void> = [];

  readonly write = async (batch: readonly EventRecord[]): Promise<void> => {
    const ids = batch.map((e) => e.updateId);
    this.calls.push(ids);
    for (const wake of this.#waiters.splice(0)) wake();
    const outcome = this.#held ? await this.#held.promise : this.failing ? "fail" : "ok";
    if (outcome === "fail") throw new Error("connection refused");
    if (ids.some((id) => this.refused.has(id))) {
      throw Object.assign(new Error("invalid byte sequence for encoding UTF8: 0x00"), {
        code: "22021",
      });
    }
    this.written.push(ids);
  };

  /** Makes writes wait until {@link FakeWrite.release}, like a database that stopped answering. */
  hold(): void {
    this.#held ??= Promise.withResolvers();
  }

  /** Lets the writes waiting since {@link FakeWrite.hold} succeed or fail; later ones run freely. */
  release(outcome: "ok" | "fail"): void {
    this.#held?.resolve(outcome);
    this.#held = null;
  }

  /** Resolves at the next call of `write`; rejects after `withinMs` without one. */
  nextCall(withinMs = 2_000): Promise<void> {
    return within(new Promise((resolve) => this.#waiters.push(resolve)), withinMs, "write");
  }
}

/** `promise`, or a rejection naming `what` when it has not settled after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lets pending promise callbacks and zero-delay timers run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A writer on `fake` that is closed when the step ends, with the metrics it counts in. */
function writerOn(fake: FakeWrite, options: Partial<EventWriterOptions> = {}) {
  const metrics = new Metrics();
  let now = 0;
  const writer = new EventWriter({
    write: fake.write,
    metrics,
    flushIntervalMs: 60_000,
    now: () => now,
    ...options,
  });
  return {
    writer,
    metrics,
    /** Moves the writer's clock on. */
    advance(ms: number): void {
      now += ms;
    },
    /** The value of `name` with `labels`, as `/metrics` would show it. */
    async value(name: string, labels: Record<string, string> = {}): Promise<number> {
      const metric = metrics.registry.getSingleMetric(name);
      assert.ok(metric, `no metric ${name}`);
      const { values } = await metric.get();
      const found = values.find((v) =>
        Object.entries(labels).every(([key, value]) => v.labels[key] === value)
      );
      return found?.value ?? 0;
    },
    async [Symbol.asyncDispose]() {
      fake.failing = false;
      fake.release("ok");
      await within(writer.close(1_000), 5_000, "close()").catch(() => {});
      metrics[Symbol.dispose]();
    },
  };
}

const QUEUE = "bot_event_queue_size";
const WRITTEN = "bot_events_written_total";
const DROPPED = "bot_events_dropped_total";
const ERRORS = "bot_event_write_errors_total";

Deno.test("EventWriter", async (t) => {
  await t.step("record() returns at once and leaves a partial batch queued", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { batchSize: 10 });
    w.writer.record(event(1));
    w.writer.record(event(2));
    assert.deepEqual(fake.calls, [], "write is never called synchronously");
    await settle();
    assert.deepEqual(fake.calls, [], "a partial batch waits for the interval");
    assert.equal(w.writer.pending, 2);
    assert.equal(await w.value(QUEUE), 2);
  });

  await t.step({
    name: "record() that fills a batch returns before write is called",
    fn: async () => {
      const fake = new FakeWrite();
      await using w = writerOn(fake, { batchSize: 2 });
      w.writer.record(event(1));
      w.writer.record(event(2));
      assert.deepEqual(fake.calls, [], "write must not run inside record()");
      await fake.nextCall();
    },
  });

  await t.step(
    "a steady trickle is written in full batches, not a write per few events",
    async () => {
      const fake = new FakeWrite();
      await using w = writerOn(fake, { batchSize: 10, flushIntervalMs: 60_000 });
      for (let i = 1; i <= 95; i++) {
        w.writer.record(event(i));
        // Handlers finish one by one: let the writer run between them, mid-write included.
        await settle();
      }
      assert.deepEqual(fake.written.map((batch) => batch.length), Array(9).fill(10));
      await w.writer.flush();
      assert.deepEqual(fake.written.at(-1), [91, 92, 93, 94, 95]);
    },
  );

  await t.step("a full batch is written at once, without waiting for the interval", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { batchSize: 3 });
    for (const id of [1, 2]) w.writer.record(event(id));
    await settle();
    assert.deepEqual(fake.calls, []);
    w.writer.record(event(3));
    await settle();
    assert.deepEqual(fake.written, [[1, 2, 3]]);
    assert.equal(await w.value(WRITTEN), 3);
    assert.equal(w.writer.pending, 0);
    assert.equal(await w.value(QUEUE), 0);
  });

  await t.step("a partial batch is written once flushIntervalMs has passed", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { batchSize: 10, flushIntervalMs: 20 });
    const written = fake.nextCall();
    w.writer.record(event(1));
    w.writer.record(event(2));
    assert.deepEqual(fake.calls, []);
    await written;
    assert.deepEqual(fake.written, [[1, 2]]);
  });

  await t.step("flush() writes a partial batch now", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { batchSize: 10 });
    for (const id of [1, 2, 3]) w.writer.record(event(id));
    await w.writer.flush();
    assert.deepEqual(fake.written, [[1, 2, 3]]);
    assert.equal(w.writer.pending, 0);
    assert.equal(await w.value(QUEUE), 0);
  });

  await t.step(
    "a failed write keeps its events and the next one writes them in order",
    async () => {
      const fake = new FakeWrite();
      await using w = writerOn(fake, { batchSize: 10 });
      fake.failing = true;
      for (const id of [1, 2, 3]) w.writer.record(event(id));
      await w.writer.flush();
      assert.deepEqual(fake.calls, [[1, 2, 3]]);
      assert.equal(await w.value(ERRORS), 1);
      assert.equal(await w.value(WRITTEN), 0);
      assert.equal(w.writer.pending, 3);

      for (const id of [4, 5]) w.writer.record(event(id));
      fake.failing = false;
      // A failed database gets a breather: an immediate flush does not hammer it.
      await w.writer.flush();
      assert.deepEqual(fake.written, []);
      w.advance(60_000);
      await w.writer.flush();
      assert.deepEqual(fake.written, [[1, 2, 3, 4, 5]]);
      assert.equal(await w.value(WRITTEN), 5);
      assert.equal(await w.value(ERRORS), 1);
      assert.equal(await w.value(DROPPED, { reason: "queue_full" }), 0);
      assert.equal(await w.value(QUEUE), 0);
    },
  );

  await t.step(
    "a batch refused for one row's data is split: the rest is written, that row dropped and counted",
    async () => {
      const fake = new FakeWrite();
      await using w = writerOn(fake, { batchSize: 100 });
      fake.refused.add(6);
      for (let id = 1; id <= 10; id++) w.writer.record(event(id));
      await w.writer.flush();
      assert.deepEqual(fake.written.flat().sort((a, b) => a - b), [1, 2, 3, 4, 5, 7, 8, 9, 10]);
      assert.equal(await w.value(DROPPED, { reason: "rejected" }), 1);
      assert.equal(await w.value(WRITTEN), 9);
      assert.equal(w.writer.pending, 0);
      assert.equal(w.writer.lastError, null, "refused rows are no outage");
      // The log goes on.
      w.writer.record(event(11));
      await w.writer.flush();
      assert.deepEqual(fake.written.at(-1), [11]);
    },
  );

  await t.step("a queue over capacity drops the oldest events and counts them", async (t) => {
    const cases: Array<[name: string, failFirst: boolean]> = [
      ["while nothing is written", false],
      ["while the database refuses writes", true],
    ];
    for (const [name, failFirst] of cases) {
      await t.step(name, async () => {
        const fake = new FakeWrite();
        await using w = writerOn(fake, { batchSize: 100, capacity: 5 });
        fake.failing = failFirst;
        for (const id of [1, 2, 3, 4]) w.writer.record(event(id));
        if (failFirst) await w.writer.flush();
        for (const id of [5, 6, 7, 8]) w.writer.record(event(id));
        assert.equal(w.writer.pending, 5);
        assert.equal(await w.value(QUEUE), 5);
        fake.failing = false;
        w.advance(60_000);
        await w.writer.flush();
        assert.deepEqual(fake.written, [[4, 5, 6, 7, 8]]);
        assert.match(
          await w.metrics.registry.getSingleMetricAsString(DROPPED),
          /^bot_events_dropped_total\{reason="queue_full"\} 3$/m,
        );
      });
    }
  });

  await t.step("close() writes what is queued", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { batchSize: 3 });
    for (const id of [1, 2, 3, 4, 5]) w.writer.record(event(id));
    await w.writer.close(1_000);
    assert.deepEqual(fake.written.flat(), [1, 2, 3, 4, 5]);
    assert.equal(w.writer.pending, 0);
    assert.equal(await w.value(QUEUE), 0);
    assert.equal(await w.value(DROPPED, { reason: "shutdown" }), 0);
  });

  await t.step("close() retries a failing write, then drops the rest at the timeout", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { batchSize: 10 });
    for (const id of [1, 2, 3]) w.writer.record(event(id));
    fake.failing = true;
    await within(w.writer.close(1_000), 10_000, "close(1000)");
    assert.ok(fake.calls.length >= 2, `retried: ${fake.calls.length} attempts`);
    assert.ok(fake.calls.every((ids) => ids.join() === "1,2,3"));
    assert.deepEqual(fake.written, []);
    assert.equal(await w.value(DROPPED, { reason: "shutdown" }), 3);
    assert.equal(await w.value(ERRORS), fake.calls.length);
    assert.equal(w.writer.pending, 0);
    assert.equal(await w.value(QUEUE), 0);
  });

  await t.step({
    name: "close() retries a batch whose write was in flight and failed",
    fn: async () => {
      const fake = new FakeWrite();
      await using w = writerOn(fake, { batchSize: 3 });
      fake.hold();
      for (const id of [1, 2, 3]) w.writer.record(event(id));
      await settle();
      assert.deepEqual(fake.calls, [[1, 2, 3]], "the batch is being written");
      const closing = w.writer.close(5_000);
      fake.release("fail");
      await within(closing, 10_000, "close(5000)");
      assert.deepEqual(fake.written, [[1, 2, 3]]);
      assert.equal(await w.value(DROPPED, { reason: "shutdown" }), 0);
    },
  });

  await t.step({
    name: "close() gives up at the timeout even when a write never settles",
    fn: async () => {
      const fake = new FakeWrite();
      await using w = writerOn(fake, { batchSize: 10 });
      for (const id of [1, 2, 3]) w.writer.record(event(id));
      fake.hold();
      await within(w.writer.close(100), 5_000, "close(100)");
      assert.equal(await w.value(DROPPED, { reason: "shutdown" }), 3);
    },
  });

  await t.step("record() after close() drops the event and counts it", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake, { flushIntervalMs: 20 });
    await w.writer.close(1_000);
    w.writer.record(event(1));
    await w.writer.flush();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(fake.calls, []);
    assert.equal(w.writer.pending, 0);
    assert.equal(await w.value(DROPPED, { reason: "shutdown" }), 1);
    assert.equal(await w.value(QUEUE), 0);
  });

  await t.step("close() is idempotent", async () => {
    const fake = new FakeWrite();
    await using w = writerOn(fake);
    w.writer.record(event(1));
    const first = w.writer.close(1_000);
    assert.equal(w.writer.close(1_000), first);
    await first;
    assert.deepEqual(fake.written, [[1]]);
  });
});

testOnBothBackends("EventWriter with insertEvents() and touch()", async (t, { fresh }) => {
  const db = await fresh();
  await new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)).up();
  const users = new UserRepository(db.sql);

  await t.step("5000 events recorded at once are 5000 rows after close()", async () => {
    const ids = [7_000_000_001, 7_000_000_002, 7_000_000_003];
    for (const id of ids) {
      await users.upsert({
        id,
        username: null,
        firstName: "U",
        lastName: null,
        languageCode: null,
      });
    }
    using metrics = new Metrics();
    // The write of src/storage.ts: the events, then the users' "last seen" from them.
    const writer = new EventWriter({
      write: async (batch) => {
        await insertEvents(db.sql, batch);
        const sightings = batch.flatMap((e) =>
          e.userId === null ? [] : [{ id: e.userId, at: e.at }]
        );
        await users.touch(sightings);
      },
      metrics,
    });
    const seen = Date.now() + 3_600_000;
    for (let i = 0; i < 5000; i++) {
      const userId = i % 4 === 3 ? null : ids[i % 4]!;
      writer.record({ ...event(i, userId), at: new Date(seen + i) });
    }
    await writer.close(30_000);

    const [{ rows, updates }] = await db.sql<[{ rows: number; updates: number }]>`
      select count(*)::int as rows, count(distinct update_id)::int as updates from events`;
    assert.equal(rows, 5000);
    assert.equal(updates, 5000);
    assert.equal((await metrics.eventsWritten.get()).values[0]?.value, 5000);
    assert.deepEqual(
      (await metrics.eventsDropped.get()).values.filter((v) => v.value > 0),
      [],
    );
    // The last event of each user (4996, 4997, 4998) is when they were last seen.
    for (const [index, id] of ids.entries()) {
      assert.deepEqual((await users.get(id))!.lastSeenAt, new Date(seen + 4996 + index));
    }
  });
});

testOnBothBackends(
  "EventWriter with insertEvents() and a row Postgres refuses",
  async (t, { fresh }) => {
    const db = await fresh();
    await new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)).up();
    await t.step(
      "the row is cleaned up and written, the others are written, nothing stops",
      async () => {
        using metrics = new Metrics();
        const writer = new EventWriter({ write: (batch) => insertEvents(db.sql, batch), metrics });
        // A NUL in a text and a fractional "id": what Postgres refuses in a text and a bigint;
        // a time that is no time (sent as NULL): what the column refuses.
        writer.record({ ...event(1), command: "/start\u0000" });
        writer.record({ ...event(2), userId: 1.5 });
        writer.record({ ...event(3), at: new Date(Number.NaN) });
        for (let id = 4; id <= 20; id++) writer.record(event(id));
        await writer.close(10_000);
        const rows = await db.sql<
          {
            update_id: number;
            command: string | null;
            user_id: number | null;
            at: Date;
          }[]
        >`
      select update_id, command, user_id, at from events order by update_id`;
        assert.equal(rows.length, 20);
        assert.equal(rows[0]!.command, "/start\uFFFD");
        assert.equal(rows[1]!.user_id, null);
        assert.ok(
          Math.abs(rows[2]!.at.getTime() - Date.now()) < 60_000,
          "written with the time it was cleaned up at",
        );
        assert.equal((await metrics.eventsWritten.get()).values[0]?.value, 20);
      },
    );
  },
);
