/**
 * A request's conversation as people read it, for staff (`/queue`) and for its author (`/my`):
 * one line per message (time, who, text or file), a page at a time, newest page first.
 */
import type { InlineKeyboardButton } from "grammy/types";
import type { ConversationMessage } from "../db/request_messages.ts";
import type { BotContext } from "./context.ts";
import { escapeHtml } from "./html.ts";
import type { MessageKey } from "./i18n.ts";
import { FILE_KINDS } from "./message_content.ts";

/** A translator, like `ctx.t`. */
type Translate = BotContext["t"];

/** A message: its HTML text and its inline keyboard. */
export interface MessagesView {
  text: string;
  keyboard: { inline_keyboard: InlineKeyboardButton[][] };
}

/** A time as people read it in every language: `2026-12-01 06:30 UTC`. */
export function formatTime(date: Date): string {
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

function shorten(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** One conversation message as a line: time, who, and its text or file. */
export function messageLine(t: Translate, message: ConversationMessage, forUser: boolean): string {
  const who = message.direction === "note"
    ? t("conversation.messages.note")
    : message.direction === "in"
    ? t(forUser ? "conversation.messages.you" : "conversation.messages.user")
    : t("conversation.messages.staff");
  const file = message.fileKind === null ? "" : fileLabel(t, message.fileKind);
  const text = [file, message.text ? escapeHtml(shorten(message.text, 200)) : ""].filter(Boolean)
    .join(" ");
  return t("conversation.messages.line", { date: formatTime(message.createdAt), who, text });
}

function fileLabel(t: Translate, kind: string): string {
  return (FILE_KINDS as readonly string[]).includes(kind)
    ? t(`conversation.file.${kind}` as MessageKey)
    : t("conversation.file.other");
}

/** Which page of which conversation to show, to whom, and where its buttons lead. */
export interface MessagesPage {
  number: number;
  /** The page's messages, newest first, and how many the request has in all. */
  page: { items: ConversationMessage[]; total: number };
  /** The page's index, 0 for the newest. */
  index: number;
  /** Messages per page. */
  size: number;
  /** Shown to the request's author ("you", "staff"), or to staff ("user", notes included). */
  forUser: boolean;
  /** The button back to where the conversation was opened from. */
  back: InlineKeyboardButton;
  /** The callback data of the page with the given index. */
  pageData: (index: number) => string;
}

/** A page of a request's conversation (newest page first), for staff or for its author. */
export function messagesView(t: Translate, view: MessagesPage): MessagesView {
  const { number, page, index, size, forUser, back, pageData } = view;
  const pages = Math.max(1, Math.ceil(page.total / size));
  const lines = [...page.items].reverse().map((m) => messageLine(t, m, forUser));
  const nav: InlineKeyboardButton[] = [];
  if (index < pages - 1) {
    nav.push({ text: t("conversation.button.older"), callback_data: pageData(index + 1) });
  }
  if (index > 0) {
    nav.push({ text: t("conversation.button.newer"), callback_data: pageData(index - 1) });
  }
  return {
    text: [
      t("conversation.messages.title", { number, page: index + 1, pages }),
      "",
      ...(lines.length ? lines : [t("conversation.view.no_messages")]),
    ].join("\n"),
    keyboard: { inline_keyboard: [...(nav.length ? [nav] : []), [back]] },
  };
}
