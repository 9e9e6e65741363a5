/**
 * The staff side of the service desk: each new request is posted to the staff chat with Take /
 * Done buttons; staff (members of that chat, or admins) press them to move the request on, the
 * post shows where it stands, and the request's author hears about it in their language.
 */
import { type Api, Composer, GrammyError, InlineKeyboard } from "grammy";
import type { ChatMember } from "grammy/types";
import type { Locale } from "../../config.ts";
import type { RequestRow, RequestStatus } from "../../db/requests.ts";
import type { UserRow } from "../../db/users.ts";
import { type Logger, logger } from "../../log.ts";
import type { StoreKey } from "../../store/store.ts";
import type { BotContext } from "../context.ts";
import { escapeHtml } from "../html.ts";
import { blockedUser } from "../middleware/errors.ts";
import { type MessageKey, pickLocale, translate } from "../i18n.ts";
import type { StaffBoard } from "../staff_board.ts";
import type { FeatureDeps } from "./index.ts";
import { errorMessage } from "../../errors.ts";

/** Store namespace of cached staff checks: `["staff", userId]` → boolean. */
const STAFF_NAMESPACE = "staff";
/** How long a staff check is trusted; someone added to the staff chat waits at most this long. */
const STAFF_CHECK_TTL_MS = 300_000;
/** Chat member statuses that count as staff. */
const STAFF_STATUSES: ReadonlySet<ChatMember["status"]> = new Set([
  "creator",
  "administrator",
  "member",
  "restricted",
]);
/** A button's callback data: `staff:<take|done>:<request number>`. */
const ACTION_DATA = /^staff:(take|done):(\d{1,15})$/;
/** Longest description shown in full; Telegram refuses messages over 4096 characters. */
const DESCRIPTION_LIMIT = 3000;

type Action = "take" | "done";

/** What each button does: the status it moves to and the history's action name. */
const ACTIONS: Record<Action, { status: RequestStatus; history: string; answer: MessageKey }> = {
  take: { status: "in_progress", history: "taken", answer: "staff.answer.taken" },
  done: { status: "done", history: "closed", answer: "staff.answer.done" },
};

/** A Telegram user as HTML: a link to their profile with their name, and their @username. */
function personHtml(
  id: number,
  names: (string | null | undefined)[],
  username: string | null | undefined,
): string {
  const name = escapeHtml(names.filter((part) => part).join(" ") || String(id));
  const link = `<a href="tg://user?id=${id}">${name}</a>`;
  return username ? `${link} (@${escapeHtml(username)})` : link;
}

function truncate(text: string, limit: number): string {
  if (text.length <= limit) return text;
  let end = limit - 1;
  // Never split a surrogate pair: Telegram refuses text that is not valid UTF-16.
  if (/[\uD800-\uDBFF]/.test(text[end - 1] ?? "")) end--;
  return `${text.slice(0, end)}…`;
}

/** The staff chat's post about `request`; `status` is the status line, already HTML. */
function cardText(
  locale: Locale,
  request: RequestRow,
  author: UserRow | null,
  status: string,
): string {
  return translate(locale, "staff.card", {
    number: request.number,
    category: escapeHtml(request.category),
    author: author
      ? personHtml(author.id, [author.firstName, author.lastName], author.username)
      : escapeHtml(translate(locale, "staff.author.unknown", { id: request.userId })),
    contact: escapeHtml(request.contact),
    description: escapeHtml(truncate(request.description, DESCRIPTION_LIMIT)),
    status,
  });
}

/** The buttons that still make sense for the request; none once it is closed. */
function cardKeyboard(locale: Locale, request: RequestRow): InlineKeyboard | undefined {
  const keyboard = new InlineKeyboard();
  if (request.status === "new") {
    keyboard.text(translate(locale, "staff.button.take"), `staff:take:${request.number}`);
  }
  if (request.status === "new" || request.status === "in_progress") {
    keyboard.text(translate(locale, "staff.button.done"), `staff:done:${request.number}`);
    return keyboard;
  }
  return undefined;
}

/** Posts new requests to `config.staffChatId`; does nothing when it is not set. */
export function createStaffBoard(deps: FeatureDeps): StaffBoard {
  const { config } = deps;
  const log = logger("staff");
  return {
    async announce(api: Api, request: RequestRow, author: UserRow | null): Promise<void> {
      const chatId = config.staffChatId;
      if (chatId === null) return;
      const locale = config.defaultLocale;
      const status = translate(locale, "staff.status.new");
      try {
        await api.sendMessage(chatId, cardText(locale, request, author, status), {
          parse_mode: "HTML",
          reply_markup: cardKeyboard(locale, request),
          link_preview_options: { is_disabled: true },
        });
      } catch (error) {
        // The request is stored either way, and staff can still find it in the open list.
        log.error("could not post request #{number} to the staff chat: {message}", {
          number: request.number,
          message: errorMessage(error),
          error,
        });
      }
    },
  };
}

/**
 * Take / Done on the staff chat's posts. Only staff may press them: admins, and members of the
 * staff chat (asked from Telegram, the answer cached for five minutes). A press moves the
 * request on (the history records who did it), updates the post and tells the author.
 */
export function staffFeature(deps: FeatureDeps & { staffBoard: StaffBoard }): Composer<BotContext> {
  const { config, storage } = deps;
  const feature = new Composer<BotContext>();

  /** Whether the user is staff; null when that cannot be told right now. */
  async function isStaff(api: Api, userId: number, log: Logger): Promise<boolean | null> {
    if (config.adminIds.includes(userId)) return true;
    const chatId = config.staffChatId;
    if (chatId === null) return false;
    const key: StoreKey = [STAFF_NAMESPACE, userId];
    try {
      const cached = await storage.store.get(key);
      if (typeof cached === "boolean") return cached;
    } catch {
      // Without the store, Telegram still knows.
    }
    let staff: boolean;
    try {
      const member = await api.getChatMember(chatId, userId);
      staff = STAFF_STATUSES.has(member.status) &&
        (member.status !== "restricted" || member.is_member);
    } catch (error) {
      // Telegram answers 400 ("user not found") for someone who never was in the chat.
      if (!(error instanceof GrammyError && error.error_code === 400)) {
        log.warning("could not check staff membership: {message}", {
          message: errorMessage(error),
        });
        return null;
      }
      staff = false;
    }
    await storage.store.set(key, staff, { ttlMs: STAFF_CHECK_TTL_MS }).catch(() => {});
    return staff;
  }

  /** Tells the request's author what happened, in their language; notes when they blocked the bot. */
  async function notifyAuthor(
    api: Api,
    request: RequestRow,
    author: UserRow | null,
    log: Logger,
  ): Promise<void> {
    if (!author) return;
    const locale = pickLocale(
      author.locale ?? author.languageCode ?? undefined,
      config.defaultLocale,
    );
    const key: MessageKey = request.status === "done" ? "staff.notify.done" : "staff.notify.taken";
    try {
      await api.sendMessage(author.id, translate(locale, key, { number: request.number }));
    } catch (error) {
      if (blockedUser(error) !== null) {
        // Blocked the bot (or deleted their account): trying again would only fail again.
        log.info("request #{number}: author {author} blocked the bot, not notified", {
          number: request.number,
          author: author.id,
        });
        await storage.userCache.markBlocked(author.id).catch((e) =>
          log.warning("could not mark user {author} as blocked", { author: author.id, error: e })
        );
        return;
      }
      log.warning("request #{number}: could not notify its author: {message}", {
        number: request.number,
        message: errorMessage(error),
      });
    }
  }

  feature.callbackQuery(ACTION_DATA, async (ctx) => {
    const action = ctx.match[1] as Action;
    const number = Number(ctx.match[2]);
    const presser = ctx.callbackQuery.from;
    const allowed = await isStaff(ctx.api, presser.id, ctx.log);
    if (allowed !== true) {
      const text = ctx.t(allowed === null ? "staff.answer.check_failed" : "staff.answer.not_staff");
      await ctx.answerCallbackQuery({ text, show_alert: true });
      return;
    }
    const { status, history, answer } = ACTIONS[action];
    const changed = await storage.requests.changeStatus(number, status, presser.id, history);
    if (!changed) {
      // Already taken or closed (a late or second press), or no such request: change nothing.
      const current = await storage.requests.get(number);
      const key: MessageKey = !current
        ? "staff.answer.not_found"
        : current.status === "in_progress"
        ? "staff.answer.in_progress"
        : current.status === "new"
        ? "staff.answer.invalid"
        : "staff.answer.closed";
      await ctx.answerCallbackQuery({ text: ctx.t(key, { number }) });
      return;
    }
    ctx.log.info("request #{number} {action} by {staff}", {
      number,
      action: history,
      staff: presser.id,
    });
    await ctx.answerCallbackQuery({ text: ctx.t(answer, { number }) });

    const author = await storage.users.get(changed.userId).catch((error) => {
      ctx.log.warning("could not load the author of request #{number}", { number, error });
      return null;
    });
    const locale = config.defaultLocale;
    const staff = personHtml(presser.id, [presser.first_name, presser.last_name], presser.username);
    const line = translate(
      locale,
      changed.status === "done" ? "staff.status.done" : "staff.status.in_progress",
      { staff },
    );
    await ctx.editMessageText(cardText(locale, changed, author, line), {
      parse_mode: "HTML",
      reply_markup: cardKeyboard(locale, changed),
      link_preview_options: { is_disabled: true },
    }).catch((error) =>
      ctx.log.warning("could not update the staff post of request #{number}", { number, error })
    );
    await notifyAuthor(ctx.api, changed, author, ctx.log);
  });

  // Anything else under `staff:` is malformed or from an older version of the bot.
  feature.callbackQuery(/^staff:/, async (ctx) => {
    await ctx.answerCallbackQuery({ text: ctx.t("staff.answer.invalid") });
  });

  return feature;
}
