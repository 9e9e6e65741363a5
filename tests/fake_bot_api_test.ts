import assert from "node:assert/strict";
import { Api, GrammyError, InputFile } from "grammy";
import type { Message, Update } from "grammy/types";
import { FAKE_TOKEN, FakeBotApi } from "./fake_bot_api.ts";

type ApiReply = {
  status: number;
  body: {
    ok: boolean;
    result?: unknown;
    error_code?: number;
    description?: string;
    parameters?: { retry_after?: number };
  };
};

async function call(
  fake: FakeBotApi,
  method: string,
  params: Record<string, unknown> = {},
  init: { token?: string; signal?: AbortSignal } = {},
): Promise<ApiReply> {
  const response = await fetch(`${fake.apiRoot}/bot${init.token ?? fake.token}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(params),
    signal: init.signal,
  });
  return { status: response.status, body: await response.json() };
}

function ids(reply: ApiReply): number[] {
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  return (reply.body.result as Array<{ update_id: number }>).map((u) => u.update_id);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** grammY's own client pointed at the fake, as the bot under test uses it. */
function apiOf(fake: FakeBotApi): Api {
  return new Api(fake.token, { apiRoot: fake.apiRoot });
}

/** Asserts that `promise` fails with Telegram's error `code` and `description`. */
async function refused(
  promise: Promise<unknown>,
  code: number,
  description: string,
): Promise<GrammyError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof GrammyError, `expected ${code} "${description}", got ${error}`);
  assert.equal(error.error_code, code);
  assert.equal(error.description, description);
  return error;
}

/** The messages of the updates not yet confirmed, in order. */
async function pushedMessages(fake: FakeBotApi): Promise<Message[]> {
  const updates: Update[] = await apiOf(fake).getUpdates();
  return updates.flatMap((u) => u.message === undefined ? [] : [u.message]);
}

function nth<T>(items: readonly T[], i: number): T {
  const item = items[i];
  assert.ok(item !== undefined, `no item ${i} among ${items.length}`);
  return item;
}

Deno.test("getUpdates behaves like Telegram", async (t) => {
  await t.step("offset confirms and forgets earlier updates", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 1, text: "/start" });
    fake.pushMessage({ chatId: 1, text: "hello" });
    fake.pushMessage({ chatId: 1, text: "again" });
    assert.deepEqual(ids(await call(fake, "getUpdates")), [1000, 1001, 1002]);
    // Without an offset nothing is confirmed, so the same updates come back.
    assert.deepEqual(ids(await call(fake, "getUpdates", { limit: 2 })), [1000, 1001]);
    assert.deepEqual(fake.redelivered(), [1000, 1001]);
    assert.deepEqual(ids(await call(fake, "getUpdates", { offset: 1002 })), [1002]);
    assert.equal(fake.pendingCount(), 1);
    assert.equal(fake.confirmedOffset, 1002);
    assert.deepEqual(ids(await call(fake, "getUpdates", { offset: 1003 })), []);
    assert.equal(fake.pendingCount(), 0);
    assert.deepEqual(ids(await call(fake, "getUpdates", { offset: 1000 })), []);
  });

  await t.step("pushMessage builds a realistic update", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 42, text: "/help me", languageCode: "de", firstName: "Ann" });
    const reply = await call(fake, "getUpdates");
    const [update] = reply.body.result as Array<Record<string, Record<string, unknown>>>;
    const message = update?.message;
    assert.ok(message);
    assert.equal(message.message_id, 1);
    assert.deepEqual(message.from, {
      id: 42,
      is_bot: false,
      first_name: "Ann",
      language_code: "de",
    });
    assert.deepEqual(message.chat, { id: 42, type: "private", first_name: "Ann" });
    assert.deepEqual(message.entities, [{ type: "bot_command", offset: 0, length: 5 }]);
  });

  await t.step("long poll returns early on push and [] after the timeout", async () => {
    await using fake = await FakeBotApi.start();
    const started = Date.now();
    const pending = call(fake, "getUpdates", { timeout: 5 });
    await sleep(100);
    fake.pushMessage({ chatId: 1, text: "wake up" });
    assert.deepEqual(ids(await pending), [1000]);
    assert.ok(Date.now() - started < 2000, "long poll did not return early");

    const idleStart = Date.now();
    assert.deepEqual(ids(await call(fake, "getUpdates", { offset: 1001, timeout: 1 })), []);
    const waited = Date.now() - idleStart;
    assert.ok(waited >= 900 && waited < 3000, `waited ${waited}ms`);
  });

  await t.step("a second poller terminates the first with 409", async () => {
    await using fake = await FakeBotApi.start();
    const first = call(fake, "getUpdates", { timeout: 10 });
    await fake.waitFor(() => fake.callsOf("getUpdates").length === 1, 2000, "first poll");
    const second = call(fake, "getUpdates", { timeout: 5 });
    const old = await first;
    assert.equal(old.status, 409);
    assert.match(old.body.description ?? "", /^Conflict: terminated by other getUpdates request/);
    fake.pushMessage({ chatId: 1, text: "for the new poller" });
    assert.deepEqual(ids(await second), [1000]);
  });

  await t.step("a poller whose client went away is forgotten", async () => {
    await using fake = await FakeBotApi.start();
    const controller = new AbortController();
    const abandoned = call(fake, "getUpdates", { timeout: 10 }, { signal: controller.signal });
    await fake.waitFor(() => fake.callsOf("getUpdates").length === 1, 2000, "first poll");
    controller.abort();
    await assert.rejects(abandoned);
    await sleep(100);
    fake.pushMessage({ chatId: 1, text: "only for the live poller" });
    await sleep(50);
    // A poller still registered would have taken the update for a client that is gone.
    assert.equal(fake.deliveries.get(1000), undefined);
    assert.deepEqual(ids(await call(fake, "getUpdates", { timeout: 1 })), [1000]);
    assert.equal(fake.deliveries.get(1000), 1);
  });

  await t.step("allowed_updates filters and drops other types", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 1, text: "a message" });
    fake.pushUpdate({ chat_member: { chat: { id: -5, type: "group" } } });
    fake.pushCallbackQuery({ chatId: 1, data: "press" });
    const only = ids(
      await call(fake, "getUpdates", { allowed_updates: ["callback_query", "chat_member"] }),
    );
    assert.deepEqual(only, [1001, 1002]);
    assert.deepEqual(fake.dropped, [1000]);

    fake.pushMessage({ chatId: 1, text: "another" });
    fake.pushUpdate({ chat_member: { chat: { id: -5, type: "group" } } });
    // An empty list means the default: everything except chat_member and reactions.
    const defaults = ids(await call(fake, "getUpdates", { offset: 1003, allowed_updates: [] }));
    assert.deepEqual(defaults, [1003]);
    assert.deepEqual(fake.dropped, [1000, 1004]);
  });

  await t.step("close answers a waiting long poll with []", async () => {
    const fake = await FakeBotApi.start();
    const pending = call(fake, "getUpdates", { timeout: 30 });
    await fake.waitFor(() => fake.callsOf("getUpdates").length === 1, 2000, "poll");
    const started = Date.now();
    await fake.close();
    assert.deepEqual(ids(await pending), []);
    assert.ok(Date.now() - started < 2000);
  });
});

Deno.test("webhooks deliver, retry and conflict with getUpdates", async (t) => {
  await t.step("secret header, retry after 500, confirmation after 200", async () => {
    const received: Array<{ secret: string | null; updateId: number }> = [];
    const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const update = await req.json() as { update_id: number };
      received.push({
        secret: req.headers.get("x-telegram-bot-api-secret-token"),
        updateId: update.update_id,
      });
      return new Response(null, { status: received.length === 1 ? 500 : 200 });
    });
    try {
      await using fake = await FakeBotApi.start({ webhookRetryDelayMs: 50 });
      const url = `http://127.0.0.1:${receiver.addr.port}/hook`;
      const set = await call(fake, "setWebhook", { url, secret_token: "s3cret_Token-1" });
      assert.deepEqual(set.body, { ok: true, result: true, description: "Webhook was set" });

      const id = fake.pushMessage({ chatId: 7, text: "via webhook" });
      await fake.waitFor(() => fake.pendingCount() === 0, 5000, "webhook confirmation");
      assert.deepEqual(received, [
        { secret: "s3cret_Token-1", updateId: id },
        { secret: "s3cret_Token-1", updateId: id },
      ]);
      assert.deepEqual(fake.webhookPosts.map((p) => p.status), [500, 200]);
      assert.deepEqual(fake.redelivered(), [id]);
      assert.match(fake.lastWebhookError?.message ?? "", /^Wrong response from the webhook: 500/);

      const info = await call(fake, "getWebhookInfo");
      const result = info.body.result as Record<string, unknown>;
      assert.equal(result.url, url);
      assert.equal(result.pending_update_count, 0);
      assert.equal(result.max_connections, 40);
      assert.equal(typeof result.last_error_date, "number");

      const conflict = await call(fake, "getUpdates");
      assert.equal(conflict.status, 409);
      assert.match(
        conflict.body.description ?? "",
        /^Conflict: can't use getUpdates method while webhook is active/,
      );

      const raw = await fake.postToWebhookNow('{"update_id":1}', {
        "x-telegram-bot-api-secret-token": "wrong",
      });
      await raw.body?.cancel();
      assert.equal(received.at(-1)?.secret, "wrong");

      assert.equal((await call(fake, "deleteWebhook")).status, 200);
      fake.pushMessage({ chatId: 7, text: "by polling again" });
      assert.deepEqual(ids(await call(fake, "getUpdates")), [id + 1]);
    } finally {
      await receiver.shutdown();
    }
  });

  await t.step("a waiting poller gets 409 when a webhook is set", async () => {
    await using fake = await FakeBotApi.start();
    const pending = call(fake, "getUpdates", { timeout: 10 });
    await fake.waitFor(() => fake.callsOf("getUpdates").length === 1, 2000, "poll");
    // Nothing listens on port 9 locally, so the POST fails; only the conflict matters here.
    await call(fake, "setWebhook", { url: "http://127.0.0.1:9/hook" });
    assert.equal((await pending).status, 409);
  });
});

Deno.test("methods, errors and fault injection", async (t) => {
  await t.step("wrong token 401, unknown method 404, bad JSON 400", async () => {
    await using fake = await FakeBotApi.start();
    const wrong = await call(fake, "getMe", {}, { token: "1:wrong" });
    assert.deepEqual(wrong, {
      status: 401,
      body: { ok: false, error_code: 401, description: "Unauthorized" },
    });
    const unknown = await call(fake, "sendTelepathy");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.description, "Not Found: method not found");
    const bad = await fetch(`${fake.apiRoot}/bot${FAKE_TOKEN}/sendMessage`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).description, /^Bad Request: /);
    const me = await fetch(`${fake.apiRoot}/bot${FAKE_TOKEN}/getMe`);
    assert.equal((await me.json()).result.username, "service_desk_test_bot");
  });

  await t.step("failNext 429 carries retry_after, then calls succeed", async () => {
    await using fake = await FakeBotApi.start();
    fake.failNext("sendMessage", { error_code: 429, retry_after: 3 });
    const limited = await call(fake, "sendMessage", { chat_id: 5, text: "hi" });
    assert.deepEqual(limited, {
      status: 429,
      body: {
        ok: false,
        error_code: 429,
        description: "Too Many Requests: retry after 3",
        parameters: { retry_after: 3 },
      },
    });
    const sent = await call(fake, "sendMessage", { chat_id: 5, text: "hi" });
    assert.equal(sent.status, 200);
    assert.deepEqual(fake.sentMessages(5).map((m) => m.text), ["hi"]);
    assert.equal(fake.callsOf("sendMessage").length, 2);
  });

  await t.step("HTML entity validation", async () => {
    await using fake = await FakeBotApi.start();
    const send = (text: string) =>
      call(fake, "sendMessage", { chat_id: 5, text, parse_mode: "HTML" });
    for (const text of ["<b>x", "a < b", "<b>x</i>", "<blink>x</blink>", "Tom & Jerry"]) {
      const reply = await send(text);
      assert.equal(reply.status, 400, text);
      assert.match(reply.body.description ?? "", /^Bad Request: can't parse entities: /, text);
    }
    const escaped = await send("&lt;b&gt; &amp; &#65;&#x42;");
    assert.equal(escaped.status, 200);
    assert.equal((escaped.body.result as { text: string }).text, "<b> & AB");

    const rich = await send('<b>bold</b> <a href="https://e.x/?a=1&amp;b=2">link</a>');
    const result = rich.body.result as { text: string; entities: unknown[] };
    assert.equal(result.text, "bold link");
    assert.deepEqual(result.entities, [
      { type: "bold", offset: 0, length: 4 },
      { type: "text_link", offset: 5, length: 4, url: "https://e.x/?a=1&b=2" },
    ]);

    const tooLong = await send(`<b>${"x".repeat(4097)}</b>`);
    assert.equal(tooLong.body.description, "Bad Request: message is too long");
    const fits = await send(`<b>${"&amp;".repeat(4096)}</b>`);
    assert.equal(fits.status, 200);
    const empty = await send("<b> </b>");
    assert.equal(empty.body.description, "Bad Request: message text is empty");
  });

  await t.step("MarkdownV2 validation", async () => {
    await using fake = await FakeBotApi.start();
    const send = (text: string) =>
      call(fake, "sendMessage", { chat_id: 5, text, parse_mode: "MarkdownV2" });
    assert.equal((await send("Done.")).status, 400);
    assert.equal((await send("*bold")).status, 400);
    const ok = await send("*Done*\\. Ticket \\#12 \\(open\\)");
    assert.equal(ok.status, 200, ok.body.description);
    assert.equal((ok.body.result as { text: string }).text, "Done. Ticket #12 (open)");
  });

  await t.step("edits need an existing message and a change", async () => {
    await using fake = await FakeBotApi.start();
    const keyboard = { inline_keyboard: [[{ text: "Close", callback_data: "close:1" }]] };
    const sent = await call(fake, "sendMessage", {
      chat_id: 5,
      text: "Ticket",
      reply_markup: keyboard,
    });
    const message = sent.body.result as { message_id: number; reply_markup: unknown };
    assert.deepEqual(message.reply_markup, keyboard);
    const same = await call(fake, "editMessageText", {
      chat_id: 5,
      message_id: message.message_id,
      text: "Ticket",
      reply_markup: keyboard,
    });
    assert.match(same.body.description ?? "", /^Bad Request: message is not modified/);
    const edited = await call(fake, "editMessageText", {
      chat_id: 5,
      message_id: message.message_id,
      text: "Ticket (closed)",
    });
    assert.equal(edited.status, 200);
    const missing = await call(fake, "editMessageText", { chat_id: 5, message_id: 99, text: "x" });
    assert.equal(missing.body.description, "Bad Request: message to edit not found");
    const tooBig = await call(fake, "sendMessage", {
      chat_id: 5,
      text: "x",
      reply_markup: { inline_keyboard: [[{ text: "x", callback_data: "y".repeat(65) }]] },
    });
    assert.equal(tooBig.body.description, "Bad Request: BUTTON_DATA_INVALID");
  });

  await t.step("multipart uploads and GET parameters are accepted", async () => {
    await using fake = await FakeBotApi.start();
    const form = new FormData();
    form.set("chat_id", "5");
    form.set("caption", "<b>report</b>");
    form.set("parse_mode", "HTML");
    form.set("document", "attach://file0");
    form.set("file0", new File(["a,b\n"], "report.csv", { type: "text/csv" }));
    const response = await fetch(`${fake.apiRoot}/bot${fake.token}/sendDocument`, {
      method: "POST",
      body: form,
    });
    const body = await response.json();
    assert.equal(response.status, 200, body.description);
    assert.equal(body.result.document.file_name, "report.csv");
    assert.equal(body.result.caption, "report");
    assert.deepEqual(fake.callsOf("sendDocument")[0]?.document, {
      file_name: "report.csv",
      mime_type: "text/csv",
      file_size: 4,
    });
    const get = await fetch(`${fake.apiRoot}/bot${fake.token}/sendMessage?chat_id=5&text=hey`);
    assert.equal((await get.json()).result.text, "hey");
  });

  await t.step("delay and waitFor", async () => {
    await using fake = await FakeBotApi.start();
    fake.delay("getMe", 200);
    const started = Date.now();
    assert.equal((await call(fake, "getMe")).status, 200);
    assert.ok(Date.now() - started >= 180);
    fake.delay("getMe", 0);
    await assert.rejects(
      fake.waitFor(() => false, 50, "nothing"),
      { message: "timed out after 50ms waiting for nothing" },
    );
  });
});

Deno.test("pushMessage() builds media, contacts and replies like Telegram", async (t) => {
  await t.step("each kind of media gets its own files; photos come largest last", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 5, photo: true, caption: "/look at this", mediaGroupId: "77" });
    fake.pushMessage({ chatId: 5, photo: "user-photo-id" });
    fake.pushMessage({ chatId: 5, document: { file_name: "a.pdf", mime_type: "application/pdf" } });
    fake.pushMessage({ chatId: 5, video: true, text: undefined });
    fake.pushMessage({ chatId: 5, voice: true });
    fake.pushMessage({ chatId: 5, audio: { title: "Song" } });
    fake.pushMessage({ chatId: 5, sticker: { emoji: "👍" } });
    fake.pushMessage({ chatId: 5, animation: true });
    const [album, given, doc, video, voice, audio, sticker, gif] = await pushedMessages(fake);

    assert.deepEqual(album?.photo?.map((s) => [s.width, s.height]), [[90, 67], [320, 240], [
      800,
      600,
    ]]);
    // Captions stay plain: no bot_command entity, unlike text.
    assert.equal(album?.caption, "/look at this");
    assert.equal(album?.caption_entities, undefined);
    assert.equal(album?.media_group_id, "77");
    assert.equal(album?.text, undefined);
    assert.equal(given?.photo?.at(-1)?.file_id, "user-photo-id");
    assert.equal(doc?.document?.file_name, "a.pdf");
    assert.equal(doc?.document?.mime_type, "application/pdf");
    assert.equal(typeof video?.video?.duration, "number");
    assert.equal(voice?.voice?.mime_type, "audio/ogg");
    assert.equal(audio?.audio?.title, "Song");
    assert.equal(sticker?.sticker?.emoji, "👍");
    // Telegram fills `document` too for an animation, for older clients.
    assert.deepEqual(gif?.document, gif?.animation);

    const files = [
      ...(album?.photo ?? []),
      ...(given?.photo ?? []),
      doc?.document,
      video?.video,
      voice?.voice,
      audio?.audio,
      sticker?.sticker,
      gif?.animation,
    ];
    assert.equal(new Set(files.map((f) => f?.file_id)).size, files.length);
    assert.equal(new Set(files.map((f) => f?.file_unique_id)).size, files.length);
    assert.throws(() => fake.pushMessage({ chatId: 5 }), /give text, media or a contact/);
  });

  await t.step("a contact and a reply to a stored message", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 5, text: "first" });
    await apiOf(fake).sendMessage(5, "answer", { reply_parameters: { message_id: 1 } });
    fake.pushMessage({ chatId: 5, text: "thanks", replyToMessageId: 2 });
    fake.pushMessage({ chatId: 5, contact: { phone_number: "+100", user_id: 5 } });
    const [, thanks, contact] = await pushedMessages(fake);
    assert.equal(thanks?.reply_to_message?.message_id, 2);
    assert.equal(thanks?.reply_to_message?.text, "answer");
    // Telegram nests replies only one level deep.
    assert.equal(thanks?.reply_to_message?.reply_to_message, undefined);
    assert.deepEqual(contact?.contact, { first_name: "User", phone_number: "+100", user_id: 5 });
    assert.throws(
      () => fake.pushMessage({ chatId: 5, text: "?", replyToMessageId: 99 }),
      /no message 99 in chat 5/,
    );
  });

  await t.step("getChat of a private chat answers with the names last pushed", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 8, text: "hi", firstName: "Ann", username: "ann_1" });
    fake.pushMessage({ chatId: 8, text: "again" });
    const [, again] = await pushedMessages(fake);
    assert.equal(again?.from?.username, "ann_1");
    const chat = await apiOf(fake).getChat(8);
    assert.equal(chat.first_name, "Ann");
    assert.equal(chat.username, "ann_1");
    fake.pushMessage({ chatId: 8, text: "renamed", firstName: "Anna" });
    assert.equal((await apiOf(fake).getChat(8)).first_name, "Anna");
  });

  await t.step("getChat of a user who never wrote to the bot is chat not found", async () => {
    await using fake = await FakeBotApi.start();
    await refused(apiOf(fake).getChat(9), 400, "Bad Request: chat not found");
    fake.pushMessage({ chatId: 9, text: "/start" });
    assert.equal((await apiOf(fake).getChat(9)).type, "private");
  });
});

Deno.test("forum topic methods and message_thread_id behave like Telegram's", async (t) => {
  const group = -1001234567890;

  await t.step("topic methods need a forum", async () => {
    await using fake = await FakeBotApi.start();
    const api = apiOf(fake);
    await refused(api.createForumTopic(group, "Help"), 400, "Bad Request: the chat is not a forum");
    await refused(api.closeForumTopic(group, 2), 400, "Bad Request: the chat is not a forum");
    fake.setForum(group);
    const chat = await api.getChat(group);
    assert.equal(chat.type, "supergroup");
    assert.equal(chat.is_forum, true);
    fake.pushMessage({ chatId: group, userId: 5, text: "in General" });
    assert.equal(nth(await pushedMessages(fake), 0).chat.is_forum, true);
  });

  await t.step("createForumTopic posts a service message that starts the thread", async () => {
    await using fake = await FakeBotApi.start();
    fake.setForum(group);
    const api = apiOf(fake);
    const topic = await api.createForumTopic(group, "Ticket #1", { icon_color: 0xffd67e });
    assert.equal(topic.name, "Ticket #1");
    assert.equal(topic.icon_color, 0xffd67e);
    const [created] = fake.messagesInThread(group, topic.message_thread_id);
    // The thread is named after the service message that starts it, and the bot is not told.
    assert.equal(created?.message_id, topic.message_thread_id);
    assert.deepEqual(created?.forum_topic_created, { name: "Ticket #1", icon_color: 0xffd67e });
    assert.equal(fake.pendingCount(), 0);
    const second = await api.createForumTopic(group, "Ticket #2");
    assert.equal(second.icon_color, 0x6fb9f0);
    assert.deepEqual(fake.topics(group).map((t) => [t.id, t.name, t.closed, t.deleted]), [
      [topic.message_thread_id, "Ticket #1", false, false],
      [second.message_thread_id, "Ticket #2", false, false],
    ]);
    await refused(api.createForumTopic(group, "  "), 400, "Bad Request: title must be non-empty");
    const badColor = await call(fake, "createForumTopic", {
      chat_id: group,
      name: "x",
      icon_color: 0x123456,
    });
    assert.equal(badColor.body.description, "Bad Request: invalid icon color specified");
  });

  await t.step("messages sent into a topic carry its thread", async () => {
    await using fake = await FakeBotApi.start();
    fake.setForum(group);
    const api = apiOf(fake);
    const { message_thread_id: thread } = await api.createForumTopic(group, "Ticket");
    const sent = await api.sendMessage(group, "hello", { message_thread_id: thread });
    assert.equal(sent.message_thread_id, thread);
    assert.equal(sent.is_topic_message, true);
    // Telegram shows a topic message as a reply to the topic's first message.
    assert.equal(sent.reply_to_message?.forum_topic_created?.name, "Ticket");
    const photo = await api.sendPhoto(group, new InputFile(new Uint8Array([1]), "a.jpg"), {
      message_thread_id: thread,
    });
    const copy = await api.copyMessage(group, group, sent.message_id, {
      message_thread_id: thread,
    });
    fake.pushMessage({ chatId: group, userId: 5, text: "from a user", threadId: thread });
    const [pushed] = await pushedMessages(fake);
    assert.equal(pushed?.message_thread_id, thread);
    assert.equal(pushed?.is_topic_message, true);
    assert.equal(pushed?.reply_to_message?.message_id, thread);
    // A reply lands in the topic of the message it answers without being told.
    const reply = await api.sendMessage(group, "answer", {
      reply_parameters: { message_id: pushed?.message_id ?? 0 },
    });
    assert.equal(reply.message_thread_id, thread);
    assert.deepEqual(
      fake.messagesInThread(group, thread).map((m) => m.message_id),
      [
        thread,
        sent.message_id,
        photo.message_id,
        copy.message_id,
        pushed?.message_id,
        reply
          .message_id,
      ],
    );
    assert.deepEqual(fake.sentOf(undefined, group).map((s) => s.message_thread_id), [
      thread,
      thread,
      thread,
      thread,
    ]);
    await refused(
      api.sendMessage(group, "lost", { message_thread_id: 999 }),
      400,
      "Bad Request: message thread not found",
    );
    assert.throws(
      () => fake.pushMessage({ chatId: group, text: "x", threadId: 999 }),
      /has no topic 999/,
    );
  });

  await t.step("closed topics refuse messages; closing twice is not a change", async () => {
    await using fake = await FakeBotApi.start();
    fake.setForum(group);
    const api = apiOf(fake);
    const { message_thread_id: thread } = await api.createForumTopic(group, "Ticket");
    const before = await api.sendMessage(group, "before", { message_thread_id: thread });
    assert.equal(await api.closeForumTopic(group, thread), true);
    await refused(api.closeForumTopic(group, thread), 400, "Bad Request: TOPIC_NOT_MODIFIED");
    assert.equal(fake.topics(group)[0]?.closed, true);
    for (
      const send of [
        () => api.sendMessage(group, "x", { message_thread_id: thread }),
        () =>
          api.sendDocument(group, new InputFile(new Uint8Array([1]), "a.txt"), {
            message_thread_id: thread,
          }),
        () => api.copyMessage(group, group, before.message_id, { message_thread_id: thread }),
      ]
    ) {
      await refused(send(), 400, "Bad Request: TOPIC_CLOSED");
    }
    assert.equal(await api.reopenForumTopic(group, thread), true);
    await refused(api.reopenForumTopic(group, thread), 400, "Bad Request: TOPIC_NOT_MODIFIED");
    await api.sendMessage(group, "open again", { message_thread_id: thread });
    const service = fake.messagesInThread(group, thread).map((m) =>
      Object.keys(m).find((k) => k.startsWith("forum_topic_"))
    );
    assert.deepEqual(service, [
      "forum_topic_created",
      undefined,
      "forum_topic_closed",
      "forum_topic_reopened",
      undefined,
    ]);
  });

  await t.step("editForumTopic renames, and refuses a rename to the same name", async () => {
    await using fake = await FakeBotApi.start();
    fake.setForum(group);
    const api = apiOf(fake);
    const { message_thread_id: thread } = await api.createForumTopic(group, "Ticket");
    await refused(
      api.editForumTopic(group, thread, { name: "Ticket" }),
      400,
      "Bad Request: TOPIC_NOT_MODIFIED",
    );
    assert.equal(await api.editForumTopic(group, thread, { name: "Ticket (done)" }), true);
    assert.equal(fake.topics(group)[0]?.name, "Ticket (done)");
    assert.deepEqual(fake.messagesInThread(group, thread).at(-1)?.forum_topic_edited, {
      name: "Ticket (done)",
    });
    await refused(
      api.editForumTopic(group, 999, { name: "x" }),
      400,
      "Bad Request: TOPIC_ID_INVALID",
    );
  });

  await t.step("deleteForumTopic deletes the thread and its messages", async () => {
    await using fake = await FakeBotApi.start();
    fake.setForum(group);
    const api = apiOf(fake);
    const { message_thread_id: thread } = await api.createForumTopic(group, "Ticket");
    const sent = await api.sendMessage(group, "hello", { message_thread_id: thread });
    assert.equal(await api.deleteForumTopic(group, thread), true);
    assert.deepEqual(fake.messagesInThread(group, thread), []);
    assert.equal(fake.topics(group)[0]?.deleted, true);
    await refused(api.deleteForumTopic(group, thread), 400, "Bad Request: TOPIC_ID_INVALID");
    await refused(api.closeForumTopic(group, thread), 400, "Bad Request: TOPIC_ID_INVALID");
    await refused(
      api.sendMessage(group, "x", { message_thread_id: thread }),
      400,
      "Bad Request: message thread not found",
    );
    await refused(
      api.copyMessage(group, group, sent.message_id),
      400,
      "Bad Request: message to copy not found",
    );
  });
});

Deno.test("send methods attach replies like Telegram when given reply_parameters", async (t) => {
  await t.step("reply_parameters and reply_to_message_id attach the replied message", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: 5, text: "question" });
    const api = apiOf(fake);
    const answer = await api.sendMessage(5, "answer", { reply_parameters: { message_id: 1 } });
    assert.equal(answer.reply_to_message?.text, "question");
    const legacy = await call(fake, "sendMessage", {
      chat_id: 5,
      text: "more",
      reply_to_message_id: answer.message_id,
    });
    const result = legacy.body.result as Message;
    assert.equal(result.reply_to_message?.message_id, answer.message_id);
    // Only one level: the answer's own reply_to_message is left out.
    assert.equal(result.reply_to_message?.reply_to_message, undefined);
  });

  await t.step(
    "a missing message is an error unless sending without reply is allowed",
    async () => {
      await using fake = await FakeBotApi.start();
      const api = apiOf(fake);
      await refused(
        api.sendMessage(5, "x", { reply_parameters: { message_id: 42 } }),
        400,
        "Bad Request: message to be replied not found",
      );
      const legacy = await call(fake, "sendPhoto", {
        chat_id: 5,
        photo: "https://example.com/a.jpg",
        reply_to_message_id: 42,
      });
      assert.equal(legacy.body.description, "Bad Request: message to be replied not found");
      const sent = await api.sendMessage(5, "x", {
        reply_parameters: { message_id: 42, allow_sending_without_reply: true },
      });
      assert.equal(sent.reply_to_message, undefined);
      const legacyAllowed = await call(fake, "sendMessage", {
        chat_id: 5,
        text: "y",
        reply_to_message_id: 42,
        allow_sending_without_reply: true,
      });
      assert.equal(legacyAllowed.status, 200);
    },
  );

  await t.step("a reply to another chat becomes an external_reply", async () => {
    await using fake = await FakeBotApi.start();
    const group = -1001234567890;
    fake.pushMessage({ chatId: group, userId: 5, photo: true, caption: "screenshot" });
    const api = apiOf(fake);
    const sent = await api.sendMessage(7, "see this", {
      reply_parameters: { message_id: 1, chat_id: group },
    });
    assert.equal(sent.reply_to_message, undefined);
    assert.equal(sent.external_reply?.message_id, 1);
    assert.equal(sent.external_reply?.chat?.id, group);
    assert.equal(sent.external_reply?.photo?.length, 3);
    // Allowing a reply without its message does not cover other chats.
    await refused(
      api.sendMessage(7, "x", {
        reply_parameters: { message_id: 9, chat_id: group, allow_sending_without_reply: true },
      }),
      400,
      "Bad Request: message to be replied not found",
    );
  });
});

Deno.test("send* media, sendMediaGroup and copyMessage behave like Telegram's", async (t) => {
  await t.step("send* take uploads, URLs and known file ids of the same kind", async () => {
    await using fake = await FakeBotApi.start();
    const api = apiOf(fake);
    const upload = await api.sendPhoto(5, new InputFile(new Uint8Array([1, 2]), "shot.jpg"), {
      caption: "<b>shot</b>",
      parse_mode: "HTML",
    });
    assert.equal(upload.photo.length, 3);
    assert.equal(upload.caption, "shot");
    assert.deepEqual(upload.caption_entities, [{ type: "bold", offset: 0, length: 4 }]);
    const largest = nth(upload.photo, 2);
    const again = await api.sendPhoto(6, largest.file_id);
    assert.equal(nth(again.photo, 2).file_unique_id, largest.file_unique_id);
    const byUrl = await api.sendDocument(5, "https://example.com/files/report.pdf");
    assert.equal(byUrl.document.file_name, "report.pdf");
    await refused(api.sendDocument(5, largest.file_id), 400, "Bad Request: type of file mismatch");
    await refused(
      api.sendVideo(5, "no-such-file"),
      400,
      "Bad Request: wrong file identifier/HTTP URL specified",
    );
    const missing = await call(fake, "sendVoice", { chat_id: 5 });
    assert.equal(missing.body.description, "Bad Request: there is no voice in the request");

    fake.pushMessage({ chatId: 5, video: true, voice: true, audio: true, animation: true });
    fake.pushMessage({ chatId: 5, sticker: true });
    const [media, sticker] = await pushedMessages(fake);
    const video = await api.sendVideo(5, media?.video?.file_id ?? "", { caption: "clip" });
    assert.equal(video.video.file_unique_id, media?.video?.file_unique_id);
    assert.equal(video.caption, "clip");
    const voice = await api.sendVoice(5, media?.voice?.file_id ?? "");
    assert.equal(voice.voice.file_id, media?.voice?.file_id);
    const audio = await api.sendAudio(5, new InputFile(new Uint8Array([3]), "song.mp3"), {
      title: "Song",
      duration: 61,
    });
    assert.equal(audio.audio.title, "Song");
    assert.equal(audio.audio.duration, 61);
    assert.equal(audio.audio.file_name, "song.mp3");
    const gif = await api.sendAnimation(5, media?.animation?.file_id ?? "");
    assert.deepEqual(gif.document, gif.animation);
    const sent = await api.sendSticker(5, sticker?.sticker?.file_id ?? "");
    assert.equal(sent.sticker.file_unique_id, sticker?.sticker?.file_unique_id);
  });

  await t.step("copyMessage copies every kind of content and answers only its id", async () => {
    await using fake = await FakeBotApi.start();
    const api = apiOf(fake);
    const user = 5;
    fake.pushMessage({ chatId: user, text: "/help please" });
    for (const kind of ["photo", "document", "video", "voice", "audio", "animation"] as const) {
      fake.pushMessage({ chatId: user, [kind]: true, caption: `a ${kind}`, mediaGroupId: "1" });
    }
    fake.pushMessage({ chatId: user, sticker: true });
    const originals = await pushedMessages(fake);
    const staff = -100777;
    const keyboard = { inline_keyboard: [[{ text: "Take", callback_data: "take:1" }]] };
    const contentKeys = [
      "text",
      "entities",
      "caption",
      "photo",
      "document",
      "video",
      "voice",
      "audio",
      "animation",
      "sticker",
    ] as const;
    for (const original of originals) {
      const copy = await api.copyMessage(staff, user, original.message_id, {
        reply_markup: keyboard,
      });
      assert.deepEqual(Object.keys(copy), ["message_id"]);
      // A reply shows the copy as stored: the same content from the same files, no album.
      const reply = await api.sendMessage(staff, "seen", {
        reply_parameters: { message_id: copy.message_id },
      });
      const stored = reply.reply_to_message;
      for (const key of contentKeys) {
        assert.deepEqual(stored?.[key], original[key], `${key} of ${original.message_id}`);
      }
      assert.equal(stored?.media_group_id, undefined);
      assert.deepEqual(stored?.reply_markup, keyboard);
      assert.equal(stored?.from?.id, fake.botInfo.id);
      const forward = await api.forwardMessage(staff, user, original.message_id);
      for (const key of contentKeys) assert.deepEqual(forward[key], original[key]);
      assert.equal(forward.forward_origin?.type, "user");
    }

    const withCaption = await api.copyMessage(staff, user, nth(originals, 1).message_id, {
      caption: "<i>from the user</i>",
      parse_mode: "HTML",
    });
    const reply = await api.sendMessage(staff, "ok", {
      reply_parameters: { message_id: withCaption.message_id },
    });
    assert.equal(reply.reply_to_message?.caption, "from the user");
    assert.deepEqual(reply.reply_to_message?.caption_entities, [
      { type: "italic", offset: 0, length: 13 },
    ]);
    assert.equal(reply.reply_to_message?.photo?.length, 3);
    const kept = await api.copyMessage(staff, user, nth(originals, 2).message_id);
    const replyToKept = await api.sendMessage(staff, "ok", {
      reply_parameters: { message_id: kept.message_id },
    });
    assert.equal(replyToKept.reply_to_message?.caption, "a document");
    assert.deepEqual(replyToKept.reply_to_message?.reply_markup, undefined);
    await refused(
      api.copyMessage(staff, user, 999),
      400,
      "Bad Request: message to copy not found",
    );
  });

  await t.step("copyMessage refuses service messages", async () => {
    await using fake = await FakeBotApi.start();
    const group = -1001234567890;
    fake.setForum(group);
    const api = apiOf(fake);
    const { message_thread_id: thread } = await api.createForumTopic(group, "Ticket");
    await refused(api.copyMessage(5, group, thread), 400, "Bad Request: message can't be copied");
  });

  await t.step("sendMediaGroup sends one album with a caption per item", async () => {
    await using fake = await FakeBotApi.start();
    const api = apiOf(fake);
    fake.pushMessage({ chatId: 5, video: true });
    const [pushed] = await pushedMessages(fake);
    const album: Message[] = await api.sendMediaGroup(-100777, [
      { type: "photo", media: new InputFile(new Uint8Array([1]), "1.jpg"), caption: "first" },
      { type: "photo", media: "https://example.com/2.jpg" },
      { type: "video", media: pushed?.video?.file_id ?? "", caption: "third" },
    ]);
    assert.equal(album.length, 3);
    assert.equal(new Set(album.map((m) => m.media_group_id)).size, 1);
    assert.equal(typeof album[0]?.media_group_id, "string");
    assert.deepEqual(album.map((m) => m.caption), ["first", undefined, "third"]);
    assert.equal(album[2]?.video?.file_unique_id, pushed?.video?.file_unique_id);
    const [record] = fake.sentOf("sendMediaGroup");
    assert.deepEqual(record?.message_ids, album.map((m) => m.message_id));

    const single: Message[] = await api.sendMediaGroup(-100777, [{
      type: "photo",
      media: "https://e.x/a.jpg",
    }]);
    // One item goes out as an ordinary message, outside any album.
    assert.equal(single[0]?.media_group_id, undefined);

    const photo = { type: "photo" as const, media: "https://example.com/p.jpg" };
    await refused(api.sendMediaGroup(5, []), 400, "Bad Request: there are no messages to send");
    await refused(
      api.sendMediaGroup(5, Array.from({ length: 11 }, () => photo)),
      400,
      "Bad Request: too many messages to send as an album",
    );
    const mixed = await call(fake, "sendMediaGroup", {
      chat_id: 5,
      media: [photo, { type: "document", media: "https://example.com/d.pdf" }],
    });
    assert.equal(
      mixed.body.description,
      "Bad Request: document can't be mixed with other media types",
    );
  });
});

Deno.test("send methods answer 403 when the user blocked the bot or is deactivated", async (t) => {
  const sends: Array<[string, (api: Api, chat: number) => Promise<unknown>]> = [
    ["sendMessage", (api, chat) => api.sendMessage(chat, "hi")],
    ["sendPhoto", (api, chat) => api.sendPhoto(chat, "https://example.com/a.jpg")],
    ["sendDocument", (api, chat) => api.sendDocument(chat, "https://example.com/a.pdf")],
    ["sendVideo", (api, chat) => api.sendVideo(chat, "https://example.com/a.mp4")],
    ["sendVoice", (api, chat) => api.sendVoice(chat, "https://example.com/a.ogg")],
    ["sendAudio", (api, chat) => api.sendAudio(chat, "https://example.com/a.mp3")],
    ["sendAnimation", (api, chat) => api.sendAnimation(chat, "https://example.com/a.gif")],
    ["copyMessage", (api, chat) => api.copyMessage(chat, -100777, 1)],
    ["forwardMessage", (api, chat) => api.forwardMessage(chat, -100777, 1)],
    [
      "sendMediaGroup",
      (api, chat) =>
        api.sendMediaGroup(chat, [
          { type: "photo", media: "https://example.com/1.jpg" },
          { type: "photo", media: "https://example.com/2.jpg" },
        ]),
    ],
    ["sendChatAction", (api, chat) => api.sendChatAction(chat, "typing")],
  ];

  await t.step("blockUser: 403 and a my_chat_member update; unblockUser undoes it", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: -100777, userId: 9, text: "in the staff chat" });
    const api = apiOf(fake);
    await api.getUpdates({ offset: 1001 });
    fake.blockUser(5);
    for (const [method, send] of sends) {
      const error = await refused(send(api, 5), 403, "Forbidden: bot was blocked by the user");
      assert.equal(error.method, method);
    }
    // Other chats are not affected.
    await api.sendMessage(6, "still fine");
    await api.sendMessage(-100777, "still fine");
    assert.deepEqual(fake.sentOf().map((s) => s.chatId), [6, -100777]);

    const [update] = await api.getUpdates();
    assert.equal(update?.my_chat_member?.chat.id, 5);
    assert.equal(update?.my_chat_member?.old_chat_member.status, "member");
    assert.equal(update?.my_chat_member?.new_chat_member.status, "kicked");

    fake.unblockUser(5);
    for (const [, send] of sends) await send(api, 5);
    const updates = await api.getUpdates({ offset: (update?.update_id ?? 0) + 1 });
    assert.equal(updates[0]?.my_chat_member?.new_chat_member.status, "member");
  });

  await t.step("notify: false blocks silently", async () => {
    await using fake = await FakeBotApi.start();
    fake.blockUser(5, { notify: false });
    assert.equal(fake.pendingCount(), 0);
    await refused(apiOf(fake).sendMessage(5, "x"), 403, "Forbidden: bot was blocked by the user");
  });

  await t.step("deactivateUser: 403 user is deactivated", async () => {
    await using fake = await FakeBotApi.start();
    fake.pushMessage({ chatId: -100777, userId: 9, text: "source" });
    fake.deactivateUser(5);
    const api = apiOf(fake);
    for (const [, send] of sends) {
      await refused(send(api, 5), 403, "Forbidden: user is deactivated");
    }
    assert.deepEqual(fake.sentOf(), []);
  });
});

Deno.test("send methods answer 429 with retry_after when flood limits are on", async (t) => {
  await t.step("off by default: a burst to one chat all goes through", async () => {
    await using fake = await FakeBotApi.start();
    const api = apiOf(fake);
    for (let i = 0; i < 40; i++) await api.sendMessage(5, `message ${i}`);
    assert.equal(fake.sendTimes(5).length, 40);
  });

  await t.step("a private chat takes a burst of 3, then one a second", async () => {
    let now = 1_000_000;
    await using fake = await FakeBotApi.start({ floodLimits: true, clock: () => now });
    const api = apiOf(fake);
    for (let i = 0; i < 3; i++) await api.sendMessage(5, "burst");
    const error = await refused(
      api.sendMessage(5, "one too many"),
      429,
      "Too Many Requests: retry after 1",
    );
    assert.equal(error.parameters.retry_after, 1);
    // Another chat has its own allowance.
    await api.sendMessage(6, "elsewhere");
    now += 1_000;
    await api.sendMessage(5, "after waiting");
    await refused(api.sendMessage(5, "too soon"), 429, "Too Many Requests: retry after 1");
    assert.deepEqual(fake.sendTimes(5), [1_000_000, 1_000_000, 1_000_000, 1_001_000]);
  });

  await t.step("a group takes 20 a minute", async () => {
    let now = 1_000_000;
    await using fake = await FakeBotApi.start({ floodLimits: true, clock: () => now });
    const api = apiOf(fake);
    for (let i = 0; i < 20; i++) {
      await api.sendMessage(-100777, `message ${i}`);
      now += 1_000;
    }
    // The first send leaves the window 60 s after it was made, 40 s from now.
    const error = await refused(
      api.copyMessage(-100777, -100777, 1),
      429,
      "Too Many Requests: retry after 40",
    );
    assert.equal(error.parameters.retry_after, 40);
    now += 40_000;
    await api.copyMessage(-100777, -100777, 1);
  });

  await t.step("all chats together take 30 a second", async () => {
    const now = 1_000_000;
    await using fake = await FakeBotApi.start({ floodLimits: true, clock: () => now });
    const api = apiOf(fake);
    for (let chat = 1; chat <= 30; chat++) await api.sendChatAction(chat, "typing");
    for (let chat = 1; chat <= 30; chat++) await api.sendMessage(chat, "hi");
    await refused(api.sendMessage(31, "hi"), 429, "Too Many Requests: retry after 1");
  });

  await t.step("only successful sends count", async () => {
    const now = 1_000_000;
    await using fake = await FakeBotApi.start({ floodLimits: true, clock: () => now });
    const api = apiOf(fake);
    fake.blockUser(5, { notify: false });
    await refused(api.sendMessage(5, "x"), 403, "Forbidden: bot was blocked by the user");
    fake.unblockUser(5, { notify: false });
    await refused(api.sendMessage(5, " "), 400, "Bad Request: message text is empty");
    fake.failNext("sendMessage", { error_code: 500 });
    await refused(api.sendMessage(5, "x"), 500, "Internal Server Error");
    for (let i = 0; i < 3; i++) await api.sendMessage(5, "counted");
    await refused(api.sendMessage(5, "x"), 429, "Too Many Requests: retry after 1");
  });
});

Deno.test("sentOf() lists successful sends with their time, message and thread", async (t) => {
  await t.step("every send method, filtered by method and chat", async () => {
    let now = 5_000;
    await using fake = await FakeBotApi.start({ clock: () => now });
    const api = apiOf(fake);
    await api.sendMessage(5, "text");
    now += 10;
    await api.sendPhoto(5, "https://example.com/a.jpg", { caption: "pic" });
    now += 10;
    await api.copyMessage(-100777, 5, 1);
    await refused(api.copyMessage(-100777, 5, 99), 400, "Bad Request: message to copy not found");
    await api.forwardMessage(-100777, 5, 2);
    const all = fake.sentOf();
    assert.deepEqual(all.map((s) => [s.method, s.chatId, s.message_id, s.at]), [
      ["sendMessage", 5, 1, 5_000],
      ["sendPhoto", 5, 2, 5_010],
      ["copyMessage", -100777, 1, 5_020],
      ["forwardMessage", -100777, 2, 5_020],
    ]);
    assert.equal(all[1]?.params.caption, "pic");
    assert.deepEqual(all[2]?.result, { message_id: 1 });
    assert.deepEqual(fake.sentOf("sendphoto").map((s) => s.method), ["sendPhoto"]);
    assert.deepEqual(fake.sentOf(undefined, -100777).map((s) => s.method), [
      "copyMessage",
      "forwardMessage",
    ]);
    assert.deepEqual(fake.sendTimes(-100777), [5_020, 5_020]);
    assert.deepEqual(fake.sentMessages().map((m) => m.text), ["text"]);
  });
});
