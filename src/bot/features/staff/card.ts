/**
 * How a request looks in the staff chat: its post (HTML, user text escaped) with the buttons
 * that still make sense for it.
 */
import { InlineKeyboard } from "grammy";
import type { Locale } from "../../../config.ts";
import type { RequestRow } from "../../../db/requests.ts";
import type { UserRow } from "../../../db/users.ts";
import { escapeHtml } from "../../html.ts";
import { type MessageKey, translate } from "../../i18n.ts";

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

/** The status line of the post: where the request stands and who moved it there (HTML). */
export function statusLine(locale: Locale, request: RequestRow, staff: string): string {
  switch (request.status) {
    case "new":
      return translate(locale, "staff.status.new");
    case "in_progress":
      return translate(locale, "staff.status.in_progress", { staff });
    case "done":
      return translate(locale, "staff.status.done", { staff });
    case "rejected":
      return translate(locale, "staff.status.rejected", {
        staff,
        reason: escapeHtml(truncate(request.rejectReason ?? "", 500)),
      });
    case "cancelled":
      return translate(locale, "staff.status.cancelled");
  }
}

/** A staff button: `staff:<action>:<request number>`. */
export function actionData(action: string, number: number): string {
  return `staff:${action}:${number}`;
}

/** The buttons of what can be done with the request now; none once it is cancelled. */
export function cardKeyboard(locale: Locale, request: RequestRow): InlineKeyboard | undefined {
  const button = (action: string) =>
    [
      translate(locale, `staff.button.${action}` as MessageKey),
      actionData(action, request.number),
    ] as const;
  const keyboard = new InlineKeyboard();
  switch (request.status) {
    case "new":
      return keyboard.text(...button("take")).text(...button("done")).row().text(
        ...button("reject"),
      );
    case "in_progress":
      return keyboard.text(...button("release")).text(...button("done")).row()
        .text(...button("reject"));
    case "done":
    case "rejected":
      return keyboard.text(...button("reopen"));
    case "cancelled":
      return undefined;
  }
}
