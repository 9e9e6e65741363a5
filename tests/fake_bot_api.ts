/**
 * A fake Telegram Bot API server for tests. It speaks the real wire protocol over HTTP on
 * 127.0.0.1 so the bot under test runs unmodified (only BOT_API_ROOT changes), and it mimics
 * the Telegram behaviours that bots get wrong: update confirmation by offset, long-poll
 * conflicts, webhook retries, entity parsing errors, flood-wait errors, users who blocked the
 * bot, replies, media and albums, and forum topics.
 *
 * The parts live in `fake_bot_api/`: the wire format, text formatting, files, forums and flood
 * limits; this module wires them into the server and is the one tests import.
 *
 * @module
 */

import {
  CAPTIONED_KINDS,
  checkAlbumTypes,
  CONTENT_KEYS,
  FileStore,
  MEDIA_KINDS,
  mediaFields,
  type MediaKind,
  mediaKindOf,
} from "./fake_bot_api/media.ts";
import { Forums, type TopicInfo } from "./fake_bot_api/forum.ts";
import {
  type FloodLimits,
  type FloodState,
  floodWait,
  NO_SENDS,
  recordSend,
  TELEGRAM_FLOOD_LIMITS,
} from "./fake_bot_api/flood.ts";
import { checkMarkup, formatText, textFields } from "./fake_bot_api/formatting.ts";
import {
  type Answer,
  ApiError,
  badRequest,
  coerceJsonField,
  errorAnswer,
  fail,
  faultAnswer,
  type FaultSpec,
  isObject,
  json,
  type JsonObject,
  optBool,
  optInt,
  optNumber,
  optString,
  type Params,
  readParams,
  requireChatId,
} from "./fake_bot_api/wire.ts";

export type { Entity, Formatted } from "./fake_bot_api/formatting.ts";
export { parseHtml, parseMarkdownV2 } from "./fake_bot_api/formatting.ts";
export type { FaultSpec } from "./fake_bot_api/wire.ts";
export { type FloodLimits, TELEGRAM_FLOOD_LIMITS } from "./fake_bot_api/flood.ts";
export type { TopicInfo } from "./fake_bot_api/forum.ts";
export type { MediaKind } from "./fake_bot_api/media.ts";

/** The token the fake accepts unless another one is given to {@linkcode FakeBotApi.start}. */
export const FAKE_TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";

/** Options for {@linkcode FakeBotApi.start}. */
export interface FakeBotApiOptions {
  /** Token the bot must use; any other token gets 401. */
  token?: string;
  /** How long a failed webhook delivery waits before it is retried (default 200 ms). */
  webhookRetryDelayMs?: number;
  /**
   * Enforce Telegram's flood limits on the send methods (429 with `retry_after`): `true` for
   * {@linkcode TELEGRAM_FLOOD_LIMITS}, or limits of your own. @default false
   */
  floodLimits?: boolean | Partial<FloodLimits>;
  /** Milliseconds clock for flood limits and the `at` of sends. @default Date.now */
  clock?: () => number;
}

/** One Bot API request as the fake saw it. */
export interface RecordedCall {
  /** Canonical method name, e.g. `sendMessage`, whatever casing the client used. */
  method: string;
  /** Decoded parameters from query, JSON, form or multipart; uploaded files become descriptors. */
  params: Record<string, unknown>;
  /** `Date.now()` when the request arrived. */
  at: number;
  /** The JSON body that was answered; `undefined` while the request is still pending. */
  response: unknown;
  /** How the call came: a request of its own, or in a webhook's response body. */
  via: "request" | "webhook-reply";
}

/** One webhook POST attempt made by the fake. */
export interface WebhookPost {
  /** The update that was posted. */
  updateId: number;
  /** HTTP status returned by the receiver, or `"network-error"` when there was no response. */
  status: number | "network-error";
  /** The `X-Telegram-Bot-Api-Secret-Token` header that was sent. */
  secretHeader: string | null;
}

/** The last failed webhook delivery, as reported by `getWebhookInfo`. */
export interface WebhookError {
  /** Unix time in seconds, like `last_error_date`. */
  date: number;
  /** Like `last_error_message`, e.g. `Wrong response from the webhook: 503 Service Unavailable`. */
  message: string;
}

/** Parameters of a successful `sendMessage` call. */
export interface SentMessageParams {
  /** Target chat as the bot passed it. */
  chat_id: number | string;
  /** Text as the bot passed it (still with HTML/Markdown markup). */
  text: string;
  /** Everything else the bot sent (parse_mode, reply_markup, ...). */
  [key: string]: unknown;
}

/** One successful call of a method that posts messages, as {@linkcode FakeBotApi.sentOf} lists it. */
export interface SentRecord {
  /** Canonical method name, e.g. `copyMessage`. */
  method: string;
  /** The chat the messages went to. */
  chatId: number;
  /** Parameters as the bot passed them (uploads as descriptors). */
  params: Record<string, unknown>;
  /** What the method answered: a Message, `{message_id}` for copyMessage, an array for albums. */
  result: unknown;
  /** When the send succeeded, by the fake's clock (milliseconds). */
  at: number;
  /** The (first) message that was posted. */
  message_id: number;
  /** Every message that was posted, in order (several for an album). */
  message_ids: number[];
  /** The forum topic or reply thread the messages went to, if any. */
  message_thread_id?: number;
}

/**
 * A file in a pushed message: `true` for a new one, a string to give its `file_id`, or fields
 * such as `file_name`, `mime_type`, `duration` or `emoji` (with an optional `file_id`).
 */
export type PushedFile = true | string | { file_id?: string; [field: string]: unknown };

/** A contact shared in a pushed message. */
export interface PushedContact {
  /** The phone number as shared. */
  phone_number: string;
  /** Defaults to the sender's first name. */
  first_name?: string;
  /** Contact's last name. */
  last_name?: string;
  /** Set when the contact is a Telegram user (the sender, when they share their own). */
  user_id?: number;
}

/** Options for {@linkcode FakeBotApi.pushMessage}. */
export interface PushMessageOptions {
  /** Chat the message is in; a positive id is a private chat with that user. */
  chatId: number;
  /** Sender; defaults to `chatId`, which is right for private chats. */
  userId?: number;
  /** Message text; a leading `/command` gets a `bot_command` entity. Optional with media. */
  text?: string;
  /** Sender's `language_code` (default `"en"`). */
  languageCode?: string;
  /** Sender's first name (default: as last pushed, else `"User"`). */
  firstName?: string;
  /** Sender's username, without `@` (default: as last pushed, else none). */
  username?: string;
  /** A photo (a PhotoSize array, largest last). */
  photo?: PushedFile;
  /** A document. */
  document?: PushedFile;
  /** A video. */
  video?: PushedFile;
  /** A GIF or silent video; Telegram also fills `document` for it. */
  animation?: PushedFile;
  /** A voice note. */
  voice?: PushedFile;
  /** A music file. */
  audio?: PushedFile;
  /** A sticker. */
  sticker?: PushedFile;
  /** A shared contact. */
  contact?: PushedContact;
  /** Caption of the media, plain text. */
  caption?: string;
  /** Makes the message part of an album (`media_group_id`). */
  mediaGroupId?: string;
  /** The message in the same chat this one replies to; it must exist. */
  replyToMessageId?: number;
  /** Forum topic (which must exist) or reply thread the message is in. */
  threadId?: number;
}

/** A chat member's `status`, as `getChatMember` reports it. */
export type ChatMemberStatus =
  | "creator"
  | "administrator"
  | "member"
  | "restricted"
  | "left"
  | "kicked";

/** Options for {@linkcode FakeBotApi.pushCallbackQuery}. */
export interface PushCallbackQueryOptions {
  /** Chat of the message carrying the button. */
  chatId: number;
  /** Who pressed the button; defaults to `chatId`. */
  userId?: number;
  /** The button's `callback_data`. */
  data: string;
  /** Message carrying the button; defaults to the bot's latest message in the chat. */
  messageId?: number;
  /** Presser's `language_code` (default `"en"`). */
  languageCode?: string;
}

/** Options for {@linkcode FakeBotApi.blockUser} and {@linkcode FakeBotApi.unblockUser}. */
export interface BlockOptions {
  /** Queue the `my_chat_member` update Telegram sends the bot about it. @default true */
  notify?: boolean;
}

// A getter, because reading request.signal makes Deno warn about its legacy abort-on-success
// behaviour; only requests that really wait look at it.
type ClientSignal = () => AbortSignal;
type Handler = (params: Params, signal: ClientSignal) => unknown;
type WakeReason = "push" | "timeout" | "conflict" | "webhook" | "closed" | "aborted";
type ReplyRequest = { messageId: number; chatId?: number; allowWithout: boolean };

interface WebhookConfig {
  url: string;
  secret: string | null;
  maxConnections: number;
}

const FIRST_UPDATE_ID = 1000;
/** What an administrator may do, as `getChatMember` lists it (all but promoting others). */
const ADMIN_RIGHTS = {
  can_manage_chat: true,
  can_delete_messages: true,
  can_manage_video_chats: true,
  can_restrict_members: true,
  can_promote_members: false,
  can_change_info: true,
  can_invite_users: true,
  can_post_stories: true,
  can_edit_stories: true,
  can_delete_stories: true,
  can_pin_messages: true,
  can_manage_topics: true,
};
const WEBHOOK_CONFLICT = "Conflict: can't use getUpdates method while webhook is active; " +
  "use deleteWebhook to delete the webhook first";
const POLL_CONFLICT = "Conflict: terminated by other getUpdates request; " +
  "make sure that only one bot instance is running";
const QUERY_INVALID =
  "Bad Request: query is too old and response timeout expired or query ID is invalid";
const NOT_MODIFIED = "message is not modified: specified new message content and reply markup " +
  "are exactly the same as a current content and reply markup of the message";
const REPLY_NOT_FOUND = "message to be replied not found";
const BLOCKED = "Forbidden: bot was blocked by the user";
const DEACTIVATED = "Forbidden: user is deactivated";
// Telegram only delivers these when they are asked for explicitly.
const OPT_IN_UPDATES = new Set(["chat_member", "message_reaction", "message_reaction_count"]);
const CHAT_ACTIONS = new Set(
  ("typing upload_photo record_video upload_video record_voice upload_voice upload_document " +
    "choose_sticker find_location record_video_note upload_video_note").split(" "),
);
// What copies and forwards carry over from the original message.
const COPIED_KEYS = [...CONTENT_KEYS, "entities", "caption", "caption_entities"];
// The send methods for one file, with the kind of file each takes (in the parameter so named).
const MEDIA_SEND_METHODS: Record<string, MediaKind> = {
  sendPhoto: "photo",
  sendDocument: "document",
  sendVideo: "video",
  sendAnimation: "animation",
  sendVoice: "voice",
  sendAudio: "audio",
  sendSticker: "sticker",
};

/** One getUpdates request that may be waiting for updates. */
class LongPoll {
  ended: WakeReason | null = null;
  #notify: ((reason: WakeReason) => void) | null = null;

  wake(reason: WakeReason): void {
    // "push" only means "look again"; every other reason ends the request for good.
    if (reason !== "push" && this.ended === null) this.ended = reason;
    const notify = this.#notify;
    this.#notify = null;
    notify?.(reason);
  }

  wait(ms: number): Promise<WakeReason> {
    if (this.ended !== null) return Promise.resolve(this.ended);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#notify = null;
        resolve("timeout");
      }, ms);
      this.#notify = (reason) => {
        clearTimeout(timer);
        resolve(reason);
      };
    });
  }
}

/** A fake Telegram Bot API server; start it with {@linkcode FakeBotApi.start}. */
export class FakeBotApi implements AsyncDisposable {
  /** Base URL to use as BOT_API_ROOT, e.g. `http://127.0.0.1:43123`. */
  readonly apiRoot: string;
  /** The only token the fake accepts. */
  readonly token: string;
  /** What `getMe` returns. */
  readonly botInfo = {
    id: 123456,
    is_bot: true as const,
    first_name: "Service Desk",
    username: "service_desk_test_bot",
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
  };
  /** Every authorised request, in arrival order. */
  readonly calls: RecordedCall[] = [];
  /** How many times each update_id was handed out (getUpdates result or webhook POST). */
  readonly deliveries: Map<number, number> = new Map();
  /** Every webhook POST attempt, in completion order. */
  readonly webhookPosts: WebhookPost[] = [];
  /** Updates discarded unseen because allowed_updates excluded their type. */
  readonly dropped: number[] = [];

  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #retryDelayMs: number;
  readonly #handlers: Map<string, { name: string; handler: Handler }> = new Map();
  #queue: JsonObject[] = [];
  #nextUpdateId = FIRST_UPDATE_ID;
  #confirmedOffset = 0;
  #allowedUpdates: string[] | null = null;
  #poller: LongPoll | null = null;
  #webhook: WebhookConfig | null = null;
  #lastWebhookError: WebhookError | null = null;
  readonly #inFlight = new Set<number>();
  readonly #retryWaiting = new Set<number>();
  readonly #retryTimers = new Set<ReturnType<typeof setTimeout>>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #faults = new Map<string, FaultSpec[]>();
  readonly #chatFaults = new Map<string, FaultSpec[]>();
  readonly #delays = new Map<string, number>();
  readonly #messages = new Map<number, Map<number, JsonObject>>();
  readonly #lastMessageId = new Map<number, number>();
  readonly #chats = new Map<number, JsonObject>();
  readonly #commands = new Map<string, unknown[]>();
  readonly #members = new Map<number, Map<number, ChatMemberStatus>>();
  readonly #openQueries = new Set<string>();
  readonly #answeredQueries = new Set<string>();
  #queryCounter = 0;
  readonly #files = new FileStore();
  readonly #forums = new Forums();
  readonly #users = new Map<number, { first_name: string; username?: string }>();
  readonly #recipients = new Map<number, "blocked" | "deactivated">();
  readonly #sends: SentRecord[] = [];
  readonly #floodLimits: FloodLimits | null;
  readonly #clock: () => number;
  #flood: FloodState = NO_SENDS;
  #albumCounter = 0;
  readonly #closeController = new AbortController();
  #closing: Promise<void> | null = null;

  private constructor(options: FakeBotApiOptions) {
    this.token = options.token ?? FAKE_TOKEN;
    this.#retryDelayMs = options.webhookRetryDelayMs ?? 200;
    const flood = options.floodLimits ?? false;
    this.#floodLimits = flood === false
      ? null
      : { ...TELEGRAM_FLOOD_LIMITS, ...(flood === true ? {} : flood) };
    this.#clock = options.clock ?? Date.now;
    this.#registerHandlers();
    this.#registerHandlers();
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (request) => this.#handle(request),
    );
    this.apiRoot = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Starts a fake server on a free port of 127.0.0.1. */
  static start(options: FakeBotApiOptions = {}): Promise<FakeBotApi> {
    return Promise.resolve(new FakeBotApi(options));
  }

  /** One past the newest update that is known to be confirmed (0 before any confirmation). */
  get confirmedOffset(): number {
    return this.#confirmedOffset;
  }

  /** The last failed webhook delivery, or null. */
  get lastWebhookError(): WebhookError | null {
    return this.#lastWebhookError;
  }

  /** The current webhook URL, or null when polling. */
  get webhookUrl(): string | null {
    return this.#webhook?.url ?? null;
  }

  // ---- test-side API -------------------------------------------------------------------------

  /** Queues an update (assigning the next update_id when it has none) and returns its id. */
  pushUpdate(update: Record<string, unknown>): number {
    const copy = structuredClone(update);
    const given = copy.update_id;
    const id = typeof given === "number" ? given : this.#nextUpdateId;
    this.#nextUpdateId = Math.max(this.#nextUpdateId, id + 1);
    const stored = { update_id: id, ...copy };
    const at = this.#queue.findIndex((u) => (u.update_id as number) > id);
    if (at === -1) this.#queue.push(stored);
    else this.#queue.splice(at, 0, stored);
    this.#remember(stored);
    this.#poller?.wake("push");
    this.#pumpWebhook();
    return id;
  }

  /**
   * Queues a message from a user, shaped like a real update: text (a leading `/command` gets a
   * `bot_command` entity), media with unique file ids, a contact, a reply, a forum topic.
   */
  pushMessage(opts: PushMessageOptions): number {
    const hasMedia = MEDIA_KINDS.some((kind) => opts[kind] !== undefined);
    if (opts.text === undefined && !hasMedia && opts.contact === undefined) {
      throw new Error("pushMessage: give text, media or a contact");
    }
    const userId = opts.userId ?? opts.chatId;
    const from = this.#user(userId, opts.languageCode, opts.firstName, opts.username);
    this.#users.set(userId, {
      first_name: from.first_name,
      ...(from.username === undefined ? {} : { username: from.username }),
    });
    let chat: JsonObject;
    if (opts.chatId > 0) {
      chat = { id: opts.chatId, type: "private", first_name: from.first_name };
      if (from.username !== undefined) chat.username = from.username;
      // Names change; getChat answers with the latest ones, as Telegram does.
      if (userId === opts.chatId) this.#chats.set(opts.chatId, structuredClone(chat));
    } else chat = this.#chatFor(opts.chatId);
    const message: JsonObject = {
      message_id: this.#nextMessageId(opts.chatId),
      ...this.#pushedPlace(opts),
      from,
      chat,
      date: unixNow(),
    };
    if (opts.mediaGroupId !== undefined) message.media_group_id = opts.mediaGroupId;
    if (opts.text !== undefined) {
      message.text = opts.text;
      // Like Telegram, only `/name` (letters, digits, _, an optional @bot) is a command.
      const command = /^\/[A-Za-z0-9_]+(@\w+)?/.exec(opts.text)?.[0];
      if (command !== undefined) {
        message.entities = [{ type: "bot_command", offset: 0, length: command.length }];
      }
    }
    for (const kind of MEDIA_KINDS) {
      const spec = opts[kind];
      if (spec !== undefined) {
        Object.assign(message, mediaFields(kind, this.#pushedFile(kind, spec)));
      }
    }
    if (hasMedia && opts.caption !== undefined) message.caption = opts.caption;
    if (opts.contact !== undefined) {
      message.contact = { first_name: from.first_name, ...opts.contact };
    }
    return this.pushUpdate({ message });
  }

  /** Queues a button press on one of the bot's messages (a stub message is made if unknown). */
  pushCallbackQuery(opts: PushCallbackQueryOptions): number {
    const from = this.#user(opts.userId ?? opts.chatId, opts.languageCode);
    const inChat = this.#messages.get(opts.chatId);
    let message = opts.messageId === undefined
      ? [...(inChat?.values() ?? [])].reverse().find((m) => this.#fromBot(m))
      : inChat?.get(opts.messageId);
    if (message === undefined) {
      // The bot may react by editing this message, so it must exist like a real one would.
      message = this.#storeMessage({
        message_id: opts.messageId ?? this.#nextMessageId(opts.chatId),
        from: this.#botUser(),
        chat: this.#chatFor(opts.chatId),
        date: unixNow(),
        text: "...",
      });
    }
    const id = `${Date.now()}${String(++this.#queryCounter).padStart(4, "0")}`;
    return this.pushUpdate({
      callback_query: {
        id,
        from,
        message: structuredClone(message),
        chat_instance: String(-4_000_000_000_000_000_000n - BigInt(opts.chatId)),
        data: opts.data,
      },
    });
  }

  /** Update ids that were handed out more than once. */
  redelivered(): number[] {
    return [...this.deliveries].filter(([, n]) => n > 1).map(([id]) => id);
  }

  /** Number of queued updates not yet confirmed. */
  pendingCount(): number {
    return this.#queue.length;
  }

  /** Parameters of every recorded call of `method` (successful or not). */
  callsOf(method: string): Params[] {
    const name = this.#canonical(method);
    return this.calls.filter((c) => c.method === name).map((c) => c.params);
  }

  /** Parameters of the successful sendMessage calls, optionally only those to `chatId`. */
  sentMessages(chatId?: number): SentMessageParams[] {
    return this.calls
      .filter((c) => c.method === "sendMessage" && isObject(c.response) && c.response.ok === true)
      .map((c) => c.params as SentMessageParams)
      .filter((p) => chatId === undefined || String(p.chat_id) === String(chatId));
  }

  /**
   * Every successful call of a method that posts messages (sendMessage, send* media,
   * sendMediaGroup, copyMessage, forwardMessage), optionally only `method` and/or only to
   * `chatId`, in the order they succeeded.
   */
  sentOf(method?: string, chatId?: number): SentRecord[] {
    const name = method === undefined ? undefined : this.#canonical(method);
    return this.#sends
      .filter((s) => name === undefined || s.method === name)
      .filter((s) => chatId === undefined || s.chatId === chatId)
      .map((s) => structuredClone(s));
  }

  /**
   * When each successful send (see {@linkcode FakeBotApi.sentOf}) happened, by the fake's
   * clock, optionally only those to `chatId`. An album is one send, as for the flood limits.
   */
  sendTimes(chatId?: number): number[] {
    return this.sentOf(undefined, chatId).map((s) => s.at);
  }

  /**
   * Makes `chatId` a forum supergroup (or stops it being one): `getChat`, updates and sent
   * messages then show `type: "supergroup"` and `is_forum: true`, and topics can be created.
   */
  setForum(chatId: number, on = true): void {
    if (chatId > 0) throw new Error("setForum: only supergroups can be forums");
    this.#forums.set(chatId, on);
    const chat = this.#chatFor(chatId);
    if (on) Object.assign(chat, { type: "supergroup", is_forum: true });
    else delete chat.is_forum;
    this.#chats.set(chatId, chat);
  }

  /** The topics of forum `chatId`, deleted ones included, in creation order. */
  topics(chatId: number): TopicInfo[] {
    return this.#forums.list(chatId);
  }

  /**
   * The messages stored in thread `threadId` of `chatId`, by message_id: for a forum topic the
   * service messages (`forum_topic_created`, ...) and everything posted or pushed into it.
   */
  messagesInThread(chatId: number, threadId: number): JsonObject[] {
    return [...(this.#messages.get(chatId)?.values() ?? [])]
      .filter((m) => m.message_thread_id === threadId)
      .sort((a, b) => (a.message_id as number) - (b.message_id as number))
      .map((m) => structuredClone(m));
  }

  /**
   * Makes every send to the private chat with `userId` fail with 403 "bot was blocked by the
   * user", and queues the `my_chat_member` update (status `kicked`) Telegram sends about it.
   */
  blockUser(userId: number, options: BlockOptions = {}): void {
    if (this.#recipients.get(userId) === "blocked") return;
    this.#recipients.set(userId, "blocked");
    if (options.notify ?? true) this.#pushMyChatMember(userId, "member", "kicked");
  }

  /** Undoes {@linkcode FakeBotApi.blockUser}, queuing the `my_chat_member` update (`member`). */
  unblockUser(userId: number, options: BlockOptions = {}): void {
    if (this.#recipients.get(userId) !== "blocked") return;
    this.#recipients.delete(userId);
    if (options.notify ?? true) this.#pushMyChatMember(userId, "kicked", "member");
  }

  /** Makes every send to the private chat with `userId` fail with 403 "user is deactivated". */
  deactivateUser(userId: number): void {
    this.#recipients.set(userId, "deactivated");
  }

  /** Polls `fn` every 20 ms until it returns something other than undefined/false/null. */
  async waitFor<T>(
    fn: () => T | undefined | false | null,
    timeoutMs = 10_000,
    what = "condition",
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = fn();
      if (value !== undefined && value !== false && value !== null) return value as T;
      if (Date.now() >= deadline) {
        throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Makes the next `times` calls of `method` fail with `error`. */
  failNext(method: string, error: FaultSpec, times = 1): void {
    const key = method.toLowerCase();
    const list = this.#faults.get(key) ?? [];
    for (let i = 0; i < times; i++) list.push(error);
    this.#faults.set(key, list);
  }

  /**
   * Makes the next `times` sends (sendMessage, send* media, copyMessage) to `chatId` fail with
   * `error`, as when the bot was removed from a group; other chats are not affected.
   */
  failChat(chatId: number, error: FaultSpec, times = 1): void {
    const list = this.#chatFaults.get(String(chatId)) ?? [];
    for (let i = 0; i < times; i++) list.push(error);
    this.#chatFaults.set(String(chatId), list);
  }

  /**
   * Makes `getChatMember` in `chatId` answer from `members` (user id → status; the bot's own
   * id is `botInfo.id`); users not listed get `left`, and `restricted` ones may not send
   * messages. Chats never configured answer `member` for everyone.
   */
  setChatMembers(chatId: number, members: Record<number, ChatMemberStatus>): void {
    this.#members.set(chatId, new Map(Object.entries(members).map(([id, s]) => [Number(id), s])));
  }

  /** Makes every call of `method` wait `ms` before it is handled; 0 removes the delay. */
  delay(method: string, ms: number): void {
    if (ms > 0) this.#delays.set(method.toLowerCase(), ms);
    else this.#delays.delete(method.toLowerCase());
  }

  /** Raw POST to the current webhook, with its secret unless overridden; consume the body. */
  postToWebhookNow(
    body: string | Uint8Array,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const hook = this.#webhook;
    if (hook === null) return Promise.reject(new Error("postToWebhookNow: no webhook is set"));
    const sent = new Headers({ "content-type": "application/json" });
    if (hook.secret !== null) sent.set("x-telegram-bot-api-secret-token", hook.secret);
    for (const [name, value] of Object.entries(headers)) sent.set(name, value);
    return fetch(hook.url, { method: "POST", headers: sent, body: body as BodyInit });
  }

  /** Stops webhook delivery, answers waiting long polls with [] and shuts the server down. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Same as {@linkcode FakeBotApi.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#webhook = null;
    this.#clearRetries();
    this.#poller?.wake("closed");
    // Aborting first matters: shutdown() waits for in-flight requests, delayed ones included.
    this.#closeController.abort();
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    await this.#server.shutdown();
  }

  // ---- HTTP layer ----------------------------------------------------------------------------

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const match = /^\/bot([^/]*)\/([^/]+)\/?$/.exec(url.pathname);
    if (match === null) return json(404, fail(404, "Not Found"));
    if (match[1] !== this.token) return json(401, fail(401, "Unauthorized"));
    const method = match[2] ?? "";
    let params: Params;
    try {
      params = await readParams(request, url);
    } catch (e) {
      return json(400, fail(400, `Bad Request: ${e instanceof Error ? e.message : String(e)}`));
    }
    const answer = await this.#invoke(method, params, () => request.signal, "request");
    return json(answer.status, answer.body);
  }

  async #invoke(
    method: string,
    params: Params,
    signal: ClientSignal,
    via: RecordedCall["via"],
  ): Promise<Answer> {
    const entry = this.#handlers.get(method.toLowerCase());
    const call: RecordedCall = {
      method: entry?.name ?? method,
      params,
      at: Date.now(),
      response: undefined,
      via,
    };
    this.calls.push(call);
    const answer = await this.#run(method.toLowerCase(), entry?.handler, params, signal);
    call.response = answer.body;
    return answer;
  }

  async #run(
    key: string,
    handler: Handler | undefined,
    params: Params,
    signal: ClientSignal,
  ): Promise<Answer> {
    if (handler === undefined) return errorAnswer(404, "Not Found: method not found");
    // Taken on arrival so concurrent calls consume faults in the order they came in.
    const chatFaults = params.chat_id === undefined
      ? undefined
      : this.#chatFaults.get(String(params.chat_id));
    const fault = this.#faults.get(key)?.shift() ??
      (key.startsWith("send") || key === "copymessage" ? chatFaults?.shift() : undefined);
    const wait = this.#delays.get(key);
    if (wait !== undefined) await sleep(wait, [signal(), this.#closeController.signal]);
    if (fault !== undefined) return faultAnswer(fault);
    try {
      const result = await handler(params, signal);
      if (result instanceof Described) {
        return { status: 200, body: { ok: true, result: result.result, description: result.text } };
      }
      return { status: 200, body: { ok: true, result } };
    } catch (e) {
      if (e instanceof ApiError) return errorAnswer(e.code, e.description, e.parameters);
      return errorAnswer(500, `Internal Server Error: ${e instanceof Error ? e.message : e}`);
    }
  }

  #canonical(method: string): string {
    return this.#handlers.get(method.toLowerCase())?.name ?? method;
  }

  #registerHandlers(): void {
    const table: Record<string, Handler> = {
      getMe: () => this.botInfo,
      logOut: () => true,
      close: () => true,
      getUpdates: (p, signal) => this.#getUpdates(p, signal),
      setWebhook: (p) => this.#setWebhook(p),
      deleteWebhook: (p) => this.#deleteWebhook(p),
      getWebhookInfo: () => this.#webhookInfo(),
      sendMessage: (p) => this.#sendMessage(p),
      editMessageText: (p) => this.#editMessageText(p),
      editMessageReplyMarkup: (p) => this.#editMessageReplyMarkup(p),
      sendMediaGroup: (p) => this.#sendMediaGroup(p),
      copyMessage: (p) => this.#copyMessage(p),
      forwardMessage: (p) => this.#forwardMessage(p),
      deleteMessage: (p) => this.#deleteMessage(p),
      answerCallbackQuery: (p) => this.#answerCallbackQuery(p),
      sendChatAction: (p) => this.#sendChatAction(p),
      getChat: (p) => this.#getChat(p),
      getChatMember: (p) => this.#getChatMember(p),
      createForumTopic: (p) => this.#createForumTopic(p),
      editForumTopic: (p) => this.#editForumTopic(p),
      closeForumTopic: (p) => this.#setTopicClosed(p, true),
      reopenForumTopic: (p) => this.#setTopicClosed(p, false),
      deleteForumTopic: (p) => this.#deleteForumTopic(p),
      setMyCommands: (p) => this.#setMyCommands(p),
      getMyCommands: (p) => this.#commands.get(commandsKey(p)) ?? [],
      deleteMyCommands: (p) => {
        this.#commands.delete(commandsKey(p));
        return true;
      },
      setMyDescription: () => true,
      setMyShortDescription: () => true,
      setMyName: () => true,
      setChatMenuButton: () => true,
      setMessageReaction: () => true,
      pinChatMessage: () => true,
      unpinChatMessage: () => true,
      leaveChat: () => true,
    };
    for (const [method, kind] of Object.entries(MEDIA_SEND_METHODS)) {
      table[method] = (p) => this.#sendMedia(method, kind, p);
    }
    for (const [name, handler] of Object.entries(table)) {
      this.#handlers.set(name.toLowerCase(), { name, handler });
    }
  }

  // ---- updates: getUpdates -------------------------------------------------------------------

  async #getUpdates(p: Params, signal: ClientSignal): Promise<unknown> {
    if (this.#webhook !== null) throw new ApiError(409, WEBHOOK_CONFLICT);
    const offset = optInt(p, "offset");
    const limit = Math.min(100, Math.max(1, optInt(p, "limit") ?? 100));
    const timeoutSeconds = Math.max(0, optNumber(p, "timeout") ?? 0);
    if (p.allowed_updates !== undefined) this.#setAllowedUpdates(p.allowed_updates);

    this.#poller?.wake("conflict");
    const poll = new LongPoll();
    this.#poller = poll;
    if (this.#closeController.signal.aborted) poll.wake("closed");
    const onAbort = () => poll.wake("aborted");
    let watched: AbortSignal | null = null;
    try {
      if (offset !== undefined) this.#confirm(offset);
      const deadline = Date.now() + timeoutSeconds * 1000;
      for (;;) {
        if (poll.ended === "conflict") {
          // grammY's stop() aborts its poll and at once confirms with a new one; the hang-up can
          // reach us after the new request, and a 409 nobody receives would only mislead tests.
          if (watched !== null) await sleep(20, [watched, this.#closeController.signal]);
          if (watched?.aborted) return [];
          throw new ApiError(409, POLL_CONFLICT);
        }
        if (poll.ended === "webhook") throw new ApiError(409, WEBHOOK_CONFLICT);
        if (poll.ended !== null) return [];
        const batch = this.#available().slice(0, limit);
        if (batch.length > 0) {
          for (const u of batch) this.#countDelivery(u.update_id as number);
          return batch;
        }
        const left = deadline - Date.now();
        if (left <= 0) return [];
        if (watched === null) {
          // A client that hung up must stop counting as the current poller.
          watched = signal();
          watched.addEventListener("abort", onAbort, { once: true });
          if (watched.aborted) poll.wake("aborted");
        }
        await poll.wait(left);
      }
    } finally {
      watched?.removeEventListener("abort", onAbort);
      if (this.#poller === poll) this.#poller = null;
    }
  }

  #confirm(offset: number): void {
    if (offset < 0) {
      // Negative offsets keep only the newest -offset updates; the rest are forgotten.
      const keep = this.#queue.slice(offset);
      const first = keep[0]?.update_id as number | undefined;
      this.#queue = keep;
      if (first !== undefined) this.#confirmedOffset = Math.max(this.#confirmedOffset, first);
      return;
    }
    this.#queue = this.#queue.filter((u) => (u.update_id as number) >= offset);
    this.#confirmedOffset = Math.max(this.#confirmedOffset, offset);
  }

  #confirmOne(id: number): void {
    this.#queue = this.#queue.filter((u) => u.update_id !== id);
    this.#confirmedOffset = Math.max(this.#confirmedOffset, id + 1);
  }

  #dropAll(): void {
    const last = this.#queue.at(-1)?.update_id as number | undefined;
    this.#queue = [];
    if (last !== undefined) this.#confirmedOffset = Math.max(this.#confirmedOffset, last + 1);
  }

  #setAllowedUpdates(value: unknown): void {
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw badRequest("can't parse allowed updates");
    }
    this.#allowedUpdates = value;
  }

  /** Queue after discarding updates whose type is not allowed, as Telegram never sends those. */
  #available(): JsonObject[] {
    const allowed = this.#allowedUpdates;
    const ok = (u: JsonObject) => {
      const type = Object.keys(u).find((k) => k !== "update_id") ?? "";
      return allowed === null || allowed.length === 0
        ? !OPT_IN_UPDATES.has(type)
        : allowed.includes(type);
    };
    const kept: JsonObject[] = [];
    for (const u of this.#queue) {
      if (ok(u)) kept.push(u);
      else this.dropped.push(u.update_id as number);
    }
    this.#queue = kept;
    return kept;
  }

  #countDelivery(id: number): void {
    this.deliveries.set(id, (this.deliveries.get(id) ?? 0) + 1);
  }

  // ---- updates: webhooks ---------------------------------------------------------------------

  #setWebhook(p: Params): unknown {
    const url = optString(p, "url") ?? "";
    if (url === "") return this.#deleteWebhook(p);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw badRequest("bad webhook: invalid webhook URL specified");
    }
    // Real Telegram insists on HTTPS; tests receive on plain HTTP on localhost.
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
      throw badRequest("bad webhook: An HTTPS URL must be provided for webhook");
    }
    const secret = optString(p, "secret_token") ?? null;
    if (secret !== null && !/^[A-Za-z0-9_-]{1,256}$/.test(secret)) {
      throw badRequest("secret token contains unallowed characters");
    }
    const maxConnections = Math.min(100, Math.max(1, optInt(p, "max_connections") ?? 40));
    if (p.allowed_updates !== undefined) this.#setAllowedUpdates(p.allowed_updates);
    if (optBool(p, "drop_pending_updates")) this.#dropAll();
    const old = this.#webhook;
    const same = old !== null && old.url === url && old.secret === secret &&
      old.maxConnections === maxConnections;
    if (old?.url !== url) this.#lastWebhookError = null;
    this.#poller?.wake("webhook");
    this.#clearRetries();
    this.#webhook = { url, secret, maxConnections };
    this.#pumpWebhook();
    return new Described(true, same ? "Webhook is already set" : "Webhook was set");
  }

  #deleteWebhook(p: Params): unknown {
    const had = this.#webhook !== null;
    this.#webhook = null;
    this.#clearRetries();
    if (optBool(p, "drop_pending_updates")) this.#dropAll();
    return new Described(true, had ? "Webhook was deleted" : "Webhook is already deleted");
  }

  #webhookInfo(): JsonObject {
    const info: JsonObject = {
      url: this.#webhook?.url ?? "",
      has_custom_certificate: false,
      pending_update_count: this.#queue.length,
    };
    if (this.#webhook !== null) info.max_connections = this.#webhook.maxConnections;
    if (this.#allowedUpdates !== null) info.allowed_updates = this.#allowedUpdates;
    if (this.#lastWebhookError !== null) {
      info.last_error_date = this.#lastWebhookError.date;
      info.last_error_message = this.#lastWebhookError.message;
    }
    return info;
  }

  #clearRetries(): void {
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    this.#retryWaiting.clear();
  }

  #pumpWebhook(): void {
    const hook = this.#webhook;
    if (hook === null) return;
    for (const update of this.#available()) {
      if (this.#inFlight.size >= hook.maxConnections) break;
      const id = update.update_id as number;
      if (this.#inFlight.has(id) || this.#retryWaiting.has(id)) continue;
      this.#track(this.#deliver(hook, update));
    }
  }

  #track(task: Promise<unknown>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #deliver(hook: WebhookConfig, update: JsonObject): Promise<void> {
    const id = update.update_id as number;
    this.#inFlight.add(id);
    this.#countDelivery(id);
    let status: number | "network-error" = "network-error";
    let error: string | null = null;
    let reply = "";
    try {
      const headers = new Headers({ "content-type": "application/json" });
      if (hook.secret !== null) headers.set("x-telegram-bot-api-secret-token", hook.secret);
      const response = await fetch(hook.url, {
        method: "POST",
        headers,
        body: JSON.stringify(update),
        signal: this.#closeController.signal,
      });
      status = response.status;
      reply = await response.text();
      if (status < 200 || status > 299) {
        error = `Wrong response from the webhook: ${status} ${response.statusText}`.trimEnd();
      }
    } catch (e) {
      error = `Connection failed: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      this.#inFlight.delete(id);
    }
    this.webhookPosts.push({ updateId: id, status, secretHeader: hook.secret });
    if (this.#closeController.signal.aborted) return;
    if (error === null) {
      this.#confirmOne(id);
      await this.#webhookReply(reply);
    } else {
      this.#lastWebhookError = { date: unixNow(), message: error };
      // A POST that outlived its webhook (deleted or replaced) is not retried.
      if (this.#webhook === hook) this.#scheduleRetry(id);
    }
    this.#pumpWebhook();
  }

  /** Telegram executes a method given in the webhook response body; so does the fake. */
  async #webhookReply(body: string): Promise<void> {
    if (body.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return;
    }
    if (!isObject(parsed) || typeof parsed.method !== "string") return;
    const { method, ...params } = parsed;
    try {
      for (const [key, value] of Object.entries(params)) params[key] = coerceJsonField(key, value);
    } catch {
      return;
    }
    await this.#invoke(method, params, () => this.#closeController.signal, "webhook-reply");
  }

  #scheduleRetry(id: number): void {
    this.#retryWaiting.add(id);
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      this.#retryWaiting.delete(id);
      this.#pumpWebhook();
    }, this.#retryDelayMs);
    this.#retryTimers.add(timer);
  }

  // ---- messages ------------------------------------------------------------------------------

  #sendMessage(p: Params): unknown {
    const chatId = requireChatId(p);
    const formatted = formatText(p.text, p.parse_mode, p.entities, "text");
    const markup = checkMarkup(p.reply_markup);
    const fields = { ...textFields(formatted, "text"), ...markup };
    return this.#post("sendMessage", chatId, p, [fields], ([message]) => message);
  }

  #editMessageText(p: Params): unknown {
    const formatted = formatText(p.text, p.parse_mode, p.entities, "text");
    const markup = checkMarkup(p.reply_markup);
    if (p.inline_message_id !== undefined) return true;
    const message = this.#ownMessage(p, "edit");
    if (typeof message.text !== "string") {
      throw badRequest("there is no text in the message to edit");
    }
    const next = { ...textFields(formatted, "text"), ...markup };
    const comparable = (m: JsonObject) => [m.text, m.entities, m.reply_markup];
    if (sameJson(comparable(message), comparable(next))) {
      throw badRequest(NOT_MODIFIED);
    }
    // Like Telegram, editing without reply_markup removes the inline keyboard.
    delete message.entities;
    delete message.reply_markup;
    Object.assign(message, next, { edit_date: unixNow() });
    return structuredClone(message);
  }

  #editMessageReplyMarkup(p: Params): unknown {
    const markup = checkMarkup(p.reply_markup);
    if (p.inline_message_id !== undefined) return true;
    const message = this.#ownMessage(p, "edit");
    if (sameJson(message.reply_markup, markup.reply_markup)) {
      throw badRequest(NOT_MODIFIED);
    }
    delete message.reply_markup;
    Object.assign(message, markup, { edit_date: unixNow() });
    return structuredClone(message);
  }

  /** sendPhoto, sendDocument, sendVideo, ...: one file by file_id, URL or upload. */
  #sendMedia(method: string, kind: MediaKind, p: Params): unknown {
    const chatId = requireChatId(p);
    const media = this.#files.fromInput(kind, p[kind], p);
    const caption = CAPTIONED_KINDS.has(kind)
      ? textFields(formatText(p.caption, p.parse_mode, p.caption_entities, "caption"), "caption")
      : {};
    const markup = checkMarkup(p.reply_markup);
    const fields = { ...mediaFields(kind, media), ...caption, ...markup };
    return this.#post(method, chatId, p, [fields], ([message]) => message);
  }

  #sendMediaGroup(p: Params): unknown {
    const chatId = requireChatId(p);
    const items = p.media;
    if (!Array.isArray(items) || items.length === 0) {
      throw badRequest("there are no messages to send");
    }
    if (items.length > 10) throw badRequest("too many messages to send as an album");
    if (!items.every(isObject)) throw badRequest("can't parse InputMedia JSON object");
    checkAlbumTypes(items.map((item) => String(item.type ?? "")));
    const contents = items.map((item) => {
      const kind = item.type as MediaKind;
      const source = attached(item.media, p);
      if (source === undefined) throw badRequest("can't parse InputMedia: media not found");
      const media = this.#files.fromInput(kind, source, item);
      const caption = formatText(item.caption, item.parse_mode, item.caption_entities, "caption");
      return { ...mediaFields(kind, media), ...textFields(caption, "caption") };
    });
    // A single item goes out as an ordinary message outside any album, as Telegram sends it.
    const album = contents.length > 1
      ? { media_group_id: String(13_579_246_801_357_900n + BigInt(++this.#albumCounter)) }
      : {};
    const messages = contents.map((fields) => ({ ...album, ...fields }));
    return this.#post("sendMediaGroup", chatId, p, messages, (sent) => sent);
  }

  #copyMessage(p: Params): unknown {
    const chatId = requireChatId(p);
    const source = this.#findMessage(p, "from_chat_id", "copy");
    if (!CONTENT_KEYS.some((k) => source[k] !== undefined)) {
      throw badRequest("message can't be copied");
    }
    const fields: JsonObject = {};
    for (const key of COPIED_KEYS) {
      if (source[key] !== undefined) fields[key] = structuredClone(source[key]);
    }
    const kind = mediaKindOf(source);
    // Only media carry captions; Telegram ignores a caption given for a text or a sticker.
    if (p.caption !== undefined && kind !== undefined && CAPTIONED_KINDS.has(kind)) {
      delete fields.caption;
      delete fields.caption_entities;
      const caption = formatText(p.caption, p.parse_mode, p.caption_entities, "caption");
      Object.assign(fields, textFields(caption, "caption"));
    }
    Object.assign(fields, checkMarkup(p.reply_markup));
    return this.#post("copyMessage", chatId, p, [fields], ([copy]) => ({
      message_id: copy?.message_id,
    }));
  }

  #forwardMessage(p: Params): unknown {
    const chatId = requireChatId(p);
    const source = this.#findMessage(p, "from_chat_id", "forward");
    if (!CONTENT_KEYS.some((k) => source[k] !== undefined)) {
      throw badRequest("message can't be forwarded");
    }
    const fields: JsonObject = { forward_origin: originOf(source), forward_date: source.date };
    for (const key of COPIED_KEYS) {
      if (source[key] !== undefined) fields[key] = structuredClone(source[key]);
    }
    return this.#post("forwardMessage", chatId, p, [fields], ([message]) => message);
  }

  #deleteMessage(p: Params): boolean {
    const chatId = requireChatId(p);
    const messageId = optInt(p, "message_id");
    if (messageId === undefined) throw badRequest("message identifier is not specified");
    if (this.#messages.get(chatId)?.delete(messageId) !== true) {
      throw badRequest("message to delete not found");
    }
    return true;
  }

  #answerCallbackQuery(p: Params): boolean {
    const id = optString(p, "callback_query_id");
    if (id === undefined || id === "") throw badRequest("query_id is empty");
    if (this.#answeredQueries.has(id)) throw new ApiError(400, QUERY_INVALID);
    const text = optString(p, "text");
    if (text !== undefined && text.length > 200) throw badRequest("MESSAGE_TOO_LONG");
    if (this.#openQueries.delete(id)) this.#answeredQueries.add(id);
    return true;
  }

  #sendChatAction(p: Params): boolean {
    const chatId = requireChatId(p);
    const action = optString(p, "action");
    if (action === undefined || !CHAT_ACTIONS.has(action)) {
      throw badRequest("wrong parameter action in request");
    }
    this.#explicitThread(chatId, p);
    this.#checkRecipient(chatId);
    return true;
  }

  /**
   * As Telegram: a user's private chat exists for the bot only once the user wrote to it (a
   * user who never started the bot is "chat not found"); groups answer as configured.
   */
  #getChat(p: Params): JsonObject {
    const chatId = requireChatId(p);
    if (chatId > 0 && !this.#chats.has(chatId) && !this.#users.has(chatId)) {
      throw badRequest("chat not found");
    }
    return this.#chatFor(chatId);
  }

  #getChatMember(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const userId = optInt(p, "user_id");
    if (userId === undefined) throw badRequest("invalid user_id specified");
    const status = this.#members.get(chatId)?.get(userId) ??
      (this.#members.has(chatId) ? "left" : "member");
    const member: JsonObject = { status, user: { id: userId, is_bot: false, first_name: "User" } };
    if (status === "restricted") {
      // Telegram always reports whether a restricted user is still in the chat, and what they
      // may do; the fake's restricted members are muted.
      Object.assign(member, { is_member: true, until_date: 0, can_send_messages: false });
    } else if (status === "administrator") {
      // The fake's administrators hold every right but promoting others.
      Object.assign(member, { ...ADMIN_RIGHTS, can_be_edited: false, is_anonymous: false });
    }
    return member;
  }

  #setMyCommands(p: Params): boolean {
    const commands = p.commands;
    if (!Array.isArray(commands)) throw badRequest('parameter "commands" is required');
    if (commands.length > 100) throw badRequest("too many commands specified");
    for (const c of commands) {
      if (!isObject(c) || typeof c.command !== "string" || !/^[a-z0-9_]{1,32}$/.test(c.command)) {
        throw badRequest("BOT_COMMAND_INVALID");
      }
      if (typeof c.description !== "string" || c.description.trim() === "") {
        throw badRequest("command description must be non-empty");
      }
      if (c.description.length > 256) throw badRequest("command description is too long");
    }
    this.#commands.set(commandsKey(p), structuredClone(commands));
    return true;
  }

  // ---- forum topics --------------------------------------------------------------------------

  #createForumTopic(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const wanted = this.#forums.checkNew(chatId, p);
    // A topic is named after the service message that starts it, as in Telegram.
    const topic = this.#forums.add(chatId, this.#nextMessageId(chatId), wanted);
    const created: JsonObject = { name: topic.name, icon_color: topic.iconColor };
    if (topic.iconCustomEmojiId !== undefined) {
      created.icon_custom_emoji_id = topic.iconCustomEmojiId;
    }
    this.#storeMessage({
      message_id: topic.id,
      message_thread_id: topic.id,
      from: this.#botUser(),
      chat: this.#chatFor(chatId),
      date: unixNow(),
      is_topic_message: true,
      forum_topic_created: created,
    });
    return topicObject(topic);
  }

  #editForumTopic(p: Params): boolean {
    const chatId = requireChatId(p);
    const { topic, changes } = this.#forums.edit(chatId, p);
    if (changes !== null) this.#postInTopic(chatId, topic.id, { forum_topic_edited: changes });
    return true;
  }

  #setTopicClosed(p: Params, closed: boolean): boolean {
    const chatId = requireChatId(p);
    const topic = this.#forums.setClosed(chatId, p, closed);
    const service = closed ? { forum_topic_closed: {} } : { forum_topic_reopened: {} };
    this.#postInTopic(chatId, topic.id, service);
    return true;
  }

  #deleteForumTopic(p: Params): boolean {
    const chatId = requireChatId(p);
    const topic = this.#forums.delete(chatId, p);
    // Deleting a topic deletes every message in it.
    const inChat = this.#messages.get(chatId);
    for (const [id, message] of inChat ?? []) {
      if (message.message_thread_id === topic.id) inChat?.delete(id);
    }
    return true;
  }

  /** Stores a service message in a topic; the bot gets no update about its own actions. */
  #postInTopic(chatId: number, threadId: number, fields: JsonObject): void {
    const root = this.#topicRoot(chatId, threadId);
    this.#storeMessage({
      message_id: this.#nextMessageId(chatId),
      message_thread_id: threadId,
      from: this.#botUser(),
      chat: this.#chatFor(chatId),
      date: unixNow(),
      is_topic_message: true,
      ...(root === undefined ? {} : { reply_to_message: root }),
      ...fields,
    });
  }

  /** The message that started topic `threadId`, as a reply_to_message, if it still exists. */
  #topicRoot(chatId: number, threadId: number): JsonObject | undefined {
    const root = this.#messages.get(chatId)?.get(threadId);
    return root?.forum_topic_created === undefined ? undefined : replyCopy(root);
  }

  // ---- the send path -------------------------------------------------------------------------

  /**
   * The shared end of every method that posts messages, after its own checks: thread and reply
   * (400), recipient (403) and flood limits (429); then the messages are stored and the send is
   * recorded. `answer` makes the method's result from the stored messages.
   */
  #post(
    method: string,
    chatId: number,
    p: Params,
    contents: JsonObject[],
    answer: (messages: JsonObject[]) => unknown,
  ): unknown {
    const place = this.#placement(chatId, p, method !== "forwardMessage");
    this.#checkRecipient(chatId);
    const at = this.#clock();
    if (this.#floodLimits !== null) {
      const wait = floodWait(this.#flood, chatId, at, this.#floodLimits);
      if (wait > 0) {
        throw new ApiError(429, `Too Many Requests: retry after ${wait}`, { retry_after: wait });
      }
      this.#flood = recordSend(this.#flood, chatId, at, this.#floodLimits);
    }
    const messages = contents.map((fields) => this.#newBotMessage(chatId, { ...place, ...fields }));
    const result = answer(messages);
    const ids = messages.map((m) => m.message_id as number);
    const record: SentRecord = {
      method,
      chatId,
      params: p,
      result: structuredClone(result),
      at,
      message_id: ids[0] ?? 0,
      message_ids: ids,
    };
    const threadId = messages[0]?.message_thread_id;
    if (typeof threadId === "number") record.message_thread_id = threadId;
    this.#sends.push(record);
    return result;
  }

  /** Where a sent message goes: its thread and what it replies to, or Telegram's 400. */
  #placement(chatId: number, p: Params, replies: boolean): JsonObject {
    let threadId = this.#explicitThread(chatId, p);
    const forum = this.#forums.isForum(chatId);
    const fields: JsonObject = {};
    const reply = replies ? replyRequest(p) : null;
    if (reply !== null) {
      const fromChat = reply.chatId ?? chatId;
      const target = this.#messages.get(fromChat)?.get(reply.messageId);
      if (fromChat !== chatId) {
        // allow_sending_without_reply never applies to other chats.
        if (target === undefined) throw badRequest(REPLY_NOT_FOUND);
        fields.external_reply = externalReply(target);
      } else if (target !== undefined) {
        const targetThread = target.is_topic_message === true
          ? target.message_thread_id as number
          : undefined;
        if (forum && threadId !== undefined && targetThread !== threadId) {
          throw badRequest(REPLY_NOT_FOUND);
        }
        // A reply lands in the topic of the message it answers without being told to.
        if (forum && threadId === undefined && targetThread !== undefined) {
          threadId = this.#forums.checkPostable(chatId, targetThread).id;
        }
        fields.reply_to_message = replyCopy(target);
      } else if (!reply.allowWithout) throw badRequest(REPLY_NOT_FOUND);
    }
    if (threadId === undefined) return fields;
    const place: JsonObject = { message_thread_id: threadId };
    if (forum) {
      place.is_topic_message = true;
      // Telegram shows a topic message that replies to nothing as a reply to the topic's start.
      const root = this.#topicRoot(chatId, threadId);
      if (Object.keys(fields).length === 0 && root !== undefined) place.reply_to_message = root;
    }
    return { ...place, ...fields };
  }

  /** The `message_thread_id` a send names, checked; undefined when it names none. */
  #explicitThread(chatId: number, p: Params): number | undefined {
    const threadId = optInt(p, "message_thread_id");
    if (threadId === undefined || threadId === 0) return undefined;
    // Private chats have no topics in the fake; Telegram ignores the parameter there.
    if (chatId > 0) return undefined;
    if (this.#forums.isForum(chatId)) return this.#forums.checkPostable(chatId, threadId).id;
    // Outside forums a thread is the replies to one message, which must exist.
    if (this.#messages.get(chatId)?.has(threadId)) return threadId;
    throw badRequest("message thread not found");
  }

  /** Telegram's 403s for a private chat whose user blocked the bot or is gone. */
  #checkRecipient(chatId: number): void {
    const state = chatId > 0 ? this.#recipients.get(chatId) : undefined;
    if (state === "blocked") throw new ApiError(403, BLOCKED);
    if (state === "deactivated") throw new ApiError(403, DEACTIVATED);
  }

  // ---- stored messages, chats and users ------------------------------------------------------

  /** Looks up a message the bot may change; Telegram refuses other people's messages. */
  #ownMessage(p: Params, verb: string): JsonObject {
    const message = this.#findMessage(p, "chat_id", verb);
    if (!this.#fromBot(message)) throw badRequest("message can't be edited");
    return message;
  }

  #findMessage(p: Params, chatKey: string, verb: string): JsonObject {
    const chatId = requireChatId(p, chatKey);
    const messageId = optInt(p, "message_id");
    if (messageId === undefined) throw badRequest("message identifier is not specified");
    const message = this.#messages.get(chatId)?.get(messageId);
    if (message === undefined) throw badRequest(`message to ${verb} not found`);
    return message;
  }

  #newBotMessage(chatId: number, fields: JsonObject): JsonObject {
    const message = this.#storeMessage({
      message_id: this.#nextMessageId(chatId),
      from: this.#botUser(),
      chat: this.#chatFor(chatId),
      date: unixNow(),
      ...fields,
    });
    return structuredClone(message);
  }

  #storeMessage(message: JsonObject): JsonObject {
    const chat = message.chat;
    const id = message.message_id;
    if (!isObject(chat) || typeof chat.id !== "number" || typeof id !== "number") return message;
    let inChat = this.#messages.get(chat.id);
    if (inChat === undefined) this.#messages.set(chat.id, inChat = new Map());
    inChat.set(id, message);
    this.#lastMessageId.set(chat.id, Math.max(this.#lastMessageId.get(chat.id) ?? 0, id));
    return message;
  }

  /** Learns chats, messages and callback queries from pushed updates so later calls see them. */
  #remember(update: JsonObject): void {
    for (const key of ["message", "edited_message", "channel_post", "business_message"]) {
      const message = update[key];
      if (isObject(message)) this.#rememberMessage(message);
    }
    const query = update.callback_query;
    if (isObject(query)) {
      if (typeof query.id === "string") this.#openQueries.add(query.id);
      if (isObject(query.message)) this.#rememberMessage(query.message);
    }
  }

  #rememberMessage(message: JsonObject): void {
    const chat = message.chat;
    if (isObject(chat) && typeof chat.id === "number" && !this.#chats.has(chat.id)) {
      this.#chats.set(chat.id, structuredClone(chat));
    }
    const inChat = isObject(chat) && typeof chat.id === "number"
      ? this.#messages.get(chat.id)
      : undefined;
    const known = typeof message.message_id === "number"
      ? inChat?.get(message.message_id)
      : undefined;
    // A callback's copy of a bot message must not replace the live one the bot may have edited.
    if (known === undefined) this.#storeMessage(structuredClone(message));
  }

  #nextMessageId(chatId: number): number {
    const next = (this.#lastMessageId.get(chatId) ?? 0) + 1;
    this.#lastMessageId.set(chatId, next);
    return next;
  }

  #chatFor(chatId: number): JsonObject {
    const known = this.#chats.get(chatId);
    if (known !== undefined) return structuredClone(known);
    if (chatId > 0) {
      const user = this.#users.get(chatId);
      const chat: JsonObject = {
        id: chatId,
        type: "private",
        first_name: user?.first_name ?? "User",
      };
      if (user?.username !== undefined) chat.username = user.username;
      return chat;
    }
    return chatId < -1_000_000_000_000
      ? { id: chatId, type: "supergroup", title: "Group" }
      : { id: chatId, type: "group", title: "Group" };
  }

  /** A user as updates show them; names not given are the ones last pushed. */
  #user(id: number, languageCode = "en", firstName?: string, username?: string): UserObject {
    const known = this.#users.get(id);
    const chatName = this.#chats.get(id)?.first_name;
    const name = firstName ?? known?.first_name ??
      (typeof chatName === "string" ? chatName : "User");
    const handle = username ?? known?.username;
    return handle === undefined
      ? { id, is_bot: false, first_name: name, language_code: languageCode }
      : { id, is_bot: false, first_name: name, username: handle, language_code: languageCode };
  }

  #botUser(): JsonObject {
    const { id, is_bot, first_name, username } = this.botInfo;
    return { id, is_bot, first_name, username };
  }

  #fromBot(message: JsonObject): boolean {
    return isObject(message.from) && message.from.id === this.botInfo.id;
  }

  /** Thread and reply fields of a pushed message; a test that names a missing one is wrong. */
  #pushedPlace(opts: PushMessageOptions): JsonObject {
    const fields: JsonObject = {};
    const threadId = opts.threadId;
    const forum = threadId !== undefined && this.#forums.isForum(opts.chatId);
    if (threadId !== undefined) {
      if (forum && this.#forums.topic(opts.chatId, threadId) === undefined) {
        throw new Error(
          `pushMessage: chat ${opts.chatId} has no topic ${threadId}; create it with createForumTopic`,
        );
      }
      fields.message_thread_id = threadId;
      if (forum) fields.is_topic_message = true;
    }
    if (opts.replyToMessageId !== undefined) {
      const target = this.#messages.get(opts.chatId)?.get(opts.replyToMessageId);
      if (target === undefined) {
        throw new Error(
          `pushMessage: no message ${opts.replyToMessageId} in chat ${opts.chatId} to reply to`,
        );
      }
      fields.reply_to_message = replyCopy(target);
    } else if (forum && threadId !== undefined) {
      const root = this.#topicRoot(opts.chatId, threadId);
      if (root !== undefined) fields.reply_to_message = root;
    }
    return fields;
  }

  /** The media object for a pushed file; a file_id the fake already knows keeps its identity. */
  #pushedFile(kind: MediaKind, spec: PushedFile): unknown {
    if (spec === true) return this.#files.mint(kind);
    if (typeof spec === "string") {
      return this.#files.kindOf(spec) === kind
        ? this.#files.fromInput(kind, spec)
        : this.#files.mint(kind, {}, spec);
    }
    const { file_id: fileId, ...fields } = spec;
    return this.#files.mint(kind, fields, typeof fileId === "string" ? fileId : undefined);
  }

  /** Queues the update Telegram sends when a user blocks (`kicked`) or unblocks the bot. */
  #pushMyChatMember(userId: number, from: string, to: string): void {
    const bot = this.#botUser();
    const member = (status: string) =>
      status === "kicked" ? { user: bot, status, until_date: 0 } : { user: bot, status };
    this.pushUpdate({
      my_chat_member: {
        chat: this.#chatFor(userId),
        from: this.#user(userId),
        date: unixNow(),
        old_chat_member: member(from),
        new_chat_member: member(to),
      },
    });
  }
}

/** A successful result that also carries Telegram's `description` (e.g. "Webhook was set"). */
class Described {
  constructor(readonly result: unknown, readonly text: string) {}
}

type UserObject = {
  id: number;
  is_bot: false;
  first_name: string;
  username?: string;
  language_code: string;
};

function commandsKey(p: Params): string {
  const scope = isObject(p.scope) ? p.scope : { type: "default" };
  return `${JSON.stringify(scope)}|${optString(p, "language_code") ?? ""}`;
}

/** What a send asks to reply to: `reply_parameters`, or the legacy `reply_to_message_id`. */
function replyRequest(p: Params): ReplyRequest | null {
  const given = p.reply_parameters;
  if (given !== undefined && given !== null) {
    if (!isObject(given) || optInt(given, "message_id") === undefined) {
      throw badRequest("can't parse reply parameters JSON object");
    }
    const request: ReplyRequest = {
      messageId: optInt(given, "message_id") ?? 0,
      allowWithout: optBool(given, "allow_sending_without_reply"),
    };
    if (given.chat_id !== undefined) request.chatId = requireChatId(given);
    return request;
  }
  const legacy = optInt(p, "reply_to_message_id");
  if (legacy === undefined || legacy === 0) return null;
  return { messageId: legacy, allowWithout: optBool(p, "allow_sending_without_reply") };
}

/** A message as `reply_to_message` shows it: Telegram nests replies only one level deep. */
function replyCopy(message: JsonObject): JsonObject {
  const copy = structuredClone(message);
  delete copy.reply_to_message;
  return copy;
}

/** ExternalReplyInfo for a reply to a message in another chat. */
function externalReply(message: JsonObject): JsonObject {
  const info: JsonObject = { origin: originOf(message) };
  const chat = message.chat;
  // Telegram names the original chat only for supergroups and channels.
  if (isObject(chat) && (chat.type === "supergroup" || chat.type === "channel")) {
    info.chat = structuredClone(chat);
    info.message_id = message.message_id;
  }
  for (const key of CONTENT_KEYS) {
    if (key !== "text" && message[key] !== undefined) info[key] = structuredClone(message[key]);
  }
  return info;
}

function originOf(message: JsonObject): JsonObject {
  return { type: "user", sender_user: message.from, date: message.date };
}

function topicObject(topic: TopicInfo): JsonObject {
  const result: JsonObject = {
    message_thread_id: topic.id,
    name: topic.name,
    icon_color: topic.iconColor,
  };
  if (topic.iconCustomEmojiId !== undefined) result.icon_custom_emoji_id = topic.iconCustomEmojiId;
  return result;
}

/** An InputMedia's `media`, with `attach://<part>` replaced by the upload in that part. */
function attached(media: unknown, p: Params): unknown {
  if (typeof media === "string" && media.startsWith("attach://")) {
    return p[media.slice("attach://".length)];
  }
  return media === "" || media === null ? undefined : media;
}

// ---- small utilities -------------------------------------------------------------------------

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** Resolves after `ms`, or earlier when any signal aborts; never leaves a timer behind. */
function sleep(ms: number, signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve();
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener("abort", done, { once: true });
  });
}
