import assert from "node:assert/strict";
import { createBot } from "../../src/bot/pipeline.ts";
import { type Call, recordingFetch, testBotOptions } from "../support/bots.ts";
import { textMessage } from "../updates.ts";

/** A bot without storage whose Bot API calls land in `calls`. */
function recordingBot() {
  const calls: Call[] = [];
  const bot = createBot(testBotOptions({ fetch: recordingFetch(calls) }));
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
