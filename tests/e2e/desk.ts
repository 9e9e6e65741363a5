/**
 * A service desk for end-to-end tests: the real program against the fake Telegram, with a
 * staff chat, and helpers that act as a user (file a request through `/new`, write, press
 * buttons) or as staff (write in the staff chat, press the post's buttons), waiting each time
 * until the program has handled the update.
 */
import { FakeBotApi, type PushMessageOptions, type SentRecord } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

/** The staff chat of the tests: a supergroup. */
export const STAFF_CHAT = -1001234567890;
/** An admin. */
export const ADMIN = 5900;

type Keyboard = { inline_keyboard?: { text: string; callback_data?: string }[][] };

/** A running desk. */
export class Desk implements AsyncDisposable {
  private constructor(
    readonly api: FakeBotApi,
    public bot: BotProcess,
    readonly env: Record<string, string>,
    readonly cwd: string,
  ) {}

  /** Starts the program with a staff chat (a forum when `forum`). */
  static async start(
    options: { forum?: boolean; env?: Record<string, string> } = {},
  ): Promise<Desk> {
    const api = await FakeBotApi.start();
    if (options.forum) api.setForum(STAFF_CHAT);
    const cwd = await Deno.makeTempDir({ prefix: "bot-desk-" });
    const env = {
      STAFF_CHAT_ID: String(STAFF_CHAT),
      ADMIN_IDS: String(ADMIN),
      RATE_LIMIT_MAX_REQUESTS: "10000",
      ...options.env,
    };
    const bot = await BotProcess.start({ api, cwd, env });
    await bot.waitReady();
    return new Desk(api, bot, env, cwd);
  }

  /** Kills the program (SIGKILL) and starts it again on the same data. */
  async restart(signal: Deno.Signal = "SIGKILL"): Promise<void> {
    this.bot.kill(signal);
    await this.bot.status;
    this.bot = await BotProcess.start({ api: this.api, cwd: this.cwd, env: this.env });
    await this.bot.waitReady();
  }

  /** Waits until the program has handled update `id`. */
  async handled(id: number): Promise<void> {
    await this.api.waitFor(
      () => this.bot.lines.some((l) => l.update_id === id && /^update /.test(l.msg)),
      30_000,
      `update ${id} to be handled`,
    );
  }

  /** Pushes a message and waits until it was handled. */
  async say(options: PushMessageOptions): Promise<number> {
    const id = this.api.pushMessage(options);
    await this.handled(id);
    return id;
  }

  /** Presses a button with `data` (on the message `messageId` of `chatId`) as `userId`. */
  async press(
    chatId: number,
    data: string,
    userId = chatId,
    messageId?: number,
    languageCode?: string,
  ) {
    const id = this.api.pushCallbackQuery({
      chatId,
      userId,
      data,
      ...(messageId === undefined ? {} : { messageId }),
      ...(languageCode === undefined ? {} : { languageCode }),
    });
    await this.handled(id);
  }

  /**
   * The newest button in `chatId` whose data starts with `prefix` (on a sent message, or one
   * an edit put there), with its message id.
   */
  button(chatId: number, prefix: string): { data: string; messageId: number } {
    const shown = this.api.calls
      .filter((c) =>
        String(c.params.chat_id) === String(chatId) && c.params.reply_markup !== undefined &&
        (c.response as { ok?: boolean } | undefined)?.ok === true
      )
      .map((c) => ({
        markup: c.params.reply_markup as Keyboard | string,
        messageId: Number(
          c.params.message_id ??
            (c.response as { result: { message_id: number } }).result.message_id,
        ),
      }));
    for (const { markup, messageId } of shown.reverse()) {
      const keyboard = typeof markup === "string" ? JSON.parse(markup) as Keyboard : markup;
      const found = keyboard?.inline_keyboard?.flat().find((b) =>
        b.callback_data?.startsWith(prefix)
      );
      if (found) return { data: found.callback_data!, messageId };
    }
    throw new Error(`no ${prefix} button in chat ${chatId}`);
  }

  /** Everything the bot sent to `chatId` (any send method), oldest first. */
  sent(chatId: number): SentRecord[] {
    return this.api.sentOf(undefined, chatId);
  }

  /** The texts (or captions) the bot sent to `chatId` after the first `after` sends. */
  texts(chatId: number, after = 0): string[] {
    return this.sent(chatId).slice(after).map((s) =>
      String(s.params.text ?? s.params.caption ?? "")
    );
  }

  /** Files a request through `/new` as user `userId` and returns its number. */
  async file(userId: number, options: { lang?: string; name?: string; description?: string } = {}) {
    const lang = options.lang ?? "ru";
    const who = { chatId: userId, languageCode: lang, firstName: options.name ?? "Оля" };
    const before = this.sent(userId).length;
    await this.say({ ...who, text: "/new" });
    await this.press(userId, this.button(userId, "rq:c:").data, userId, undefined, lang);
    await this.say({ ...who, text: options.description ?? "Принтер на третьем этаже жуёт бумагу" });
    await this.say({ ...who, text: "+7 900 123 45 67" });
    await this.press(userId, this.button(userId, "rq:ok:").data, userId, undefined, lang);
    const created = await this.api.waitFor(
      () =>
        this.texts(userId, before).map((t) => /(?:Заявка №|Request #|Заявку №)(\d+)/.exec(t)).find(
          Boolean,
        ),
      20_000,
      "the request's number",
    );
    return Number(created[1]);
  }

  /** The staff chat's post of request `number`, once delivered. */
  async post(number: number): Promise<SentRecord> {
    return await this.api.waitFor(
      () =>
        this.sent(STAFF_CHAT).find((s) => String(s.params.text ?? "").includes(`#${number}</b>`)),
      30_000,
      `the staff post of #${number}`,
    );
  }

  /** Waits until the bot sent `count` messages in all to `chatId`. */
  async sends(chatId: number, count: number, what = `${count} messages`): Promise<SentRecord[]> {
    return await this.api.waitFor(
      () => this.sent(chatId).length >= count && this.sent(chatId),
      30_000,
      `${what} in chat ${chatId}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.bot[Symbol.asyncDispose]();
    await this.api.close();
    await Deno.remove(this.cwd, { recursive: true }).catch(() => {});
  }
}
