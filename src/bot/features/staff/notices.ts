/**
 * What the bot tells people because something happened to a request, delivered from the
 * outbox: the author hears about every status change in their language (a closed request
 * comes with the rating buttons), the staff thread hears reminders and that a user blocked
 * the bot, and admins hear about requests nobody takes. A user who blocked the bot is marked
 * (announcements skip them) and staff are told in the request's thread.
 */
import { type Api, GrammyError } from "grammy";
import type { InlineKeyboardMarkup } from "grammy/types";
import type { Locale } from "../../../config.ts";
import {
  ADMIN_NOTICE,
  NOTIFY_USER,
  STAFF_NOTICE,
  type StaffAction,
} from "../../../db/request_lifecycle.ts";
import type { RequestMessages } from "../../../db/request_messages.ts";
import type { RequestRepository, RequestRow } from "../../../db/requests.ts";
import type { UserRepository, UserRow } from "../../../db/users.ts";
import type { OutboxHandler } from "../../../jobs/outbox.ts";
import type { Json } from "../../../store/store.ts";
import { escapeHtml } from "../../html.ts";
import { type MessageKey, pickLocale, translate } from "../../i18n.ts";
import { blockedUser } from "../../middleware/errors.ts";
import { ratingKeyboard } from "../../rating.ts";
import type { StaffChat } from "../../staff_chat.ts";

/** What the notices need. */
export interface NoticeOptions {
  requests: Pick<RequestRepository, "get">;
  users: Pick<UserRepository, "get">;
  messages: Pick<RequestMessages, "notice" | "owe">;
  staffChat: StaffChat;
  /** Records that a user blocked the bot. */
  markBlocked: (userId: number) => Promise<void>;
  /** The staff chat's (and the admins') language, and the fallback for users. */
  locale: Locale;
}

/** The author's language. */
export function userLocale(user: UserRow | null, fallback: Locale): Locale {
  return pickLocale(user?.locale ?? user?.languageCode ?? undefined, fallback);
}

/** The message for the author about `action` on `request`, with its buttons, if any. */
function notification(
  locale: Locale,
  action: StaffAction,
  request: RequestRow,
): { text: string; keyboard?: InlineKeyboardMarkup } {
  const number = request.number;
  const keys: Record<StaffAction, MessageKey> = {
    take: "staff.notify.taken",
    done: "staff.notify.done",
    release: "conversation.notify.release",
    reopen: "conversation.notify.reopen",
    reject: "conversation.notify.reject",
  };
  const text = translate(locale, keys[action], {
    number,
    reason: escapeHtml(request.rejectReason ?? ""),
  });
  if (action !== "done") return { text };
  return {
    text: `${text}\n\n${translate(locale, "conversation.rate.ask", { number })}`,
    keyboard: ratingKeyboard(number),
  };
}

/** The deliveries of the notices, by outbox kind; see the module documentation. */
export function noticeDeliveries(options: NoticeOptions): Record<string, OutboxHandler> {
  const { requests, users, messages, staffChat, locale } = options;

  /** Tells staff in the request's thread that its author blocked the bot (once per cause). */
  async function reportBlocked(request: RequestRow, cause: string): Promise<void> {
    await options.markBlocked(request.userId);
    await messages.owe(STAFF_NOTICE, `blocked:${request.number}:${cause}`, {
      notice: "blocked",
      number: request.number,
    });
  }

  /** Sends `text` to the author; false (and staff told) when they blocked the bot. */
  async function toAuthor(
    api: Api,
    request: RequestRow,
    cause: string,
    text: string,
    keyboard?: InlineKeyboardMarkup,
  ): Promise<Json> {
    try {
      const sent = await api.sendMessage(request.userId, text, {
        parse_mode: "HTML",
        ...(keyboard ? { reply_markup: keyboard } : {}),
      });
      await messages.notice(request.number, text, sent.message_id);
      return { messageId: sent.message_id };
    } catch (error) {
      if (blockedUser(error) === null) throw error;
      await reportBlocked(request, cause);
      return { blocked: true };
    }
  }

  return {
    [NOTIFY_USER]: async (item, { api }) => {
      const [number] = item.ref.split(":");
      const request = await requests.get(Number(number));
      if (request === null) return { skipped: "no such request" };
      const action = (item.payload as { action?: StaffAction }).action ?? "take";
      const author = await users.get(request.userId);
      const { text, keyboard } = notification(userLocale(author, locale), action, request);
      return await toAuthor(api, request, item.ref, text, keyboard);
    },
    [STAFF_NOTICE]: async (item, { api }) => {
      const chatId = staffChat.id;
      const payload = item.payload as {
        notice?: string;
        number?: number;
        reminders?: number;
        minutes?: number;
      };
      if (chatId === null || payload.number === undefined) return { skipped: "no staff chat" };
      const request = await requests.get(payload.number);
      if (request === null) return { skipped: "no such request" };
      const text = payload.notice === "blocked"
        ? translate(locale, "staff.blocked")
        : translate(locale, "staff.reminder", {
          number: request.number,
          minutes: Math.round((Date.now() - request.createdAt.getTime()) / 60_000),
        });
      const sent = await api.sendMessage(chatId, text, staffChat.threadOf(request));
      return { messageId: sent.message_id };
    },
    [ADMIN_NOTICE]: async (item, { api }) => {
      const payload = item.payload as { number?: number; admin?: number; minutes?: number };
      if (payload.admin === undefined) return { skipped: "no admin" };
      const text = translate(locale, "admin.untaken", {
        number: payload.number ?? 0,
        minutes: payload.minutes ?? 0,
      });
      try {
        const sent = await api.sendMessage(payload.admin, text);
        return { messageId: sent.message_id };
      } catch (error) {
        // An admin who never started the bot (or blocked it) cannot be written to; retrying
        // will not help, and `doctor` says which admins are unreachable.
        if (blockedUser(error) !== null) return { blocked: true };
        if (error instanceof GrammyError && /chat not found/i.test(error.description)) {
          return { unreachable: true };
        }
        throw error;
      }
    },
  };
}
