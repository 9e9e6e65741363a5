import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

const ENTRY = "tests/e2e/fixtures/boom_bot.ts";
const ADMIN = 900;
const ENV = { ADMIN_IDS: String(ADMIN), RATE_LIMIT_ENABLED: "false" };

Deno.test("errors: a handler failing 50 times gets 50 apologies and one admin alert", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, entry: ENTRY, env: ENV });
  await bot.waitReady();
  // Ten users, five failures each: one chat gets about one message a second (Telegram's limit,
  // which the flood control keeps), so fifty apologies to one user would take a minute.
  const chats = Array.from({ length: 10 }, (_, i) => 501 + i);
  for (let i = 0; i < 50; i++) {
    api.pushMessage({ chatId: chats[i % 10]!, text: "/boom", languageCode: "ru" });
  }
  await api.waitFor(
    () => bot.logs(/^update error$/).length === 50,
    30_000,
    "50 failed updates",
  );
  const apologies = chats.flatMap((chat) => api.sentMessages(chat).map((m) => m.text));
  assert.equal(apologies.length, 50, "one friendly reply per update");
  assert.ok(apologies.every((text) => /Извините/.test(text)), apologies[0]);

  const failures = bot.logs(/^handler failed: injected failure/);
  assert.equal(failures.length, 50);
  assert.match(JSON.stringify(failures[0]), /boom_bot\.ts/, "the log has the stack");

  const alerts = api.sentMessages(ADMIN);
  assert.equal(alerts.length, 1, alerts.map((m) => m.text).join("\n---\n"));
  assert.equal(alerts[0]!.parse_mode, "HTML");
  const text = alerts[0]!.text;
  assert.match(text, /injected failure: &lt;boom&gt; &amp; co/, "the message is escaped");
  // Chats are handled side by side, so the alert names whichever update's apology went out
  // first: one of the fifty, with that update's own chat and user.
  const named = /Update (\d+) \(message\), chat (\d+), user (\d+) User/.exec(text);
  assert.ok(named, text);
  const failed = failures.find((l) => Number(l.update_id) === Number(named[1]));
  assert.ok(failed, `the alert names update ${named[1]}, which did not fail`);
  assert.equal(Number(named[2]), Number(failed.chat_id));
  assert.equal(Number(named[3]), Number(failed.user_id));
  assert.match(text, /boom_bot\.ts/, "the alert names where it failed");
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("errors: a user who blocked the bot is recorded as blocked and nobody is alerted", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, entry: ENTRY, env: ENV });
  await bot.waitReady();
  api.failNext("sendMessage", {
    error_code: 403,
    description: "Forbidden: bot was blocked by the user",
  });
  api.pushMessage({ chatId: 502, text: "/start", languageCode: "en" });
  await bot.waitForLog(/^user 502 blocked the bot$/);
  await api.waitFor(() => bot.logs(/^update error$/).length === 1, 10_000, "the update done");
  assert.equal(api.callsOf("sendMessage").length, 1, "no apology to a user who blocked the bot");

  api.pushMessage({ chatId: ADMIN, text: "/stats", languageCode: "en" });
  const [stats] = await api.waitFor(() =>
    api.sentMessages(ADMIN).length > 0 && api.sentMessages(ADMIN)
  );
  assert.match(stats!.text, /blocked the bot: 1;/);
  assert.equal(api.sentMessages(ADMIN).length, 1, "the /stats answer and no alert");
  assert.equal(bot.logs(/^handler failed/).length, 0);
  assert.equal((await bot.stop()).code, 0);
});
