/**
 * Forum supergroups for the fake: which chats are forums, their topics, and the checks and
 * error texts of Telegram's topic methods. A topic's id is the id of the service message that
 * created it, as with Telegram, so the caller allocates it and posts the service messages.
 *
 * @module
 */

import { badRequest, optInt, optString, type Params } from "./wire.ts";

/** A forum topic as the fake keeps it. */
export interface TopicInfo {
  /** The topic's `message_thread_id`. */
  id: number;
  /** Current name. */
  name: string;
  /** RGB colour of the topic icon. */
  iconColor: number;
  /** Custom emoji shown as the icon, if one was set. */
  iconCustomEmojiId?: string;
  /** True after closeForumTopic (until reopenForumTopic). */
  closed: boolean;
  /** True after deleteForumTopic; its messages are gone too. */
  deleted: boolean;
}

/** A topic about to be created, after the checks of createForumTopic. */
export interface NewTopic {
  /** Name cleaned as Telegram cleans it. */
  name: string;
  /** The requested colour, or the next default one. */
  iconColor: number;
  /** The requested custom emoji, if any. */
  iconCustomEmojiId?: string;
}

/** What editForumTopic changed, as the `forum_topic_edited` service message reports it. */
export interface TopicEdit {
  /** The new name, when it changed. */
  name?: string;
  /** The new custom emoji ("" when removed), when it changed. */
  icon_custom_emoji_id?: string;
}

/** The icon colours Telegram accepts, in the order the fake hands them out by default. */
export const TOPIC_COLORS: readonly number[] = [
  0x6fb9f0,
  0xffd67e,
  0xcb86db,
  0x8eee98,
  0xff93b2,
  0xfb6f5f,
];

const MAX_NAME_LENGTH = 128;
const TOPIC_ID_INVALID = "TOPIC_ID_INVALID";
const TOPIC_NOT_MODIFIED = "TOPIC_NOT_MODIFIED";

/** The forum chats the fake knows and their topics. */
export class Forums {
  readonly #forums = new Set<number>();
  readonly #topics = new Map<number, Map<number, TopicInfo>>();
  #colorTurn = 0;

  /** Marks `chatId` as a forum or not; topics survive switching off, like Telegram's. */
  set(chatId: number, on: boolean): void {
    if (on) this.#forums.add(chatId);
    else this.#forums.delete(chatId);
  }

  /** Whether `chatId` is a forum now. */
  isForum(chatId: number): boolean {
    return this.#forums.has(chatId);
  }

  /** All topics of `chatId` ever created, deleted ones included, oldest first. */
  list(chatId: number): TopicInfo[] {
    return [...(this.#topics.get(chatId)?.values() ?? [])].map((t) => ({ ...t }));
  }

  /** The live (not deleted) topic `threadId` of `chatId`, if there is one. */
  topic(chatId: number, threadId: number): TopicInfo | undefined {
    const topic = this.#topics.get(chatId)?.get(threadId);
    return topic === undefined || topic.deleted ? undefined : topic;
  }

  /** Checks createForumTopic's parameters; nothing changes until {@linkcode Forums.add}. */
  checkNew(chatId: number, p: Params): NewTopic {
    this.#requireForum(chatId);
    const name = cleanName(optString(p, "name") ?? "");
    if (name === "") throw badRequest("title must be non-empty");
    const color = optInt(p, "icon_color");
    if (color !== undefined && !TOPIC_COLORS.includes(color)) {
      throw badRequest("invalid icon color specified");
    }
    const iconColor = color ?? TOPIC_COLORS[this.#colorTurn++ % TOPIC_COLORS.length] ?? 0x6fb9f0;
    const emoji = optString(p, "icon_custom_emoji_id");
    return emoji === undefined || emoji === ""
      ? { name, iconColor }
      : { name, iconColor, iconCustomEmojiId: emoji };
  }

  /** Records a topic checked by {@linkcode Forums.checkNew} under the id of its service message. */
  add(chatId: number, threadId: number, topic: NewTopic): TopicInfo {
    let inChat = this.#topics.get(chatId);
    if (inChat === undefined) this.#topics.set(chatId, inChat = new Map());
    const info: TopicInfo = { id: threadId, ...topic, closed: false, deleted: false };
    inChat.set(threadId, info);
    return info;
  }

  /** editForumTopic: returns the changes, or null when nothing was asked for (a no-op). */
  edit(chatId: number, p: Params): { topic: TopicInfo; changes: TopicEdit | null } {
    const topic = this.#existing(chatId, p);
    const changes: TopicEdit = {};
    const rawName = optString(p, "name");
    // An empty name means "keep the name", as in TDLib.
    if (rawName !== undefined && rawName !== "") {
      const name = cleanName(rawName);
      if (name === "") throw badRequest("title must be non-empty");
      if (name !== topic.name) changes.name = name;
    }
    const emoji = optString(p, "icon_custom_emoji_id");
    if (emoji !== undefined && emoji !== (topic.iconCustomEmojiId ?? "")) {
      changes.icon_custom_emoji_id = emoji;
    }
    const nameGiven = rawName !== undefined && rawName !== "";
    if (!nameGiven && emoji === undefined) return { topic, changes: null };
    if (Object.keys(changes).length === 0) throw badRequest(TOPIC_NOT_MODIFIED);
    if (changes.name !== undefined) topic.name = changes.name;
    if (changes.icon_custom_emoji_id !== undefined) {
      if (changes.icon_custom_emoji_id === "") delete topic.iconCustomEmojiId;
      else topic.iconCustomEmojiId = changes.icon_custom_emoji_id;
    }
    return { topic, changes };
  }

  /** closeForumTopic (`closed` true) or reopenForumTopic (false). */
  setClosed(chatId: number, p: Params, closed: boolean): TopicInfo {
    const topic = this.#existing(chatId, p);
    if (topic.closed === closed) throw badRequest(TOPIC_NOT_MODIFIED);
    topic.closed = closed;
    return topic;
  }

  /** deleteForumTopic; the caller removes the topic's messages. */
  delete(chatId: number, p: Params): TopicInfo {
    const topic = this.#existing(chatId, p);
    topic.deleted = true;
    return topic;
  }

  /** Throws what Telegram answers to a message sent into topic `threadId` that cannot take it. */
  checkPostable(chatId: number, threadId: number): TopicInfo {
    const topic = this.topic(chatId, threadId);
    if (topic === undefined) throw badRequest("message thread not found");
    if (topic.closed) throw badRequest("TOPIC_CLOSED");
    return topic;
  }

  #requireForum(chatId: number): void {
    if (!this.#forums.has(chatId)) throw badRequest("the chat is not a forum");
  }

  #existing(chatId: number, p: Params): TopicInfo {
    this.#requireForum(chatId);
    const threadId = optInt(p, "message_thread_id");
    if (threadId === undefined || threadId <= 0) {
      throw badRequest("invalid message thread identifier specified");
    }
    const topic = this.topic(chatId, threadId);
    if (topic === undefined) throw badRequest(TOPIC_ID_INVALID);
    return topic;
  }
}

/** TDLib's clean-up of a topic name: no control characters, trimmed, cut to 128 characters. */
function cleanName(raw: string): string {
  // deno-lint-ignore no-control-regex
  const cleaned = raw.replace(/[\u0000-\u001f\u007f]/g, " ").trim();
  return [...cleaned].slice(0, MAX_NAME_LENGTH).join("").trim();
}
