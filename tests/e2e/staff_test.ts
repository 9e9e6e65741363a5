/**
 * The staff board. The first test runs the real program against the fake Telegram, with a
 * request filed through `/new`. The others run in process: the real pipeline (user stage and
 * features), the real storage (embedded PGlite and Deno KV in a temp dir) and the real Bot API
 * client, updates fetched from the fake with getUpdates as polling would; their requests are
 * filed through the repository (which owes the staff post in the outbox) and posted by one
 * round of the real outbox job.
 */
import assert from "node:assert/strict";
import type { Update } from "grammy/types";
import { BOT_INFO } from "../../bench/in_memory_bot_api.ts";
import { accountFeature } from "../../src/bot/features/account.ts";
import { staffFeature } from "../../src/bot/features/staff/staff.ts";
import { Roles } from "../../src/bot/roles.ts";
import { StaffChat } from "../../src/bot/staff_chat.ts";
import { outboxJob } from "../../src/jobs/outbox.ts";
import { logger } from "../../src/log.ts";
import { createBot } from "../../src/bot/pipeline.ts";
import { loadConfig } from "../../src/config.ts";
import type { RequestRow } from "../../src/db/requests.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { openStorage } from "../../src/storage.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

const STAFF_CHAT = -1001234567890;
const ADMIN = 5900;
const AUTHOR = { ru: 5101, uk: 5102 };
const STAFF = { member: 5201, administrator: 5202, left: 5204, stranger: 5205 };

type Keyboard = { inline_keyboard: { text: string; callback_data: string }[][] };

Deno.test("staff: end to end, a request filed with /new is posted to the staff chat; staff take and close it", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({
    api,
    env: { STAFF_CHAT_ID: String(STAFF_CHAT), RATE_LIMIT_MAX_REQUESTS: "1000" },
  });
  await bot.waitReady();
  api.setChatMembers(STAFF_CHAT, { [STAFF.member]: "member" });
  const handled = (updateId: number) =>
    api.waitFor(
      () => bot.lines.some((l) => l.update_id === updateId && /^update /.test(l.msg)),
      20_000,
      `update ${updateId} to be handled`,
    );
  const chatId = AUTHOR.ru;
  /** The callback data of the newest button in the user's chat starting with `prefix`. */
  const button = (prefix: string) => {
    for (const message of api.sentMessages(chatId).reverse()) {
      const markup = message.reply_markup as Keyboard | undefined;
      const found = markup?.inline_keyboard?.flat().find((b) =>
        b.callback_data?.startsWith(prefix)
      );
      if (found) return found.callback_data;
    }
    throw new Error(`no ${prefix} button in ${JSON.stringify(api.sentMessages(chatId))}`);
  };
  const say = (text: string) =>
    handled(api.pushMessage({ chatId, text, languageCode: "ru", firstName: "Оля" }));
  const press = (data: string, userId = chatId, at = chatId) =>
    handled(api.pushCallbackQuery({ chatId: at, userId, data, languageCode: "ru" }));

  await say("/new");
  await press(button("rq:c:"));
  await say("Принтер на третьем этаже <жуёт> бумагу & шумит");
  await say("+7 900 123 45 67");
  await press(button("rq:ok:"));
  const post = await api.waitFor(() => api.sentMessages(STAFF_CHAT)[0], 20_000, "the staff post");
  assert.equal(post.parse_mode, "HTML");
  assert.ok(post.text.includes("&lt;жуёт&gt; бумагу &amp; шумит"), post.text);
  const take = (post.reply_markup as Keyboard).inline_keyboard.flat()[0]!.callback_data;
  assert.match(take, /^staff:take:\d+$/);
  const number = Number(take.split(":")[2]);

  // Someone outside the staff chat is refused; a staff member takes it, then closes it.
  await press(take, STAFF.stranger, STAFF_CHAT);
  assert.equal(
    api.callsOf("answerCallbackQuery").at(-1)?.text,
    "Извините, брать и закрывать заявки могут только сотрудники.",
  );
  assert.equal(api.callsOf("editMessageText").filter((e) => e.chat_id === STAFF_CHAT).length, 0);
  const before = api.sentMessages(chatId).length;
  await press(take, STAFF.member, STAFF_CHAT);
  await press(`staff:done:${number}`, STAFF.member, STAFF_CHAT);
  const edits = api.callsOf("editMessageText").filter((e) => e.chat_id === STAFF_CHAT);
  assert.equal(edits.length, 2);
  assert.match(String(edits[0]!.text), /In progress: taken by/);
  assert.match(String(edits[1]!.text), /Done: closed by/);
  // The user's notices go out through the outbox, moments after the presses.
  await api.waitFor(
    () => api.sentMessages(chatId).length >= before + 2,
    20_000,
    "the user's two notices",
  );
  assert.deepEqual(api.sentMessages(chatId).slice(before).map((m) => m.text), [
    `Хорошие новости: сотрудники взяли вашу заявку №${number} в работу.`,
    `Ваша заявка №${number} выполнена. Спасибо за терпение! Если понадобится что-то ещё, отправьте /new.\n\nНасколько вы довольны тем, как решили заявку №${number}? Выберите оценку:`,
  ]);
  assert.equal((await bot.stop()).code, 0);
});

/** Everything a test needs: the fake Telegram, storage, the bot and the staff board. */
async function staffDesk(api: FakeBotApi, env: Record<string, string> = {}) {
  const dataDir = await Deno.makeTempDir({ prefix: "staff-test-" });
  const config = loadConfig({
    BOT_TOKEN: api.token,
    BOT_API_ROOT: api.apiRoot,
    DATA_DIR: dataDir,
    STAFF_CHAT_ID: String(STAFF_CHAT),
    ADMIN_IDS: String(ADMIN),
    ...env,
  });
  const storage = await openStorage(config);
  await storage.migrator.up();
  const metrics = new Metrics();
  metrics[Symbol.dispose]();
  const roles = new Roles({
    adminIds: config.adminIds,
    staffChatId: config.staffChatId,
    store: storage.store,
  });
  const staff = staffFeature({
    requests: storage.requests,
    lifecycle: storage.lifecycle,
    messages: storage.messages,
    users: storage.users,
    markBlocked: (id) => storage.userCache.markBlocked(id),
    roles,
    staffChat: new StaffChat(config.staffChatId),
    locale: config.defaultLocale,
    slaTakeMinutes: 0,
    metrics: metrics.requests,
    kickOutbox: () => {},
  });
  const bot = createBot({
    token: api.token,
    apiRoot: api.apiRoot,
    defaultLocale: config.defaultLocale,
    metrics,
    botInfo: BOT_INFO,
    users: storage.userCache,
    features: [accountFeature({ profiles: storage.userCache, roles }), staff],
  });
  const outbox = outboxJob({
    outbox: storage.outbox,
    handlers: staff.deliveries ?? {},
    api: () => bot.api,
    instanceId: "test",
    metrics,
  });
  let offset = 0;
  return {
    config,
    storage,
    bot,
    /** Handles every update the fake has queued, in order, as polling would. */
    async deliver(): Promise<void> {
      for (;;) {
        const updates: Update[] = await bot.api.getUpdates({ offset, timeout: 0 });
        if (updates.length === 0) break;
        for (const update of updates) {
          await bot.handleUpdate(update);
          offset = update.update_id + 1;
        }
      }
      // What the updates owed (the authors' notifications) goes out, as the job would send it.
      await this.deliverOutbox();
    },
    /** Files a request for `userId` and posts it to staff, as `/new` and the outbox do. */
    async file(userId: number, description: string): Promise<RequestRow> {
      const request = await storage.requests.create({
        userId,
        category: "Printer <3F>",
        description,
        contact: "+1 555 0100 & ask for <Bob>",
      });
      await this.deliverOutbox();
      return request;
    },
    /** One round of the outbox job: posts what is owed to the staff chat. */
    async deliverOutbox(): Promise<void> {
      await outbox.run({
        signal: new AbortController().signal,
        log: logger("test"),
        progress: { load: () => Promise.resolve(null), save: () => Promise.resolve() },
      });
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await storage.close(5000);
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("staff: a request is posted to the staff chat; staff take and close it, the author hears in their language", async () => {
  await using api = await FakeBotApi.start();
  await using desk = await staffDesk(api);
  api.setChatMembers(STAFF_CHAT, {
    [STAFF.member]: "member",
    [STAFF.administrator]: "administrator",
    [STAFF.left]: "left",
  });
  api.pushMessage({ chatId: AUTHOR.ru, text: "/start", languageCode: "ru", firstName: "Оля <3" });
  await desk.deliver();

  const request = await desk.file(AUTHOR.ru, "Paper jam & <smoke> on floor 2");
  const [post] = api.sentMessages(STAFF_CHAT);
  assert.ok(post, "the request was posted to the staff chat");
  assert.equal(post.parse_mode, "HTML");
  // The fake parsed the HTML like Telegram: user text arrived as text, not markup.
  const shown = api.calls.find((c) =>
    c.method === "sendMessage" && Number(c.params.chat_id) === STAFF_CHAT
  )!.response as {
    result: { text: string; message_id: number };
  };
  const text = shown.result.text;
  assert.match(text, new RegExp(`^Request #${request.number} · Printer <3F>\n`));
  assert.match(text, /From: Оля <3\n/);
  assert.match(text, /Contact: \+1 555 0100 & ask for <Bob>\n/);
  assert.match(text, /Paper jam & <smoke> on floor 2/);
  assert.match(text, /New: waiting for someone to take it$/);
  const buttons = (keyboard: unknown) =>
    (keyboard as Keyboard | undefined)?.inline_keyboard.flat().map((b) =>
      `${b.text}=${b.callback_data}`
    ) ?? [];
  assert.deepEqual(buttons(post.reply_markup), [
    `Take=staff:take:${request.number}`,
    `Done=staff:done:${request.number}`,
    `Reject=staff:reject:${request.number}`,
  ]);

  await t_take(api, desk, request);
  await t_close(api, desk, request);
  const history = await desk.storage.requests.history(request.number);
  assert.deepEqual(history.map((h) => [h.action, h.actorId, h.fromStatus, h.toStatus]), [
    ["created", AUTHOR.ru, null, "new"],
    ["taken", STAFF.member, "new", "in_progress"],
    ["closed", STAFF.administrator, "in_progress", "done"],
  ]);
  // Each staff member was asked about once; the answer was cached.
  const asked = api.callsOf("getChatMember").map((c) => Number(c.user_id));
  assert.deepEqual(asked.sort(), [STAFF.member, STAFF.administrator].sort());
  assert.equal(await desk.storage.store.get(["staff", STAFF.member]), true);
});

/** A staff member takes the request: the post shows it, the author is told in Russian. */
async function t_take(
  api: FakeBotApi,
  desk: Awaited<ReturnType<typeof staffDesk>>,
  request: RequestRow,
) {
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: STAFF.member,
    data: `staff:take:${request.number}`,
  });
  await desk.deliver();
  assert.equal(
    api.callsOf("answerCallbackQuery").at(-1)?.text,
    `Request #${request.number} is yours now.`,
  );
  const taken = await desk.storage.requests.get(request.number);
  assert.equal(taken?.status, "in_progress");
  assert.equal(taken?.assigneeId, STAFF.member);
  const edit = api.callsOf("editMessageText").at(-1)!;
  assert.equal(edit.chat_id, STAFF_CHAT);
  assert.match(
    String(edit.text),
    /In progress: taken by <a href="tg:\/\/user\?id=5201">User<\/a>$/,
  );
  assert.deepEqual(
    (edit.reply_markup as Keyboard).inline_keyboard.flat().map((b) => b.callback_data),
    [
      `staff:release:${request.number}`,
      `staff:done:${request.number}`,
      `staff:reject:${request.number}`,
    ],
  );
  assert.deepEqual(api.sentMessages(AUTHOR.ru).slice(1).map((m) => m.text), [
    `Хорошие новости: сотрудники взяли вашу заявку №${request.number} в работу.`,
  ]);

  // A second press changes nothing and tells so.
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: STAFF.member,
    data: `staff:take:${request.number}`,
  });
  await desk.deliver();
  assert.equal(
    api.callsOf("answerCallbackQuery").at(-1)?.text,
    `Request #${request.number} is already in progress: nothing changed.`,
  );
  assert.equal(api.callsOf("editMessageText").length, 1);
  assert.equal(api.sentMessages(AUTHOR.ru).length, 2);
}

/** Another staff member closes it; closing again or taking a closed request changes nothing. */
async function t_close(
  api: FakeBotApi,
  desk: Awaited<ReturnType<typeof staffDesk>>,
  request: RequestRow,
) {
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: STAFF.administrator,
    data: `staff:done:${request.number}`,
  });
  await desk.deliver();
  assert.equal(
    api.callsOf("answerCallbackQuery").at(-1)?.text,
    `Request #${request.number} is closed. Thank you!`,
  );
  const closed = await desk.storage.requests.get(request.number);
  assert.equal(closed?.status, "done");
  assert.ok(closed?.closedAt instanceof Date);
  const edit = api.callsOf("editMessageText").at(-1)!;
  assert.match(String(edit.text), /Done: closed by <a href="tg:\/\/user\?id=5202">User<\/a>$/);
  assert.deepEqual(
    (edit.reply_markup as Keyboard).inline_keyboard.flat().map((b) => b.callback_data),
    [`staff:reopen:${request.number}`],
    "a closed request can only be reopened",
  );
  assert.equal(
    api.sentMessages(AUTHOR.ru).at(-1)?.text,
    `Ваша заявка №${request.number} выполнена. Спасибо за терпение! Если понадобится что-то ещё, отправьте /new.\n\nНасколько вы довольны тем, как решили заявку №${request.number}? Выберите оценку:`,
  );

  for (const data of [`staff:done:${request.number}`, `staff:take:${request.number}`]) {
    api.pushCallbackQuery({ chatId: STAFF_CHAT, userId: STAFF.administrator, data });
    await desk.deliver();
    assert.equal(
      api.callsOf("answerCallbackQuery").at(-1)?.text,
      `Request #${request.number} is already closed: nothing changed.`,
    );
  }
  assert.equal(api.callsOf("editMessageText").length, 2);
  assert.equal(api.sentMessages(AUTHOR.ru).length, 3);
}

Deno.test("staff: presses of people who are not staff are refused and change nothing; admins may act", async () => {
  await using api = await FakeBotApi.start();
  await using desk = await staffDesk(api);
  api.setChatMembers(STAFF_CHAT, { [STAFF.member]: "member", [STAFF.left]: "left" });
  api.pushMessage({ chatId: AUTHOR.uk, text: "/start", languageCode: "uk" });
  await desk.deliver();
  const request = await desk.file(AUTHOR.uk, "The door does not open");

  // Someone who left the staff chat, on the post itself; a stranger forging data in private.
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: STAFF.left,
    data: `staff:take:${request.number}`,
  });
  api.pushCallbackQuery({ chatId: STAFF.stranger, data: `staff:done:${request.number}` });
  await desk.deliver();
  const answers = api.callsOf("answerCallbackQuery");
  assert.equal(answers.length, 2);
  for (const answer of answers) {
    assert.equal(answer.text, "Sorry, only staff can take and close requests.");
    assert.equal(answer.show_alert, true);
  }
  const unchanged = await desk.storage.requests.get(request.number);
  assert.equal(unchanged?.status, "new");
  assert.equal(unchanged?.assigneeId, null);
  assert.deepEqual((await desk.storage.requests.history(request.number)).map((h) => h.action), [
    "created",
  ]);
  assert.equal(api.callsOf("editMessageText").length, 0);
  assert.equal(api.sentMessages(AUTHOR.uk).length, 1, "only the greeting");

  // Malformed data under staff: is answered, not ignored.
  api.pushCallbackQuery({ chatId: STAFF_CHAT, userId: STAFF.member, data: "staff:take:x" });
  api.pushCallbackQuery({ chatId: STAFF_CHAT, userId: STAFF.member, data: "staff:take:999" });
  await desk.deliver();
  assert.deepEqual(api.callsOf("answerCallbackQuery").slice(2).map((a) => a.text), [
    "This button is not valid.",
    "There is no request #999.",
  ]);

  // An admin needs no membership; Telegram is not even asked.
  const asked = api.callsOf("getChatMember").length;
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: ADMIN,
    data: `staff:done:${request.number}`,
  });
  await desk.deliver();
  assert.equal((await desk.storage.requests.get(request.number))?.status, "done");
  assert.equal(api.callsOf("getChatMember").length, asked);
  assert.equal(
    api.sentMessages(AUTHOR.uk).at(-1)?.text,
    `Вашу заявку №${request.number} виконано. Дякуємо за терпіння! Якщо знадобиться щось іще, надішліть /new.\n\nНаскільки ви задоволені тим, як вирішили заявку №${request.number}? Оберіть оцінку:`,
  );
});

Deno.test("staff: an author who blocked the bot is marked blocked and not retried; the bot goes on", async () => {
  await using api = await FakeBotApi.start();
  await using desk = await staffDesk(api);
  api.setChatMembers(STAFF_CHAT, { [STAFF.member]: "member" });
  api.pushMessage({ chatId: AUTHOR.uk, text: "/start", languageCode: "uk" });
  await desk.deliver();
  const request = await desk.file(AUTHOR.uk, "The lift is stuck");

  api.failNext("sendMessage", {
    error_code: 403,
    description: "Forbidden: bot was blocked by the user",
  });
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: STAFF.member,
    data: `staff:take:${request.number}`,
  });
  await desk.deliver();
  const tries = api.callsOf("sendMessage").filter((c) => Number(c.chat_id) === AUTHOR.uk);
  assert.equal(tries.length, 2, "the greeting, then one try of the notification");
  assert.ok((await desk.storage.users.get(AUTHOR.uk))?.blockedAt instanceof Date);
  assert.equal((await desk.storage.requests.get(request.number))?.status, "in_progress");
  assert.equal(api.callsOf("editMessageText").length, 1, "the staff post was still updated");

  // The bot goes on: the next press is handled as usual.
  api.pushCallbackQuery({
    chatId: STAFF_CHAT,
    userId: STAFF.member,
    data: `staff:done:${request.number}`,
  });
  await desk.deliver();
  assert.equal((await desk.storage.requests.get(request.number))?.status, "done");
});

Deno.test("staff: without STAFF_CHAT_ID nothing is posted; a failed post is owed and retried until it is delivered, once", async () => {
  await using api = await FakeBotApi.start();
  {
    await using desk = await staffDesk(api, { STAFF_CHAT_ID: "" });
    api.pushMessage({ chatId: AUTHOR.ru, text: "/start", languageCode: "ru" });
    await desk.deliver();
    await desk.file(AUTHOR.ru, "Nobody will see this");
    assert.equal(api.sentMessages().filter((m) => Number(m.chat_id) < 0).length, 0);
  }
  await using desk = await staffDesk(api);
  api.pushMessage({ chatId: AUTHOR.ru, text: "/start", languageCode: "ru" });
  await desk.deliver();
  api.failNext("sendMessage", { error_code: 400, description: "Bad Request: chat not found" });
  const request = await desk.file(AUTHOR.ru, "Stored even if the staff chat is gone");
  assert.equal((await desk.storage.requests.get(request.number))?.status, "new");
  assert.equal(api.sentMessages(STAFF_CHAT).length, 0);
  const [owed] = await desk.storage.outbox.backlog();
  assert.equal(owed?.kind, "staff_post");
  assert.match(owed?.lastError ?? "", /chat not found/);
  // The retry is due later; bring it forward instead of waiting.
  await desk.storage.db.sql`update outbox set next_attempt_at = now()`;
  await desk.deliverOutbox();
  assert.equal(api.sentMessages(STAFF_CHAT).length, 1, "posted once the chat takes it");
  await desk.deliverOutbox();
  assert.equal(api.sentMessages(STAFF_CHAT).length, 1, "and only once");
  assert.equal(
    (await desk.storage.requests.get(request.number))?.staffMessageId,
    api.sentOf("sendMessage", STAFF_CHAT)[0]?.message_id,
    "the post is remembered for Take and Done",
  );
  assert.deepEqual([...await desk.storage.outbox.backlog()], []);
});
