import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import { UserRepository, type UserRow } from "../../src/db/users.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { testDatabaseConfig } from "../support/databases.ts";
import { BotProcess } from "./program.ts";

/** Waits for the next message to `chatId` matching `pattern` that was not there before `since`. */
async function answerTo(
  api: FakeBotApi,
  chatId: number,
  pattern: RegExp,
  since: number,
): Promise<string> {
  return await api.waitFor(
    () => api.sentMessages(chatId).slice(since).map((m) => m.text).find((t) => pattern.test(t)),
    20_000,
    `an answer to ${chatId} matching ${pattern}`,
  );
}

/** Sends `text` as `chatId` and waits for the bot's answer matching `pattern`. */
async function say(
  api: FakeBotApi,
  chatId: number,
  text: string,
  pattern: RegExp,
  options: { languageCode?: string; firstName?: string } = {},
): Promise<string> {
  const since = api.sentMessages(chatId).length;
  api.pushMessage({ chatId, text, ...options });
  return await answerTo(api, chatId, pattern, since);
}

/** The stored profiles of `ids` in a stopped program's embedded database. */
async function storedUsers(cwd: string, ids: number[]): Promise<(UserRow | null)[]> {
  const db = await openDatabase({ config: testDatabaseConfig(null), dataDir: `${cwd}/data` });
  try {
    const users = new UserRepository(db.sql);
    return await Promise.all(ids.map((id) => users.get(id)));
  } finally {
    await db.close();
  }
}

Deno.test("account: /start greets in English, Russian and Ukrainian and subscribes; /stop unsubscribes", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-account-" });
  try {
    {
      await using bot = await BotProcess.start({ api, cwd });
      await bot.waitReady();
      const greetings = [
        { chatId: 4101, languageCode: "en", firstName: "Alice", greeting: /^Hello, Alice!/ },
        { chatId: 4102, languageCode: "ru", firstName: "Борис", greeting: /^Здравствуйте, Борис!/ },
        { chatId: 4103, languageCode: "uk", firstName: "Оксана", greeting: /^Вітаю, Оксана!/ },
      ];
      for (const { chatId, languageCode, firstName, greeting } of greetings) {
        const text = await say(api, chatId, "/start", /./, { languageCode, firstName });
        assert.match(text, greeting);
        // The greeting carries the menu.
        for (const command of ["/new", "/my", "/status", "/language", "/help"]) {
          assert.ok(text.includes(command), `${languageCode} greeting lacks ${command}: ${text}`);
        }
      }
      // Alice unsubscribes; Борис unsubscribes and comes back with /start.
      assert.match(await say(api, 4101, "/stop", /./), /^Done: you will get no more announcements/);
      assert.match(
        await say(api, 4102, "/stop", /./, { languageCode: "ru" }),
        /^Готово: объявления больше не будут приходить/,
      );
      await say(api, 4102, "/start", /^Здравствуйте/, { languageCode: "ru" });
      assert.equal((await bot.stop()).code, 0);
    }
    const [alice, boris, oksana] = await storedUsers(cwd, [4101, 4102, 4103]);
    assert.equal(alice?.notifications, false, "/stop unsubscribed Alice");
    assert.equal(boris?.notifications, true, "/start subscribed Борис again");
    assert.equal(oksana?.notifications, true, "/start registered and subscribed Оксана");
    assert.equal(oksana?.firstName, "Оксана");
  } finally {
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});

Deno.test("account: /language switches the language of every later answer, also after a restart", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-language-" });
  const chatId = 4201;
  try {
    {
      await using bot = await BotProcess.start({ api, cwd });
      await bot.waitReady();
      await say(api, chatId, "/language", /^Choose the language/);
      const question = api.sentMessages(chatId).at(-1)!;
      const buttons = (question.reply_markup as {
        inline_keyboard: { text: string; callback_data: string }[][];
      }).inline_keyboard.flat();
      assert.deepEqual(buttons.map((b) => [b.text, b.callback_data]), [
        ["English", "lang:en"],
        ["Русский", "lang:ru"],
        ["Українська", "lang:uk"],
      ]);

      api.pushCallbackQuery({ chatId, data: "lang:uk" });
      const answered = await api.waitFor(
        () => api.callsOf("answerCallbackQuery")[0],
        20_000,
        "the button's answer",
      );
      assert.equal(answered.text, "Готово: відтепер я говоритиму з вами українською.");
      // Polling has no webhook response to carry it: the answer is a request of its own.
      assert.equal(api.calls.find((c) => c.method === "answerCallbackQuery")?.via, "request");
      const edit = await api.waitFor(() => api.callsOf("editMessageText")[0], 20_000, "an edit");
      assert.equal(edit.text, answered.text);
      assert.equal(edit.reply_markup, undefined, "the buttons are gone");

      // The user's Telegram language is still English; the bot answers in the chosen one.
      assert.match(await say(api, chatId, "/help", /./), /^Ось що я вмію:/);

      // Forged or outdated callback data changes nothing.
      api.pushCallbackQuery({ chatId, data: "lang:de" });
      const refused = await api.waitFor(
        () => api.callsOf("answerCallbackQuery")[1],
        20_000,
        "the second button's answer",
      );
      assert.equal(
        refused.text,
        "Ця кнопка більше не працює. Надішліть /language, щоб обрати знову.",
      );
      assert.equal((await bot.stop()).code, 0);
    }
    {
      await using bot = await BotProcess.start({ api, cwd });
      await bot.waitReady();
      assert.match(await say(api, chatId, "/help", /./), /^Ось що я вмію:/);
      assert.match(await say(api, chatId, "/start", /./, { firstName: "Ada" }), /^Вітаю, Ada!/);

      // And back to English.
      const since = api.sentMessages(chatId).length;
      api.pushMessage({ chatId, text: "/language" });
      await answerTo(api, chatId, /^Оберіть мову/, since);
      api.pushCallbackQuery({ chatId, data: "lang:en" });
      await api.waitFor(
        () =>
          api.callsOf("answerCallbackQuery").some((c) => /^Done: from now on/.test(String(c.text))),
        20_000,
        "the switch back to English",
      );
      assert.match(await say(api, chatId, "/help", /./), /^Here is what I can do:/);
      assert.equal((await bot.stop()).code, 0);
    }
    const [user] = await storedUsers(cwd, [chatId]);
    assert.equal(user?.locale, "en");
  } finally {
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});

Deno.test("account: /help lists the commands, admins also see theirs; the menu is published in every language", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, env: { ADMIN_IDS: "4301" } });
  await bot.waitReady();

  const admin = await say(api, 4301, "/help", /./);
  const user = await say(api, 4302, "/help", /./);
  for (const text of [admin, user]) {
    assert.match(text, /^Here is what I can do:/);
    for (const command of ["/new", "/my", "/status", "/language", "/start", "/stop", "/help"]) {
      assert.ok(text.includes(command), `help lacks ${command}: ${text}`);
    }
  }
  for (const command of ["/health", "/metrics", "/stats", "/backup", "/ban", "/unban"]) {
    assert.ok(admin.includes(command), `the admin's help lacks ${command}`);
    assert.ok(!user.includes(command), `a user's help lists ${command}`);
  }
  assert.match(await say(api, 4303, "/help", /./, { languageCode: "ru" }), /^Вот что я умею:/);

  const published = await api.waitFor(
    () => api.callsOf("setMyCommands").length === 5 && api.callsOf("setMyCommands"),
    20_000,
    "four command menus and the admin's",
  );
  const menus = published.slice(0, 4);
  assert.deepEqual(menus.map((m) => m.language_code), [undefined, "en", "ru", "uk"]);
  // The admin's private chat gets the admin commands on top.
  const adminMenu = published[4]!;
  assert.deepEqual(adminMenu.scope, { type: "chat", chat_id: 4301 });
  assert.deepEqual(
    (adminMenu.commands as { command: string }[]).map((c) => c.command).slice(-9),
    [
      "health",
      "metrics",
      "stats",
      "backup",
      "ban",
      "unban",
      "broadcast",
      "broadcast_cancel",
      "broadcasts",
    ],
  );
  for (const menu of menus) {
    assert.deepEqual(
      (menu.commands as { command: string }[]).map((c) => c.command),
      ["start", "new", "my", "status", "language", "help", "stop"],
    );
  }
  const uk = menus[3]!.commands as { description: string }[];
  assert.equal(uk[0]!.description, "Привітання й головне меню");
  assert.equal((await bot.stop()).code, 0);
});
