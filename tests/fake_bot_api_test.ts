import assert from "node:assert/strict";
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
