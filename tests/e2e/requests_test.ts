import assert from "node:assert/strict";
import { FakeBotApi, type SentMessageParams } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

/**
 * The request flows end to end: `/new` in three languages across a restart, leaving the form
 * at every step, validation, double confirms, forged and old buttons, hostile text, `/my`
 * and `/status`. One program serves all steps after the restart, each step in its own chat.
 */

type Markup = {
  inline_keyboard?: { text: string; callback_data?: string }[][];
  keyboard?: { text: string; request_contact?: boolean }[][];
  remove_keyboard?: boolean;
};

/** A message the bot sent, with the id Telegram gave it. */
interface Sent extends SentMessageParams {
  messageId: number;
  markup: Markup | undefined;
}

/** The category buttons in REQUEST_CATEGORIES order. */
const CATEGORIES = ["Hardware", "Software", "Network", "Access", "Other"];

/** One user talking to the bot in a private chat. */
class Chat {
  #sent = 0;
  #messageIds = 0;
  constructor(
    readonly api: FakeBotApi,
    readonly program: () => BotProcess,
    readonly id: number,
    readonly languageCode = "en",
  ) {}

  /** Every message the bot sent to this chat, oldest first. */
  messages(): Sent[] {
    return this.api.calls
      .filter((c) => c.method === "sendMessage" && String(c.params.chat_id) === String(this.id))
      .filter((c) => (c.response as { ok?: boolean } | undefined)?.ok === true)
      .map((c) => ({
        ...(c.params as SentMessageParams),
        messageId: (c.response as { result: { message_id: number } }).result.message_id,
        markup: parseMarkup(c.params.reply_markup),
      }));
  }

  /** Waits until the program has handled update `id` (and committed its dialog state). */
  async handled(updateId: number): Promise<void> {
    await this.api.waitFor(
      () => this.program().lines.some((l) => l.update_id === updateId && /^update /.test(l.msg)),
      20_000,
      `update ${updateId} to be handled`,
    );
  }

  /** Messages the bot sent since the last call. */
  news(): Sent[] {
    const all = this.messages();
    const fresh = all.slice(this.#sent);
    this.#sent = all.length;
    return fresh;
  }

  /** Sends `text`; returns the texts of the bot's answers. */
  async send(text: string): Promise<Sent[]> {
    this.news();
    await this.handled(
      this.api.pushMessage({ chatId: this.id, text, languageCode: this.languageCode }),
    );
    return this.news();
  }

  /** Shares a contact (by default the user's own, as the reply keyboard's button does). */
  async shareContact(phone: string, userId = this.id): Promise<Sent[]> {
    this.news();
    const from = {
      id: this.id,
      is_bot: false,
      first_name: "User",
      language_code: this.languageCode,
    };
    const id = this.api.pushUpdate({
      message: {
        message_id: 500_000 + ++this.#messageIds,
        from,
        chat: { id: this.id, type: "private", first_name: "User" },
        date: Math.floor(Date.now() / 1000),
        contact: { phone_number: phone, first_name: "User", user_id: userId },
      },
    });
    await this.handled(id);
    return this.news();
  }

  /** Presses a button; returns the callback's answer text ("" when none) and new messages. */
  async press(data: string, messageId?: number): Promise<{ answer: string; sent: Sent[] }> {
    this.news();
    const answered = this.api.callsOf("answerCallbackQuery").length;
    await this.handled(this.api.pushCallbackQuery({
      chatId: this.id,
      data,
      languageCode: this.languageCode,
      ...(messageId === undefined ? {} : { messageId }),
    }));
    const answers = this.api.callsOf("answerCallbackQuery").slice(answered);
    assert.equal(answers.length, 1, `the press of ${data} must be answered once`);
    return { answer: String(answers[0]!.text ?? ""), sent: this.news() };
  }

  /** The callback_data of the button labelled `label` in the latest message having one. */
  button(label: string | RegExp): { data: string; messageId: number } {
    for (const message of this.messages().reverse()) {
      for (const row of message.markup?.inline_keyboard ?? []) {
        for (const b of row) {
          if (typeof label === "string" ? b.text === label : label.test(b.text)) {
            return { data: b.callback_data!, messageId: message.messageId };
          }
        }
      }
    }
    throw new Error(`no button ${label} in chat ${this.id}`);
  }

  /** Walks the form up to the summary; returns the summary message. */
  async toSummary(description = "The printer on floor 3 jams on every page", category = 2) {
    await this.send("/new");
    await this.press(this.button(CATEGORIES[category]!).data);
    await this.send(description);
    const sent = await this.send("+44 20 7946 0958");
    return sent.at(-1)!;
  }

  /** Files a whole request; returns its number. */
  async file(description?: string): Promise<number> {
    await this.toSummary(description);
    const { sent } = await this.press(this.button(/Confirm/).data);
    const number = sent[0]?.text.match(/^✅ Request #(\d+) created/)?.[1];
    assert.ok(number, sent.map((m) => m.text).join("\n"));
    return Number(number);
  }
}

function parseMarkup(value: unknown): Markup | undefined {
  if (value === undefined) return undefined;
  return (typeof value === "string" ? JSON.parse(value) : value) as Markup;
}

/** What each language's user sees at the milestones of the form. */
const LANGUAGES = [
  {
    code: "en",
    chatId: 7001,
    category: /^📝 <b>New request<\/b>\nStep 1 of 3/,
    description: /^Step 2 of 3: describe the problem/,
    contact: /^Step 3 of 3: how can we reach you\?/,
    share: "📱 Share my phone",
    summary: /^<b>Please check your request<\/b>/,
    confirm: "✅ Confirm",
    created: /^✅ Request #(\d+) created\./,
    text: "The printer prints only blank pages",
  },
  {
    code: "ru",
    chatId: 7002,
    category: /^📝 <b>Новая заявка<\/b>\nШаг 1 из 3/,
    description: /^Шаг 2 из 3: опишите проблему/,
    contact: /^Шаг 3 из 3: как с вами связаться\?/,
    share: "📱 Поделиться номером",
    summary: /^<b>Проверьте заявку<\/b>/,
    confirm: "✅ Подтвердить",
    created: /^✅ Заявка №(\d+) создана\./,
    text: "Принтер печатает только пустые страницы",
  },
  {
    code: "uk",
    chatId: 7003,
    category: /^📝 <b>Нова заявка<\/b>\nКрок 1 з 3/,
    description: /^Крок 2 з 3: опишіть проблему/,
    contact: /^Крок 3 з 3: як з вами зв'язатися\?/,
    share: "📱 Поділитися номером",
    summary: /^<b>Перевірте заявку<\/b>/,
    confirm: "✅ Підтвердити",
    created: /^✅ Заявку №(\d+) створено\./,
    text: "Принтер друкує лише порожні сторінки",
  },
];

Deno.test("requests: /new, /my and /status end to end", async (t) => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-requests-" });
  // Many quick messages per chat; the limiter is tested elsewhere.
  const env = { RATE_LIMIT_MAX_REQUESTS: "1000" };
  let program = await BotProcess.start({ api, cwd, env });
  const current = () => program;
  const chats = LANGUAGES.map((l) => ({ l, chat: new Chat(api, current, l.chatId, l.code) }));
  try {
    await program.waitReady();

    await t.step("a request in en, ru and uk survives a restart in the middle", async () => {
      for (const { l, chat } of chats) {
        const [category] = await chat.send("/new");
        assert.match(category!.text, l.category);
        assert.deepEqual(
          category!.markup?.inline_keyboard?.flat().map((b) => b.text).slice(0, 5),
          CATEGORIES,
        );
        const { answer, sent } = await chat.press(chat.button("Network").data);
        assert.equal(answer, "");
        assert.match(sent[0]!.text, l.description);
        const [contact] = await chat.send(l.text);
        assert.match(contact!.text, l.contact);
        assert.deepEqual(contact!.markup?.keyboard, [[{ text: l.share, request_contact: true }]]);
      }
      assert.equal((await program.stop()).code, 0);
      program = await BotProcess.start({ api, cwd, env });
      await program.waitReady();
      for (const { l, chat } of chats) {
        const [saved, summary] = await chat.shareContact("380501234567");
        assert.equal(saved!.markup?.remove_keyboard, true);
        assert.match(saved!.text, /\+380501234567$/);
        assert.match(summary!.text, l.summary);
        assert.ok(summary!.text.includes(l.text), summary!.text);
        assert.ok(summary!.text.includes("Network"));
        const { sent } = await chat.press(chat.button(l.confirm).data);
        assert.equal(sent.length, 1);
        assert.match(sent[0]!.text, l.created);
      }
      const numbers = chats.map(({ l, chat }) =>
        Number(chat.messages().at(-1)!.text.match(l.created)![1])
      );
      assert.deepEqual(numbers, [1, 2, 3]);
    });

    await t.step(
      "/cancel at every step leaves the form and removes the reply keyboard",
      async () => {
        const chat = new Chat(api, current, 7010);
        const walks: Array<[step: string, walk: () => Promise<unknown>]> = [
          ["category", () => chat.send("/new")],
          ["description", async () => {
            await chat.send("/new");
            await chat.press(chat.button("Access").data);
          }],
          ["contact", async () => {
            await chat.send("/new");
            await chat.press(chat.button("Access").data);
            await chat.send("I cannot log in to the VPN since today");
          }],
          ["summary", () => chat.toSummary()],
        ];
        for (const [step, walk] of walks) {
          await walk();
          const [cancelled] = await chat.send("/cancel");
          assert.match(cancelled!.text, /^Request cancelled, nothing was sent\./, step);
          assert.equal(cancelled!.markup?.remove_keyboard, true, step);
          const [nothing] = await chat.send("/cancel");
          assert.equal(nothing!.text, "There is nothing to cancel.", `${step}: the form was left`);
        }
        assert.match((await chat.send("/status"))[0]!.text, /^You have no open requests\./);
      },
    );

    await t.step("the Cancel button leaves the form and takes its buttons away", async () => {
      const chat = new Chat(api, current, 7011);
      for (const walk of [() => chat.send("/new"), () => chat.toSummary()]) {
        await walk();
        const cancel = chat.button(/Cancel/);
        const edits = api.callsOf("editMessageReplyMarkup").length;
        const { answer, sent } = await chat.press(cancel.data);
        assert.equal(answer, "");
        assert.match(sent[0]!.text, /^Request cancelled/);
        assert.equal(sent[0]!.markup?.remove_keyboard, true);
        const edit = api.callsOf("editMessageReplyMarkup").slice(edits);
        assert.deepEqual(edit.map((p) => p.message_id), [cancel.messageId]);
        assert.equal((await chat.send("/cancel"))[0]!.text, "There is nothing to cancel.");
        // Pressing it again is harmless.
        const again = await chat.press(cancel.data, cancel.messageId);
        assert.match(again.answer, /no longer works/);
        assert.deepEqual(again.sent, []);
      }
    });

    await t.step(
      "a wrong description or phone gets a helpful reply and keeps the step",
      async () => {
        const chat = new Chat(api, current, 7020);
        await chat.send("/new");
        assert.equal(
          (await chat.send("a printer"))[0]!.text,
          "Please choose a category with the buttons, or send /cancel.",
        );
        await chat.press(chat.button("Hardware").data);
        const cases: Array<[text: string, reply: RegExp]> = [
          [
            "broken",
            /^That is a bit short \(6 characters\)\. Please describe the problem in at least 10/,
          ],
          ["/printer", /^That looks like a command, not a description\./],
          ["x".repeat(2001), /^That is too long: 2001 characters, at most 2000/],
          // Telegram's longest message, full of markup: a clear reply, not a parse error.
          ["<b>&</b>".repeat(512), /^That is too long: 4096 characters, at most 2000/],
        ];
        for (const [text, reply] of cases) {
          const sent = await chat.send(text);
          assert.equal(sent.length, 1);
          assert.match(sent[0]!.text, reply);
        }
        assert.match((await chat.send("My laptop does not start"))[0]!.text, /^Step 3 of 3/);
        const phones: Array<[() => Promise<Sent[]>, RegExp]> = [
          [() => chat.send("call me maybe"), /^That doesn't look like a phone number\./],
          [() => chat.send("12345"), /^That doesn't look like a phone number\./],
          [() => chat.shareContact("+15550001111", 4242), /^Please share your own number/],
        ];
        for (const [act, reply] of phones) {
          const sent = await act();
          assert.equal(sent.length, 1);
          assert.match(sent[0]!.text, reply);
        }
        const [saved, summary] = await chat.send("+7 (495) 123-45-67");
        assert.match(saved!.text, /: \+74951234567$/);
        assert.ok(summary!.text.includes("My laptop does not start"));
        assert.equal(
          (await chat.send("yes"))[0]!.text,
          "Please use the buttons under the summary: Confirm, Edit or Cancel.",
        );
        // Edit goes back to the description.
        assert.match(
          (await chat.press(chat.button(/Edit/).data)).sent[0]!.text,
          /^✏️ Let's correct it\./,
        );
        await chat.send("My laptop does not start at all");
        const [, edited] = await chat.send("+7 495 1234567");
        assert.ok(edited!.text.includes("My laptop does not start at all"));
      },
    );

    await t.step("Confirm pressed twice, or delivered twice, files one request", async () => {
      const chat = new Chat(api, current, 7030);
      await chat.toSummary("Double tap on the confirm button");
      const confirm = chat.button(/Confirm/);
      const answered = api.callsOf("answerCallbackQuery").length;
      const first = api.pushCallbackQuery({
        chatId: chat.id,
        data: confirm.data,
        messageId: confirm.messageId,
      });
      const second = api.pushCallbackQuery({
        chatId: chat.id,
        data: confirm.data,
        messageId: confirm.messageId,
      });
      await chat.handled(first);
      await chat.handled(second);
      const answers = api.callsOf("answerCallbackQuery").slice(answered).map((p) => p.text ?? "");
      assert.deepEqual(answers, [
        "",
        "This button no longer works: that form was already sent or cancelled.",
      ]);

      // The program dies after filing the request and before it could save that the form is
      // done: the next program handles the same update again (from the polling inbox).
      await chat.toSummary("Delivered twice by Telegram");
      const again = chat.button(/Confirm/);
      api.delay("answerCallbackQuery", 30_000);
      const pending = api.callsOf("answerCallbackQuery").length;
      const update = api.pushCallbackQuery({
        chatId: chat.id,
        data: again.data,
        messageId: again.messageId,
      });
      await api.waitFor(() => api.callsOf("answerCallbackQuery").length > pending);
      program.kill("SIGKILL");
      await program.status;
      api.delay("answerCallbackQuery", 0);
      program = await BotProcess.start({ api, cwd, env });
      await program.waitReady();
      await chat.handled(update);

      const created = chat.messages().filter((m) => /created/.test(m.text)).map((m) => m.text);
      assert.equal(created.length, 2, created.join("\n"));
      const status = (await chat.send("/status"))[0]!.text;
      assert.equal(status.match(/^#\d+ · /gm)?.length, 2, status);
    });

    await t.step("forged and old buttons are answered politely and change nothing", async () => {
      const chat = new Chat(api, current, 7040);
      await chat.send("/new");
      const old = chat.button("Software");
      await chat.send("/new");
      const tag = chat.button("Software").data.split(":").at(-1);
      const cases: Array<[data: string, answer: RegExp, messageId?: number]> = [
        [old.data, /^This button no longer works/, old.messageId],
        ["rq:ok:zzz", /^Sorry, I don't recognise this button\.$/],
        ["rq:ok:deadbeef", /^This button no longer works/],
        [`rq:ok:${tag}`, /^This button no longer works/],
        [`rq:c:99:${tag}`, /^Sorry, I don't recognise this button\.$/],
        ["my:p:99999999999999", /^Sorry, I don't recognise this button\.$/],
        ["my:o:1:0", /^This request is not among yours\.$/],
        ["my:o:424242:0", /^This request is not among yours\.$/],
      ];
      for (const [data, answer, messageId] of cases) {
        const pressed = await chat.press(data, messageId);
        assert.match(pressed.answer, answer, data);
        assert.deepEqual(pressed.sent, [], data);
      }
      // The form is where it was.
      assert.match((await chat.press(chat.button("Software").data)).sent[0]!.text, /^Step 2 of 3/);
    });

    await t.step(
      "markup, emoji, right-to-left and the longest description show as typed",
      async () => {
        const chat = new Chat(api, current, 7050);
        const callsBefore = api.calls.length;
        const nasty =
          `<b>not bold</b> & "q" <a href="x">a</a> *md* _i_ [l](u) \`c\` 😀🔥 مرحبا بالعالم &amp; </i>`;
        // 2000 UTF-16 code units, the most a description may have; escaped, far more.
        const longest = "<&>😀😀😀שלום".repeat(153) + "0123456789a";
        assert.equal(longest.length, 2000);
        for (const description of [nasty, longest]) {
          const summary = await chat.toSummary(description);
          assert.ok(
            summary.text.includes(
              description.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
                .replaceAll('"', "&quot;"),
            ),
            "escaped in the summary",
          );
          const { sent } = await chat.press(chat.button(/Confirm/).data);
          assert.match(sent[0]!.text, /^✅ Request #\d+ created/);
        }
        const [list] = await chat.send("/my");
        const open = await chat.press(chat.button(/^#\d+/).data);
        assert.equal(open.answer, "");
        // Telegram accepted every message, edit and answer of this step.
        const failed = api.calls.slice(callsBefore).filter((c) =>
          (c.response as { ok?: boolean } | undefined)?.ok === false
        );
        assert.deepEqual(failed.map((c) => `${c.method}: ${JSON.stringify(c.response)}`), []);
        assert.ok(list);
      },
    );

    await t.step(
      "/my pages through more than five requests and opens one with its history",
      async () => {
        const chat = new Chat(api, current, 7060);
        assert.equal(
          (await chat.send("/my"))[0]!.text,
          "You have no requests yet. Send /new to file one.",
        );
        const numbers: number[] = [];
        for (let i = 1; i <= 7; i++) numbers.push(await chat.file(`Request number ${i} of seven`));
        const [list] = await chat.send("/my");
        assert.match(list!.text, /^<b>Your requests<\/b>, page 1 of 2 \(7 in all\)/);
        const newest = numbers.toReversed();
        const buttons = () => list!.markup!.inline_keyboard!;
        assert.deepEqual(
          buttons().slice(0, 5).map((row) => row[0]!.text),
          newest.slice(0, 5).map((n) => `#${n} · Network`),
        );
        assert.deepEqual(buttons().at(-1)!.map((b) => b.text), ["▶"]);

        const edits = () =>
          api.callsOf("editMessageText").filter((p) => String(p.chat_id) === "7060");
        const next = await chat.press(chat.button("▶").data);
        assert.deepEqual(next.sent, [], "the list is edited in place");
        const page2 = edits().at(-1)!;
        assert.equal(page2.message_id, list!.messageId);
        assert.match(String(page2.text), /page 2 of 2 \(7 in all\)/);
        const page2Buttons = parseMarkup(page2.reply_markup)!.inline_keyboard!;
        assert.deepEqual(
          page2Buttons.slice(0, -1).map((row) => row[0]!.text),
          newest.slice(5).map((n) => `#${n} · Network`),
        );
        assert.deepEqual(page2Buttons.at(-1)!.map((b) => b.text), ["◀"]);

        const oldest = page2Buttons[1]![0]!.callback_data!;
        await chat.press(oldest, list!.messageId);
        const details = String(edits().at(-1)!.text);
        assert.match(details, new RegExp(`^<b>Request #${numbers[0]}</b>`));
        assert.ok(details.includes("Request number 1 of seven"));
        assert.match(details, /<b>History<\/b>\n\d{4}-\d\d-\d\d \d\d:\d\d UTC — filed$/);
        const detailButtons = parseMarkup(edits().at(-1)!.reply_markup)!.inline_keyboard!.flat();
        assert.deepEqual(detailButtons.map((b) => b.text), [
          "💬 Conversation",
          "◀ Back to the list",
        ]);
        const back = detailButtons[1]!;
        await chat.press(back.callback_data!, list!.messageId);
        assert.match(String(edits().at(-1)!.text), /page 2 of 2/);

        // Someone else cannot open these requests.
        const stranger = new Chat(api, current, 7061);
        const refused = await stranger.press(oldest);
        assert.equal(refused.answer, "This request is not among yours.");

        const [status] = await chat.send("/status");
        assert.match(status!.text, /^<b>Your open requests<\/b> \(7\):/);
        for (const n of numbers) {
          assert.match(status!.text, new RegExp(`^#${n} · Network · new · `, "m"));
        }
        assert.match((await stranger.send("/status"))[0]!.text, /^You have no open requests\./);
      },
    );
  } finally {
    await program.stop().catch(() => {});
    await program[Symbol.asyncDispose]();
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});
