import assert from "node:assert/strict";
import {
  checkDescription,
  contactPhone,
  decodeAction,
  DESCRIPTION_MAX,
  encodeAction,
  formTag,
  normalizePhone,
  pageCount,
  type RequestAction,
} from "../../src/bot/features/requests_input.ts";
import { detailsView, listView, summaryText } from "../../src/bot/features/requests_view.ts";
import { translate } from "../../src/bot/i18n.ts";
import type { HistoryRow, RequestRow } from "../../src/db/requests.ts";
import { parseHtml } from "../fake_bot_api.ts";

Deno.test("checkDescription() accepts 10 to 2000 characters that are not a command", async (t) => {
  const cases: Array<[name: string, text: string, expected: ReturnType<typeof checkDescription>]> =
    [
      ["ten letters", "0123456789", { ok: true, value: "0123456789" }],
      ["trimmed", "  printer is on fire \n", { ok: true, value: "printer is on fire" }],
      ["nine letters", "012345678", { ok: false, problem: "too_short", length: 9 }],
      ["spaces around a short text", "   short    ", {
        ok: false,
        problem: "too_short",
        length: 5,
      }],
      ["only spaces", "      \n      ", { ok: false, problem: "too_short", length: 0 }],
      ["exactly the maximum", "x".repeat(DESCRIPTION_MAX), { ok: true, value: "x".repeat(2000) }],
      ["one over the maximum", "x".repeat(2001), { ok: false, problem: "too_long", length: 2001 }],
      ["emoji count as Telegram counts them (two)", "😀".repeat(1001), {
        ok: false,
        problem: "too_long",
        length: 2002,
      }],
      ["a command", "/help", { ok: false, problem: "command", length: 5 }],
      ["a command with words", "/start please help me now", {
        ok: false,
        problem: "command",
        length: 25,
      }],
      ["a command for a bot", "/new@service_bot", { ok: false, problem: "command", length: 16 }],
      ["a path is no command", "/var/log is full since Monday", {
        ok: true,
        value: "/var/log is full since Monday",
      }],
      ["a slash inside", "printer 3/4 is broken", { ok: true, value: "printer 3/4 is broken" }],
      ["markup stays as typed", "<b>bold</b> & *md*", { ok: true, value: "<b>bold</b> & *md*" }],
      ["right-to-left text", "الطابعة لا تعمل", { ok: true, value: "الطابعة لا تعمل" }],
    ];
  for (const [name, text, expected] of cases) {
    await t.step(name, () => assert.deepEqual(checkDescription(text), expected));
  }
});

Deno.test("normalizePhone() keeps 7 to 15 digits and the plus, or refuses", async (t) => {
  const cases: Array<[text: string, expected: string | null]> = [
    ["+7 (495) 123-45-67", "+74951234567"],
    ["+44 20 7946 0958", "+442079460958"],
    ["+380.44.123.45.67", "+380441234567"],
    ["89161234567", "89161234567"],
    [" 1234567 ", "1234567"],
    ["123456", null],
    ["+1234567890123456", null],
    ["123456789012345", "123456789012345"],
    ["abc", null],
    ["call me at 555 1234", null],
    ["+7 495 123 45 67 ext 2", null],
    ["++74951234567", null],
    ["74951234567+", null],
    ["+7 ((495)) 123-45-67", null],
    ["", null],
    ["/cancel", null],
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => assert.equal(normalizePhone(text), expected));
  }
});

Deno.test("contactPhone() adds the plus Telegram sometimes leaves out", async (t) => {
  const cases: Array<[text: string, expected: string | null]> = [
    ["79161234567", "+79161234567"],
    ["+79161234567", "+79161234567"],
    ["12", null],
  ];
  for (const [text, expected] of cases) {
    await t.step(text, () => assert.equal(contactPhone(text), expected));
  }
});

Deno.test("decodeAction() reads every button it encodes and refuses anything else", async (t) => {
  const tag = formTag("0b5e9a3c-1d2f-4e5a-8b6c-7d8e9f0a1b2c");
  assert.equal(tag, "0b5e9a3c");
  const actions: RequestAction[] = [
    { kind: "category", index: 0, tag },
    { kind: "category", index: 19, tag },
    { kind: "confirm", tag },
    { kind: "edit", tag },
    { kind: "cancel", tag },
    { kind: "page", page: 0 },
    { kind: "page", page: 12 },
    { kind: "open", number: 1, page: 0 },
    { kind: "open", number: 987654321, page: 3 },
  ];
  for (const action of actions) {
    const data = encodeAction(action);
    await t.step(`${data} round-trips`, () => {
      assert.ok(new TextEncoder().encode(data).length <= 64);
      assert.deepEqual(decodeAction(data), action);
    });
  }
  const forged = [
    "",
    "rq",
    "rq:ok",
    "rq:ok:",
    "rq:ok:ZZZZZZZZ",
    "rq:ok:0b5e9a3",
    "rq:ok:0b5e9a3c:extra",
    "rq:boom:0b5e9a3c",
    "rq:c:-1:0b5e9a3c",
    "rq:c:1.5:0b5e9a3c",
    "rq:c:01:0b5e9a3c",
    "rq:c:x:0b5e9a3c",
    "my:p:-1",
    "my:p:abc",
    "my:p:1e3",
    "my:p:99999999999999",
    "my:p:",
    "my:o:0:0",
    "my:o:5",
    "my:o:5:0:1",
    "my:x:1",
    "xx:p:1",
  ];
  for (const data of forged) {
    await t.step(
      `${JSON.stringify(data)} is refused`,
      () => assert.equal(decodeAction(data), null),
    );
  }
});

Deno.test("pageCount() is at least one page of five", async (t) => {
  const cases: Array<[total: number, pages: number]> = [[0, 1], [1, 1], [5, 1], [6, 2], [10, 2], [
    11,
    3,
  ]];
  for (const [total, pages] of cases) {
    await t.step(`${total} → ${pages}`, () => assert.equal(pageCount(total), pages));
  }
});

const t = (key: Parameters<typeof translate>[1], params?: Record<string, string | number>) =>
  translate("en", key, params);

const NASTY = `<b>bold</b> & "quotes" <a href="x">link</a> *md* _it_ [x](y) 😀 مرحبا &amp;`;

const at = (hours: number, minutes: number) => new Date(Date.UTC(2026, 11, 1, hours, minutes));

function row(number: number, description = NASTY): RequestRow {
  const at = new Date("2026-12-01T06:30:00Z");
  return {
    number,
    userId: 1,
    category: "Net<work> & Co",
    description,
    contact: "+74951234567",
    status: "new",
    assigneeId: null,
    createdAt: at,
    updatedAt: at,
    closedAt: null,
    staffMessageId: null,
    staffThreadId: null,
    takenAt: null,
    rejectReason: null,
    rating: null,
    ratingComment: null,
    remindersSent: 0,
  };
}

Deno.test("the request views escape user text so that Telegram parses them", async (t2) => {
  await t2.step("summaryText() shows the description as typed", () => {
    const html = summaryText(t, { category: "Net<work> & Co", description: NASTY, contact: "+7" });
    const parsed = parseHtml(html);
    assert.ok(parsed.text.includes(NASTY), parsed.text);
    assert.ok(parsed.text.includes("Net<work> & Co"));
    assert.deepEqual(parsed.entities.map((e) => e.type).sort(), ["bold", "bold", "italic"]);
  });
  await t2.step("summaryText() of the longest description fits in one message", () => {
    const html = summaryText(t, {
      category: "x".repeat(40),
      description: "<&>".repeat(DESCRIPTION_MAX / 4) + "😀".repeat(DESCRIPTION_MAX / 8),
      contact: "+123456789012345",
    });
    assert.ok(parseHtml(html).text.length <= 4096);
  });
  await t2.step("listView() and detailsView() show escaped text", () => {
    const list = listView(t, [row(7), row(6)], 7, 0);
    assert.ok(
      parseHtml(list.text).text.includes("#7 · Net<work> & Co · new · 2026-12-01 06:30 UTC"),
    );
    assert.deepEqual(list.keyboard?.inline_keyboard.at(-1)?.map((b) => b.text), ["▶"]);
    const history: HistoryRow[] = [
      { actorId: 1, action: "created", fromStatus: null, toStatus: "new", at: at(6, 30) },
      { actorId: 9, action: "take", fromStatus: "new", toStatus: "in_progress", at: at(7, 5) },
      { actorId: 9, action: "close", fromStatus: "in_progress", toStatus: "done", at: at(9, 0) },
    ];
    const details = detailsView(t, row(7), history, 1);
    const text = parseHtml(details.text).text;
    assert.ok(text.includes(NASTY), text);
    assert.ok(
      text.endsWith(
        "History\n2026-12-01 06:30 UTC — filed\n2026-12-01 07:05 UTC — in progress\n" +
          "2026-12-01 09:00 UTC — done",
      ),
      text,
    );
    assert.deepEqual(details.keyboard?.inline_keyboard, [
      [{ text: "💬 Conversation", callback_data: "my:m:7:0:1" }],
      [{ text: "◀ Back to the list", callback_data: "my:p:1" }],
    ]);
  });
  await t2.step("detailsView() shows the newest 20 changes of a long history", () => {
    const history: HistoryRow[] = Array.from({ length: 45 }, (_, i) => ({
      actorId: 9,
      action: i % 2 ? "take" : "reopen",
      fromStatus: null,
      toStatus: i % 2 ? "in_progress" : "new",
      at: at(0, i),
    }));
    const text = parseHtml(detailsView(t, row(7, "x".repeat(4096)), history, 0).text).text;
    assert.ok(text.length <= 4096);
    assert.equal(text.match(/ UTC — /g)?.length, 20);
    assert.ok(text.endsWith("00:44 UTC — new"), text.slice(-40));
  });
});
