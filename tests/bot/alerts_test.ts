import assert from "node:assert/strict";
import { Bot } from "grammy";
import { BOT_INFO } from "../../bench/in_memory_bot_api.ts";
import { AlertThrottle, errorKey, firstStackFrame } from "../../src/bot/alerts.ts";
import type { BotContext } from "../../src/bot/context.ts";
import { translate } from "../../src/bot/i18n.ts";
import { errorsStage } from "../../src/bot/middleware/errors.ts";
import { tokenSecrets } from "../../src/config.ts";
import { logger, redactor } from "../../src/log.ts";
import { textMessage } from "../updates.ts";

const MINUTE = 60_000;

/** A throttle on a clock the test moves. */
function throttleAt(start = 0, options: { maxErrors?: number } = {}) {
  let now = start;
  const throttle = new AlertThrottle({ now: () => now, ...options });
  return { throttle, at: (ms: number) => now = ms };
}

Deno.test("AlertThrottle.check() alerts once per error per 5 minutes and counts the repeats", async (t) => {
  // Each row: occurrences as [time in ms, error key], and the decisions expected for them.
  const cases: {
    name: string;
    events: [number, string][];
    expected: ({ alert: true; suppressed: number } | { alert: false })[];
  }[] = [
    {
      name: "the first occurrence is alerted with nothing suppressed",
      events: [[0, "a"]],
      expected: [{ alert: true, suppressed: 0 }],
    },
    {
      name: "repeats inside the window are held back",
      events: [[0, "a"], [1, "a"], [4 * MINUTE, "a"], [5 * MINUTE - 1, "a"]],
      expected: [{ alert: true, suppressed: 0 }, { alert: false }, { alert: false }, {
        alert: false,
      }],
    },
    {
      name: "the first occurrence after the window is alerted with the count of held-back repeats",
      events: [
        [0, "a"],
        ...Array.from({ length: 49 }, (_, i) => [1000 + i, "a"] as [number, string]),
        [5 * MINUTE, "a"],
      ],
      expected: [
        { alert: true, suppressed: 0 },
        ...Array.from({ length: 49 }, () => ({ alert: false as const })),
        { alert: true, suppressed: 49 },
      ],
    },
    {
      name: "the window restarts at each alert and the count starts again",
      events: [[0, "a"], [1, "a"], [5 * MINUTE, "a"], [6 * MINUTE, "a"], [10 * MINUTE, "a"]],
      expected: [
        { alert: true, suppressed: 0 },
        { alert: false },
        { alert: true, suppressed: 1 },
        { alert: false },
        { alert: true, suppressed: 1 },
      ],
    },
    {
      name: "a quiet error alerts again after the window with nothing suppressed",
      events: [[0, "a"], [60 * MINUTE, "a"]],
      expected: [{ alert: true, suppressed: 0 }, { alert: true, suppressed: 0 }],
    },
    {
      name: "different errors are throttled independently",
      events: [[0, "a"], [1, "b"], [2, "a"], [3, "b"], [4, "c"]],
      expected: [
        { alert: true, suppressed: 0 },
        { alert: true, suppressed: 0 },
        { alert: false },
        { alert: false },
        { alert: true, suppressed: 0 },
      ],
    },
  ];
  for (const { name, events, expected } of cases) {
    await t.step(name, () => {
      const { throttle, at } = throttleAt();
      const decisions = events.map(([time, key]) => {
        at(time);
        return throttle.check(key);
      });
      assert.deepEqual(decisions, expected);
    });
  }
});

Deno.test("AlertThrottle.check() forgets the least recently alerted error beyond maxErrors", () => {
  const { throttle, at } = throttleAt(0, { maxErrors: 2 });
  at(0);
  throttle.check("a");
  at(1);
  throttle.check("b");
  at(2);
  throttle.check("c"); // "a" is forgotten
  at(3);
  assert.deepEqual(throttle.check("a"), { alert: true, suppressed: 0 });
  assert.deepEqual(throttle.check("c"), { alert: false });
});

Deno.test("errorKey() is the message and the first stack frame", async (t) => {
  function thrownHere(message: string): Error {
    return new Error(message);
  }
  await t.step("the same error thrown at the same place has the same key", () => {
    const keys = [1, 2].map(() => errorKey(thrownHere("boom")));
    assert.equal(keys[0], keys[1]);
    assert.match(keys[0]!, /^Error: boom\n\s*at thrownHere /);
  });
  await t.step("another message or another place gives another key", () => {
    assert.notEqual(errorKey(thrownHere("boom")), errorKey(thrownHere("bang")));
    assert.notEqual(errorKey(thrownHere("boom")), errorKey(new Error("boom")));
  });
  await t.step("a thrown non-error is keyed by its text", () => {
    assert.equal(errorKey("plain"), "plain");
  });
  await t.step("firstStackFrame() skips the message lines", () => {
    assert.equal(
      firstStackFrame(
        "Error: two\nlines\n    at f (file:///a.ts:1:2)\n    at g (file:///b.ts:3:4)",
      ),
      "at f (file:///a.ts:1:2)",
    );
    assert.equal(firstStackFrame(undefined), "");
  });
});

/**
 * A bot whose Bot API calls are recorded in `sent` (chat and text) and answered as sent, with
 * the context the errors stage needs: a logger, the update type and `locale` for the user.
 */
function recordingBot(token: string, locale: "en" | "uk") {
  const sent: { chat: number; text: string }[] = [];
  const bot = new Bot<BotContext>(token, {
    botInfo: BOT_INFO,
    client: {
      apiRoot: "http://bot-api.invalid",
      fetch: ((_url: string, init?: RequestInit) => {
        const body = JSON.parse(String(init?.body ?? "{}"));
        sent.push({ chat: Number(body.chat_id), text: body.text });
        return Promise.resolve(Response.json({
          ok: true,
          result: { message_id: 1, date: 0, chat: { id: body.chat_id, type: "private" } },
        }));
      }) as never,
    },
  });
  bot.use((ctx, next) => {
    ctx.log = logger("test");
    ctx.updateType = "message";
    ctx.t = (key, params) => translate(locale, key, params);
    return next();
  });
  return { bot, sent };
}

Deno.test("errorsStage() alerts each admin, and the next alert after the window counts the repeats", async () => {
  let now = 0;
  const { bot, sent } = recordingBot("123456:TEST-token_abcdefghijklmnopqrstuvwxyz", "uk");
  bot.use(errorsStage({
    adminIds: [900, 901],
    alertLocale: "en",
    throttle: new AlertThrottle({ now: () => now }),
  }));
  bot.command("boom", () => {
    throw new Error("kaboom");
  });
  const boomAt = async (ms: number, updateId: number) => {
    now = ms;
    await bot.handleUpdate(textMessage({ updateId, chatId: 5, text: "/boom" }));
  };
  for (let i = 0; i < 49; i++) await boomAt(i * 1000, 1 + i);
  await boomAt(5 * MINUTE + 1, 50);
  const toAdmin = (chat: number) => sent.filter((m) => m.chat === chat).map((m) => m.text);
  assert.equal(sent.filter((m) => m.chat === 5).length, 50, "every update is apologised for");
  assert.match(sent.find((m) => m.chat === 5)!.text, /Вибачте/, "in the user's language");
  assert.deepEqual(toAdmin(900), toAdmin(901));
  const [first, second] = toAdmin(900);
  assert.equal(toAdmin(900).length, 2);
  assert.match(first!, /^⚠️ <b>A handler failed<\/b>\nUpdate 1 \(message\), chat 5, user 5 User/);
  assert.doesNotMatch(first!, /more times/);
  assert.match(second!, /Update 50 /);
  assert.match(second!, /…and it happened 48 more times since the previous alert\.$/);
});

Deno.test("errorsStage() quotes no secret in an alert: the error passes through `redact`", async () => {
  const token = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";
  const { bot, sent } = recordingBot(token, "en");
  bot.use(errorsStage({ adminIds: [900], redact: redactor(tokenSecrets(token)) }));
  bot.command("file", () => {
    // What a failed download says: its URL carries the token.
    throw new Error(
      `error sending request for url (https://api.telegram.org/file/bot${token}/a.pdf)`,
    );
  });
  await bot.handleUpdate(textMessage({ updateId: 1, chatId: 5, text: "/file" }));
  const alerts = sent.filter((m) => m.chat === 900).map((m) => m.text);
  assert.equal(alerts.length, 1);
  assert.doesNotMatch(alerts[0]!, /TEST-token/);
  assert.match(alerts[0]!, /file\/bot\[redacted\]\/a\.pdf/);
});
