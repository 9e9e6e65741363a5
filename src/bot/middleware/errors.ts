import { GrammyError, type MiddlewareFn } from "grammy";
import type { Locale } from "../../config.ts";
import { AlertThrottle, errorKey, firstStackFrame } from "../alerts.ts";
import type { BotContext } from "../context.ts";
import { escapeHtml } from "../html.ts";
import { translate } from "../i18n.ts";
import { notify } from "../reply.ts";
import { errorMessage } from "../../errors.ts";

/** Options of {@link errorsStage}. */
export interface ErrorsStageOptions {
  /** Who is alerted in Telegram when a handler fails. @default [] (nobody) */
  adminIds?: readonly number[];
  /** Records that a user blocked the bot (Telegram answered 403 in their private chat). */
  onBlocked?: (userId: number) => Promise<void>;
  /** The language of the alerts (admins' languages are not known here). @default "en" */
  alertLocale?: Locale;
  /** Decides which failures are alerted. @default one alert per error per 5 minutes */
  throttle?: AlertThrottle;
  /**
   * Applied to the error quoted in an alert: a fetch error quotes its URL, and the Bot API's
   * URLs (a file's download too) carry the token. @default the text as it is
   */
  redact?: (text: string) => string;
}

/** Longest error message quoted in an alert, in characters (Telegram allows 4096 in all). */
const MAX_MESSAGE = 1000;

/**
 * Pipeline stage 2: catches every error thrown below, logs it with its stack and the update's
 * context, and answers the user kindly in their language instead of leaving them waiting.
 * Admins get an alert in Telegram, at most one per error per window; the next one says how
 * many repeats were held back. A 403 from Telegram in a user's private chat is no bug: the
 * user blocked the bot, which is recorded, and nobody is alerted.
 */
export function errorsStage(options: ErrorsStageOptions = {}): MiddlewareFn<BotContext> {
  const {
    adminIds = [],
    onBlocked,
    alertLocale = "en",
    throttle = new AlertThrottle(),
    redact = (text: string) => text,
  } = options;

  async function markBlocked(ctx: BotContext, userId: number): Promise<void> {
    ctx.log.info("user {blocked_user_id} blocked the bot", { blocked_user_id: userId });
    try {
      await onBlocked?.(userId);
    } catch (error) {
      ctx.log.warning("could not record that user {blocked_user_id} blocked the bot", {
        blocked_user_id: userId,
        error,
      });
    }
  }

  async function alert(ctx: BotContext, error: unknown): Promise<void> {
    if (adminIds.length === 0) return;
    const decision = throttle.check(errorKey(error));
    if (!decision.alert) return;
    const text = alertText(ctx, error, decision.suppressed, alertLocale, redact);
    await Promise.all(adminIds.map(async (adminId) => {
      try {
        await ctx.api.sendMessage(adminId, text, {
          parse_mode: "HTML",
          link_preview_options: { is_disabled: true },
        });
      } catch (sendError) {
        ctx.log.warning("could not alert admin {admin_id}", {
          admin_id: adminId,
          error: sendError,
        });
      }
    }));
  }

  return async function errors(ctx, next) {
    try {
      await next();
    } catch (error) {
      ctx.outcome = "error";
      const blocked = blockedUser(error);
      if (blocked !== null) {
        // Replying to them again would fail the same way.
        await markBlocked(ctx, blocked);
        return;
      }
      ctx.log.error("handler failed: {message}", {
        message: errorMessage(error),
        error,
      });
      const apologyBlocked = blockedUser(await notify(ctx, ctx.t("error.generic")));
      if (apologyBlocked !== null) await markBlocked(ctx, apologyBlocked);
      await alert(ctx, error);
    }
  };
}

/**
 * The user behind a Telegram 403 in a private chat ("bot was blocked by the user", or a
 * deactivated account); null for anything else. A 403 in a group (the bot was removed) is
 * not a user's choice and is alerted like any failure.
 */
export function blockedUser(error: unknown): number | null {
  if (!(error instanceof GrammyError) || error.error_code !== 403) return null;
  const chatId = Number(error.payload?.chat_id);
  return Number.isSafeInteger(chatId) && chatId > 0 ? chatId : null;
}

/** The alert for admins (HTML): what failed, in which update, for whom. */
function alertText(
  ctx: BotContext,
  error: unknown,
  suppressed: number,
  locale: Locale,
  redact: (text: string) => string,
): string {
  const message = redact(
    error instanceof Error ? `${error.name}: ${error.message}` : String(error),
  );
  const from = ctx.from;
  const who = from
    ? `${from.id}${from.username ? ` @${from.username}` : ` ${from.first_name}`}`
    : "—";
  const lines = [
    translate(locale, "alert.error", {
      update_id: ctx.update.update_id,
      update_type: ctx.updateType,
      chat: ctx.chat?.id ?? "—",
      user: escapeHtml(who),
      error: escapeHtml(truncate(message, MAX_MESSAGE)),
      frame: escapeHtml(error instanceof Error ? firstStackFrame(error.stack) || "—" : "—"),
    }),
  ];
  if (suppressed > 0) lines.push(translate(locale, "alert.repeats", { count: suppressed }));
  return lines.join("\n");
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
