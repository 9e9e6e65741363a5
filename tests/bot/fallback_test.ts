import assert from "node:assert/strict";
import { Composer } from "grammy";
import type { Update } from "grammy/types";
import type { BotContext } from "../../src/bot/context.ts";
import { translate } from "../../src/bot/i18n.ts";
import { createBot } from "../../src/bot/pipeline.ts";
import { type Call, recordingFetch, testBotOptions } from "../support/bots.ts";
import { textMessage } from "../updates.ts";

/** A bot without storage whose Bot API calls land in `calls`. */
function recordingBot() {
  const calls: Call[] = [];
  const bot = createBot(testBotOptions({ fetch: recordingFetch(calls) }));
  return { bot, calls };
}

/** A press of a button whose data no feature knows, from Ada in `languageCode`. */
function forgedPress(languageCode: string): Update {
  return {
    update_id: 1,
    callback_query: {
      id: "q1",
      from: { id: 7, is_bot: false, first_name: "Ada", language_code: languageCode },
      chat_instance: "c",
      data: "forged:data",
      message: { message_id: 3, date: 0, chat: { id: 7, type: "private", first_name: "Ada" } },
    },
  };
}

Deno.test("fallback answers a button nobody handled, so the client stops spinning", async () => {
  const { bot, calls } = recordingBot();
  await bot.handleUpdate(forgedPress("ru"));
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

Deno.test("through a webhook, the button's answer travels in the 200; a reply still goes alone", async () => {
  const { bot, calls } = recordingBot();
  const replies: string[] = [];
  const envelope = {
    send(payload: string) {
      replies.push(payload);
      return Promise.resolve();
    },
  };
  await bot.handleUpdate(forgedPress("en"), envelope);
  assert.equal(calls.length, 0, "no request of its own");
  assert.equal(replies.length, 1);
  assert.deepEqual(JSON.parse(replies[0]!).method, "answerCallbackQuery");
  assert.equal(JSON.parse(replies[0]!).callback_query_id, "q1");
  // A message's reply is never answered through the webhook: it is retried and flood-controlled.
  await bot.handleUpdate(textMessage({ updateId: 2, chatId: 8, text: "hello" }), envelope);
  assert.deepEqual(calls.map((c) => c.method), ["sendMessage"]);
  assert.equal(replies.length, 1);
});

Deno.test("ctx.t can be passed on as a plain function and ctx.log bound lazily; both can be replaced", async () => {
  const calls: Call[] = [];
  const seen: string[] = [];
  const composer = new Composer<BotContext>();
  composer.command("start", async (ctx) => {
    const t = ctx.t;
    seen.push(t("error.generic"));
    ctx.locale = "ru";
    seen.push(ctx.t("error.generic"));
    ctx.t = () => "replaced";
    seen.push(ctx.t("error.generic"));
    assert.equal(typeof ctx.log.info, "function");
    await ctx.reply("ok");
  });
  const bot = createBot(
    testBotOptions({ fetch: recordingFetch(calls), features: [{ name: "t", composer }] }),
  );
  await bot.handleUpdate(
    textMessage({ updateId: 9, chatId: 8, text: "/start", languageCode: "en" }),
  );
  assert.deepEqual(seen, [
    translate("en", "error.generic"),
    translate("ru", "error.generic"),
    "replaced",
  ]);
  assert.deepEqual(calls.map((c) => c.method), ["sendMessage"]);
});
