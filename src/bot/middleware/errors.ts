import type { MiddlewareFn } from "grammy";
import type { BotContext } from "../context.ts";

/**
 * Pipeline stage 2: catches every error thrown below, logs it with its stack and the update's
 * context, and answers the user kindly in their language instead of leaving them waiting.
 */
export function errorsStage(): MiddlewareFn<BotContext> {
  return async function errors(ctx, next) {
    try {
      await next();
    } catch (error) {
      ctx.outcome = "error";
      ctx.log.error("handler failed: {message}", {
        message: error instanceof Error ? error.message : String(error),
        error,
      });
      await apologize(ctx);
    }
  };
}

async function apologize(ctx: BotContext): Promise<void> {
  try {
    if (ctx.callbackQuery) {
      await ctx.answerCallbackQuery({ text: ctx.t("error.generic"), show_alert: true });
    } else if (ctx.chat) {
      await ctx.reply(ctx.t("error.generic"));
    }
  } catch (error) {
    // The apology itself failed (Telegram down, user blocked the bot): log it, never rethrow.
    ctx.log.warning("could not tell the user about the error", { error });
  }
}
