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

Deno.test("cachedCheck() shares one probe between concurrent callers", async () => {
  const fake = new FakeProbe();
  const check = cachedCheck(fake.probe, { cacheMs: 30_000, now: () => 1_000 });
  const results = Array.from({ length: 100 }, () => check());
  assert.equal(fake.calls, 1);
  fake.answer({ status: "pass", output: "@bot" });
  for (const result of await Promise.all(results)) {
    assert.deepEqual(result, { status: "pass", output: "@bot" });
  }
  assert.equal(fake.calls, 1);
});

Deno.test("cachedCheck() reuses the answer for cacheMs, then probes again", async () => {
  const fake = new FakeProbe();
  let now = 1_000;
  const check = cachedCheck(fake.probe, { cacheMs: 30_000, now: () => now });
  const first = check();
  fake.answer({ status: "pass" });
  assert.deepEqual(await first, { status: "pass" });

  now += 29_999;
  assert.deepEqual(await check(), { status: "pass" });
  assert.equal(fake.calls, 1);

  now += 1;
  const second = check();
  assert.equal(fake.calls, 2);
  fake.answer({ status: "warn", output: "Telegram unreachable" });
  assert.deepEqual(await second, { status: "warn", output: "Telegram unreachable" });
  assert.deepEqual(await check(), { status: "warn", output: "Telegram unreachable" });
  assert.equal(fake.calls, 2);
});

Deno.test("cachedCheck() does not cache a probe that threw", async () => {
  const fake = new FakeProbe();
  const check = cachedCheck(fake.probe, { now: () => 0 });
  const a = check();
  const b = check();
  const error = new Error("probe crashed");
  fake.fail(error);
  await assert.rejects(a, (e) => e === error);
  await assert.rejects(b, (e) => e === error);
  const c = check();
  assert.equal(fake.calls, 2);
  fake.answer({ status: "pass" });
  assert.deepEqual(await c, { status: "pass" });
});

function fakeApi(methods: Partial<Record<"getMe" | "getWebhookInfo", () => Promise<unknown>>>) {
  return methods as unknown as Api;
}

Deno.test("telegramCheck() judges Telegram by getMe", async (t) => {
  await t.step("passes with the bot's username", async () => {
    const check = telegramCheck(
      fakeApi({ getMe: () => Promise.resolve({ username: "desk_bot" }) }),
    );
    const result = await check();
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
    const result = await check();
    assert.equal(result.status, "fail");
    assert.match(result.output ?? "", /401/);
  });

  await t.step("only warns when Telegram is unreachable", async () => {
    const check = telegramCheck(
      fakeApi({ getMe: () => Promise.reject(new TypeError("dns error")) }),
    );
    const result = await check();
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
      const result = await check();
      assert.equal(result.status, status);
      assert.match(result.output ?? "", output);
    });
  }

  await t.step("warns when getWebhookInfo fails", async () => {
    const check = webhookCheck(
      fakeApi({ getWebhookInfo: () => Promise.reject(new Error("timeout")) }),
      url,
    );
    const result = await check();
    assert.equal(result.status, "warn");
    assert.match(result.output ?? "", /timeout/);
  });
});
