import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

Deno.test("GET /health answers application/health+json with a check per component", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  const live = await bot.get("/health/live");
  assert.equal(live.status, 200);

  const health = await bot.get("/health");
  assert.equal(health.status, 200);
  assert.equal(health.headers.get("content-type"), "application/health+json");
  const report = JSON.parse(health.body);
  assert.equal(report.status, "pass");
  assert.equal(report.serviceId, "service-desk-bot");
  const kinds: Record<string, string> = {
    "telegram:responseTime": "component",
    "telegram:polling": "component",
    "database:responseTime": "datastore",
    "store:responseTime": "datastore",
  };
  for (const [name, componentType] of Object.entries(kinds)) {
    const [entry] = report.checks[name];
    assert.equal(entry.status, "pass", name);
    assert.equal(entry.componentType, componentType, name);
    assert.equal(typeof entry.observedValue, "number");
    assert.equal(entry.observedUnit, "ms");
    assert.ok(!Number.isNaN(Date.parse(entry.time)));
    // application/health+json: no output on a passing check.
    assert.equal("output" in entry, false, `${name} has an output: ${entry.output}`);
  }
  // Checks that measure something other than a time say what their value counts.
  const units: Record<string, string> = { "disk:free": "MiB", "outbox:pending": "items" };
  for (const [name, unit] of Object.entries(units)) {
    const [entry] = report.checks[name];
    assert.equal(entry.observedUnit, unit, name);
    assert.ok(Number.isInteger(entry.observedValue), `${name}: ${entry.observedValue}`);
  }

  // A flood of probes is answered from the cached getMe, not by flooding Telegram.
  const before = api.callsOf("getMe").length;
  await Promise.all(Array.from({ length: 50 }, () => bot.get("/health")));
  assert.ok(api.callsOf("getMe").length - before <= 1);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("GET /health fails (503) with the reason while start-up cannot reach Telegram", async () => {
  await using api = await FakeBotApi.start();
  api.failNext("getMe", { error_code: 502 }, 1000);
  await using bot = await BotProcess.start({ api });
  await bot.waitForLog(/getMe failed, retrying/);
  const starting = await bot.get("/health");
  assert.equal(starting.status, 503);
  const report = JSON.parse(starting.body);
  assert.equal(report.status, "fail");
  assert.match(report.output, /getMe failed/);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("GET /metrics serves Prometheus text behind METRICS_TOKEN", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, env: { METRICS_TOKEN: "scrape-me-please" } });
  await bot.waitReady();
  api.pushMessage({ chatId: 21, text: "/start" });
  await api.waitFor(() => api.sentMessages(21).length === 1 || undefined, 15_000, "the reply");

  const refused = await bot.get("/metrics");
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get("www-authenticate") ?? "", /^Bearer/);
  const wrong = await bot.get("/metrics", { headers: { authorization: "Bearer nope" } });
  assert.equal(wrong.status, 401);

  const scrape = () =>
    bot.get("/metrics", { headers: { authorization: "Bearer scrape-me-please" } });
  // The reply goes out before the update has finished (its commit and counters come after it).
  let metrics = await scrape();
  for (const deadline = Date.now() + 15_000; /^bot_updates_in_flight 1$/m.test(metrics.body);) {
    if (Date.now() > deadline) assert.fail(`the update never finished:\n${metrics.body}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    metrics = await scrape();
  }
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = metrics.body;
  assert.match(text, /^# TYPE bot_updates_total counter$/m);
  assert.match(text, /^bot_updates_total\{type="message",outcome="handled"\} 1$/m);
  assert.match(text, /^bot_update_duration_seconds_bucket\{le="\+Inf",type="message"\} 1$/m);
  assert.match(text, /^bot_api_calls_total\{method="sendMessage",result="ok"\} 1$/m);
  assert.match(text, /^bot_updates_in_flight 0$/m);
  const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
  assert.ok(rss > 10_000_000, `RSS is real (${rss})`);
  assert.match(text, /^process_cpu_user_seconds_total [\d.e-]+$/m);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("a 429 from Telegram is retried after retry_after and counted", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.failNext("sendMessage", { error_code: 429, retry_after: 2 });
  api.pushMessage({ chatId: 31, text: "/start" });
  await api.waitFor(
    () => api.sentMessages(31).length === 1 || undefined,
    15_000,
    "the reply after the flood wait",
  );
  const attempts = api.calls.filter((call) => call.method === "sendMessage");
  assert.equal(attempts.length, 2);
  const waited = attempts[1]!.at - attempts[0]!.at;
  assert.ok(waited >= 2000, `the retry waited retry_after (waited ${waited} ms)`);
  const metrics = (await bot.get("/metrics")).body;
  assert.match(metrics, /^bot_api_calls_total\{method="sendMessage",result="429"\} 1$/m);
  assert.match(metrics, /^bot_api_retries_total\{method="sendMessage",reason="429"\} 1$/m);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("a failing handler gets the user a friendly reply and an error log line with the stack", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.failNext("sendMessage", {
    error_code: 400,
    description: "Bad Request: can't parse entities: test",
  });
  api.pushMessage({ chatId: 41, text: "/start", languageCode: "ru" });
  await api.waitFor(() => api.sentMessages(41).length === 1 || undefined, 15_000, "the apology");
  assert.match(api.sentMessages(41)[0]!.text, /^Извините, у нас что-то пошло не так/);
  const failure = await bot.waitForLog(/^handler failed/);
  assert.equal(failure.level, "error");
  assert.equal(failure.update_type, "message");
  assert.match(JSON.stringify(failure.error), /stack/);
  const done = await bot.waitForLog(/^update error$/);
  assert.equal(done.chat_id, 41);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("two pollers: the 409 conflict is logged and retried, never a crash", async () => {
  await using api = await FakeBotApi.start();
  await using first = await BotProcess.start({ api });
  await using second = await BotProcess.start({ api });
  await first.waitReady();
  await second.waitReady();
  await Promise.all(
    [
      first.waitForLog(/getUpdates failed \(conflict\)/),
      second.waitForLog(/getUpdates failed \(conflict\)/),
    ].map((p) => p.catch(() => null)),
  );
  const conflicts = [...first.logs(/conflict/), ...second.logs(/conflict/)];
  assert.ok(conflicts.length > 0, "the conflict was logged");
  assert.equal(conflicts[0]!.level, "warning");
  assert.equal((await first.stop()).code, 0);
  assert.equal((await second.stop()).code, 0);
});
