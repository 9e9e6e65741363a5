/**
 * The staff post survives crashes: users file requests through `/new` while the program is
 * SIGKILLed again and again; afterwards every stored request has been posted to the staff
 * chat (the post is owed in an outbox row written with the request, and delivered by a job
 * that retries), and the run reports how many posts a kill made go out twice.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { testDatabaseConfig } from "../support/databases.ts";
import { BotProcess } from "./program.ts";

const STAFF_CHAT = -1001234567890;
// Three waves of ten: three kills at least, while the group's pace (20 posts a minute) keeps
// the run short.
const USERS = Array.from({ length: 30 }, (_, i) => 6100 + i);

type Keyboard = { inline_keyboard?: { callback_data?: string }[][] };

Deno.test("staff outbox: requests filed while the program is SIGKILLed again and again are all posted to staff", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-outbox-kill-" });
  const env = { STAFF_CHAT_ID: String(STAFF_CHAT), RATE_LIMIT_MAX_REQUESTS: "10000" };
  let bot = await BotProcess.start({ api, cwd, env });
  let kills = 0;
  try {
    await bot.waitReady();
    /** The newest button of `chat` whose data starts with `prefix`, if the bot sent one. */
    const newestButton = (chat: number, prefix: string) => {
      for (const sent of api.sentMessages(chat).reverse()) {
        const found = (sent.reply_markup as Keyboard | undefined)?.inline_keyboard?.flat()
          .find((b) => b.callback_data?.startsWith(prefix));
        if (found) return found.callback_data!;
      }
      return undefined;
    };
    /** Waits until a message matching `pattern` arrives after the first `after` messages. */
    const arrives = async (chat: number, after: number, pattern: RegExp, ms: number) => {
      try {
        await api.waitFor(
          () => api.sentMessages(chat).slice(after).some((m) => pattern.test(m.text)) || undefined,
          ms,
          `${pattern} in chat ${chat}`,
        );
        return true;
      } catch {
        return false;
      }
    };
    /**
     * Does what a user does until the bot answers as `expect`s: a press on a button that a kill
     * made stale is answered "no longer works", so the user presses the newest one again.
     */
    const until = async (chat: number, act: () => void, expect: RegExp) => {
      for (let attempt = 0; attempt < 10; attempt++) {
        const before = api.sentMessages(chat).length;
        act();
        if (await arrives(chat, before, expect, 20_000)) return;
      }
      throw new Error(`chat ${chat} never got ${expect}`);
    };
    const press = (chat: number, prefix: string) => () => {
      const data = newestButton(chat, prefix);
      if (data) api.pushCallbackQuery({ chatId: chat, data });
    };
    /** A user's way to the summary: /new, a category, a description, a phone number. */
    const prepare = async (chat: number) => {
      api.pushMessage({ chatId: chat, text: "/new" });
      await api.waitFor(() => newestButton(chat, "rq:c:"), 120_000, "the categories");
      await until(chat, press(chat, "rq:c:"), /^Step 2 of 3/);
      const description = `The printer in room ${chat} jams every morning`;
      await until(chat, () => api.pushMessage({ chatId: chat, text: description }), /^Step 3 of 3/);
      await until(
        chat,
        () => api.pushMessage({ chatId: chat, text: "+7 900 123 45 67" }),
        /^<b>Please check your request<\/b>/,
      );
    };
    const killedAt: number[] = [];
    const restart = async () => {
      killedAt.push(Date.now());
      bot.kill("SIGKILL");
      await bot.status;
      kills++;
      bot = await BotProcess.start({ api, cwd, env });
      await bot.waitReady(60_000);
    };
    // In waves: everyone confirms at once and the program is killed while it files them, so
    // some requests are stored and their posts not yet delivered.
    for (let wave = 0; wave < USERS.length; wave += 10) {
      const users = USERS.slice(wave, wave + 10);
      await Promise.all(users.map(prepare));
      // The staff chat refuses the first posts (the bot was removed from it for a moment):
      // the requests are stored, their posts are owed and retried, across the kill.
      api.failChat(STAFF_CHAT, { error_code: 400, description: "Bad Request: chat not found" }, 5);
      for (const chat of users) press(chat, "rq:ok:")();
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 250));
      await restart();
      await Promise.all(
        users.map((chat) =>
          api.sentMessages(chat).some((m) => /^✅ Request #\d+ created/.test(m.text))
            ? undefined
            : until(chat, press(chat, "rq:ok:"), /^✅ Request #\d+ created/)
        ),
      );
    }

    const db = () =>
      openDatabase({ config: testDatabaseConfig(null), dataDir: `${cwd}/data`, embedded: "share" });
    const conn = await db();
    let numbers: number[];
    let createdAt: Map<number, number>;
    try {
      const rows = await conn.sql<{ number: number; created_at: Date }[]>`
        select number, created_at from requests order by number`;
      numbers = rows.map((row) => row.number);
      createdAt = new Map(rows.map((row) => [row.number, row.created_at.getTime()]));
    } finally {
      await conn.close();
    }
    assert.equal(numbers.length, USERS.length, "one request per user, whatever was redelivered");
    // Items claimed by a killed instance wait out their claim (30 s) before they are retried,
    // and the staff chat is a group: Telegram takes 20 messages a minute there, so 30 posts
    // (and their redeliveries) need a minute or more however fast the bot is.
    const posted = (n: number) =>
      api.sentMessages(STAFF_CHAT).filter((m) => m.text.startsWith(`<b>Request #${n}</b>`)).length;
    await api.waitFor(
      () => numbers.every((n) => posted(n) > 0) || undefined,
      240_000,
      "every post",
    );
    const missing = numbers.filter((n) => posted(n) === 0);
    const twice = numbers.filter((n) => posted(n) > 1);
    assert.deepEqual(missing, [], `unannounced after ${kills} kills`);
    // The case that used to lose posts happened: stored before a kill, posted after it.
    const postedAt = (n: number) =>
      api.sentOf("sendMessage", STAFF_CHAT).find((m) =>
        String(m.params.text).startsWith(`<b>Request #${n}</b>`)
      )!.at;
    const crossed = numbers.filter((n) =>
      killedAt.some((kill) => createdAt.get(n)! < kill && kill < postedAt(n))
    );
    assert.ok(crossed.length > 0, "no request was stored before a kill and posted after it");
    assert.ok(kills >= 3, `only ${kills} kills happened`);
    assert.ok(twice.length <= numbers.length / 4, `posted twice: ${twice.join(", ")}`);
    assert.equal((await bot.stop()).code, 0);
  } finally {
    await bot[Symbol.asyncDispose]();
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});
