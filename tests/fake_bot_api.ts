/**
 * A fake Telegram Bot API server for tests. It speaks the real wire protocol over HTTP on
 * 127.0.0.1 so the bot under test runs unmodified (only BOT_API_ROOT changes), and it mimics
 * the Telegram behaviours that bots get wrong: update confirmation by offset, long-poll
 * conflicts, webhook retries, entity parsing errors and flood-wait errors.
 *
 * @module
 */

/** The token the fake accepts unless another one is given to {@linkcode FakeBotApi.start}. */
export const FAKE_TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";

/** Options for {@linkcode FakeBotApi.start}. */
export interface FakeBotApiOptions {
  /** Token the bot must use; any other token gets 401. */
  token?: string;
  /** How long a failed webhook delivery waits before it is retried (default 200 ms). */
  webhookRetryDelayMs?: number;
}

/** An error that {@linkcode FakeBotApi.failNext} makes a method answer with. */
export interface FaultSpec {
  /** Telegram error code, also used as the HTTP status. */
  error_code: number;
  /** Defaults to Telegram's usual wording for the code. */
  description?: string;
  /** Seconds, copied to `parameters.retry_after`; a 429 always gets one, as from Telegram. */
  retry_after?: number;
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

/** Options for {@linkcode FakeBotApi.pushMessage}. */
export interface PushMessageOptions {
  /** Chat the message is in; a positive id is a private chat with that user. */
  chatId: number;
  /** Sender; defaults to `chatId`, which is right for private chats. */
  userId?: number;
  /** Message text; a leading `/command` gets a `bot_command` entity. */
  text: string;
  /** Sender's `language_code` (default `"en"`). */
  languageCode?: string;
  /** Sender's first name (default `"User"`). */
  firstName?: string;
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

type Params = Record<string, unknown>;
type JsonObject = Record<string, unknown>;
type ApiBody =
  | { ok: true; result: unknown; description?: string }
  | { ok: false; error_code: number; description: string; parameters?: JsonObject };
type Answer = { status: number; body: ApiBody };
// A getter, because reading request.signal makes Deno warn about its legacy abort-on-success
// behaviour; only requests that really wait look at it.
type ClientSignal = () => AbortSignal;
type Handler = (params: Params, signal: ClientSignal) => unknown;
type WakeReason = "push" | "timeout" | "conflict" | "webhook" | "closed" | "aborted";
/** A MessageEntity as Telegram returns it. */
export type Entity = { type: string; offset: number; length: number; [key: string]: unknown };
/** Plain text plus entities, as Telegram stores a formatted message. */
export interface Formatted {
  /** Text with markup removed and HTML entities decoded. */
  text: string;
  /** Formatting entities with UTF-16 offsets. */
  entities: Entity[];
}

interface WebhookConfig {
  url: string;
  secret: string | null;
  maxConnections: number;
}

const FIRST_UPDATE_ID = 1000;
const WEBHOOK_CONFLICT = "Conflict: can't use getUpdates method while webhook is active; " +
  "use deleteWebhook to delete the webhook first";
const POLL_CONFLICT = "Conflict: terminated by other getUpdates request; " +
  "make sure that only one bot instance is running";
const QUERY_INVALID =
  "Bad Request: query is too old and response timeout expired or query ID is invalid";
const NOT_MODIFIED = "message is not modified: specified new message content and reply markup " +
  "are exactly the same as a current content and reply markup of the message";
// Telegram only delivers these when they are asked for explicitly.
const OPT_IN_UPDATES = new Set(["chat_member", "message_reaction", "message_reaction_count"]);
// Telegram decodes these fields as JSON when they arrive as strings (query, form, multipart).
const JSON_FIELDS = new Set(
  ("reply_markup allowed_updates entities caption_entities commands scope link_preview_options " +
    "reply_parameters menu_button media reaction").split(" "),
);
const CHAT_ACTIONS = new Set(
  ("typing upload_photo record_video upload_video record_voice upload_voice upload_document " +
    "choose_sticker find_location record_video_note upload_video_note").split(" "),
);
const BUTTON_ACTIONS = ("url callback_data web_app login_url switch_inline_query " +
  "switch_inline_query_current_chat switch_inline_query_chosen_chat copy_text callback_game pay")
  .split(" ");

/** Thrown inside method handlers; turned into a Telegram error response. */
class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly description: string,
    readonly parameters?: JsonObject,
  ) {
    super(description);
  }
}

const badRequest = (what: string) => new ApiError(400, `Bad Request: ${what}`);

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
  readonly #delays = new Map<string, number>();
  readonly #messages = new Map<number, Map<number, JsonObject>>();
  readonly #lastMessageId = new Map<number, number>();
  readonly #chats = new Map<number, JsonObject>();
  readonly #commands = new Map<string, unknown[]>();
  readonly #members = new Map<number, Map<number, ChatMemberStatus>>();
  readonly #openQueries = new Set<string>();
  readonly #answeredQueries = new Set<string>();
  #queryCounter = 0;
  #fileCounter = 0;
  readonly #closeController = new AbortController();
  #closing: Promise<void> | null = null;

  private constructor(options: FakeBotApiOptions) {
    this.token = options.token ?? FAKE_TOKEN;
    this.#retryDelayMs = options.webhookRetryDelayMs ?? 200;
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

  /** Queues a text message from a user, shaped like a real private-chat update. */
  pushMessage(opts: PushMessageOptions): number {
    const from = this.#user(opts.userId ?? opts.chatId, opts.languageCode, opts.firstName);
    const chat = opts.chatId > 0
      ? { id: opts.chatId, type: "private", first_name: from.first_name }
      : this.#chatFor(opts.chatId);
    const message: JsonObject = {
      message_id: this.#nextMessageId(opts.chatId),
      from,
      chat,
      date: unixNow(),
      text: opts.text,
    };
    if (opts.text.startsWith("/")) {
      const command = opts.text.split(/\s/, 1)[0] ?? opts.text;
      message.entities = [{ type: "bot_command", offset: 0, length: command.length }];
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
   * Makes `getChatMember` in `chatId` answer from `members` (user id → status); users not
   * listed get `left`. Chats never configured answer `member` for everyone.
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
    const answer = await this.#invoke(method, params, () => request.signal);
    return json(answer.status, answer.body);
  }

  async #invoke(method: string, params: Params, signal: ClientSignal): Promise<Answer> {
    const entry = this.#handlers.get(method.toLowerCase());
    const call: RecordedCall = {
      method: entry?.name ?? method,
      params,
      at: Date.now(),
      response: undefined,
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
    const fault = this.#faults.get(key)?.shift();
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
      sendDocument: (p) => this.#sendDocument(p),
      copyMessage: (p) => this.#copyMessage(p),
      forwardMessage: (p) => this.#forwardMessage(p),
      deleteMessage: (p) => this.#deleteMessage(p),
      answerCallbackQuery: (p) => this.#answerCallbackQuery(p),
      sendChatAction: (p) => this.#sendChatAction(p),
      getChat: (p) => this.#chatFor(requireChatId(p)),
      getChatMember: (p) => this.#getChatMember(p),
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
    await this.#invoke(method, params, () => this.#closeController.signal);
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

  #sendMessage(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const formatted = formatText(p.text, p.parse_mode, p.entities, "text");
    const markup = checkMarkup(p.reply_markup);
    return this.#newBotMessage(chatId, { ...textFields(formatted, "text"), ...markup });
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

  #sendDocument(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const document = p.document;
    if (document === undefined || document === "") {
      throw badRequest("there is no document in the request");
    }
    const caption = formatText(p.caption, p.parse_mode, p.caption_entities, "caption");
    const markup = checkMarkup(p.reply_markup);
    const n = ++this.#fileCounter;
    const described = isObject(document) ? document : {};
    const fileName = typeof described.file_name === "string"
      ? described.file_name
      : typeof document === "string"
      ? (document.split(/[/?#]/).filter(Boolean).at(-1) ?? "file")
      : "file";
    const doc: JsonObject = {
      file_id: `BQACAgIAAxkDAAI${String(n).padStart(6, "0")}`,
      file_unique_id: `AgAD${String(n).padStart(6, "0")}`,
      file_name: fileName,
    };
    if (typeof described.mime_type === "string") doc.mime_type = described.mime_type;
    if (typeof described.file_size === "number") doc.file_size = described.file_size;
    return this.#newBotMessage(chatId, {
      document: doc,
      ...textFields(caption, "caption"),
      ...markup,
    });
  }

  #copyMessage(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const source = this.#findMessage(p, "from_chat_id", "copy");
    const fields: JsonObject = {};
    for (const key of ["text", "entities", "caption", "caption_entities", "document"]) {
      if (source[key] !== undefined) fields[key] = structuredClone(source[key]);
    }
    if (p.caption !== undefined) {
      delete fields.caption_entities;
      Object.assign(
        fields,
        textFields(formatText(p.caption, p.parse_mode, p.caption_entities, "caption"), "caption"),
      );
    }
    Object.assign(fields, checkMarkup(p.reply_markup));
    const copy = this.#newBotMessage(chatId, fields);
    return { message_id: copy.message_id };
  }

  #forwardMessage(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const source = this.#findMessage(p, "from_chat_id", "forward");
    const fields: JsonObject = {
      forward_origin: { type: "user", sender_user: source.from, date: source.date },
      forward_date: source.date,
    };
    for (const key of ["text", "entities", "caption", "caption_entities", "document"]) {
      if (source[key] !== undefined) fields[key] = structuredClone(source[key]);
    }
    return this.#newBotMessage(chatId, fields);
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
    requireChatId(p);
    const action = optString(p, "action");
    if (action === undefined || !CHAT_ACTIONS.has(action)) {
      throw badRequest("wrong parameter action in request");
    }
    return true;
  }

  #getChatMember(p: Params): JsonObject {
    const chatId = requireChatId(p);
    const userId = optInt(p, "user_id");
    if (userId === undefined) throw badRequest("invalid user_id specified");
    const status = this.#members.get(chatId)?.get(userId) ??
      (this.#members.has(chatId) ? "left" : "member");
    const member: JsonObject = { status, user: { id: userId, is_bot: false, first_name: "User" } };
    if (status === "restricted") {
      // Telegram always reports whether a restricted user is still in the chat.
      Object.assign(member, { is_member: true, until_date: 0 });
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
    if (chatId > 0) return { id: chatId, type: "private", first_name: "User" };
    return chatId < -1_000_000_000_000
      ? { id: chatId, type: "supergroup", title: "Group" }
      : { id: chatId, type: "group", title: "Group" };
  }

  #user(id: number, languageCode = "en", firstName?: string) {
    const known = this.#chats.get(id)?.first_name;
    const name = firstName ?? (typeof known === "string" ? known : "User");
    return { id, is_bot: false, first_name: name, language_code: languageCode };
  }

  #botUser(): JsonObject {
    const { id, is_bot, first_name, username } = this.botInfo;
    return { id, is_bot, first_name, username };
  }

  #fromBot(message: JsonObject): boolean {
    return isObject(message.from) && message.from.id === this.botInfo.id;
  }
}

/** A successful result that also carries Telegram's `description` (e.g. "Webhook was set"). */
class Described {
  constructor(readonly result: unknown, readonly text: string) {}
}

// ---- request decoding ------------------------------------------------------------------------

async function readParams(request: Request, url: URL): Promise<Params> {
  const params: Params = {};
  for (const [key, value] of url.searchParams) params[key] = value;
  if (request.method === "POST" || request.method === "PUT") {
    const type = request.headers.get("content-type") ?? "";
    if (
      type.includes("multipart/form-data") || type.includes("application/x-www-form-urlencoded")
    ) {
      Object.assign(params, await readForm(request));
    } else {
      const text = await request.text();
      if (text.trim() !== "") {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new Error("can't parse JSON object");
        }
        if (!isObject(body)) throw new Error("JSON object expected");
        Object.assign(params, body);
      }
    }
  } else {
    await request.body?.cancel();
  }
  for (const [key, value] of Object.entries(params)) params[key] = coerceJsonField(key, value);
  return params;
}

async function readForm(request: Request): Promise<Params> {
  let form: FormData;
  try {
    form = await request.formData();
  } catch {
    throw new Error("can't parse request body");
  }
  const params: Params = {};
  const files = new Map<string, JsonObject>();
  for (const [key, value] of form) {
    if (typeof value === "string") params[key] = value;
    else {
      files.set(key, {
        file_name: value.name || key,
        mime_type: value.type || "application/octet-stream",
        file_size: value.size,
      });
    }
  }
  // grammY uploads as `document: "attach://<part>"` plus a separate part holding the bytes.
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === "string" && value.startsWith("attach://")) {
      const part = value.slice("attach://".length);
      const file = files.get(part);
      if (file !== undefined) {
        params[key] = file;
        files.delete(part);
      }
    }
  }
  for (const [key, file] of files) params[key] = file;
  return params;
}

function coerceJsonField(key: string, value: unknown): unknown {
  if (typeof value !== "string" || !JSON_FIELDS.has(key)) return value;
  try {
    return JSON.parse(value);
  } catch {
    throw new Error(`can't parse ${key} JSON object`);
  }
}

function optInt(p: Params, key: string): number | undefined {
  const n = optNumber(p, key);
  return n === undefined ? undefined : Math.trunc(n);
}

function optNumber(p: Params, key: string): number | undefined {
  const value = p[key];
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

function optString(p: Params, key: string): string | undefined {
  const value = p[key];
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

function optBool(p: Params, key: string): boolean {
  const value = p[key];
  return value === true || value === "true" || value === "1" || value === 1;
}

function requireChatId(p: Params, key = "chat_id"): number {
  const value = p[key];
  if (value === undefined || value === "") throw badRequest(`${key} is empty`);
  const id = optInt(p, key);
  // "@username" ids would need a directory of public chats that the fake does not have.
  if (id === undefined || id === 0) throw badRequest("chat not found");
  return id;
}

function commandsKey(p: Params): string {
  const scope = isObject(p.scope) ? p.scope : { type: "default" };
  return `${JSON.stringify(scope)}|${optString(p, "language_code") ?? ""}`;
}

// ---- responses -------------------------------------------------------------------------------

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function fail(code: number, description: string, parameters?: JsonObject): ApiBody {
  return parameters === undefined
    ? { ok: false, error_code: code, description }
    : { ok: false, error_code: code, description, parameters };
}

function errorAnswer(code: number, description: string, parameters?: JsonObject): Answer {
  const status = code >= 400 && code <= 599 ? code : 500;
  return { status, body: fail(code, description, parameters) };
}

function faultAnswer(fault: FaultSpec): Answer {
  const retryAfter = fault.retry_after ?? (fault.error_code === 429 ? 1 : undefined);
  const description = fault.description ?? defaultDescription(fault.error_code, retryAfter);
  return errorAnswer(
    fault.error_code,
    description,
    retryAfter === undefined ? undefined : { retry_after: retryAfter },
  );
}

function defaultDescription(code: number, retryAfter: number | undefined): string {
  switch (code) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden: bot was blocked by the user";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 429:
      return `Too Many Requests: retry after ${retryAfter ?? 1}`;
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    default:
      return `Error ${code}`;
  }
}

// ---- text, entities and markup ---------------------------------------------------------------

function formatText(
  value: unknown,
  parseMode: unknown,
  entities: unknown,
  kind: "text" | "caption",
): Formatted {
  if (value === undefined && kind === "caption") return { text: "", entities: [] };
  const raw = typeof value === "string" ? value : typeof value === "number" ? String(value) : "";
  if (kind === "text" && raw.trim() === "") throw badRequest("message text is empty");
  let formatted: Formatted;
  const mode = typeof parseMode === "string" ? parseMode.toLowerCase() : "";
  if (mode === "html") formatted = parseHtml(raw);
  else if (mode === "markdownv2") formatted = parseMarkdownV2(raw);
  else if (mode === "markdown") formatted = parseLegacyMarkdown(raw);
  else if (mode === "") {
    formatted = { text: raw, entities: Array.isArray(entities) ? structuredClone(entities) : [] };
  } else throw badRequest(`unsupported parse_mode`);
  if (kind === "text") {
    if (formatted.text.trim() === "") throw badRequest("message text is empty");
    if (formatted.text.length > 4096) throw badRequest("message is too long");
  } else if (formatted.text.length > 1024) throw badRequest("message caption is too long");
  return formatted;
}

function textFields(formatted: Formatted, kind: "text" | "caption"): JsonObject {
  const fields: JsonObject = {};
  if (formatted.text === "") return fields;
  fields[kind] = formatted.text;
  if (formatted.entities.length > 0) {
    fields[kind === "text" ? "entities" : "caption_entities"] = formatted.entities;
  }
  return fields;
}

function entityError(what: string): ApiError {
  return badRequest(`can't parse entities: ${what}`);
}

function byteOffset(source: string, index: number): number {
  return new TextEncoder().encode(source.slice(0, index)).length;
}

const HTML_ENTITY_TYPES: Record<string, string> = {
  b: "bold",
  strong: "bold",
  i: "italic",
  em: "italic",
  u: "underline",
  ins: "underline",
  s: "strikethrough",
  strike: "strikethrough",
  del: "strikethrough",
  a: "text_link",
  code: "code",
  pre: "pre",
  "tg-spoiler": "spoiler",
  span: "spoiler",
  blockquote: "blockquote",
  "tg-emoji": "custom_emoji",
};
const HTML_TAGS = new Set(Object.keys(HTML_ENTITY_TYPES));

/** Telegram's HTML subset: returns the plain text and entities, or throws its parse errors. */
export function parseHtml(source: string): Formatted {
  let text = "";
  const entities: Entity[] = [];
  const open: Array<{ tag: string; start: number; entity: Entity | null }> = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const rest = source.slice(i);
    if (c === "<" && rest[1] === "/") {
      const end = /^<\/([a-zA-Z][a-zA-Z0-9-]*)\s*>/.exec(rest);
      if (end === null) {
        throw entityError(`Unexpected end tag at byte offset ${byteOffset(source, i)}`);
      }
      const tag = (end[1] ?? "").toLowerCase();
      const top = open.pop();
      if (top === undefined) {
        throw entityError(`Unexpected end tag at byte offset ${byteOffset(source, i)}`);
      }
      if (top.tag !== tag) {
        throw entityError(
          `Unmatched end tag at byte offset ${
            byteOffset(source, i)
          }, expected "</${top.tag}>", found "</${tag}>"`,
        );
      }
      // Telegram silently drops entities that cover no text.
      if (top.entity !== null && text.length > top.start) {
        entities.push({ ...top.entity, offset: top.start, length: text.length - top.start });
      }
      i += end[0].length;
    } else if (c === "<") {
      const start =
        /^<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*)\s*>/
          .exec(rest);
      if (start === null) {
        const name = /^<([a-zA-Z0-9-]*)/.exec(rest)?.[1] ?? "";
        throw entityError(
          `Unsupported start tag "${name}" at byte offset ${byteOffset(source, i)}`,
        );
      }
      const tag = (start[1] ?? "").toLowerCase();
      if (!HTML_TAGS.has(tag)) {
        throw entityError(`Unsupported start tag "${tag}" at byte offset ${byteOffset(source, i)}`);
      }
      const attrs = parseAttributes(start[2] ?? "");
      const parent = open.at(-1);
      let entity: Entity | null = { type: HTML_ENTITY_TYPES[tag] ?? tag, offset: 0, length: 0 };
      if (tag === "a") {
        const href = attrs.get("href");
        entity = href === undefined ? null : { ...entity, url: href };
      } else if (tag === "span" && attrs.get("class") !== "tg-spoiler") {
        throw entityError(
          `Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(source, i)}`,
        );
      } else if (tag === "blockquote" && attrs.has("expandable")) {
        entity.type = "expandable_blockquote";
      } else if (tag === "tg-emoji") {
        const id = attrs.get("emoji-id");
        if (id === undefined) throw entityError(`Tag "tg-emoji" must have attribute "emoji-id"`);
        entity.custom_emoji_id = id;
      } else if (tag === "code" && parent?.tag === "pre" && parent.entity !== null) {
        // <pre><code class="language-x"> is one pre entity with a language, not two entities.
        const language = /^language-(.+)$/.exec(attrs.get("class") ?? "")?.[1];
        if (language !== undefined) parent.entity.language = language;
        entity = null;
      }
      open.push({ tag, start: text.length, entity });
      i += start[0].length;
    } else if (c === ">") {
      throw entityError(
        `Character '>' must be escaped as "&gt;" at byte offset ${byteOffset(source, i)}`,
      );
    } else if (c === "&") {
      const decoded = decodeEntity(rest);
      if (decoded === null) {
        throw entityError(
          `Character '&' must start an HTML entity (use "&amp;") at byte offset ${
            byteOffset(source, i)
          }`,
        );
      }
      text += decoded.text;
      i += decoded.length;
    } else {
      text += c;
      i++;
    }
  }
  const unclosed = open.at(-1);
  if (unclosed !== undefined) {
    throw entityError(`Can't find end tag corresponding to start tag "${unclosed.tag}"`);
  }
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

function decodeEntity(rest: string): { text: string; length: number } | null {
  const m = /^&(?:(lt|gt|amp|quot)|#(\d{1,8})|#[xX]([0-9a-fA-F]{1,7}));/.exec(rest);
  if (m === null) return null;
  const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };
  if (m[1] !== undefined) return { text: named[m[1]] ?? "", length: m[0].length };
  const code = m[2] !== undefined ? Number(m[2]) : parseInt(m[3] ?? "", 16);
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return null;
  return { text: String.fromCodePoint(code), length: m[0].length };
}

function parseAttributes(source: string): Map<string, string> {
  const attrs = new Map<string, string>();
  const re = /([^\s=>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g;
  for (const m of source.matchAll(re)) {
    const raw = m[2] ?? m[3] ?? m[4] ?? "";
    let value = "";
    for (let i = 0; i < raw.length;) {
      const decoded = raw[i] === "&" ? decodeEntity(raw.slice(i)) : null;
      value += decoded?.text ?? raw[i];
      i += decoded?.length ?? 1;
    }
    attrs.set((m[1] ?? "").toLowerCase(), value);
  }
  return attrs;
}

const MD_RESERVED = "_*[]()~`>#+-=|{}.!";
const MD_NAMES: Record<string, string> = {
  bold: "Bold",
  italic: "Italic",
  underline: "Underline",
  strikethrough: "Strikethrough",
  spoiler: "Spoiler",
  text_link: "TextUrl",
  custom_emoji: "CustomEmoji",
};

/** An approximation of Telegram's MarkdownV2 parser, strict about unescaped reserved characters. */
export function parseMarkdownV2(source: string): Formatted {
  let text = "";
  const entities: Entity[] = [];
  const open: Array<{ type: string; start: number; at: number }> = [];
  let quoteStart = -1;
  let i = 0;
  const push = (type: string, start: number, extra: JsonObject = {}) => {
    if (text.length > start) {
      entities.push({ type, offset: start, length: text.length - start, ...extra });
    }
  };
  while (i < source.length) {
    const c = source[i] ?? "";
    const next = source[i + 1];
    if (c === "\\") {
      const code = next?.charCodeAt(0) ?? 0;
      if (next !== undefined && code >= 1 && code <= 126) {
        text += next;
        i += 2;
      } else {
        text += c;
        i++;
      }
      continue;
    }
    if (c === "`") {
      const fence = source.startsWith("```", i);
      const marker = fence ? "```" : "`";
      let j = i + marker.length;
      let language: string | undefined;
      if (fence) {
        const newline = source.indexOf("\n", j);
        const first = newline === -1 ? "" : source.slice(j, newline);
        if (newline !== -1 && /^[\w+#.-]*$/.test(first)) {
          if (first !== "") language = first;
          j = newline + 1;
        }
      }
      let body = "";
      while (j < source.length && !source.startsWith(marker, j)) {
        if (source[j] === "\\" && (source[j + 1] === "`" || source[j + 1] === "\\")) {
          body += source[j + 1];
          j += 2;
        } else {
          body += source[j];
          j++;
        }
      }
      if (j >= source.length) {
        throw entityError(
          `Can't find end of ${fence ? "Pre" : "Code"} entity at byte offset ${
            byteOffset(source, i)
          }`,
        );
      }
      const start = text.length;
      text += body;
      push(fence ? "pre" : "code", start, language === undefined ? {} : { language });
      i = j + marker.length;
      continue;
    }
    if (c === ">" && (i === 0 || source[i - 1] === "\n")) {
      if (quoteStart < 0) quoteStart = text.length;
      i++;
      continue;
    }
    if (c === "\n" && quoteStart >= 0 && next !== ">") {
      push("blockquote", quoteStart);
      quoteStart = -1;
    }
    const marker = c === "_" && next === "_" ? "__" : c === "|" && next === "|" ? "||" : c;
    const type = ({
      "*": "bold",
      "_": "italic",
      "__": "underline",
      "~": "strikethrough",
      "||": "spoiler",
    } as Record<string, string>)[marker];
    if (type !== undefined) {
      const top = open.at(-1);
      if (top?.type === type) {
        open.pop();
        push(type, top.start);
      } else if (open.some((o) => o.type === type) && top !== undefined) {
        throw entityError(
          `Can't find end of ${MD_NAMES[top.type] ?? top.type} entity at byte offset ${
            byteOffset(source, top.at)
          }`,
        );
      } else open.push({ type, start: text.length, at: i });
      i += marker.length;
      continue;
    }
    if (c === "[" || (c === "!" && next === "[")) {
      open.push({ type: c === "!" ? "custom_emoji" : "text_link", start: text.length, at: i });
      i += c === "!" ? 2 : 1;
      continue;
    }
    if (c === "]") {
      const top = open.at(-1);
      if ((top?.type === "text_link" || top?.type === "custom_emoji") && next === "(") {
        let j = i + 2;
        let url = "";
        while (j < source.length && source[j] !== ")") {
          if (source[j] === "\\" && j + 1 < source.length) j++;
          url += source[j];
          j++;
        }
        if (j >= source.length) {
          throw entityError(`Can't find end of a URL at byte offset ${byteOffset(source, i + 1)}`);
        }
        open.pop();
        if (top.type === "custom_emoji") {
          const id = /^tg:\/\/emoji\?id=(\d+)$/.exec(url)?.[1];
          if (id === undefined) {
            throw entityError("Custom emoji entity must contain a tg://emoji URL");
          }
          push("custom_emoji", top.start, { custom_emoji_id: id });
        } else push("text_link", top.start, { url });
        i = j + 1;
        continue;
      }
    }
    if (MD_RESERVED.includes(c)) {
      throw entityError(`Character '${c}' is reserved and must be escaped with the preceding '\\'`);
    }
    text += c;
    i++;
  }
  if (quoteStart >= 0) push("blockquote", quoteStart);
  const unclosed = open.at(-1);
  if (unclosed !== undefined) {
    throw entityError(
      `Can't find end of ${MD_NAMES[unclosed.type] ?? unclosed.type} entity at byte offset ${
        byteOffset(source, unclosed.at)
      }`,
    );
  }
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

/** Legacy Markdown: only unbalanced markers are errors, which is what trips bots up. */
function parseLegacyMarkdown(source: string): Formatted {
  let text = "";
  const entities: Entity[] = [];
  const types: Record<string, string> = { "*": "bold", "_": "italic", "`": "code" };
  let i = 0;
  while (i < source.length) {
    const c = source[i] ?? "";
    const type = types[c];
    if (type !== undefined) {
      const end = source.indexOf(c, i + 1);
      if (end === -1) {
        throw entityError(
          `Can't find end of the entity starting at byte offset ${byteOffset(source, i)}`,
        );
      }
      const start = text.length;
      text += source.slice(i + 1, end);
      if (text.length > start) entities.push({ type, offset: start, length: text.length - start });
      i = end + 1;
    } else {
      text += c;
      i++;
    }
  }
  return { text, entities };
}

/** Rejects keyboards Telegram rejects; returns the reply_markup to keep on the message. */
function checkMarkup(markup: unknown): JsonObject {
  if (markup === undefined || markup === null) return {};
  if (!isObject(markup)) throw badRequest("can't parse reply keyboard markup JSON object");
  if (markup.inline_keyboard === undefined) return {}; // only inline keyboards stay on a Message
  const rows = markup.inline_keyboard;
  if (!Array.isArray(rows) || !rows.every(Array.isArray)) {
    throw badRequest(
      'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays',
    );
  }
  for (const row of rows as unknown[][]) {
    for (const button of row) {
      if (!isObject(button) || typeof button.text !== "string") {
        throw badRequest(
          "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        );
      }
      if (!BUTTON_ACTIONS.some((k) => button[k] !== undefined)) {
        throw badRequest(
          "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        );
      }
      const data = button.callback_data;
      if (data !== undefined) {
        const size = typeof data === "string" ? new TextEncoder().encode(data).length : 0;
        if (size < 1 || size > 64) throw badRequest("BUTTON_DATA_INVALID");
      }
    }
  }
  return rows.length === 0 ? {} : { reply_markup: structuredClone(markup) };
}

// ---- small utilities -------------------------------------------------------------------------

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

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
