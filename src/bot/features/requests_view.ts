/**
 * The request flows' messages and keyboards, as pure functions of the data and a translator.
 * Every piece of user-supplied text (descriptions, phone numbers, category names an operator
 * wrote) goes through `escapeHtml`: the messages are sent with `parse_mode: "HTML"`.
 */
import type { InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup } from "grammy/types";
import type { HistoryRow, RequestRow, RequestStatus } from "../../db/requests.ts";
import type { BotContext } from "../context.ts";
import { escapeHtml } from "../html.ts";
import type { MessageKey } from "../i18n.ts";
import { encodeAction, PAGE_SIZE, pageCount } from "./requests_input.ts";

/** A translator, like `ctx.t`. */
export type Translate = BotContext["t"];

const STATUS_KEYS: Record<RequestStatus, MessageKey> = {
  new: "requests.status.new",
  in_progress: "requests.status.in_progress",
  done: "requests.status.done",
  cancelled: "requests.status.cancelled",
  rejected: "requests.status.rejected",
};

/** A status in words. */
export function statusLabel(t: Translate, status: RequestStatus): string {
  return t(STATUS_KEYS[status]);
}

/** A time as users read it in every language: `2026-12-01 06:30 UTC`. */
export function formatTime(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** Longest text on a button before it is shortened with "…". */
const BUTTON_TEXT_MAX = 40;

function shorten(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** The category buttons of the form tagged `tag`, two a row, and Cancel. */
export function categoryKeyboard(
  t: Translate,
  categories: readonly string[],
  tag: string,
): InlineKeyboardMarkup {
  const buttons = categories.map((category, index): InlineKeyboardButton => ({
    text: shorten(category, BUTTON_TEXT_MAX),
    callback_data: encodeAction({ kind: "category", index, tag }),
  }));
  const rows: InlineKeyboardButton[][] = [];
  for (let i = 0; i < buttons.length; i += 2) rows.push(buttons.slice(i, i + 2));
  rows.push([{
    text: t("requests.button.cancel"),
    callback_data: encodeAction({ kind: "cancel", tag }),
  }]);
  return { inline_keyboard: rows };
}

/** The reply keyboard of the contact step: one button that shares the user's own number. */
export function contactKeyboard(t: Translate): ReplyKeyboardMarkup {
  return {
    keyboard: [[{ text: t("requests.button.share_phone"), request_contact: true }]],
    resize_keyboard: true,
    one_time_keyboard: true,
  };
}

/** What the summary shows. */
export interface Draft {
  category: string;
  description: string;
  contact: string;
}

/** The summary of a finished form, to confirm. */
export function summaryText(t: Translate, draft: Draft): string {
  return t("requests.summary", {
    category: escapeHtml(draft.category),
    contact: escapeHtml(draft.contact),
    description: escapeHtml(draft.description),
  });
}

/** Confirm / Edit / Cancel under the summary of the form tagged `tag`. */
export function summaryKeyboard(t: Translate, tag: string): InlineKeyboardMarkup {
  return {
    inline_keyboard: [
      [
        {
          text: t("requests.button.confirm"),
          callback_data: encodeAction({ kind: "confirm", tag }),
        },
        { text: t("requests.button.edit"), callback_data: encodeAction({ kind: "edit", tag }) },
      ],
      [{ text: t("requests.button.cancel"), callback_data: encodeAction({ kind: "cancel", tag }) }],
    ],
  };
}

/** One request as a line of a list. */
export function requestLine(t: Translate, request: RequestRow): string {
  return t("requests.my.line", {
    number: request.number,
    category: escapeHtml(request.category),
    status: statusLabel(t, request.status),
    date: formatTime(request.createdAt),
  });
}

/** A message: its HTML text and its inline keyboard, if any. */
export interface View {
  text: string;
  keyboard?: InlineKeyboardMarkup;
}

/** Page `page` (from 0) of `/my`: the requests on it, a button for each, ◀ ▶ between pages. */
export function listView(t: Translate, items: RequestRow[], total: number, page: number): View {
  if (total === 0) return { text: t("requests.my.empty") };
  const pages = pageCount(total, PAGE_SIZE);
  const header = t("requests.my.header", { page: page + 1, pages, total });
  const rows: InlineKeyboardButton[][] = items.map((request) => [{
    text: shorten(
      t("requests.my.button", { number: request.number, category: request.category }),
      BUTTON_TEXT_MAX,
    ),
    callback_data: encodeAction({ kind: "open", number: request.number, page }),
  }]);
  const nav: InlineKeyboardButton[] = [];
  if (page > 0) {
    nav.push({ text: "◀", callback_data: encodeAction({ kind: "page", page: page - 1 }) });
  }
  if (page < pages - 1) {
    nav.push({ text: "▶", callback_data: encodeAction({ kind: "page", page: page + 1 }) });
  }
  if (nav.length > 0) rows.push(nav);
  return {
    text: [header, "", ...items.map((request) => requestLine(t, request))].join("\n"),
    keyboard: { inline_keyboard: rows },
  };
}

/** Longest description the details show; older requests may hold up to 4096 characters. */
const DETAILS_DESCRIPTION_MAX = 2000;
/** Most history entries the details show (the newest), so that they fit in one message. */
const DETAILS_HISTORY_MAX = 20;

/** One request with its history, and a button back to page `page` of the list. */
export function detailsView(
  t: Translate,
  request: RequestRow,
  history: HistoryRow[],
  page: number,
): View {
  const lines = history.slice(-DETAILS_HISTORY_MAX).map((entry) =>
    t("requests.history.line", {
      date: formatTime(entry.at),
      status: entry.action === "created"
        ? t("requests.history.created")
        : entry.toStatus
        ? statusLabel(t, entry.toStatus)
        : escapeHtml(entry.action),
    })
  );
  return {
    text: t("requests.details", {
      number: request.number,
      category: escapeHtml(request.category),
      status: statusLabel(t, request.status),
      contact: escapeHtml(request.contact),
      date: formatTime(request.createdAt),
      description: escapeHtml(shorten(request.description, DETAILS_DESCRIPTION_MAX)),
      history: lines.join("\n"),
    }),
    keyboard: {
      inline_keyboard: [
        [{
          text: t("conversation.button.conversation"),
          callback_data: encodeAction({
            kind: "messages",
            number: request.number,
            index: 0,
            back: page,
          }),
        }],
        [{ text: t("requests.button.back"), callback_data: encodeAction({ kind: "page", page }) }],
      ],
    },
  };
}

/** `/status`: the open requests, or a friendly "none". */
export function openView(t: Translate, open: RequestRow[]): string {
  if (open.length === 0) return t("requests.open.none");
  return [
    t("requests.open.header", { count: open.length }),
    "",
    ...open.map((request) => requestLine(t, request)),
  ].join("\n");
}
