/**
 * Staff's views of the requests, as pure functions: `/queue` (open requests, new ones first,
 * then those in progress, oldest first, a page at a time), `/find`'s results, and one request
 * with its history, its last messages and the buttons of what can be done with it now.
 */
import type { InlineKeyboardButton } from "grammy/types";
import type { ConversationMessage } from "../../../db/request_messages.ts";
import type { HistoryRow, RequestRow } from "../../../db/requests.ts";
import type { UserRow } from "../../../db/users.ts";
import type { BotContext } from "../../context.ts";
import { escapeHtml } from "../../html.ts";
import type { MessageKey } from "../../i18n.ts";
import { formatTime, messageLine } from "../../conversation_view.ts";
import { actionData, personHtml, truncate } from "./card.ts";

/** A translator, like `ctx.t`. */
type Translate = BotContext["t"];

/** A message: its HTML text and its inline keyboard. */
export interface StaffView {
  text: string;
  keyboard: { inline_keyboard: InlineKeyboardButton[][] };
}

/** Requests per page of `/queue`. */
export const QUEUE_PAGE = 5;
/** Messages a request view shows. */
const LAST_MESSAGES = 5;

/** How long ago, compactly: `45m`, `3h 10m`, `2d 4h`. */
export function formatAge(seconds: number): string {
  const minutes = Math.max(0, Math.floor(seconds / 60));
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

function status(t: Translate, request: RequestRow): string {
  return t(`requests.status.${request.status}` as MessageKey);
}

function requestButton(t: Translate, request: RequestRow): InlineKeyboardButton[] {
  return [{
    text: truncate(
      t("conversation.queue.button", { number: request.number, category: request.category }),
      40,
    ),
    callback_data: actionData("open", request.number),
  }];
}

/** Page `page` of the queue. */
export function queueView(
  t: Translate,
  items: RequestRow[],
  counts: { new: number; inProgress: number },
  page: number,
  now = Date.now(),
): StaffView {
  const total = counts.new + counts.inProgress;
  if (total === 0) {
    return { text: t("conversation.queue.empty"), keyboard: { inline_keyboard: [] } };
  }
  const pages = Math.max(1, Math.ceil(total / QUEUE_PAGE));
  const lines = items.map((request) =>
    t("conversation.queue.line", {
      number: request.number,
      category: escapeHtml(request.category),
      status: status(t, request),
      age: formatAge((now - request.createdAt.getTime()) / 1000),
    })
  );
  const nav: InlineKeyboardButton[] = [];
  if (page > 0) nav.push({ text: "◀", callback_data: `staff:q:${page - 1}` });
  if (page < pages - 1) nav.push({ text: "▶", callback_data: `staff:q:${page + 1}` });
  return {
    text: [
      t("conversation.queue.title", {
        new: counts.new,
        progress: counts.inProgress,
        page: page + 1,
        pages,
      }),
      "",
      ...lines,
    ].join("\n"),
    keyboard: {
      inline_keyboard: [...items.map((r) => requestButton(t, r)), ...(nav.length ? [nav] : [])],
    },
  };
}

/** `/find`'s results. */
export function findView(t: Translate, query: string, found: RequestRow[]): StaffView {
  if (found.length === 0) {
    return {
      text: t("conversation.find.none", { query: escapeHtml(query) }),
      keyboard: { inline_keyboard: [] },
    };
  }
  const lines = found.map((request) =>
    t("conversation.queue.line", {
      number: request.number,
      category: escapeHtml(request.category),
      status: status(t, request),
      age: formatTime(request.createdAt),
    })
  );
  return {
    text: [t("conversation.find.title", { count: found.length }), "", ...lines].join("\n"),
    keyboard: { inline_keyboard: found.map((r) => requestButton(t, r)) },
  };
}

/** The buttons of what can be done with the request now, two a row, then ◀ Back. */
function actionButtons(t: Translate, request: RequestRow): InlineKeyboardButton[][] {
  const actions: string[] = request.status === "new"
    ? ["take", "done", "reject"]
    : request.status === "in_progress"
    ? ["release", "done", "reject"]
    : request.status === "cancelled"
    ? []
    : ["reopen"];
  const buttons = actions.map((action) => ({
    text: t(`staff.button.${action}` as MessageKey),
    callback_data: actionData(action, request.number),
  }));
  const rows: InlineKeyboardButton[][] = [];
  for (let i = 0; i < buttons.length; i += 2) rows.push(buttons.slice(i, i + 2));
  rows.push([
    { text: t("conversation.button.conversation"), callback_data: `staff:m:${request.number}:0` },
    { text: t("conversation.button.back"), callback_data: "staff:q:0" },
  ]);
  return rows;
}

/** One request for staff: its card, history, last messages and actions. */
export function requestView(
  t: Translate,
  request: RequestRow,
  author: UserRow | null,
  history: HistoryRow[],
  messages: ConversationMessage[],
): StaffView {
  const historyLines = history.slice(-10).map((entry) =>
    `${formatTime(entry.at)} — ${escapeHtml(entry.action)}`
  );
  const text = t("conversation.view.staff", {
    number: request.number,
    category: escapeHtml(request.category),
    status: status(t, request),
    author: author
      ? personHtml(author.id, [author.firstName, author.lastName], author.username)
      : String(request.userId),
    contact: escapeHtml(request.contact),
    date: formatTime(request.createdAt),
    description: escapeHtml(truncate(request.description, 1500)),
    history: historyLines.join("\n"),
  });
  const last = messages.slice(0, LAST_MESSAGES).reverse().map((m) => messageLine(t, m, false));
  const conversation = last.length === 0
    ? t("conversation.view.no_messages")
    : t("conversation.view.messages", { messages: last.join("\n") });
  return {
    text: `${text}\n\n${conversation}`,
    keyboard: { inline_keyboard: actionButtons(t, request) },
  };
}
