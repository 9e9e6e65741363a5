/**
 * The flood control's transformer as grammY calls it, with a stub network behind it, on real
 * stores shared by two instances: short windows, real time. The tests that measure windows run
 * on Redis: a Deno KV commit (an fsync) may take longer than a window on a busy machine, and
 * the stub sees a call only once its admission was committed.
 */
import assert from "node:assert/strict";
import type { Transformer } from "grammy";
import { FloodControl, type Priority } from "../../../src/bot/flood/flood_control.ts";
import { delay } from "../../../src/util/delay.ts";
import { floodKeys, type TakeArgs, takeScript } from "../../../src/bot/flood/script.ts";
import type { FloodLimits } from "../../../src/bot/flood/limits.ts";
import { logger } from "../../../src/log.ts";
import { Metrics } from "../../../src/metrics/metrics.ts";
import { tempKvStore } from "../../support/stores.ts";
import { openRedisStore } from "../../../src/store/redis_store.ts";
import type { KeyValueStore } from "../../../src/store/store.ts";
import { startRedis } from "../../support/redis_server.ts";

const LIMITS: FloodLimits = {
  global: { count: 5, windowMs: 300 },
  privateChat: { count: 3, windowMs: 3000 },
  group: { count: 2, windowMs: 3000 },
  reserve: 1,
  bulk: { count: 1, windowMs: 50 },
  aheadMs: 50,
};

type Prev = Parameters<Transformer>[0];
type Answer = Awaited<ReturnType<Prev>>;

/** A stub network that records when each call arrived and answers `answer(chat)`. */
function network(answer: (chat: unknown) => Answer = () => ({ ok: true, result: true } as Answer)) {
  const sent: { method: string; chat: unknown; at: number; signal: unknown }[] = [];
  const prev: Prev = (method, payload, signal) => {
    const chat = (payload as { chat_id?: unknown }).chat_id;
    sent.push({ method, chat, at: performance.now(), signal });
    return Promise.resolve(answer(chat)) as ReturnType<Prev>;
  };
  return { prev, sent };
}

/** Telegram's 429 asking to wait a second. */
function tooManyRequests(): Answer {
  return {
    ok: false,
    error_code: 429,
    description: "Too Many Requests: retry after 1",
    parameters: { retry_after: 1 },
  } as Answer;
}

function call(
  flood: FloodControl,
  priority: Priority,
  prev: Prev,
  chat: number,
  signal?: AbortSignal,
  method = "sendMessage",
) {
  return flood.transformer(priority)(
    prev,
    method as "sendMessage",
    { chat_id: chat, text: "hi" } as never,
    signal as never,
  );
}

/**
 * The stub sees a call a little after the store admitted it, which is what `JITTER_GUARD_MS`
 * absorbs in production: windows are checked that much shorter.
 */
const SLACK_MS = 20;

/**
 * The store's admission times, as {@link notingAdmissions} reads them, may sit 1 ms before the
 * time the store used (two readings of a millisecond clock).
 */
const ADMISSION_SLACK_MS = 1;

/** The most calls in any window `[t, t + windowMs - slackMs)`. */
function busiest(times: number[], windowMs: number, slackMs = SLACK_MS): number {
  windowMs -= slackMs;
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j]! - sorted[i]! >= windowMs) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

async function withStore(body: (store: KeyValueStore, metrics: Metrics) => Promise<void>) {
  await using store = await tempKvStore("flood-test-");
  using metrics = new Metrics();
  await body(store, metrics);
}

async function withRedis(body: (store: KeyValueStore, metrics: Metrics) => Promise<void>) {
  await using redis = await startRedis();
  const store = await openRedisStore({ url: redis.url, keyPrefix: "flood-test:" });
  using metrics = new Metrics();
  try {
    await body(store, metrics);
  } finally {
    await store.close();
  }
}

/**
 * `store`, noting when it admitted each message whose take uses `log` (the bulk pace, or the
 * bot-wide log, which every message uses): the time its take script ran with (the store's clock,
 * read as the call leaves) for every such take answered "go now". What the stub network sees
 * also carries the event loop's stalls after the admission, which a busy machine (the parallel
 * test run) can make longer than a window.
 */
function notingAdmissions(
  store: KeyValueStore,
  log: "bulk" | "global",
): { store: KeyValueStore; admitted: number[] } {
  const admitted: number[] = [];
  const logKey = JSON.stringify(floodKeys(0)[log]);
  const run: KeyValueStore["run"] = async (script, keys, args) => {
    const at = Date.now();
    const result = await store.run(script, keys, args);
    if ((script as unknown) === takeScript) {
      const [takes] = args as unknown as TakeArgs;
      const { waits } = result as unknown as { waits: number[] };
      takes.forEach((take, i) => {
        const uses = take.some(([key]) => JSON.stringify(keys[key]) === logKey);
        if (uses && waits[i] === 0) admitted.push(at);
      });
    }
    return result;
  };
  const noting = new Proxy(store, {
    get(target, name) {
      if (name === "run") return run;
      const value = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store: noting, admitted };
}

/** `store`, noting the name of every script it runs. */
function countingRuns(store: KeyValueStore): { store: KeyValueStore; runs: string[] } {
  const runs: string[] = [];
  const counting: KeyValueStore = Object.create(store, {
    run: {
      value: (...args: Parameters<KeyValueStore["run"]>) => {
        runs.push(args[0].name);
        return store.run(...args);
      },
    },
  });
  return { store: counting, runs };
}

function control(store: KeyValueStore, metrics: Metrics): FloodControl {
  return new FloodControl({
    store,
    limits: LIMITS,
    metrics: metrics.background,
    log: logger("flood"),
  });
}

Deno.test("FloodControl: two instances sharing a store stay together within the bot-wide limit", async () => {
  await withRedis(async (shared, metrics) => {
    const { store, admitted } = notingAdmissions(shared, "global");
    const [a, b] = [control(store, metrics), control(store, metrics)];
    const { prev, sent } = network();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(i % 2 === 0 ? a : b, "interactive", prev, 100 + i)),
    );
    assert.equal(sent.length, 20);
    assert.equal(admitted.length, 20, "each message admitted once");
    assert.ok(
      busiest(admitted, 300, ADMISSION_SLACK_MS) <= 5,
      `5 per 300 ms: ${admitted.map((t) => t - admitted[0]!)}`,
    );
    const waited = await metrics.background.outboundWaits.get();
    assert.ok(waited.values.find((v) => v.labels.priority === "interactive")!.value > 0);
  });
});

Deno.test("FloodControl: bulk messages keep their pace and leave the reserve to replies", async () => {
  await withRedis(async (shared, metrics) => {
    const { store, admitted } = notingAdmissions(shared, "bulk");
    const flood = control(store, metrics);
    const { prev, sent } = network();
    const bulk = Promise.all(
      Array.from({ length: 12 }, (_, i) => call(flood, "bulk", prev, 200 + i)),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await call(flood, "interactive", prev, 300);
    await bulk;
    // The reply's first take admitted it: it was never told to wait (whatever the event loop
    // did meanwhile).
    const waits = await metrics.background.outboundWaits.get();
    assert.equal(waits.values.find((v) => v.labels.priority === "interactive")?.value, 0);
    assert.equal(sent.filter((s) => s.chat !== 300).length, 12, "every bulk message went out");
    assert.equal(admitted.length, 12, "each bulk message admitted once");
    assert.ok(
      busiest(admitted, 50, ADMISSION_SLACK_MS) <= 1,
      `one bulk message per 50 ms: ${admitted.map((t) => t - admitted[0]!)}`,
    );
    assert.ok(
      busiest(admitted, 300, ADMISSION_SLACK_MS) <= 4,
      "bulk leaves one of five to replies",
    );
  });
});

Deno.test("FloodControl: a 429 for a private chat pauses the whole bot, on every instance", async () => {
  await withRedis(async (store, metrics) => {
    const [a, b] = [control(store, metrics), control(store, metrics)];
    const refused = network(tooManyRequests);
    const answer = await call(a, "interactive", refused.prev, 400);
    assert.equal(answer.ok, false);
    const asked = performance.now();
    const { prev } = network();
    await call(b, "interactive", prev, 401);
    assert.ok(performance.now() - asked > 900, "the other instance waited for retry_after");
    const counted = await metrics.background.outbound429.get();
    assert.equal(counted.values.find((v) => v.labels.scope === "bot")!.value, 1);
  });
});

Deno.test("FloodControl: a 429 for a group pauses that group only", async () => {
  await withRedis(async (store, metrics) => {
    const [a, b] = [control(store, metrics), control(store, metrics)];
    const refused = network(tooManyRequests);
    await call(a, "interactive", refused.prev, -500);
    const { prev, sent } = network();
    const started = performance.now();
    await Promise.all([call(b, "interactive", prev, -500), call(b, "interactive", prev, 501)]);
    const at = (chat: number) => sent.find((s) => s.chat === chat)!.at - started;
    assert.ok(at(501) < 200, "another chat goes at once");
    assert.ok(at(-500) > 900, "the group waits for retry_after");
  });
});

Deno.test("FloodControl: calls that post no message pass untouched", async () => {
  await withStore(async (store, metrics) => {
    const flood = control(store, metrics);
    const { prev, sent } = network();
    for (let i = 0; i < 20; i++) {
      await call(flood, "interactive", prev, 600, undefined, "answerCallbackQuery");
    }
    await flood.transformer("interactive")(prev, "getUpdates", { offset: 1 } as never, undefined);
    assert.equal(sent.length, 21);
    const counted = await metrics.background.outboundMessages.get();
    assert.equal(counted.values.reduce((n, v) => n + v.value, 0), 0);
  });
});

Deno.test("FloodControl: a stop cancels a bulk wait without sending; an admitted bulk send gets no signal", async () => {
  await withStore(async (store, metrics) => {
    const flood = control(store, metrics);
    const { prev, sent } = network();
    const stop = new AbortController();
    await call(flood, "bulk", prev, 700, stop.signal);
    assert.equal(sent[0]!.signal, undefined, "a send in flight is never aborted");
    const waiting = call(flood, "bulk", prev, 701, stop.signal);
    stop.abort(new Error("stopping"));
    await assert.rejects(waiting, /stopping/);
    assert.equal(sent.length, 1);
  });
});

Deno.test("FloodControl: an unshared store (the embedded one) is never asked: the limits live in memory", async () => {
  await withStore(async (store, metrics) => {
    const flood = control(store, metrics);
    const { prev, sent } = network();
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => call(flood, "interactive", prev, 900 + i)),
    );
    assert.ok(busiest(sent.map((s) => s.at), 300) <= 5);
    assert.deepEqual(await Array.fromAsync(store.scan("flood")), []);
    assert.equal((await metrics.background.floodFallback.get()).values[0]!.value, 0);
  });
});

Deno.test("FloodControl: with the store down, each instance keeps the limits in memory", async () => {
  using metrics = new Metrics();
  const down = {
    shared: true,
    run: () => Promise.reject(new Error("The client is offline")),
  } as unknown as KeyValueStore;
  const flood = control(down, metrics);
  const { prev, sent } = network();
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => call(flood, "interactive", prev, 800 + i)),
  );
  assert.equal(sent.length, 10);
  assert.ok(busiest(sent.map((s) => s.at), 300) <= 5);
  assert.ok((await metrics.background.floodFallback.get()).values[0]!.value >= 10);
});

Deno.test("FloodControl: messages asking at the same time take their turns in one store call", async () => {
  await withRedis(async (store, metrics) => {
    const { store: counting, runs } = countingRuns(store);
    const flood = control(counting, metrics);
    const { prev, sent } = network();
    // Five private chats, the bot-wide limit five: all go, in one call; the sixth must wait.
    await Promise.all([1, 2, 3, 4, 5].map((chat) => call(flood, "interactive", prev, chat)));
    assert.equal(sent.length, 5);
    assert.deepEqual(runs, ["flood_take"]);
    const started = performance.now();
    await call(flood, "interactive", prev, 6);
    assert.ok(performance.now() - started >= LIMITS.global.windowMs - 100, "the sixth waited");
  });
});

Deno.test("FloodControl: a reply's turn taken ahead costs the reply no store call; one not used goes back", async (t) => {
  await withRedis(async (store, metrics) => {
    const { store: counting, runs } = countingRuns(store);
    let skew = 0;
    let frozen: number | null = null;
    const flood = new FloodControl({
      store: counting,
      limits: LIMITS,
      metrics: metrics.background,
      log: logger("flood"),
      now: () => frozen ?? Date.now() + skew,
    });
    const { prev, sent } = network();
    const sends = async (chat: number) =>
      ((await store.get(floodKeys(chat).chat)) as { t: number[] } | null)?.t.length ?? 0;

    await t.step("taken ahead, then the reply: one store call, one send in the logs", async () => {
      flood.prefetch(7);
      await call(flood, "interactive", prev, 7);
      assert.deepEqual(runs.splice(0), ["flood_take"]);
      assert.equal(sent.at(-1)!.chat, 7);
      assert.equal(await sends(7), 1);
    });

    await t.step(
      "a reply later than LIMITS.aheadMs gives that turn back in the call that takes its own",
      async () => {
        flood.prefetch(8);
        await delay(20);
        skew += LIMITS.aheadMs + 1;
        await call(flood, "interactive", prev, 8);
        assert.deepEqual(runs.splice(0), ["flood_take", "flood_take"]);
        assert.equal(await sends(8), 1);
        skew = 0;
      },
    );

    await t.step("a turn no reply used is given back when the update is done", async () => {
      flood.prefetch(10);
      await delay(20);
      assert.equal(await sends(10), 1, "counted while the update runs");
      flood.forgo(10);
      await delay(20);
      assert.deepEqual(runs.splice(0), ["flood_take", "flood_release"]);
      assert.equal(await sends(10), 0);
      // Nothing taken ahead, nothing to give back.
      flood.forgo(10);
      await call(flood, "interactive", prev, 10);
      assert.deepEqual(runs.splice(0), ["flood_take"]);
    });

    await t.step("bulk messages never use it; the next reply does", async () => {
      // The flood control's clock stands still: the bulk message may wait for its pace.
      frozen = Date.now();
      flood.prefetch(9);
      await call(flood, "bulk", prev, 9);
      assert.deepEqual(runs.splice(0), ["flood_take", "flood_take"]);
      await call(flood, "interactive", prev, 9);
      assert.deepEqual(runs.splice(0), []);
      frozen = null;
    });

    await t.step("a turn the limits refuse is not used: the reply waits for its own", async () => {
      await delay(LIMITS.global.windowMs);
      // The bot-wide limit (5 in 300 ms) reached by five other chats.
      await Promise.all([11, 12, 13, 14, 15].map((chat) => call(flood, "interactive", prev, chat)));
      const started = performance.now();
      flood.prefetch(16);
      await call(flood, "interactive", prev, 16);
      assert.ok(performance.now() - started >= LIMITS.global.windowMs - 100, "the reply waited");
      const global = sent.filter((s) => s.method === "sendMessage").map((s) => s.at);
      assert.ok(busiest(global, LIMITS.global.windowMs) <= LIMITS.global.count);
    });

    await t.step("bot_outbound_turns_ahead_total counts what became of each", async () => {
      const counted = (await metrics.background.outboundTurnsAhead.get()).values;
      const by = Object.fromEntries(counted.map((v) => [v.labels.result, v.value]));
      assert.deepEqual(by, { used: 2, given_back: 2, refused: 1 });
    });
  });
});
