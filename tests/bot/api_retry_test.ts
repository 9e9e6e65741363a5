import assert from "node:assert/strict";
import type { ApiCallFn } from "grammy";
import { apiRetry, type ApiRetryOptions } from "../../src/bot/api_retry.ts";
import { Metrics } from "../../src/metrics/metrics.ts";

type Result =
  | { ok: true; result: unknown }
  | {
    ok: false;
    error_code: number;
    description: string;
    parameters?: { retry_after?: number };
  };

const OK: Result = { ok: true, result: true };
const FLOOD = (retryAfter: number): Result => ({
  ok: false,
  error_code: 429,
  description: `Too Many Requests: retry after ${retryAfter}`,
  parameters: { retry_after: retryAfter },
});
const SERVER_ERROR: Result = { ok: false, error_code: 502, description: "Bad Gateway" };
const BAD_REQUEST: Result = {
  ok: false,
  error_code: 400,
  description: "Bad Request: chat not found",
};

/** A fake Bot API: answers each call with the next entry; an Error entry is thrown. */
class FakeApi {
  readonly calls: string[] = [];
  readonly #queue: Array<Result | Error>;

  constructor(queue: Array<Result | Error>) {
    this.#queue = [...queue];
  }

  readonly prev = ((method: string) => {
    this.calls.push(method);
    const next = this.#queue.shift();
    if (next === undefined) throw new Error(`unexpected call ${method}`);
    if (next instanceof Error) return Promise.reject(next);
    return Promise.resolve(next);
  }) as unknown as ApiCallFn;
}

/** A sleep that records how long it was asked to wait and returns at once. */
function fakeSleep() {
  const waits: number[] = [];
  const signals: Array<AbortSignal | undefined> = [];
  const sleep = (ms: number, signal?: AbortSignal) => {
    waits.push(ms);
    signals.push(signal);
    return Promise.resolve();
  };
  return { waits, signals, sleep };
}

function call(
  options: ApiRetryOptions,
  api: FakeApi,
  method = "sendMessage",
  signal?: AbortSignal,
): Promise<Result> {
  const transformer = apiRetry(options);
  return transformer(
    api.prev,
    method as "sendMessage",
    { chat_id: 1, text: "hi" } as never,
    signal as never,
  ) as Promise<Result>;
}

/** The value of one labelled sample of a metric, 0 when absent. */
async function sample(metrics: Metrics, name: string, labels: string): Promise<number> {
  const text = await metrics.registry.getSingleMetricAsString(name);
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

Deno.test("apiRetry() retries a 429 after exactly retry_after seconds", async () => {
  using metrics = new Metrics();
  const api = new FakeApi([FLOOD(3), OK]);
  const { waits, sleep } = fakeSleep();
  assert.deepEqual(await call({ metrics, sleep }, api), OK);
  assert.deepEqual(api.calls, ["sendMessage", "sendMessage"]);
  assert.deepEqual(waits, [3_000]);
});

Deno.test("apiRetry() waits one second for a 429 without retry_after", async () => {
  using metrics = new Metrics();
  const api = new FakeApi([
    { ok: false, error_code: 429, description: "Too Many Requests" },
    OK,
  ]);
  const { waits, sleep } = fakeSleep();
  assert.deepEqual(await call({ metrics, sleep }, api), OK);
  assert.deepEqual(waits, [1_000]);
});

Deno.test("apiRetry() retries server errors with growing backoff", async () => {
  using metrics = new Metrics();
  const api = new FakeApi([SERVER_ERROR, { ...SERVER_ERROR, error_code: 500 }, OK]);
  const { waits, sleep } = fakeSleep();
  const backoff = { baseMs: 100, maxMs: 1_000 };
  assert.deepEqual(await call({ metrics, sleep, backoff }, api), OK);
  assert.equal(api.calls.length, 3);
  assert.equal(waits.length, 2);
  // Full jitter: between a tenth of the ceiling and the ceiling (100 ms, then 200 ms).
  assert.ok(waits[0]! >= 10 && waits[0]! <= 100, `first wait ${waits[0]}`);
  assert.ok(waits[1]! >= 20 && waits[1]! <= 200, `second wait ${waits[1]}`);
});

Deno.test("apiRetry() returns the last error once maxRetries is used up", async (t) => {
  await t.step("for a 5xx", async () => {
    using metrics = new Metrics();
    const api = new FakeApi([SERVER_ERROR, SERVER_ERROR, SERVER_ERROR]);
    const { waits, sleep } = fakeSleep();
    assert.deepEqual(await call({ metrics, sleep, maxRetries: 2 }, api), SERVER_ERROR);
    assert.equal(api.calls.length, 3);
    assert.equal(waits.length, 2);
  });

  await t.step("for a 429", async () => {
    using metrics = new Metrics();
    const api = new FakeApi([FLOOD(1), FLOOD(2)]);
    const { waits, sleep } = fakeSleep();
    assert.deepEqual(await call({ metrics, sleep, maxRetries: 1 }, api), FLOOD(2));
    assert.deepEqual(waits, [1_000]);
  });
});

Deno.test("apiRetry() retries network errors and finally rethrows", async (t) => {
  await t.step("succeeds when the network comes back", async () => {
    using metrics = new Metrics();
    const api = new FakeApi([new TypeError("connection reset"), OK]);
    const { waits, sleep } = fakeSleep();
    assert.deepEqual(await call({ metrics, sleep }, api), OK);
    assert.equal(waits.length, 1);
  });

  await t.step("rethrows the last error after maxRetries", async () => {
    using metrics = new Metrics();
    const last = new TypeError("connection refused (3)");
    const api = new FakeApi([
      new TypeError("connection refused (1)"),
      new TypeError("connection refused (2)"),
      last,
    ]);
    const { waits, sleep } = fakeSleep();
    await assert.rejects(call({ metrics, sleep, maxRetries: 2 }, api), (error) => error === last);
    assert.equal(api.calls.length, 3);
    assert.equal(waits.length, 2);
    assert.equal(
      await sample(metrics, "bot_api_calls_total", 'method="sendMessage",result="network_error"'),
      3,
    );
  });

  await t.step("does not retry when the caller aborted", async () => {
    using metrics = new Metrics();
    const aborted = new DOMException("aborted", "AbortError");
    const api = new FakeApi([aborted, OK]);
    const { waits, sleep } = fakeSleep();
    const signal = AbortSignal.abort();
    await assert.rejects(
      call({ metrics, sleep }, api, "sendMessage", signal),
      (e) => e === aborted,
    );
    assert.equal(api.calls.length, 1);
    assert.deepEqual(waits, []);
  });
});

Deno.test("apiRetry() passes the caller's signal to sleep", async () => {
  using metrics = new Metrics();
  const api = new FakeApi([FLOOD(2), OK]);
  const { signals, sleep } = fakeSleep();
  const controller = new AbortController();
  await call({ metrics, sleep }, api, "sendMessage", controller.signal);
  assert.equal(signals[0], controller.signal);
});

Deno.test("apiRetry() returns at once what retrying cannot fix", async (t) => {
  const cases: Array<{ name: string; result: Result; options?: Partial<ApiRetryOptions> }> = [
    { name: "400 Bad Request", result: BAD_REQUEST },
    {
      name: "403 Forbidden",
      result: { ok: false, error_code: 403, description: "Forbidden: bot was blocked" },
    },
    { name: "a retry_after above the default 60 s", result: FLOOD(61) },
    {
      name: "a retry_after above maxRetryAfterSeconds",
      result: FLOOD(11),
      options: { maxRetryAfterSeconds: 10 },
    },
  ];
  for (const { name, result, options } of cases) {
    await t.step(name, async () => {
      using metrics = new Metrics();
      const api = new FakeApi([result, OK]);
      const { waits, sleep } = fakeSleep();
      assert.deepEqual(await call({ metrics, sleep, ...options }, api), result);
      assert.equal(api.calls.length, 1);
      assert.deepEqual(waits, []);
    });
  }
});

Deno.test("apiRetry() never retries getUpdates", async (t) => {
  const cases: Array<{ name: string; answer: Result | Error }> = [
    { name: "429", answer: FLOOD(1) },
    { name: "5xx", answer: SERVER_ERROR },
    { name: "network error", answer: new TypeError("connection reset") },
  ];
  for (const { name, answer } of cases) {
    await t.step(name, async () => {
      using metrics = new Metrics();
      const api = new FakeApi([answer, OK]);
      const { waits, sleep } = fakeSleep();
      const result = call({ metrics, sleep }, api, "getUpdates");
      if (answer instanceof Error) await assert.rejects(result, (e) => e === answer);
      else assert.deepEqual(await result, answer);
      assert.deepEqual(api.calls, ["getUpdates"]);
      assert.deepEqual(waits, []);
      const retries = await metrics.registry.getSingleMetricAsString("bot_api_retries_total");
      assert.ok(!retries.includes('method="getUpdates"'), retries);
    });
  }
});

Deno.test("apiRetry() counts calls by result and retries by reason", async () => {
  using metrics = new Metrics();
  const api = new FakeApi([FLOOD(3), SERVER_ERROR, new TypeError("reset"), OK]);
  const { sleep } = fakeSleep();
  assert.deepEqual(await call({ metrics, sleep }, api), OK);
  const calls = (result: string) =>
    sample(metrics, "bot_api_calls_total", `method="sendMessage",result="${result}"`);
  const retries = (reason: string) =>
    sample(metrics, "bot_api_retries_total", `method="sendMessage",reason="${reason}"`);
  assert.equal(await calls("429"), 1);
  assert.equal(await calls("502"), 1);
  assert.equal(await calls("network_error"), 1);
  assert.equal(await calls("ok"), 1);
  assert.equal(await retries("429"), 1);
  assert.equal(await retries("5xx"), 1);
  assert.equal(await retries("network"), 1);
});
