import type { MiddlewareFn } from "grammy";
import type { User } from "grammy/types";
import type { TelegramProfile, UserRow } from "../../db/users.ts";
import type { Locale } from "../../config.ts";
import type { Json } from "../../store/store.ts";
import type { BotContext } from "../context.ts";
import { pickLocale } from "../i18n.ts";
import { errorMessage } from "../../errors.ts";

/** What the user stage needs: cached profile lookups. */
export interface UserStageOptions {
  users: { resolve(profile: TelegramProfile, prefetched?: Json): Promise<UserRow> };
  /** Language for users whose language the bot does not speak. */
  defaultLocale: Locale;
  /** Admins, whose updates are never dropped as banned. @default [] */
  adminIds?: readonly number[];
}

/** Telegram's user object as the repository's profile. */
export function profileOf(user: User): TelegramProfile {
  return {
    id: user.id,
    username: user.username ?? null,
    firstName: user.first_name,
    lastName: user.last_name ?? null,
    languageCode: user.language_code ?? null,
  };
}

/**
 * Pipeline stage "user": loads the sender's stored profile (registering them on first sight)
 * into `ctx.user`, and answers in the language they chose, if any. A returning user's profile
 * comes from the cache without a database query; in a private chat the gate has already read
 * the cached copy in its round trip, so this stage makes no store call either.
 *
 * The updates of a user an admin banned end here, unanswered (outcome `banned`): the ban is
 * part of the cached profile, so dropping them costs no extra query.
 *
 * Outage policy: when the profile cannot be loaded (database and cache both unreachable),
 * `ctx.user` stays null and features that need no stored data still answer.
 */
export function userStage(options: UserStageOptions): MiddlewareFn<BotContext> {
  const admins = new Set(options.adminIds ?? []);
  return async function user(ctx, next) {
    ctx.user = null;
    const from = ctx.from;
    if (from && !from.is_bot) {
      try {
        ctx.user = await options.users.resolve(profileOf(from), ctx.cachedProfile);
      } catch (error) {
        ctx.log.warning("user profile unavailable, going on without it: {message}", {
          message: errorMessage(error),
        });
      }
      if (ctx.user?.bannedAt && !admins.has(from.id)) {
        ctx.outcome = "banned";
        return;
      }
      // `ctx.t` follows `ctx.locale`.
      if (ctx.user?.locale) ctx.locale = pickLocale(ctx.user.locale, options.defaultLocale);
    }
    await next();
  };
}
