import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { textMessage } from "../updates.ts";
import { BotProcess, freePort, webhookEnv } from "./program.ts";

const SECRET = "e2e_webhook-Secret_0123456789";

async function startWebhookBot(api: FakeBotApi, env: Record<string, string> = {}) {
  const bot = await BotProcess.start({
    api,
    env: { ...webhookEnv(freePort(), SECRET), WEBHOOK_MAX_CONNECTIONS: "10", ...env },
  });
  await bot.waitReady();
  return bot;
}

Deno.test("webhook mode: registers the webhook and answers /start delivered by Telegram", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await startWebhookBot(api);
  const [registration] = api.callsOf("setWebhook");
  assert.ok(registration, "setWebhook was called");
  assert.equal(registration.url, `http://127.0.0.1:${bot.port}/telegram/hook`);
  assert.equal(registration.secret_token, SECRET);
  assert.equal(registration.max_connections, 10);
  assert.deepEqual(registration.allowed_updates, ["callback_query", "message", "my_chat_member"]);

  api.pushMessage({ chatId: 11, text: "/start", languageCode: "ru", firstName: "Оля" });
  api.pushMessage({ chatId: 12, text: "/help" });
  await api.waitFor(() => api.sentMessages().length >= 2 || undefined, 15_000, "two replies");
  assert.match(api.sentMessages(11)[0]!.text, /^Здравствуйте, Оля!/);
  assert.match(api.sentMessages(12)[0]!.text, /\/start/);
  assert.ok(api.webhookPosts.every((post) => post.status === 200 && post.secretHeader === SECRET));
  assert.equal(api.callsOf("getUpdates").length, 0, "webhook mode never polls");
  const health = JSON.parse((await bot.get("/health")).body);
  assert.equal(health.status, "pass");
  assert.equal(health.checks["webhook:telegram"][0].status, "pass");
  assert.equal((await bot.stop()).code, 0);
  assert.equal(api.pendingCount(), 0);
});

Deno.test("webhook mode: a wrong or missing secret gets 401 and nothing is handled", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await startWebhookBot(api);
  const update = JSON.stringify(
    textMessage({ updateId: 777, chatId: 13, text: "/start", firstName: "Eve" }),
  );

  const hook = `${bot.url}/telegram/hook`;
  const wrong = await fetch(hook, {
    method: "POST",
    body: update,
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": "guess" },
  });
  await wrong.body?.cancel();
  assert.equal(wrong.status, 401);
  const missing = await fetch(hook, {
    method: "POST",
    body: update,
    headers: { "content-type": "application/json" },
  });
  await missing.body?.cancel();
  assert.equal(missing.status, 401);

  const metrics = (await bot.get("/metrics")).body;
  assert.doesNotMatch(metrics, /^bot_updates_total/m, "no update was handled");
  assert.match(metrics, /bot_webhook_rejected_total\{status="401"\} 2/);
  assert.equal(api.sentMessages().length, 0);
  assert.equal(bot.logs(/^update /).length, 0);
});

Deno.test("webhook mode: bad bodies get 4xx and the bot keeps working", async (t) => {
  await using api = await FakeBotApi.start();
  await using bot = await startWebhookBot(api);
  const post = async (body: BodyInit, headers: Record<string, string> = {}) => {
    const res = await fetch(`${bot.url}/telegram/hook`, {
      method: "POST",
      body,
      headers: { "x-telegram-bot-api-secret-token": SECRET, ...headers },
    });
    await res.body?.cancel();
    return res.status;
  };
  await t.step("malformed JSON gets 400", async () => assert.equal(await post("{not json"), 400));
  await t.step(
    "JSON without update_id gets 400",
    async () => assert.equal(await post('{"message":{}}'), 400),
  );
  await t.step("a body over 1 MiB gets 413", async () => {
    assert.equal(await post(`{"update_id":1,"pad":"${"x".repeat(1024 * 1024 + 10)}"}`), 413);
  });
  await t.step("GET on the webhook path gets 405", async () => {
    const res = await fetch(`${bot.url}/telegram/hook`, {
      headers: { "x-telegram-bot-api-secret-token": SECRET },
    });
    await res.body?.cancel();
    assert.equal(res.status, 405);
  });
  await t.step("a good update afterwards is handled", async () => {
    api.pushMessage({ chatId: 14, text: "/start" });
    await api.waitFor(() => api.sentMessages(14).length === 1 || undefined, 15_000, "the reply");
  });
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("webhook mode: during a stop new deliveries get 503 and Telegram retries them later", async () => {
  await using api = await FakeBotApi.start({ webhookRetryDelayMs: 100 });
  const bot = await startWebhookBot(api, { SHUTDOWN_TIMEOUT: "10" });
  try {
    api.delay("sendMessage", 1500);
    const slow = api.pushMessage({ chatId: 15, text: "/start" });
    await api.waitFor(
      () => api.callsOf("sendMessage").length === 1 || undefined,
      15_000,
      "the slow reply",
    );
    bot.kill("SIGTERM");
    await bot.waitForLog(/^stopping/);
    const late = api.pushMessage({ chatId: 16, text: "/start" });
    await api.waitFor(
      () => api.webhookPosts.some((p) => p.updateId === late && p.status === 503) || undefined,
      10_000,
      "a 503 for the late update",
    );
    assert.equal((await bot.status).code, 0);
    assert.equal(api.sentMessages(15).length, 1, "the in-flight update finished");
    assert.ok(
      api.webhookPosts.some((p) => p.updateId === slow && p.status === 200),
      "and was confirmed with 200",
    );
    assert.equal(api.sentMessages(16).length, 0);
  } finally {
    await bot[Symbol.asyncDispose]();
  }
  // A new instance gets the update that was refused during the stop.
  api.delay("sendMessage", 0);
  await using next = await startWebhookBot(api);
  await api.waitFor(
    () => api.sentMessages(16).length === 1 || undefined,
    15_000,
    "the late update's reply",
  );
  assert.equal((await next.stop()).code, 0);
});

Deno.test("webhook mode: a button's answer travels in the webhook's 200, the rest as requests", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await startWebhookBot(api);
  const chatId = 17;
  api.pushMessage({ chatId, text: "/language" });
  await api.waitFor(
    () => api.sentMessages(chatId).some((m) => /^Choose the language/.test(m.text)) || undefined,
    15_000,
    "the language question",
  );

  const press = api.pushCallbackQuery({ chatId, data: "lang:uk" });
  const answer = await api.waitFor(
    () => api.calls.find((c) => c.method === "answerCallbackQuery"),
    15_000,
    "the button's answer",
  );
  // Telegram made the call from the 200 of the press's POST: the bot made no request for it.
  assert.equal(answer.via, "webhook-reply");
  assert.equal(answer.params.text, "Готово: відтепер я говоритиму з вами українською.");
  assert.deepEqual(answer.response, { ok: true, result: true });
  assert.ok(api.webhookPosts.some((p) => p.updateId === press && p.status === 200));
  // The edit's result is read (and it may need a retry): it stays a request of its own.
  const edit = await api.waitFor(
    () => api.calls.find((c) => c.method === "editMessageText"),
    15_000,
    "the edit",
  );
  assert.equal(edit.via, "request");
  assert.equal(edit.params.text, answer.params.text);

  // A second press of a stale button: answered again, in its own 200.
  api.pushCallbackQuery({ chatId, data: "lang:de" });
  const refused = await api.waitFor(
    () => api.calls.filter((c) => c.method === "answerCallbackQuery")[1],
    15_000,
    "the second answer",
  );
  assert.equal(refused.via, "webhook-reply");
  assert.match(String(refused.params.text), /^Ця кнопка більше не працює/);
  assert.equal(api.calls.filter((c) => c.via === "webhook-reply").length, 2);
  assert.equal((await bot.stop()).code, 0);
});
