import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

Deno.test("polling mode: /start and /help are answered in the user's language", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();

  api.pushMessage({ chatId: 101, text: "/start", languageCode: "en", firstName: "Alice" });
  api.pushMessage({ chatId: 202, text: "/start", languageCode: "ru", firstName: "Борис" });
  api.pushMessage({ chatId: 101, text: "/help", languageCode: "en" });
  await api.waitFor(() => api.sentMessages().length >= 3, 15_000, "three replies");

  const [greeting, help] = api.sentMessages(101);
  assert.match(greeting!.text, /^Hello, Alice!/);
  assert.match(help!.text, /\/help/);
  assert.match(help!.text, /\/start/);
  assert.match(api.sentMessages(202)[0]!.text, /^Здравствуйте, Борис!/);

  // The command menu is published in every language.
  const menus = api.callsOf("setMyCommands");
  assert.deepEqual(menus.map((m) => m.language_code), [undefined, "en", "ru", "uk"]);
  assert.deepEqual(
    (menus[2]!.commands as Array<{ command: string }>).map((c) => c.command),
    ["start", "new", "my", "status", "language", "help", "stop"],
  );

  // Polling asked only for the update types the bot handles.
  const polls = api.callsOf("getUpdates").filter((p) => p.allowed_updates !== undefined);
  assert.ok(polls.length > 0);
  assert.deepEqual(polls[0]!.allowed_updates, ["callback_query", "message", "my_chat_member"]);

  const status = await bot.stop();
  assert.equal(status.code, 0);
  // Everything handled was confirmed to Telegram, and handled exactly once.
  assert.equal(api.pendingCount(), 0);
  assert.equal(api.sentMessages().length, 3);
});

Deno.test("polling mode: each update logs one line with its ids, type and duration", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  const id = api.pushMessage({ chatId: 303, userId: 909, text: "/start" });
  const line = await bot.waitForLog(/^update handled$/);
  assert.equal(line.update_id, id);
  assert.equal(line.chat_id, 303);
  assert.equal(line.user_id, 909);
  assert.equal(line.update_type, "message");
  assert.equal(typeof line.duration_ms, "number");
  const start = bot.logs(/^starting service-desk-bot/)[0];
  assert.ok(start, "a start-up line says which mode is in use");
  assert.equal(start.mode, "polling");
  assert.equal(start.database, "pglite (embedded)");
  assert.equal(start.store, "deno-kv (embedded)");
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("polling mode: a private message that is not a command gets a hint, unknown commands are named", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.pushMessage({ chatId: 404, text: "hello there" });
  api.pushMessage({ chatId: 404, text: "/frobnicate now" });
  await api.waitFor(() => api.sentMessages(404).length >= 2, 15_000, "two replies");
  const [hint, unknown] = api.sentMessages(404);
  assert.match(hint!.text, /\/help/);
  assert.match(unknown!.text, /\/frobnicate/);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("polling mode: one chat's updates are handled in order, other chats meanwhile", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.delay("sendMessage", 400);
  api.pushMessage({ chatId: 501, text: "/start" });
  api.pushMessage({ chatId: 501, text: "/help" });
  api.pushMessage({ chatId: 501, text: "thanks" });
  api.pushMessage({ chatId: 502, text: "/start" });
  await api.waitFor(() => api.sentMessages().length === 4 || undefined, 15_000, "four replies");

  const calls = api.calls.filter((call) => call.method === "sendMessage");
  const chat501 = calls.filter((call) => call.params.chat_id === 501);
  assert.match(String(chat501[0]!.params.text), /^Hello/);
  assert.match(String(chat501[1]!.params.text), /^Here is what I can do/);
  assert.match(String(chat501[2]!.params.text), /only understand commands/);
  // Each reply of chat 501 was sent only after the previous one had been answered...
  for (let i = 1; i < chat501.length; i++) {
    assert.ok(chat501[i]!.at - chat501[i - 1]!.at >= 400, "one chat's updates never overlap");
  }
  // ...while chat 502 did not wait for chat 501.
  const chat502 = calls.find((call) => call.params.chat_id === 502)!;
  assert.ok(chat502.at < chat501[1]!.at, "another chat runs concurrently");
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("polling mode: Bot API errors while polling are retried with backoff, then updates flow again", async () => {
  await using api = await FakeBotApi.start();
  // Armed before the start: once ready, a poll may already be waiting at "Telegram", and that
  // one would bring the message before any fault.
  api.failNext("getUpdates", { error_code: 502 }, 2);
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.pushMessage({ chatId: 601, text: "/start" });
  await api.waitFor(
    () => api.sentMessages(601).length === 1 || undefined,
    20_000,
    "the reply after the errors",
  );
  const warnings = bot.logs(/^getUpdates failed \(api\)/);
  assert.ok(warnings.length >= 1, "the failed polls were logged");
  assert.equal(warnings[0]!.level, "warning");
  const metrics = (await bot.get("/metrics")).body;
  assert.match(metrics, /^bot_polling_errors_total\{reason="api"\} [12]$/m);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("polling mode: a token revoked while running stops the program with exit 77", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.failNext("getUpdates", { error_code: 401, description: "Unauthorized" }, 100);
  api.pushMessage({ chatId: 602, text: "/start" });
  const status = await bot.status;
  assert.equal(status.code, 77);
  assert.equal(bot.logs(/^transport failed: Telegram refused BOT_TOKEN/).length, 1);
  assert.equal(bot.logs(/^stopped after/).length, 1, "it still stops in order");
});
