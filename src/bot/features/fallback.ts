import { BotComposer } from "../composer.ts";
import type { BotContext } from "../context.ts";

/**
 * The last feature: a private message nobody handled gets a hint instead of silence.
 * Groups are left alone, where the bot would otherwise answer every conversation. A button
 * nobody handled (an old message's, or forged data) is answered everywhere, so that the
 * client stops spinning.
 */
export const fallbackFeature = new BotComposer<BotContext>();

fallbackFeature.on("callback_query", async (ctx) => {
  await ctx.answerCallbackQuery({ text: ctx.t("unknown.button") });
});

const privateChat = fallbackFeature.chatType("private");

privateChat.on("message:text", async (ctx) => {
  const command = ctx.msg.entities?.find((e) => e.type === "bot_command" && e.offset === 0);
  if (command) {
    const name = ctx.msg.text.slice(0, command.length);
    await ctx.reply(ctx.t("unknown.command", { command: name }));
  } else {
    await ctx.reply(ctx.t("unknown.text"));
  }
});
