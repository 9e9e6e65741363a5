import assert from "node:assert/strict";
import { type Api, GrammyError } from "grammy";
import { cachedCheck, telegramCheck, webhookCheck } from "../../src/bot/telegram_check.ts";
import type { CheckResult } from "../../src/health.ts";

/** A probe whose answers the test releases one at a time. */
class FakeProbe {
  calls = 0;
  readonly #pending: Array<PromiseWithResolvers<CheckResult>> = [];

  readonly probe = (): Promise<CheckResult> => {
    this.calls++;
    const answer = Promise.withResolvers<CheckResult>();
    this.#pending.push(answer);
    return answer.promise;
  };

  answer(result: CheckResult): void {
    const next = this.#pending.shift();
    assert.ok(next, "no probe is waiting");
    next.resolve(result);
  }

  fail(error: Error): void {
    this.#pending.shift()!.reject(error);
  }
}

const signal = new AbortController().signal;

Deno.test("cachedCheck() shares one probe between concurrent callers", async () => {
  const fake = new FakeProbe();
  const check = cachedCheck(fake.probe, { cacheMs: 30_000, now: () => 1_000 });
  const results = Array.from({ length: 100 }, () => check(signal));
  assert.equal(fake.calls, 1);
  fake.answer({ status: "pass", output: "@bot" });
  for (const result of await Promise.all(results)) {
    assert.deepEqual(result, { status: "pass", output: "@bot" });
  }
  assert.equal(fake.calls, 1);
});

Deno.test("cachedCheck() answers from its last probe and refreshes it in the background after cacheMs", async () => {
  const fake = new FakeProbe();
  let now = 1_000;
  const check = cachedCheck(fake.probe, { cacheMs: 30_000, now: () => now });
  const first = check(signal);
  fake.answer({ status: "pass" });
  assert.deepEqual(await first, { status: "pass" });

  now += 29_999;
  assert.deepEqual(await check(signal), { status: "pass" });
  assert.equal(fake.calls, 1);

  // Stale: the caller gets the last answer at once; one probe refreshes it.
  now += 1;
  assert.deepEqual(await check(signal), { status: "pass" });
  assert.deepEqual(await check(signal), { status: "pass" });
  assert.equal(fake.calls, 2);
  fake.answer({ status: "warn", output: "Telegram unreachable" });
  await Promise.resolve();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(await check(signal), { status: "warn", output: "Telegram unreachable" });
  assert.equal(fake.calls, 2);
});

Deno.test("cachedCheck() never makes a caller wait longer than firstWaitMs, even for the first answer", async () => {
  const fake = new FakeProbe();
  const check = cachedCheck(fake.probe, { firstWaitMs: 20 });
  const started = performance.now();
  const result = await check(signal);
  assert.equal(result.status, "warn");
  assert.match(result.output ?? "", /no answer yet/);
  assert.ok(performance.now() - started < 1000);
  fake.answer({ status: "pass" });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(await check(signal), { status: "pass" });
});

Deno.test("cachedCheck() turns a probe that threw into a warning and logs changes once each way", async () => {
  const fake = new FakeProbe();
  let now = 0;
  const changes: string[] = [];
  const check = cachedCheck(fake.probe, {
    now: () => now,
    cacheMs: 10,
    onChange: (result) => changes.push(result.status),
  });
  const a = check(signal);
  fake.fail(new Error("probe crashed", { cause: new Error("connection refused") }));
  assert.deepEqual(await a, { status: "warn", output: "probe crashed: connection refused" });
  now = 20;
  await check(signal);
  fake.fail(new Error("probe crashed"));
  await new Promise((resolve) => setTimeout(resolve, 0));
  now = 40;
  await check(signal);
  fake.answer({ status: "pass" });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(changes, ["warn", "pass"]);
});

function fakeApi(methods: Partial<Record<"getMe" | "getWebhookInfo", () => Promise<unknown>>>) {
  return () => methods as unknown as Api;
}

Deno.test("telegramCheck() judges Telegram by getMe", async (t) => {
  await t.step("passes with the bot's username", async () => {
    const check = telegramCheck(
      fakeApi({ getMe: () => Promise.resolve({ username: "desk_bot" }) }),
    );
    const result = await check(signal);
    assert.equal(result.status, "pass");
    assert.equal(result.output, "@desk_bot");
    assert.equal(typeof result.observedValue, "number");
  });

  await t.step("fails when Telegram refuses the token", async () => {
    const refused = new GrammyError(
      "Call to 'getMe' failed!",
      { ok: false, error_code: 401, description: "Unauthorized" },
      "getMe",
      {},
    );
    const check = telegramCheck(fakeApi({ getMe: () => Promise.reject(refused) }));
    const result = await check(signal);
    assert.equal(result.status, "fail");
    assert.match(result.output ?? "", /401/);
  });

  await t.step("only warns when Telegram is unreachable", async () => {
    const check = telegramCheck(
      fakeApi({ getMe: () => Promise.reject(new TypeError("dns error")) }),
    );
    const result = await check(signal);
    assert.equal(result.status, "warn");
    assert.match(result.output ?? "", /dns error/);
  });
});

Deno.test("webhookCheck() judges the webhook by getWebhookInfo", async (t) => {
  const url = "https://bot.example.com/hook";
  const nowSeconds = Math.floor(Date.now() / 1000);
  const cases: Array<
    { name: string; info: Record<string, unknown>; status: string; output: RegExp }
  > = [
    {
      name: "registered, no error",
      info: { url, pending_update_count: 3 },
      status: "pass",
      output: /pending 3/,
    },
    {
      name: "another URL",
      info: { url: "https://other.example.com/", pending_update_count: 0 },
      status: "warn",
      output: /another webhook URL/,
    },
    {
      name: "a recent delivery error",
      info: {
        url,
        pending_update_count: 7,
        last_error_date: nowSeconds - 10,
        last_error_message: "Connection refused",
      },
      status: "warn",
      output: /Connection refused.*pending 7/,
    },
    {
      name: "an old delivery error",
      info: {
        url,
        pending_update_count: 0,
        last_error_date: nowSeconds - 3600,
        last_error_message: "old",
      },
      status: "pass",
      output: /pending 0/,
    },
  ];
  for (const { name, info, status, output } of cases) {
    await t.step(name, async () => {
      const check = webhookCheck(fakeApi({ getWebhookInfo: () => Promise.resolve(info) }), url);
      const result = await check(signal);
      assert.equal(result.status, status);
      assert.match(result.output ?? "", output);
    });
  }

  await t.step("warns when getWebhookInfo fails", async () => {
    const check = webhookCheck(
      fakeApi({ getWebhookInfo: () => Promise.reject(new Error("timeout")) }),
      url,
    );
    const result = await check(signal);
    assert.equal(result.status, "warn");
    assert.match(result.output ?? "", /timeout/);
  });
});
