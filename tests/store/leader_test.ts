import assert from "node:assert/strict";
import { StoreUnavailableError } from "../../src/errors.ts";
import { logger, setupLogging } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import type {
  AtomicScript,
  Json,
  KeyValueStore,
  SetOptions,
  StoreEntry,
  StoreKey,
} from "../../src/store/store.ts";
import { LeaderLease } from "../../src/store/leader.ts";
import { standbyHealth } from "../../src/transport/polling_transport.ts";
import { testOnBothStores } from "../support/stores.ts";

const TTL_MS = 300;
const RENEW_MS = 100;

/**
 * The real store, except that `down` makes every call fail as an unreachable store does, and
 * `stall()` makes scripts wait until the returned function is called, as a hung connection does.
 */
class SwitchableStore implements KeyValueStore {
  down = false;
  #stalled: Promise<void> | null = null;
  stall(): () => void {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#stalled = promise;
    return () => {
      this.#stalled = null;
      resolve();
    };
  }
  constructor(readonly inner: KeyValueStore) {}
  get shared(): boolean {
    return this.inner.shared;
  }
  get backend() {
    return this.inner.backend;
  }
  #check(): void {
    if (this.down) throw new StoreUnavailableError("Redis is unreachable: connection refused");
  }
  get(key: StoreKey): Promise<Json> {
    this.#check();
    return this.inner.get(key);
  }
  getMany(keys: readonly StoreKey[]): Promise<Json[]> {
    this.#check();
    return this.inner.getMany(keys);
  }
  set(key: StoreKey, value: Json, options?: SetOptions): Promise<void> {
    this.#check();
    return this.inner.set(key, value, options);
  }
  delete(key: StoreKey): Promise<void> {
    this.#check();
    return this.inner.delete(key);
  }
  scan(namespace: string): AsyncIterable<StoreEntry> {
    this.#check();
    return this.inner.scan(namespace);
  }
  async run<Args extends Json[], Result extends Json>(
    script: AtomicScript<Args, Result>,
    keys: readonly StoreKey[],
    args: Args,
  ): Promise<Result> {
    this.#check();
    if (this.#stalled) await this.#stalled;
    return await this.inner.run(script, keys, args);
  }
  ping(): Promise<number> {
    this.#check();
    return this.inner.ping();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One instance's lease with counted callbacks and its own metrics. */
class Instance implements AsyncDisposable {
  elected = 0;
  deposed = 0;
  readonly metrics = new Metrics();
  readonly store: SwitchableStore;
  readonly lease: LeaderLease;
  readonly #crash = new AbortController();
  #running: Promise<void> | null = null;

  constructor(store: KeyValueStore, readonly holder: string) {
    this.store = new SwitchableStore(store);
    this.lease = new LeaderLease({
      store: this.store,
      name: "polling",
      holder,
      ttlMs: TTL_MS,
      renewEveryMs: RENEW_MS,
      log: logger("test", holder),
      metrics: { leaseChanges: this.metrics.leaseChanges, leader: this.metrics.pollingLeader },
      onElected: () => void this.elected++,
      onDeposed: () => void this.deposed++,
    });
  }

  start(): this {
    this.#running = this.lease.run(this.#crash.signal);
    return this;
  }

  /** Stops renewing without releasing, as a killed process does. */
  async crash(): Promise<void> {
    this.#crash.abort();
    await this.#running;
  }

  async changes(change: string): Promise<number> {
    const { values } = await this.metrics.leaseChanges.get();
    return values.find((v) => v.labels.lease === "polling" && v.labels.change === change)?.value ??
      0;
  }

  async leaderGauge(): Promise<number> {
    return (await this.metrics.pollingLeader.get()).values[0]?.value ?? 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.crash();
    this.metrics[Symbol.dispose]();
  }
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 3_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Captures the JSON log lines of the `bot.test.*` loggers; dispose to reset logging. */
async function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const close = await setupLogging({
    level: "info",
    format: "json",
    file: null,
    secrets: [],
    write: (line) => lines.push(JSON.parse(line)),
  });
  return {
    of: (holder: string) => lines.filter((line) => line.logger === `bot.test.${holder}`),
    [Symbol.asyncDispose]: close,
  };
}

Deno.test("new LeaderLease() refuses a renewal interval that is not shorter than the TTL", () => {
  const metrics = new Metrics();
  try {
    assert.throws(
      () =>
        new LeaderLease({
          store: {} as KeyValueStore,
          name: "polling",
          holder: "a",
          ttlMs: 1_000,
          renewEveryMs: 1_000,
          log: logger("test"),
          metrics: { leaseChanges: metrics.leaseChanges, leader: metrics.pollingLeader },
        }),
      RangeError,
    );
  } finally {
    metrics[Symbol.dispose]();
  }
});

testOnBothStores("LeaderLease", async (t, store) => {
  await t.step("one instance leads and keeps leading; the other stands by naming it", async () => {
    await using a = new Instance(store, "a").start();
    await waitUntil(() => a.lease.leading, "a leads");
    await using b = new Instance(store, "b").start();
    await waitUntil(() => b.lease.status.holder === "a", "b sees a");
    // Several TTLs: the leader's renewals keep the standby out.
    await sleep(3 * TTL_MS);
    assert.equal(a.lease.leading, true);
    assert.equal(b.lease.leading, false);
    assert.deepEqual([a.elected, a.deposed, b.elected, b.deposed], [1, 0, 0, 0]);
    assert.equal(standbyHealth(a.lease.status), null, "the leader reports the poller's health");
    assert.deepEqual(standbyHealth(b.lease.status), {
      status: "warn",
      output: "standing by: instance a holds the polling lease",
    });
    assert.equal(await a.leaderGauge(), 1);
    assert.equal(await b.leaderGauge(), 0);
    assert.equal(await a.changes("acquired"), 1);
    await a.lease.release();
    await b.lease.release();
  });

  await t.step(
    "release() hands the lease over to the standby without waiting for the TTL",
    async () => {
      await using a = new Instance(store, "a").start();
      await waitUntil(() => a.lease.leading, "a leads");
      await using b = new Instance(store, "b").start();
      await waitUntil(() => b.lease.status.holder === "a", "b sees a");
      await a.lease.release();
      assert.equal(a.lease.leading, false);
      assert.equal(await a.leaderGauge(), 0);
      assert.equal(await a.changes("released"), 1);
      // Within one renewal interval, well before a's last TTL would have run out.
      await waitUntil(() => b.lease.leading, "b leads", TTL_MS);
      assert.equal(b.elected, 1);
      assert.equal(a.deposed, 0, "a release is no deposition");
      assert.equal(await b.changes("acquired"), 1);
      await b.lease.release();
    },
  );

  await t.step(
    "a leader that stops renewing (a crash) is replaced once its lease ran out",
    async () => {
      await using a = new Instance(store, "a").start();
      await waitUntil(() => a.lease.leading, "a leads");
      await using b = new Instance(store, "b").start();
      await waitUntil(() => b.lease.status.holder === "a", "b sees a");
      await a.crash();
      await sleep(20);
      assert.equal(b.lease.leading, false, "the lease still runs");
      await waitUntil(() => b.lease.leading, "b leads", 3 * TTL_MS);
      assert.equal(b.lease.status.holder, "b");
      await b.lease.release();
    },
  );

  await t.step(
    "a leader cut off from the store keeps leading, logs it once, and steps down when it learns another took over",
    async () => {
      await using logs = await captureLogs();
      await using a = new Instance(store, "a").start();
      await waitUntil(() => a.lease.leading, "a leads");
      await using b = new Instance(store, "b").start();
      a.store.down = true;
      // b takes the lease once a's last renewal ran out; a cannot know and keeps leading.
      await waitUntil(() => b.lease.leading, "b leads");
      await sleep(3 * RENEW_MS);
      assert.equal(a.lease.leading, true);
      assert.equal(a.deposed, 0);
      assert.equal(standbyHealth(a.lease.status), null);
      const outage = a.lease.status.storeError;
      assert.match(outage ?? "", /unreachable/);
      assert.equal(logs.of("a").filter((line) => /unreachable/.test(String(line.msg))).length, 1);

      a.store.down = false;
      await waitUntil(() => !a.lease.leading, "a steps down");
      assert.equal(a.deposed, 1);
      assert.equal(await a.changes("lost"), 1);
      assert.equal(await a.leaderGauge(), 0);
      assert.equal(a.lease.status.holder, "b");
      assert.equal(b.lease.leading, true);
      const lost = logs.of("a").find((line) =>
        /^lost the polling lease to b/.test(String(line.msg))
      );
      assert.equal(lost?.level, "warning");
      await b.lease.release();
    },
  );

  await t.step("a standby cut off from the store does not take over until it answers", async () => {
    await using a = new Instance(store, "a").start();
    await waitUntil(() => a.lease.leading, "a leads");
    await using b = new Instance(store, "b").start();
    await waitUntil(() => b.lease.status.holder === "a", "b sees a");
    b.store.down = true;
    await a.lease.release();
    await sleep(2 * TTL_MS);
    assert.equal(b.lease.leading, false);
    assert.equal(b.elected, 0);
    assert.match(
      standbyHealth(b.lease.status)?.output ?? "",
      /^standing by: the store is unreachable/,
    );
    b.store.down = false;
    await waitUntil(() => b.lease.leading, "b leads");
    await b.lease.release();
  });

  await t.step("release() gives up after the TTL when the store hangs", async () => {
    await using a = new Instance(store, "a").start();
    await waitUntil(() => a.lease.leading, "a leads");
    const resume = a.store.stall();
    try {
      const released = a.lease.release().then(() => true);
      const timeout = sleep(5 * TTL_MS).then(() => false);
      assert.equal(await Promise.race([released, timeout]), true, "release() returned");
      assert.equal(a.lease.leading, false);
    } finally {
      resume();
    }
  });

  await t.step("release() of a standby leaves the leader's lease alone", async () => {
    await using a = new Instance(store, "a").start();
    await waitUntil(() => a.lease.leading, "a leads");
    await using b = new Instance(store, "b").start();
    await waitUntil(() => b.lease.status.holder === "a", "b sees a");
    await b.lease.release();
    assert.equal(await b.changes("released"), 0);
    await sleep(2 * RENEW_MS);
    assert.equal(a.lease.leading, true);
    assert.equal(a.deposed, 0);
    await a.lease.release();
  });
});
