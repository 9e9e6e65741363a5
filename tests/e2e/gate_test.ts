import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startRedis } from "../support/redis_server.ts";
import { textMessage } from "../updates.ts";
import { BotProcess, freePort, metricSample, webhookEnv } from "./program.ts";

Deno.test("gate: 25 rapid messages with a limit of 20 per 600 s: 20 answers, one notice, then one ban notice", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({
    api,
    // The answers to one chat go out at about one a second (Telegram's limit, which the flood
    // control keeps): twenty take ~20 s, in which a one-minute window would give tokens back.
    env: {
      RATE_LIMIT_MAX_REQUESTS: "20",
      RATE_LIMIT_TIME_WINDOW: "600",
      RATE_LIMIT_BAN_AFTER: "5",
    },
  });
  await bot.waitReady();
  for (let i = 0; i < 25; i++) api.pushMessage({ chatId: 801, text: "/help", languageCode: "en" });
  await bot.waitForLog(/^update limited$/, 40_000);
  await api.waitFor(() => bot.logs(/^update /).length === 25, 40_000, "25 updates handled");
  let sent = api.sentMessages(801).map((m) => m.text);
  assert.equal(sent.filter((text) => /\/help/.test(text)).length, 20);
  const notices = sent.filter((text) => /too fast/.test(text));
  assert.equal(notices.length, 1, sent.join("\n---\n"));
  assert.match(notices[0]!, /Please wait \d+ seconds?,/);

  // Spam goes on: the sixth limited message bans, with one notice, and the rest is ignored.
  for (let i = 0; i < 4; i++) api.pushMessage({ chatId: 801, text: "/help", languageCode: "en" });
  await api.waitFor(() => bot.logs(/^update /).length === 29, 20_000, "29 updates handled");
  sent = api.sentMessages(801).map((m) => m.text);
  assert.equal(sent.filter((text) => /ignore your messages for 60 minutes\./.test(text)).length, 1);
  assert.equal(sent.length, 22);

  const metrics = (await bot.get("/metrics")).body;
  assert.equal(metricSample(metrics, 'bot_gate_total{outcome="passed"}'), 20);
  assert.equal(metricSample(metrics, 'bot_gate_total{outcome="limited"}'), 5);
  assert.equal(metricSample(metrics, 'bot_gate_total{outcome="banned"}'), 4);
  assert.equal(metricSample(metrics, 'bot_updates_total{type="message",outcome="banned"}'), 4);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("gate: admins are exempt; Russian speakers get the notice in Russian", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({
    api,
    env: { ADMIN_IDS: "901", RATE_LIMIT_MAX_REQUESTS: "3" },
  });
  await bot.waitReady();
  for (let i = 0; i < 6; i++) api.pushMessage({ chatId: 901, text: "/help", languageCode: "en" });
  for (let i = 0; i < 4; i++) api.pushMessage({ chatId: 902, text: "/help", languageCode: "ru" });
  await api.waitFor(() => bot.logs(/^update /).length === 10, 20_000, "10 updates handled");
  assert.equal(api.sentMessages(901).length, 6);
  const russian = api.sentMessages(902).map((m) => m.text);
  assert.equal(russian.length, 4);
  assert.match(russian[3]!, /слишком часто/);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("gate: an update delivered again, to either of two webhook instances sharing Redis, is handled once", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  const secret = "gate_e2e-Secret_0123456789";
  const env = (port: number) => ({ ...webhookEnv(port, secret), REDIS_URL: redis.url });
  await using first = await BotProcess.start({ api, env: env(freePort()) });
  await first.waitReady();
  await using second = await BotProcess.start({ api, env: env(freePort()) });
  await second.waitReady();
  const update = JSON.stringify(textMessage({ updateId: 5_000, chatId: 1001, text: "/help" }));
  const post = (bot: BotProcess) =>
    fetch(`${bot.url}/telegram/hook`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
      body: update,
    }).then((res) => res.status);
  // Telegram retrying a delivery, the retry landing on the other instance, then on the first.
  assert.equal(await post(first), 200);
  assert.equal(await post(second), 200);
  assert.equal(await post(first), 200);
  // The webhook answers 200 only once the update is handled, so all three are done here.
  assert.equal(api.sentMessages(1001).length, 1);
  const duplicates = [...first.logs(/^update duplicate$/), ...second.logs(/^update duplicate$/)];
  assert.equal(duplicates.length, 2);
});
