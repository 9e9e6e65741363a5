/**
 * The staff post of a new request, delivered from the outbox (`jobs/outbox.ts`): the request
 * and its outbox item are stored in one statement, so a request is never filed without being
 * owed to staff, and the post is retried until the staff chat takes it (the bot may have been
 * removed from the group, or Telegram may be down for a while).
 *
 * In a forum staff chat the request first gets its own topic (`#N · category · user`), and
 * everything about it goes there; in a plain group the post is the thread's root. The files
 * sent with the request follow the post. Each step is remembered as soon as it is done (the
 * topic, the post, each file), so a retry after a failure half way repeats none of them.
 */
import type { Api } from "grammy";
import type { Locale } from "../../../config.ts";
import type { ConversationMessage, RequestMessages } from "../../../db/request_messages.ts";
import type { RequestRepository, RequestRow } from "../../../db/requests.ts";
import type { UserRepository, UserRow } from "../../../db/users.ts";
import type { OutboxHandler } from "../../../jobs/outbox.ts";
import type { Json } from "../../../store/store.ts";
import type { StaffChat, ThreadOptions } from "../../staff_chat.ts";
import { cardKeyboard, cardText, statusLine, truncate } from "./card.ts";

/** What the staff post needs. */
export interface StaffPostOptions {
  requests: Pick<RequestRepository, "get" | "setStaffMessage" | "setStaffThread">;
  users: Pick<UserRepository, "get">;
  messages: Pick<RequestMessages, "attachments" | "delivered">;
  staffChat: StaffChat;
  /** The staff chat's language. */
  locale: Locale;
}

/** A topic's name: `#12 · Network · Olya K.`, within Telegram's 128 characters. */
export function topicName(request: RequestRow, author: UserRow | null): string {
  const who = author
    ? [author.firstName, author.lastName].filter(Boolean).join(" ") ||
      `@${author.username ?? author.id}`
    : String(request.userId);
  return truncate(`#${request.number} · ${request.category} · ${who}`, 128);
}

/** Sends one file of a request into its thread, by file id; returns the new message's id. */
export async function sendFile(
  api: Api,
  chatId: number,
  file: Pick<ConversationMessage, "fileKind" | "fileId" | "text">,
  thread: ThreadOptions,
): Promise<number> {
  const id = file.fileId!;
  const options = { ...thread, ...(file.text ? { caption: truncate(file.text, 1024) } : {}) };
  switch (file.fileKind) {
    case "photo":
      return (await api.sendPhoto(chatId, id, options)).message_id;
    case "video":
      return (await api.sendVideo(chatId, id, options)).message_id;
    case "voice":
      return (await api.sendVoice(chatId, id, options)).message_id;
    case "audio":
      return (await api.sendAudio(chatId, id, options)).message_id;
    case "animation":
      return (await api.sendAnimation(chatId, id, options)).message_id;
    case "sticker":
      return (await api.sendSticker(chatId, id, thread)).message_id;
    default:
      return (await api.sendDocument(chatId, id, options)).message_id;
  }
}

/** The delivery of `staff_post` outbox items; see the module documentation. */
export function staffPost(options: StaffPostOptions): OutboxHandler {
  const { requests, users, messages, staffChat, locale } = options;
  return async (item, { api }): Promise<Json> => {
    const chatId = staffChat.id;
    if (chatId === null) return { skipped: "no staff chat" };
    const request = await requests.get(Number(item.ref));
    if (request === null) return { skipped: "no such request" };
    const author = await users.get(request.userId);
    if (request.staffThreadId === null && await staffChat.isForum(api)) {
      const topic = await api.createForumTopic(chatId, topicName(request, author));
      request.staffThreadId = topic.message_thread_id;
      await requests.setStaffThread(request.number, topic.message_thread_id);
    }
    if (request.staffMessageId === null) {
      // Staff may have moved it on (from the queue) before the post got through.
      const text = cardText(locale, request, author, statusLine(locale, request, "—"));
      const post = await api.sendMessage(chatId, text, {
        parse_mode: "HTML",
        reply_markup: cardKeyboard(locale, request),
        link_preview_options: { is_disabled: true },
        ...(request.staffThreadId === null ? {} : { message_thread_id: request.staffThreadId }),
      });
      request.staffMessageId = post.message_id;
      await requests.setStaffMessage(request.number, post.message_id);
    }
    const thread = staffChat.threadOf(request);
    for (const file of await messages.attachments(request.number)) {
      if (file.staffMessageId !== null) continue;
      const copy = await sendFile(api, chatId, file, thread);
      await messages.delivered(file.id, { staffMessageId: copy });
    }
    return { chatId, messageId: request.staffMessageId, threadId: request.staffThreadId };
  };
}
