/**
 * The two ways the bot speaks to the user outside a feature's own flow: a notice where the
 * user is looking (the answer to the button they pressed, else their chat) and the answer to a
 * button press. Neither throws: a notice that cannot be delivered must not fail the update
 * that wanted to give it.
 */
import { errorMessage } from "../errors.ts";
import type { BotContext } from "./context.ts";

/**
 * Tells the user `text`: as an alert on the button they pressed, else in the chat. Returns
 * what Telegram refused it with (e.g. a 403 from a user who blocked the bot), or null.
 */
export async function notify(ctx: BotContext, text: string): Promise<unknown> {
  try {
    if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text, show_alert: true });
    else if (ctx.chat) await ctx.reply(text);
    return null;
  } catch (error) {
    ctx.log.warning("could not send a notice to the user: {message}", {
      message: errorMessage(error),
    });
    return error;
  }
}

/**
 * Answers the button press, with a short text when given. A press handled again after a
 * restart is older than the 15 s Telegram allows for an answer; the message that follows
 * matters more, so a failure is only logged.
 */
export async function answerPress(ctx: BotContext, text?: string): Promise<void> {
  try {
    await ctx.answerCallbackQuery(text === undefined ? {} : { text });
  } catch (error) {
    ctx.log.info("could not answer the button press: {message}", { message: errorMessage(error) });
  }
}
