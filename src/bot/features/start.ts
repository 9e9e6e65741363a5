import { Composer } from "grammy";
import type { BotContext } from "../context.ts";

/** `/start` greets the user by name; `/help` lists the commands. */
export const startFeature = new Composer<BotContext>();

startFeature.command("start", async (ctx) => {
  await ctx.reply(ctx.t("start.greeting", { name: ctx.from?.first_name ?? "" }));
});

startFeature.command("help", async (ctx) => {
  await ctx.reply(ctx.t("help.text"));
});
