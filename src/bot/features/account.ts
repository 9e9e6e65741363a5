/**
 * The user's account: `/start` (register, subscribe, greet with the menu), `/stop`
 * (unsubscribe), `/help`, and `/language` with one button per language the bot speaks.
 */
import { InlineKeyboard } from "grammy";
import { BotComposer } from "../composer.ts";
import { type Locale, SUPPORTED_LOCALES } from "../../config.ts";
import type { BotContext } from "../context.ts";
import { type MessageKey, translate } from "../i18n.ts";
import type { UserCache } from "../../store/user_cache.ts";
import type { Feature } from "../feature.ts";
import type { Roles } from "../roles.ts";
import { errorMessage } from "../../errors.ts";

/** Each language's name in itself, as its button shows it. */
const LANGUAGE_NAMES: Record<Locale, string> = { en: "English", ru: "Русский", uk: "Українська" };

/** The callback data of a language button: `lang:<locale>`. */
const LANGUAGE_DATA = /^lang:(.*)$/;

function greet(ctx: BotContext): Promise<unknown> {
  return ctx.reply(ctx.t("start.greeting", { name: ctx.from?.first_name ?? "" }));
}

function help(ctx: BotContext, admin: boolean): Promise<unknown> {
  const text = ctx.t("help.text");
  return ctx.reply(admin ? `${text}\n\n${ctx.t("help.admin")}` : text);
}

/**
 * `/start` and `/help` without storage: what the bot answers when `createBot` gets no
 * features of its own (tests, benchmarks).
 */
export const greetingFeature: Feature = (() => {
  const composer = new BotComposer<BotContext>();
  composer.command("start", greet);
  composer.command("help", (ctx) => help(ctx, false));
  return { name: "greeting", composer, commands: { user: ["start", "help"] } };
})();

/** What the account feature needs. */
export interface AccountOptions {
  /** Changes to the user's profile that keep the cached copy in step. */
  profiles: Pick<UserCache, "setNotifications" | "setLocale" | "markBlocked">;
  roles: Roles;
}

/** `/start`, `/stop`, `/help` and `/language`, on the user's stored profile. */
export function accountFeature(options: AccountOptions): Feature {
  const { profiles, roles } = options;
  const feature = new BotComposer<BotContext>();
  const isAdmin = (ctx: BotContext) => roles.isAdmin(ctx.from?.id);

  /** Stores `change` on the user's profile; false when the profile or storage is unavailable. */
  async function save(ctx: BotContext, what: string, change: (id: number) => Promise<unknown>) {
    if (!ctx.user) return false;
    try {
      return (await change(ctx.user.id)) !== null;
    } catch (error) {
      ctx.log.warning("could not save {what}: {message}", {
        what,
        message: errorMessage(error),
      });
      return false;
    }
  }

  feature.command("start", async (ctx) => {
    // The user stage registered the sender; subscribing is a nicety that must not cost the greeting.
    if (ctx.user && !ctx.user.notifications) {
      await save(ctx, "the subscription", (id) => profiles.setNotifications(id, true));
    }
    await greet(ctx);
  });

  feature.command("stop", async (ctx) => {
    const saved = ctx.user?.notifications === false ||
      await save(ctx, "the unsubscription", (id) => profiles.setNotifications(id, false));
    await ctx.reply(ctx.t(saved ? "stop.done" : "account.unavailable"));
  });

  feature.command("help", (ctx) => help(ctx, isAdmin(ctx)));

  feature.command("language", async (ctx) => {
    const keyboard = new InlineKeyboard();
    for (const locale of SUPPORTED_LOCALES) {
      keyboard.text(LANGUAGE_NAMES[locale], `lang:${locale}`);
    }
    await ctx.reply(ctx.t("language.choose"), { reply_markup: keyboard });
  });

  feature.callbackQuery(LANGUAGE_DATA, async (ctx) => {
    const wanted = ctx.match[1];
    const locale = SUPPORTED_LOCALES.find((l) => l === wanted);
    if (!locale) {
      await ctx.answerCallbackQuery({ text: ctx.t("language.invalid") });
      return;
    }
    const saved = await save(ctx, "the language", (id) => profiles.setLocale(id, locale));
    if (!saved) {
      await ctx.answerCallbackQuery({ text: ctx.t("account.unavailable"), show_alert: true });
      return;
    }
    ctx.locale = locale;
    ctx.t = (key: MessageKey, params) => translate(locale, key, params);
    const text = ctx.t("language.changed");
    await ctx.answerCallbackQuery({ text });
    // Replacing the question with the answer also removes the buttons.
    await ctx.editMessageText(text).catch((error) =>
      ctx.log.warning("could not edit the language message", { error })
    );
  });

  // Telegram tells the bot when a user blocks it: announcements skip them from then on. Their
  // next message (they unblocked) clears the mark.
  feature.chatType("private").on("my_chat_member", async (ctx) => {
    if (ctx.myChatMember.new_chat_member.status !== "kicked") return;
    ctx.log.info("user {blocked_user_id} blocked the bot", { blocked_user_id: ctx.chat.id });
    await profiles.markBlocked(ctx.chat.id).catch((error) =>
      ctx.log.warning("could not record that a user blocked the bot: {message}", {
        message: errorMessage(error),
      })
    );
  });

  return {
    name: "account",
    composer: feature,
    updates: ["my_chat_member"],
    commands: {
      user: [
        { command: "start", rank: 1 },
        { command: "language", rank: 5 },
        { command: "help", rank: 6 },
        { command: "stop", rank: 7 },
      ],
    },
  };
}
