import assert from "node:assert/strict";
import type { Update } from "grammy/types";
import { chatKey, updateIds, updateType } from "../../src/bot/update_info.ts";
import { textMessage } from "../updates.ts";

const user = { id: 7, is_bot: false, first_name: "U" };
const cases: Array<
  { name: string; update: Update; type: string; key: string | null; ids: object }
> = [
  {
    name: "a private message",
    update: textMessage({ updateId: 1, chatId: 7, text: "hi" }),
    type: "message",
    key: "chat:7",
    ids: { chat_id: 7, user_id: 7 },
  },
  {
    name: "a button press on a group message orders by the group, not the presser",
    update: {
      update_id: 2,
      callback_query: {
        id: "q",
        from: user,
        chat_instance: "c",
        data: "x",
        message: { message_id: 1, date: 0, chat: { id: -100, type: "group", title: "G" } },
      },
    } as Update,
    type: "callback_query",
    key: "chat:-100",
    ids: { chat_id: -100, user_id: 7 },
  },
  {
    name: "an inline button press without a message orders by the sender",
    update: {
      update_id: 3,
      callback_query: { id: "q", from: user, chat_instance: "c", inline_message_id: "i" },
    } as Update,
    type: "callback_query",
    key: "user:7",
    ids: { user_id: 7 },
  },
  {
    name: "a poll's new state belongs to nobody",
    update: {
      update_id: 4,
      poll: {
        id: "p",
        question: "?",
        options: [],
        total_voter_count: 0,
        is_closed: false,
        is_anonymous: true,
        type: "regular",
        allows_multiple_answers: false,
      },
    } as unknown as Update,
    type: "poll",
    key: null,
    ids: {},
  },
];

Deno.test("updateType(), chatKey() and updateIds() read the chat and sender of each kind of update", async (t) => {
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.equal(updateType(c.update), c.type);
      assert.equal(chatKey(c.update), c.key);
      assert.deepEqual(updateIds(c.update), c.ids);
    });
  }
});
