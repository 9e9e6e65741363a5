/**
 * Staff's tools end to end: `/queue` and `/find`; take, release, done, reopen and reject each
 * telling the user in Russian; a reminder for a request nobody took in `SLA_TAKE_MINUTES` and
 * none once taken; a rating stored and shown in `/stats`.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import { testDatabaseConfig } from "../support/databases.ts";
import { ADMIN, Desk, STAFF_CHAT } from "./desk.ts";

const OLYA = 7301;
const IVAN = 7302;
const STAFF = 7401;
const STRANGER = 7402;

Deno.test("staff tools: /queue and /find; every action tells the user in Russian; the reason of a rejection too", async () => {
  await using desk = await Desk.start();
  desk.api.setChatMembers(STAFF_CHAT, { [STAFF]: "member" });
  const a = await desk.file(OLYA, { description: "Не печатает принтер в бухгалтерии" });
  const b = await desk.file(IVAN, { name: "Иван", description: "Нужен доступ к папке Отчёты" });
  await desk.post(a);
  const post = await desk.post(b);

  // /queue: new requests, oldest first; a stranger is not answered at all.
  await desk.say({ chatId: STAFF, text: "/queue" });
  const queue = desk.texts(STAFF).at(-1)!;
  assert.match(queue, /<b>Open requests<\/b>: 2 new, 0 in progress \(page 1 of 1\)/);
  assert.ok(queue.indexOf(`#${a} ·`) < queue.indexOf(`#${b} ·`), queue);
  await desk.say({ chatId: STRANGER, text: "/queue" });
  assert.match(desk.texts(STRANGER).at(-1)!, /I don't know the command \/queue/);

  // /find by words, by @username-less user id, by number; the view opens with its history.
  await desk.say({ chatId: STAFF, text: "/find доступ папке" });
  assert.match(desk.texts(STAFF).at(-1)!, new RegExp(`<b>Found</b>: 1 request\\n\\n#${b} ·`));
  await desk.say({ chatId: STAFF, text: `/find ${OLYA}` });
  assert.match(desk.texts(STAFF).at(-1)!, new RegExp(`#${a} ·`));
  await desk.say({ chatId: STAFF, text: "/find #999" });
  assert.match(desk.texts(STAFF).at(-1)!, /Nothing found for <code>#999<\/code>/);
  const open = desk.button(STAFF, `staff:open:${a}`);
  await desk.press(STAFF, open.data, STAFF, open.messageId);
  const view = () =>
    String(desk.api.callsOf("editMessageText").filter((e) => e.chat_id === STAFF).at(-1)?.text);
  assert.match(view(), new RegExp(`<b>Request #${a}</b> · Hardware\\nStatus: <b>new</b>`));

  // Each action, from the /queue view, is told to the user in their language.
  const told = async (expected: string) => {
    const text = await desk.api.waitFor(
      () => desk.texts(OLYA).find((t) => t.startsWith(expected)),
      20_000,
      expected,
    );
    assert.ok(text);
  };
  for (
    const [action, expected] of [
      ["take", `Хорошие новости: сотрудники взяли вашу заявку №${a} в работу.`],
      ["release", `Ваша заявка №${a} снова в очереди`],
      ["take", `Хорошие новости`],
      ["done", `Ваша заявка №${a} выполнена.`],
      ["reopen", `Ваша заявка №${a} снова открыта`],
    ] as const
  ) {
    const before = desk.texts(OLYA).length;
    await desk.press(STAFF, `staff:${action}:${a}`, STAFF, open.messageId);
    await desk.api.waitFor(() => desk.texts(OLYA).length > before || undefined, 20_000, action);
    await told(expected);
  }
  assert.match(view(), /Status: <b>in progress<\/b>/);

  // Reject asks for the reason; the staff member's next message is it.
  await desk.press(STAFF_CHAT, `staff:reject:${b}`, STAFF, post.message_id);
  assert.match(
    desk.texts(STAFF_CHAT).at(-1)!,
    new RegExp(`Rejecting request #${b}: send the reason`),
  );
  await desk.say({ chatId: STAFF_CHAT, userId: STAFF, text: "Доступ выдаёт <отдел> кадров" });
  const rejected = await desk.api.waitFor(
    () => desk.texts(IVAN).find((t) => t.startsWith("К сожалению")),
    20_000,
    "the rejection",
  );
  assert.equal(
    rejected,
    `К сожалению, ваша заявка №${b} отклонена.\nПричина: Доступ выдаёт &lt;отдел&gt; кадров\n\nЕсли понадобится что-то ещё, отправьте /new.`,
  );
  const card = desk.api.callsOf("editMessageText").filter((e) => e.chat_id === STAFF_CHAT).at(-1);
  assert.match(String(card?.text), /⛔ Rejected by .*: Доступ выдаёт &lt;отдел&gt; кадров$/);
  // A forged press changes nothing.
  await desk.press(STAFF_CHAT, `staff:take:${b}`, STRANGER, post.message_id);
  assert.equal(
    desk.api.callsOf("answerCallbackQuery").at(-1)?.text,
    "Sorry, only staff can take and close requests.",
  );
  assert.equal((await desk.bot.stop()).code, 0);
});

Deno.test("staff tools: a request nobody takes in SLA_TAKE_MINUTES is brought up, a taken one is not; the user's rating shows in /stats", async () => {
  await using desk = await Desk.start({ env: { SLA_TAKE_MINUTES: "1" } });
  const waiting = await desk.file(OLYA, { description: "Мигает свет в коридоре" });
  const taken = await desk.file(IVAN, { name: "Иван", description: "Сломалось кресло в 301" });
  const takenPost = await desk.post(taken);
  const waitingPost = await desk.post(waiting);
  await desk.press(STAFF_CHAT, `staff:take:${taken}`, STAFF, takenPost.message_id);
  // Both were filed "two minutes ago": the clock is moved, not waited for.
  const db = await openDatabase({
    config: testDatabaseConfig(null),
    dataDir: `${desk.cwd}/data`,
    embedded: "share",
  });
  try {
    await db.sql`update requests set created_at = now() - interval '2 minutes'`;
  } finally {
    await db.close();
  }
  const reminder = await desk.api.waitFor(
    () => desk.sent(STAFF_CHAT).find((s) => String(s.params.text).startsWith("⏰")),
    30_000,
    "a reminder",
  );
  assert.match(
    String(reminder.params.text),
    new RegExp(`^⏰ Request #${waiting} has been waiting 2 minutes`),
  );
  assert.equal(
    (reminder.params.reply_parameters as { message_id: number }).message_id,
    waitingPost.message_id,
  );
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const reminders = desk.sent(STAFF_CHAT).filter((s) => String(s.params.text).startsWith("⏰"));
  assert.equal(reminders.length, 1, "once per period, and none for the taken request");

  // Done → the user rates it 5 with a comment → /stats shows it.
  await desk.press(STAFF_CHAT, `staff:done:${taken}`, STAFF, takenPost.message_id);
  await desk.api.waitFor(
    () => {
      try {
        return desk.button(IVAN, `rate:${taken}:`);
      } catch {
        return undefined;
      }
    },
    20_000,
    "the rating buttons",
  );
  await desk.press(
    IVAN,
    `rate:${taken}:5`,
    IVAN,
    desk.button(IVAN, `rate:${taken}:5`).messageId,
    "ru",
  );
  assert.match(
    desk.texts(IVAN).at(-1)!,
    /Спасибо за оценку заявки №\d+: ★★★★★\nЕсли хотите, напишите короткий отзыв/,
  );
  await desk.say({ chatId: IVAN, text: "Быстро и вежливо", languageCode: "ru" });
  assert.equal(desk.texts(IVAN).at(-1), "Спасибо, отзыв сохранён.");
  await desk.say({ chatId: ADMIN, text: "/stats" });
  const stats = desk.texts(ADMIN).at(-1)!;
  assert.match(stats, /Average rating: 5\.0 of 5 \(1 rating\)/);
  assert.match(stats, /Median time to take: /);
  assert.equal((await desk.bot.stop()).code, 0);
});
