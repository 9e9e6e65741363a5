/**
 * Where the messages about a request go in the staff chat. A forum supergroup (topics
 * enabled) gives every request its own topic; a plain group keeps a request's messages as
 * replies to its post. Whether the chat is a forum is asked from Telegram (`getChat`) and
 * remembered for a few minutes, so an operator who turns topics on or off is followed soon.
 */
import type { Api } from "grammy";
import type { RequestRow } from "../db/requests.ts";

/** Send options that put a message into a request's thread (topic, or reply to its post). */
export type ThreadOptions =
  | { message_thread_id: number }
  | { reply_parameters: { message_id: number; allow_sending_without_reply: true } }
  | Record<string, never>;

/** How long the chat's kind is trusted. */
const FORUM_CHECK_MS = 5 * 60_000;

/** The staff chat as the features see it. */
export class StaffChat {
  /** `STAFF_CHAT_ID`, or null when requests are only stored. */
  readonly id: number | null;
  #forum: { value: boolean; at: number } | null = null;

  constructor(id: number | null) {
    this.id = id;
  }

  /** Whether the staff chat has topics (asked from Telegram, remembered a few minutes). */
  async isForum(api: Api): Promise<boolean> {
    if (this.id === null) return false;
    const now = Date.now();
    if (this.#forum && now - this.#forum.at < FORUM_CHECK_MS) return this.#forum.value;
    const chat = await api.getChat(this.id);
    const value = "is_forum" in chat && chat.is_forum === true;
    this.#forum = { value, at: now };
    return value;
  }

  /** The options that place a message in `request`'s thread (none before it was posted). */
  threadOf(request: Pick<RequestRow, "staffThreadId" | "staffMessageId">): ThreadOptions {
    if (request.staffThreadId !== null) return { message_thread_id: request.staffThreadId };
    if (request.staffMessageId !== null) {
      return {
        reply_parameters: { message_id: request.staffMessageId, allow_sending_without_reply: true },
      };
    }
    return {};
  }
}
