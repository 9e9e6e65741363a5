import assert from "node:assert/strict";
import { checkUpdate } from "../../src/bot/update_check.ts";

const chat = { id: 5, type: "private" };
const from = { id: 5, is_bot: false, first_name: "A" };
const message = (fields: Record<string, unknown>) => ({
  message_id: 1,
  date: 1,
  chat,
  from,
  ...fields,
});

Deno.test("checkUpdate() names the path of the first field that breaks its rule", async (t) => {
  const cases: Array<[string, unknown, string]> = [
    ["a body that is no object", [1], "the body is not a JSON object"],
    ["no update_id", { message: message({}) }, "update_id is not a non-negative integer"],
    [
      "two payloads",
      { update_id: 1, message: {}, edited_message: {} },
      "an update has one payload, this one has 2",
    ],
    ["a null message", { update_id: 1, message: null }, "message is not an object"],
    ["no chat", { update_id: 1, message: { message_id: 1 } }, "message.chat is missing"],
    [
      "a language code that is a number",
      { update_id: 1, message: message({ from: { ...from, language_code: 5 } }) },
      "message.from.language_code is not a string",
    ],
    [
      "a bad entity in a list",
      {
        update_id: 1,
        message: message({
          text: "/start x",
          entities: [{ type: "bot_command", offset: 0, length: 6 }, {
            type: "x",
            offset: 1.5,
            length: 1,
          }],
        }),
      },
      "message.entities[1].offset is not an integer",
    ],
    [
      "too many photo sizes",
      {
        update_id: 1,
        message: message({ photo: Array.from({ length: 101 }, () => ({ file_id: "f" })) }),
      },
      "message.photo has more than 100 items",
    ],
    [
      "entities that are no list",
      { update_id: 1, message: message({ entities: {} }) },
      "message.entities is not an array",
    ],
    [
      "a reply whose chat id is a string",
      {
        update_id: 1,
        message: message({ reply_to_message: message({ chat: { id: "5", type: "private" } }) }),
      },
      "message.reply_to_message.chat.id is not an integer",
    ],
    [
      "a date that is no number",
      { update_id: 1, message: message({ date: "today" }) },
      "message.date is not a number",
    ],
    [
      "a button press whose sender is no object",
      { update_id: 1, callback_query: { id: "q", from: "me" } },
      "callback_query.from is not an object",
    ],
    [
      "an unknown type with a bad sender",
      { update_id: 1, inline_query: { from: { id: "x" } } },
      "inline_query.from.id is not an integer",
    ],
    [
      "a member update whose new member's flag is a string",
      {
        update_id: 1,
        my_chat_member: {
          chat,
          from,
          new_chat_member: { status: "member", user: { ...from, is_bot: "no" } },
          old_chat_member: { status: "left", user: from },
        },
      },
      "my_chat_member.new_chat_member.user.is_bot is not a boolean",
    ],
  ];
  for (const [name, body, problem] of cases) {
    await t.step(name, () => {
      assert.deepEqual(checkUpdate(body), { ok: false, problem });
    });
  }
});

Deno.test("checkUpdate() passes a well-formed update and replaces NULs in its texts", () => {
  const body = {
    update_id: 3,
    message: message({ text: "a\u0000b", entities: [], photo: [{ file_id: "f" }] }),
  };
  const checked = checkUpdate(body);
  assert.equal(checked.ok, true);
  assert.equal(checked.ok && (checked.update.message as { text: string }).text, "a\uFFFDb");
});
