/**
 * Rating a closed request: the notice of a done request carries five buttons (`rating.ts`);
 * a press stores the rating (only for the presser's own done request), thanks the user and
 * offers an optional comment, their next message (or `/skip`).
 */
import { Composer } from "grammy";
import { BotComposer } from "../composer.ts";
import { z } from "zod";
import type { RequestLifecycle } from "../../db/request_lifecycle.ts";
import type { BotContext } from "../context.ts";
import { defineDialog } from "../dialog/dialog.ts";
import { RATING_DATA, starsText } from "../rating.ts";
import { answerPress } from "../reply.ts";

/** A user writing a comment on their rating. */
export const ratingDialog = defineDialog({
  name: "rating",
  steps: ["comment"],
  schema: z.object({ number: z.number().int().positive() }),
});

/** Longest comment kept. */
const COMMENT_MAX = 1000;

/** The rating buttons and the comment; for private chats. */
export function ratingComposer(
  lifecycle: Pick<RequestLifecycle, "rate" | "comment">,
): Composer<BotContext> {
  const composer = new BotComposer<BotContext>();

  composer.callbackQuery(RATING_DATA, async (ctx) => {
    const number = Number(ctx.match[1]);
    const stars = Number(ctx.match[2]);
    if (!(await lifecycle.rate(number, ctx.from.id, stars))) {
      return await answerPress(ctx, ctx.t("conversation.rate.stale"));
    }
    await answerPress(ctx);
    const thanks = ctx.t("conversation.rate.thanks", { number, stars: starsText(stars) });
    // The buttons go; the thanks take their place under the notice.
    await ctx.editMessageReplyMarkup({ reply_markup: { inline_keyboard: [] } }).catch(() => {});
    ratingDialog.enter(ctx, "comment", { number });
    await ctx.reply(`${thanks}\n${ctx.t("conversation.rate.comment_ask")}`);
  });

  const commenting = composer.filter(ratingDialog.at("comment"));
  commenting.command("skip", async (ctx) => {
    ratingDialog.leave(ctx);
    await ctx.reply(ctx.t("conversation.rate.skipped"));
  });
  commenting.on("message:text", async (ctx, next) => {
    if (ctx.message.text.startsWith("/")) {
      // Another command: the comment is dropped and the command goes on.
      ratingDialog.leave(ctx);
      return await next();
    }
    const { number } = ratingDialog.current(ctx)!.data;
    ratingDialog.leave(ctx);
    await lifecycle.comment(number, ctx.from.id, ctx.message.text.slice(0, COMMENT_MAX));
    await ctx.reply(ctx.t("conversation.rate.comment_saved"));
  });
  return composer;
}
