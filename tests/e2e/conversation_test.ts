/**
 * Staff and users talking through the bot, end to end (the real program, the fake Telegram):
 * a conversation both ways with photos in a plain staff group and in a forum, an internal
 * note, a user with two open requests, a relay cut off by SIGKILL, a user who blocked the bot.
 */
import assert from "node:assert/strict";
import { Desk, STAFF_CHAT } from "./desk.ts";

const OLYA = 7101;
const STAFF = 7201;

Deno.test("conversation: a plain staff group talks with the user both ways, photos included; a note stays with staff", async () => {
  await using desk = await Desk.start();
  const number = await desk.file(OLYA);
  const post = await desk.post(number);
  const user = desk.sent(OLYA).length;

  // Staff reply to the request's post: the user gets it with a header in Russian.
  await desk.say({
    chatId: STAFF_CHAT,
    userId: STAFF,
    text: "Здравствуйте! Какая модель принтера?",
    replyToMessageId: post.message_id,
  });
  await desk.sends(OLYA, user + 1, "the staff's reply");
  assert.equal(
    desk.texts(OLYA, user)[0],
    `💬 Заявка №${number} — ответ сотрудника\n\nЗдравствуйте! Какая модель принтера?`,
  );

  // The user answers (one open request: no need to say which) and sends a photo.
  const staff = desk.sent(STAFF_CHAT).length;
  await desk.say({
    chatId: OLYA,
    text: "HP LaserJet <M404> & шумит",
    languageCode: "ru",
    firstName: "Оля",
  });
  await desk.say({ chatId: OLYA, photo: true, caption: "вот так он выглядит", languageCode: "ru" });
  const toStaff = await desk.sends(STAFF_CHAT, staff + 2, "the user's two messages");
  const [text, photo] = toStaff.slice(staff);
  assert.equal(text!.params.text, `💬 #${number} · Оля\n\nHP LaserJet <M404> & шумит`);
  assert.deepEqual(text!.params.reply_parameters, {
    message_id: post.message_id,
    allow_sending_without_reply: true,
  });
  assert.equal(photo!.method, "copyMessage");
  assert.equal(photo!.params.caption, `💬 #${number} · Оля\n\nвот так он выглядит`);
  // The reaction on each of the user's messages follows its relay (and Telegram's pace for the
  // user's chat), so it may come a moment after the staff chat got the message.
  await desk.api.waitFor(
    () => desk.api.callsOf("setMessageReaction").length >= 2,
    10_000,
    "the reactions that tell the user each went through",
  );

  // Staff answer the photo with a photo of their own, in reply to the relayed one.
  await desk.say({
    chatId: STAFF_CHAT,
    userId: STAFF,
    photo: true,
    caption: "Замените картридж, как на фото",
    replyToMessageId: photo!.message_id,
  });
  // A note (//…) is stored and never reaches the user.
  await desk.say({
    chatId: STAFF_CHAT,
    userId: STAFF,
    text: "// позвонить в хозчасть",
    replyToMessageId: post.message_id,
  });
  const back = await desk.sends(OLYA, user + 2, "the staff's photo");
  assert.equal(back[user + 1]!.method, "copyMessage");
  assert.equal(
    back[user + 1]!.params.caption,
    `💬 Заявка №${number} — ответ сотрудника\n\nЗамените картридж, как на фото`,
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(desk.sent(OLYA).length, user + 2, "the note was not relayed");
  // Acknowledged with a reaction, which waits its turn in the staff group's pace.
  await desk.api.waitFor(
    () => desk.api.callsOf("setMessageReaction").some((r) => r.chat_id === STAFF_CHAT),
    10_000,
    "the note's acknowledgement",
  );

  // /my → the request → its conversation, as the user sees it.
  await desk.say({ chatId: OLYA, text: "/my", languageCode: "ru" });
  await desk.press(OLYA, desk.button(OLYA, "my:o:").data, OLYA, undefined, "ru");
  const edits = () => desk.api.callsOf("editMessageText").filter((e) => e.chat_id === OLYA);
  await desk.press(OLYA, desk.button(OLYA, "my:m:").data, OLYA, undefined, "ru");
  const conversation = String(edits().at(-1)?.text);
  assert.match(conversation, /Переписка по заявке №1/);
  assert.match(conversation, /сотрудник: Здравствуйте! Какая модель принтера\?/);
  assert.match(conversation, /вы: HP LaserJet &lt;M404&gt; &amp; шумит/);
  assert.match(conversation, /вы: 📷 фото вот так он выглядит/);
  assert.doesNotMatch(conversation, /хозчасть/, "notes are for staff only");
  assert.equal((await desk.bot.stop()).code, 0);
});

Deno.test("conversation: a forum staff chat gives each request a topic; everything about it goes there", async () => {
  await using desk = await Desk.start({ forum: true });
  const number = await desk.file(OLYA);
  const post = await desk.post(number);
  const [topic] = desk.api.topics(STAFF_CHAT);
  assert.equal(topic?.name, `#${number} · Hardware · Оля`);
  assert.equal(post.message_thread_id, topic!.id);

  const user = desk.sent(OLYA).length;
  await desk.say({ chatId: STAFF_CHAT, userId: STAFF, text: "Уже иду", threadId: topic!.id });
  await desk.sends(OLYA, user + 1, "the reply from the topic");
  assert.equal(desk.texts(OLYA, user)[0], `💬 Заявка №${number} — ответ сотрудника\n\nУже иду`);

  const staff = desk.sent(STAFF_CHAT).length;
  await desk.say({ chatId: OLYA, photo: true, caption: "жду", languageCode: "ru" });
  const [copy] = (await desk.sends(STAFF_CHAT, staff + 1, "the photo in the topic")).slice(staff);
  assert.equal(copy!.message_thread_id, topic!.id);
  assert.equal(copy!.params.caption, `💬 #${number} · Оля\n\nжду`);

  await desk.say({ chatId: STAFF_CHAT, userId: STAFF, photo: true, threadId: topic!.id });
  await desk.sends(OLYA, user + 2, "the staff's photo");
  assert.equal(
    desk.sent(OLYA)[user + 1]!.params.caption,
    `💬 Заявка №${number} — ответ сотрудника`,
  );

  // Done closes the topic; reopen opens it again.
  await desk.press(STAFF_CHAT, `staff:done:${number}`, STAFF, post.message_id);
  assert.equal(desk.api.topics(STAFF_CHAT)[0]?.closed, true);
  await desk.press(STAFF_CHAT, `staff:reopen:${number}`, STAFF, post.message_id);
  assert.equal(desk.api.topics(STAFF_CHAT)[0]?.closed, false);
  assert.equal((await desk.bot.stop()).code, 0);
});

Deno.test("conversation: with two open requests the user picks; a reply to a request's message goes to it", async () => {
  await using desk = await Desk.start();
  const first = await desk.file(OLYA, { description: "Не работает Wi-Fi на третьем этаже" });
  const second = await desk.file(OLYA, { description: "Сломался замок в переговорной" });
  const firstPost = await desk.post(first);
  const secondPost = await desk.post(second);
  const staff = desk.sent(STAFF_CHAT).length;

  await desk.say({ chatId: OLYA, text: "Есть новости?", languageCode: "ru" });
  const ask = desk.texts(OLYA).at(-1)!;
  assert.equal(ask, "У вас 2 открытые заявки. К какой относится сообщение?");
  const choice = desk.button(OLYA, `cv:${second}:`);
  await desk.press(OLYA, choice.data, OLYA, choice.messageId, "ru");
  const [relayed] = (await desk.sends(STAFF_CHAT, staff + 1)).slice(staff);
  assert.equal(relayed!.params.text, `💬 #${second} · Оля\n\nЕсть новости?`);
  assert.equal(
    (relayed!.params.reply_parameters as { message_id: number }).message_id,
    secondPost.message_id,
  );
  // The same choice again changes nothing.
  await desk.press(OLYA, choice.data, OLYA, choice.messageId, "ru");
  assert.equal(desk.sent(STAFF_CHAT).length, staff + 1);

  // Staff of the first request write; the user's reply to that message goes to the first.
  await desk.say({
    chatId: STAFF_CHAT,
    userId: STAFF,
    text: "Перезагрузите роутер",
    replyToMessageId: firstPost.message_id,
  });
  const fromStaff = await desk.api.waitFor(
    () => desk.sent(OLYA).find((s) => String(s.params.text).includes("Перезагрузите")),
    20_000,
    "the reply",
  );
  await desk.say({
    chatId: OLYA,
    text: "Помогло, спасибо!",
    replyToMessageId: fromStaff.message_id,
    languageCode: "ru",
  });
  const [answer] = (await desk.sends(STAFF_CHAT, staff + 2)).slice(staff + 1);
  assert.equal(answer!.params.text, `💬 #${first} · Оля\n\nПомогло, спасибо!`);

  // Without any open request the user is offered /new.
  await desk.press(STAFF_CHAT, `staff:done:${first}`, STAFF, firstPost.message_id);
  await desk.press(STAFF_CHAT, `staff:done:${second}`, STAFF, secondPost.message_id);
  const before = desk.sent(OLYA).length;
  await desk.say({ chatId: OLYA, text: "А ещё вопрос", languageCode: "ru" });
  assert.ok(
    desk.texts(OLYA, before).some((text) => /нет открытой заявки.*\/new/.test(text)),
    `after ${before}: ${JSON.stringify(desk.texts(OLYA))}`,
  );
  assert.equal((await desk.bot.stop()).code, 0);
});

Deno.test("conversation: a relay cut off by SIGKILL is delivered exactly once; a user who blocked the bot is reported to staff", async () => {
  await using desk = await Desk.start();
  const number = await desk.file(OLYA);
  const post = await desk.post(number);
  const staff = desk.sent(STAFF_CHAT).length;

  // The staff chat refuses for a moment: the relay is stored and owed, then the program dies.
  desk.api.failChat(STAFF_CHAT, { error_code: 400, description: "Bad Request: chat not found" }, 2);
  await desk.say({ chatId: OLYA, text: "Срочно!", languageCode: "ru" });
  await desk.restart("SIGKILL");
  const delivered = await desk.api.waitFor(
    () => {
      const copies = desk.sent(STAFF_CHAT).slice(staff)
        .filter((s) => String(s.params.text).endsWith("Срочно!"));
      return copies.length > 0 && copies;
    },
    60_000,
    "the relay after the restart",
  );
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.equal(
    desk.sent(STAFF_CHAT).slice(staff).filter((s) => String(s.params.text).endsWith("Срочно!"))
      .length,
    1,
  );
  assert.equal(delivered.length, 1, "exactly once");

  // The user blocks the bot; staff write anyway and are told in the request's thread.
  desk.api.blockUser(OLYA, { notify: false });
  await desk.say({
    chatId: STAFF_CHAT,
    userId: STAFF,
    text: "Вы здесь?",
    replyToMessageId: post.message_id,
  });
  const notice = await desk.api.waitFor(
    () => desk.sent(STAFF_CHAT).find((s) => String(s.params.text).startsWith("⚠️")),
    30_000,
    "the notice in the thread",
  );
  assert.equal(notice.params.text, "⚠️ The user blocked the bot: this message was not delivered.");
  assert.deepEqual(
    (notice.params.reply_parameters as { message_id: number }).message_id,
    post.message_id,
  );
  assert.equal((await desk.bot.stop()).code, 0);
});
