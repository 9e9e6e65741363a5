/**
 * What the broadcast end-to-end tests share: subscribers seeded into the database, an admin
 * preparing and sending a broadcast the way they would in Telegram, and what the fake Bot API
 * recorded about it (who got the message how often, the busiest second).
 */
import { type Database, openDatabase } from "../../src/db/database.ts";
import type { FakeBotApi } from "../fake_bot_api.ts";
import { testDatabaseConfig } from "../support/databases.ts";

type Keyboard = { inline_keyboard?: { callback_data?: string }[][] };

/** Opens the Postgres database at `url` for the test's own checks. */
export function openTestDatabase(url: string): Promise<Database> {
  return openDatabase({ config: testDatabaseConfig(url), dataDir: "" });
}

/** Registers `ids` as users subscribed to announcements, as `/start` would have. */
export async function seedSubscribers(url: string, ids: readonly number[]): Promise<void> {
  const db = await openTestDatabase(url);
  try {
    await db.sql`
      insert into users (id, first_name, language_code)
      select id, 'Subscriber', 'en' from unnest(${ids as number[]}::bigint[]) as id`;
  } finally {
    await db.close();
  }
}

/** The newest message with a button whose data starts with `prefix` in `chat`, if any. */
function buttonOf(api: FakeBotApi, chat: number, prefix: string) {
  for (const sent of api.sentOf("sendMessage", chat).reverse()) {
    const keyboard = sent.params.reply_markup as Keyboard | string | undefined;
    const parsed = typeof keyboard === "string" ? JSON.parse(keyboard) as Keyboard : keyboard;
    const data = parsed?.inline_keyboard?.flat().find((b) => b.callback_data?.startsWith(prefix))
      ?.callback_data;
    if (data) return { data, messageId: sent.message_id };
  }
  return undefined;
}

/**
 * The admin sends `/broadcast`, then a photo with `caption`, checks the preview and presses
 * Send; resolves once the bot says it is starting, with the number of recipients it announced.
 */
export async function sendBroadcast(
  api: FakeBotApi,
  admin: number,
  caption: string,
): Promise<{ announced: number }> {
  const said = (pattern: RegExp) =>
    api.waitFor(
      () => api.sentMessages(admin).find((m) => pattern.test(m.text)),
      20_000,
      `${pattern} in the admin's chat`,
    );
  api.pushMessage({ chatId: admin, text: "/broadcast" });
  await said(/^Send me the announcement/);
  api.pushMessage({ chatId: admin, photo: true, caption });
  const preview = await said(/^☝️ This is exactly what subscribers will get/);
  const announced = Number(/It goes to (\d+) subscriber/.exec(preview.text)?.[1]);
  // The preview is a copy of the photo, caption included.
  const copies = api.sentOf("copyMessage", admin);
  if (copies.length !== 1) throw new Error(`expected one preview copy, got ${copies.length}`);
  const button = await api.waitFor(() => buttonOf(api, admin, "bc:send:"), 5000, "Send");
  api.pushCallbackQuery({ chatId: admin, data: button.data, messageId: button.messageId });
  await api.waitFor(
    () =>
      api.callsOf("editMessageText").some((p) =>
        /^📣 Broadcast #\d+: starting/.test(String(p.text))
      ),
    20_000,
    "the broadcast to start",
  );
  return { announced };
}

/** How many copies of the broadcast each of `ids` got (successful sends only). */
export function copiesPerUser(api: FakeBotApi, ids: readonly number[]): Map<number, number> {
  const wanted = new Set(ids);
  const counts = new Map(ids.map((id) => [id, 0]));
  for (const sent of api.sentOf("copyMessage")) {
    if (wanted.has(sent.chatId)) counts.set(sent.chatId, counts.get(sent.chatId)! + 1);
  }
  return counts;
}

/** When each copy to one of `ids` arrived, by the fake's clock, in order. */
export function copyTimes(api: FakeBotApi, ids: readonly number[]): number[] {
  const wanted = new Set(ids);
  return api.sentOf("copyMessage").filter((s) => wanted.has(s.chatId)).map((s) => s.at)
    .sort((a, b) => a - b);
}

/** The most sends in any one-second window `[t, t + 1 s)` of sorted `times`. */
export function busiestSecond(times: readonly number[]): number {
  let most = 0;
  let from = 0;
  for (let to = 0; to < times.length; to++) {
    while (times[to]! - times[from]! >= 1000) from++;
    most = Math.max(most, to - from + 1);
  }
  return most;
}

/** Waits for the summary of a finished broadcast in the admin's chat and returns it. */
export async function summaryOf(
  api: FakeBotApi,
  admin: number,
  timeoutMs: number,
): Promise<string> {
  const summary = await api.waitFor(
    () => api.sentMessages(admin).find((m) => /^(✅|⏹) Broadcast #\d+/.test(m.text)),
    timeoutMs,
    "the broadcast's summary",
  );
  return summary.text;
}

/** 429 answers the fake gave, e.g. when the bot went over Telegram's flood limits. */
export function floodRefusals(api: FakeBotApi): number {
  return api.calls.filter((call) =>
    (call.response as { error_code?: number } | undefined)?.error_code === 429
  ).length;
}
