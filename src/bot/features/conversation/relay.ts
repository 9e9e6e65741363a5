/**
 * Relayed messages, delivered from the outbox (each was stored with its delivery owed, in one
 * statement): a user's message goes into their request's thread in the staff chat (its topic,
 * or under its post) headed `💬 #12 · Olya`; staff's message goes to the user headed
 * `💬 Request #12 — reply from staff` in their language. Text keeps its formatting; files are
 * copied (`copyMessage`: nothing is downloaded), the header as their caption. The copy's id is
 * stored, so replies to it find the request. A user who blocked the bot is marked, and staff
 * are told in the request's thread.
 */
import { type Api, GrammyError } from "grammy";
import type { MessageEntity } from "grammy/types";
import type { Locale } from "../../../config.ts";
import { STAFF_NOTICE } from "../../../db/request_lifecycle.ts";
import {
  type ConversationMessage,
  RELAY_TO_STAFF,
  RELAY_TO_USER,
  type RequestMessages,
} from "../../../db/request_messages.ts";
import type { RequestRepository, RequestRow } from "../../../db/requests.ts";
import type { UserRepository, UserRow } from "../../../db/users.ts";
import type { OutboxHandler } from "../../../jobs/outbox.ts";
import type { RequestMetrics } from "../../../metrics/requests.ts";
import { pickLocale, translate } from "../../i18n.ts";
import { blockedUser } from "../../middleware/errors.ts";
import type { StaffChat, ThreadOptions } from "../../staff_chat.ts";
import { takesCaption, withHeader } from "../../message_content.ts";

/** What the relays need. */
export interface RelayOptions {
  requests: Pick<RequestRepository, "get">;
  users: Pick<UserRepository, "get">;
  messages: Pick<RequestMessages, "get" | "delivered" | "owe">;
  staffChat: StaffChat;
  markBlocked: (userId: number) => Promise<void>;
  /** The staff chat's language, and the fallback for users. */
  locale: Locale;
  metrics: Pick<RequestMetrics, "relayed">;
}

/** Sends `message` to `chatId` under `header`, copying it from `fromChat`; the copy's id. */
async function deliver(
  api: Api,
  chatId: number,
  message: ConversationMessage,
  fromChat: number,
  fromMessage: number,
  header: string,
  entities: MessageEntity[],
  place: ThreadOptions,
): Promise<number> {
  if (message.fileKind === null) {
    const body = withHeader(header, message.text, entities, 4096);
    return (await api.sendMessage(chatId, body.text, { entities: body.entities, ...place }))
      .message_id;
  }
  if (takesCaption(message.fileKind)) {
    const caption = withHeader(header, message.text, entities, 1024);
    const copy = await api.copyMessage(chatId, fromChat, fromMessage, {
      caption: caption.text,
      caption_entities: caption.entities,
      ...place,
    });
    return copy.message_id;
  }
  // A sticker or a round video takes no caption: the header goes first, on its own.
  const title = withHeader(header, null, [], 4096);
  await api.sendMessage(chatId, title.text, { entities: title.entities, ...place });
  return (await api.copyMessage(chatId, fromChat, fromMessage, place)).message_id;
}

function displayName(user: UserRow | null, id: number): string {
  if (!user) return String(id);
  return [user.firstName, user.lastName].filter(Boolean).join(" ") ||
    (user.username ? `@${user.username}` : String(id));
}

/** The relays' deliveries, by outbox kind; see the module documentation. */
export function relayDeliveries(options: RelayOptions): Record<string, OutboxHandler> {
  const { requests, users, messages, staffChat, locale, metrics } = options;

  async function load(
    ref: string,
  ): Promise<{ message: ConversationMessage; request: RequestRow } | null> {
    const message = await messages.get(Number(ref));
    const request = message ? await requests.get(message.requestNumber) : null;
    return message && request ? { message, request } : null;
  }

  const entitiesOf = (
    payload: unknown,
  ) => ((payload as { entities?: MessageEntity[] } | null)?.entities ?? []);

  return {
    [RELAY_TO_STAFF]: async (item, { api, log }) => {
      const found = await load(item.ref);
      const chatId = staffChat.id;
      if (!found || chatId === null) return { skipped: "nothing to relay to" };
      const { message, request } = found;
      const author = await users.get(request.userId);
      const header = translate(locale, "conversation.header.to_staff", {
        number: request.number,
        name: displayName(author, request.userId),
      });
      const copy = await deliver(
        api,
        chatId,
        message,
        request.userId,
        message.userMessageId!,
        header,
        entitiesOf(item.payload),
        staffChat.threadOf(request),
      );
      await messages.delivered(message.id, { staffMessageId: copy });
      metrics.relayed.inc({ direction: "to_staff", result: "sent" });
      // The user sees that it went through.
      await api.setMessageReaction(request.userId, message.userMessageId!, [
        { type: "emoji", emoji: "👌" },
      ]).catch((error) => log.debug("no reaction: {message}", { message: String(error) }));
      return { messageId: copy };
    },
    [RELAY_TO_USER]: async (item, { api }) => {
      const found = await load(item.ref);
      const chatId = staffChat.id;
      if (!found || chatId === null) return { skipped: "nothing to relay" };
      const { message, request } = found;
      const author = await users.get(request.userId);
      const userLocale = pickLocale(author?.locale ?? author?.languageCode ?? undefined, locale);
      const header = translate(userLocale, "conversation.header.to_user", {
        number: request.number,
      });
      try {
        const copy = await deliver(
          api,
          request.userId,
          message,
          chatId,
          message.staffMessageId!,
          header,
          entitiesOf(item.payload),
          {},
        );
        await messages.delivered(message.id, { userMessageId: copy });
        metrics.relayed.inc({ direction: "to_user", result: "sent" });
        return { messageId: copy };
      } catch (error) {
        if (blockedUser(error) === null) {
          // Staff deleted their message before it went out: nothing left to send.
          if (
            error instanceof GrammyError && /message to copy not found/i.test(error.description)
          ) {
            return { skipped: "the original is gone" };
          }
          throw error;
        }
        await options.markBlocked(request.userId);
        await messages.owe(STAFF_NOTICE, `blocked:${request.number}:${item.ref}`, {
          notice: "blocked",
          number: request.number,
        });
        metrics.relayed.inc({ direction: "to_user", result: "blocked" });
        return { blocked: true };
      }
    },
  };
}
