import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess, slowUpdate } from "./program.ts";

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

Deno.test("polling mode: a private message from someone with no request says how to file one, unknown commands are named", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.pushMessage({ chatId: 404, text: "hello there" });
  api.pushMessage({ chatId: 404, text: "/frobnicate now" });
  await api.waitFor(() => api.sentMessages(404).length >= 2, 15_000, "two replies");
  const [hint, unknown] = api.sentMessages(404);
  assert.equal(hint!.text, "You have no open request to add this to. Send /new to file one.");
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
  assert.match(String(chat501[2]!.params.text), /no open request/);
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

/** How many times `bot` ran update `id` to its end (dropped as a duplicate does not count). */
function handled(bot: BotProcess, id: number): number {
  return bot.logs(/^update /).filter((line) =>
    line.update_id === id && line.outcome !== "duplicate"
  ).length;
}

Deno.test("polling mode: a slow update holds up no other chat", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  const slow = await slowUpdate(api, 801, 8000);

  // Meanwhile other users write, one after another (each once the last one was answered; a
  // chat of its own each, since Telegram lets a bot post about once a second per chat).
  const started = Date.now();
  for (let i = 1; i <= 20; i++) {
    api.pushMessage({ chatId: 810 + i, text: "/help" });
    await api.waitFor(() => api.sentMessages(810 + i).length === 1, 5000, `reply ${i}`);
  }
  const elapsed = Date.now() - started;
  assert.equal(handled(bot, slow), 0, `the slow update is still running after ${elapsed} ms`);
  // Polling paused up to 500 ms per poll while anything was in flight: about 6 s in all.
  assert.ok(elapsed < 3000, `20 replies took ${elapsed} ms`);

  const status = await bot.stop();
  assert.equal(status.code, 0);
  assert.equal(handled(bot, slow), 1, "the slow update finished at the stop");
  assert.equal(api.pendingCount(), 0);
});

Deno.test("polling mode: killed during a slow update, the restart handles it once and nothing else twice", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-" });
  try {
    const first = await BotProcess.start({ api, cwd });
    await first.waitReady();
    const slow = await slowUpdate(api, 841, 60_000);
    const quick = [842, 843, 844].map((chatId) => api.pushMessage({ chatId, text: "/help" }));
    await api.waitFor(() => api.sentMessages().length === 3, 15_000, "the quick replies");
    await first.waitFor(() => quick.every((id) => handled(first, id) === 1) || undefined);
    first.kill("SIGKILL");
    await first.status;
    api.delay("answerCallbackQuery", 0);

    await using second = await BotProcess.start({ api, cwd });
    await second.waitReady();
    await second.waitFor(() => handled(second, slow) || undefined, 15_000, "the slow update");
    const after = api.pushMessage({ chatId: 845, text: "/help" });
    await second.waitFor(() => handled(second, after) || undefined, 15_000, "the next update");
    assert.equal(handled(first, slow), 0, "cut off by the kill");
    assert.equal(handled(second, slow), 1, "handled once after the restart");
    for (const id of quick) assert.equal(handled(second, id), 0, `update ${id} not again`);
    assert.deepEqual([842, 843, 844].map((chat) => api.sentMessages(chat).length), [1, 1, 1]);
    assert.equal(handled(second, after), 1);
    assert.equal((await second.stop()).code, 0);
    assert.equal(api.pendingCount(), 0);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("polling mode: a stop waits for the slow update, which the restart does not handle again", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-" });
  try {
    const first = await BotProcess.start({ api, cwd });
    await first.waitReady();
    const slow = await slowUpdate(api, 821, 2500);
    const quick = api.pushMessage({ chatId: 822, text: "/help" });
    await first.waitFor(() => handled(first, quick) || undefined, 15_000, "the quick update");
    first.kill("SIGTERM");
    assert.equal((await first.status).code, 0);
    const summary = first.logs(/^stopped after/)[0]!;
    assert.equal(summary.finished, 1);
    assert.deepEqual(summary.abandoned, []);
    assert.equal(handled(first, slow), 1);
    api.delay("answerCallbackQuery", 0);

    await using second = await BotProcess.start({ api, cwd });
    await second.waitReady();
    api.pushMessage({ chatId: 823, text: "/help" });
    await api.waitFor(() => api.sentMessages(823).length === 1, 15_000, "the next reply");
    // After the stop, whatever the second program ran has been logged.
    assert.equal((await second.stop()).code, 0);
    assert.equal(second.logs(/^update /).filter((l) => l.update_id === slow).length, 0);
    assert.equal(api.callsOf("answerCallbackQuery").length, 1, "answered once");
    assert.equal(api.sentMessages(822).length, 1);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
