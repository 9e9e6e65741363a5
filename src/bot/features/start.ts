import { type Api, Composer } from "grammy";
import { type Locale, SUPPORTED_LOCALES } from "../../config.ts";
import type { BotContext } from "../context.ts";
import { translate } from "../i18n.ts";

/** `/start` greets the user by name; `/help` lists the commands. */
export const startFeature = new Composer<BotContext>();

startFeature.command("start", async (ctx) => {
  await ctx.reply(ctx.t("start.greeting", { name: ctx.from?.first_name ?? "" }));
});

startFeature.command("help", async (ctx) => {
  await ctx.reply(ctx.t("help.text"));
});

/**
 * Publishes the command menu Telegram shows next to the input field, in every language the
 * bot speaks; users of other languages see `defaultLocale`'s.
 */
export async function publishCommands(
  api: Api,
  defaultLocale: Locale,
  signal?: AbortSignal,
): Promise<void> {
  const commands = (locale: Locale) => [
    { command: "start", description: translate(locale, "command.start") },
    { command: "help", description: translate(locale, "command.help") },
  ];
  await api.setMyCommands(commands(defaultLocale), {}, signal as never);
  for (const locale of SUPPORTED_LOCALES) {
    await api.setMyCommands(commands(locale), { language_code: locale }, signal as never);
  }
}
