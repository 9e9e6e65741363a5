import assert from "node:assert/strict";
import { BOT_INFO } from "../../bench/in_memory_bot_api.ts";
import { createBot } from "../../src/bot/pipeline.ts";
import { Metrics } from "../../src/metrics.ts";
import { textMessage } from "../updates.ts";

/** A bot without storage whose Bot API calls land in `calls`. */
function recordingBot() {
  const calls: { method: string; body: Record<string, unknown> }[] = [];
  const metrics = new Metrics();
  metrics[Symbol.dispose]();
  const bot = createBot({
    token: "123456:TEST-token_abcdefghijklmnopqrstuvwxyz",
    apiRoot: "http://bot-api.invalid",
    defaultLocale: "en",
    metrics,
    botInfo: BOT_INFO,
    fetch: (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      calls.push({ method: url.split("/").at(-1)!, body: JSON.parse(String(init?.body ?? "{}")) });
      return Promise.resolve(Response.json({ ok: true, result: true }));
    },
  });
  return { bot, calls };
}

Deno.test("fallback answers a button nobody handled, so the client stops spinning", async () => {
  const { bot, calls } = recordingBot();
  await bot.handleUpdate({
    update_id: 1,
    callback_query: {
      id: "q1",
      from: { id: 7, is_bot: false, first_name: "Ada", language_code: "ru" },
      chat_instance: "c",
      data: "forged:data",
      message: { message_id: 3, date: 0, chat: { id: 7, type: "private", first_name: "Ada" } },
    },
  });
  assert.deepEqual(calls, [{
    method: "answerCallbackQuery",
    body: {
      callback_query_id: "q1",
      text: "Эта кнопка больше не действует. Отправьте /help, чтобы увидеть, что я умею.",
    },
  }]);
});

Deno.test("fallback leaves group messages alone and hints in private chats", async () => {
  const { bot, calls } = recordingBot();
  const group = textMessage({ updateId: 2, chatId: 8, text: "hello all" });
  (group.message!.chat as { type: string }).type = "group";
  await bot.handleUpdate(group);
  assert.equal(calls.length, 0);
  await bot.handleUpdate(textMessage({ updateId: 3, chatId: 8, text: "hello" }));
  assert.deepEqual(calls.map((c) => c.method), ["sendMessage"]);
});
