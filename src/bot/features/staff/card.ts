/**
 * How a request looks in the staff chat: its post (HTML, user text escaped) with the buttons
 * that still make sense for it.
 */
import { InlineKeyboard } from "grammy";
import type { Locale } from "../../../config.ts";
import type { RequestRow } from "../../../db/requests.ts";
import type { UserRow } from "../../../db/users.ts";
import { escapeHtml } from "../../html.ts";
import { translate } from "../../i18n.ts";

/** Longest description shown in full; Telegram refuses messages over 4096 characters. */
const DESCRIPTION_LIMIT = 3000;

/** A Telegram user as HTML: a link to their profile with their name, and their @username. */
export function personHtml(
  id: number,
  names: (string | null | undefined)[],
  username: string | null | undefined,
): string {
  const name = escapeHtml(names.filter((part) => part).join(" ") || String(id));
  const link = `<a href="tg://user?id=${id}">${name}</a>`;
  return username ? `${link} (@${escapeHtml(username)})` : link;
}

/** `text` cut to `limit` characters with an ellipsis, never inside a surrogate pair. */
export function truncate(text: string, limit: number): string {
  if (text.length <= limit) return text;
  let end = limit - 1;
  // Telegram refuses text that is not valid UTF-16.
  if (/[\uD800-\uDBFF]/.test(text[end - 1] ?? "")) end--;
  return `${text.slice(0, end)}…`;
}

/** The staff chat's post about `request`; `status` is the status line, already HTML. */
export function cardText(
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
export function cardKeyboard(locale: Locale, request: RequestRow): InlineKeyboard | undefined {
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
