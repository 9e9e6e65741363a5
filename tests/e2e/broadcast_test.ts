/**
 * A broadcast as an admin and the subscribers see it, against the real program with Redis and
 * Postgres and a fake Telegram that enforces its flood limits: 300 subscribers get the message
 * exactly once, never more than `BROADCAST_RATE` in any second; those who blocked the bot are
 * marked and counted, and skipped by the next broadcast, which the admin cancels part way; a
 * user chatting meanwhile still gets answers at once.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import {
  busiestSecond,
  copiesPerUser,
  copyTimes,
  floodRefusals,
  openTestDatabase,
  seedSubscribers,
  sendBroadcast,
  summaryOf,
} from "./broadcasts.ts";
import { BotProcess } from "./program.ts";

const ADMIN = 700;
const CHATTY = 701;
const RATE = 25;
const SUBSCRIBERS = Array.from({ length: 300 }, (_, i) => 20_001 + i);
/** Ten subscribers who blocked the bot without the bot hearing of it yet. */
const BLOCKED = SUBSCRIBERS.filter((_, i) => i % 30 === 7);

Deno.test("broadcast: 300 subscribers get it exactly once at BROADCAST_RATE at most, blocked users are marked, replies stay fast", async () => {
  await using api = await FakeBotApi.start({ floodLimits: true });
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("broadcast");
  await using bot = await BotProcess.start({
    api,
    env: {
      REDIS_URL: redis.url,
      DATABASE_URL: url,
      ADMIN_IDS: String(ADMIN),
      BROADCAST_RATE: String(RATE),
    },
  });
  await bot.waitReady();
  // The admin and the chatty user do not take announcements: the audience is the 300.
  for (const chat of [ADMIN, CHATTY]) {
    api.pushMessage({ chatId: chat, text: "/stop" });
    await api.waitFor(() => api.sentMessages(chat).length > 0, 20_000, "the answer to /stop");
  }
  await seedSubscribers(url, SUBSCRIBERS);
  for (const id of BLOCKED) api.blockUser(id, { notify: false });

  const { announced } = await sendBroadcast(api, ADMIN, "Maintenance tonight from 22:00 UTC");
  assert.equal(announced, SUBSCRIBERS.length);

  // A user asks for help every 1.2 s (Telegram allows a chat about one message a second)
  // while the broadcast runs.
  const latencies: number[] = [];
  const chatting = (async () => {
    for (let i = 0; i < 8; i++) {
      const before = api.sentMessages(CHATTY).length;
      const asked = Date.now();
      api.pushMessage({ chatId: CHATTY, text: "/help" });
      await api.waitFor(() => api.sentMessages(CHATTY).length > before, 10_000, "an answer");
      latencies.push(api.sentOf("sendMessage", CHATTY).at(-1)!.at - asked);
      await new Promise((resolve) => setTimeout(resolve, 1200));
    }
  })();

  const summary = await summaryOf(api, ADMIN, 40_000);
  await chatting;
  assert.match(
    summary,
    /^✅ Broadcast #1 finished in \d+ seconds: sent 290, failed 0, blocked 10 \(of 300\)\.$/,
  );

  const copies = copiesPerUser(api, SUBSCRIBERS);
  const blocked = new Set(BLOCKED);
  const wrong = [...copies].filter(([id, n]) => n !== (blocked.has(id) ? 0 : 1));
  assert.deepEqual(wrong, [], "each reachable subscriber got exactly one copy");
  const times = copyTimes(api, SUBSCRIBERS);
  assert.ok(busiestSecond(times) <= RATE, `busiest second: ${busiestSecond(times)} > ${RATE}`);
  assert.ok(busiestSecond(api.sendTimes()) <= 30, "all sends together stay under Telegram's 30/s");
  assert.equal(floodRefusals(api), 0, "Telegram never had to refuse a message");

  assert.equal(latencies.length, 8);
  assert.ok(latencies.every((ms) => ms < 1000), `reply latencies: ${latencies.join(", ")} ms`);

  const db = await openTestDatabase(url);
  try {
    const marked = await db.sql<{ id: number }[]>`
      select id from users where blocked_at is not null order by id`;
    assert.deepEqual(marked.map((row) => row.id), BLOCKED, "a 403 marks the user as blocked");
    const [row] = await db.sql<{ status: string; total: number; sent: number; blocked: number }[]>`
      select status, total, sent, blocked from broadcasts`;
    assert.deepEqual({ ...row }, { status: "done", total: 300, sent: 290, blocked: 10 });
  } finally {
    await db.close();
  }

  // A second one, typed after the command, goes to the 290 who can still get it, and is
  // cancelled part way.
  const asked = (text: string) => {
    const before = api.sentMessages(ADMIN).length;
    api.pushMessage({ chatId: ADMIN, text });
    return api.waitFor(() => api.sentMessages(ADMIN)[before], 10_000, `the answer to ${text}`);
  };
  const preview = await asked("/broadcast The office is closed tomorrow");
  assert.equal(preview.text, "The office is closed tomorrow");
  // The offer follows the preview a second later at most: Telegram's pace for one chat.
  const offer = await api.waitFor(
    () => {
      const last = api.sentOf("sendMessage", ADMIN).at(-1);
      return last && last.params.text !== preview.text ? last : undefined;
    },
    10_000,
    "the offer to send it",
  );
  assert.match(String(offer.params.text), /It goes to 290 subscribers\./);
  api.pushCallbackQuery({ chatId: ADMIN, data: "bc:send:2", messageId: offer.message_id });
  const firstCopies = times.length;
  await api.waitFor(() => copyTimes(api, SUBSCRIBERS).length >= firstCopies + 20, 20_000, "#2");
  // Its answer and the summary race each other (the job sees the cancel at once).
  api.pushMessage({ chatId: ADMIN, text: "/broadcast_cancel" });
  await api.waitFor(
    () =>
      api.sentMessages(ADMIN).some((m) => m.text === "Stopping broadcast #2; its summary follows."),
    10_000,
    "the answer to /broadcast_cancel",
  );
  const cancelled = await api.waitFor(
    () => api.sentMessages(ADMIN).find((m) => m.text.startsWith("⏹ Broadcast #2")),
    20_000,
    "the summary of #2",
  );
  const match = /sent (\d+), failed 0, blocked 0; (\d+) not sent \(of 290\)\.$/.exec(
    cancelled.text,
  );
  assert.ok(match, cancelled.text);
  const [sentBeforeCancel, unsent] = [Number(match[1]), Number(match[2])];
  assert.equal(sentBeforeCancel + unsent, 290);
  assert.ok(unsent > 0, "the cancel came before the end");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(copyTimes(api, SUBSCRIBERS).length, firstCopies + sentBeforeCancel, "no copy after");
  const triedBlocked = api.callsOf("copyMessage").filter((p) => blocked.has(Number(p.chat_id)));
  assert.equal(triedBlocked.length, BLOCKED.length, "blocked users were tried once, in #1 only");

  // The admin can list both afterwards.
  const list = (await asked("/broadcasts")).text;
  assert.match(
    list,
    /#2 [\d-]+ [\d:]+ UTC by 700: cancelled; sent \d+ of 290, failed 0, blocked 0/,
  );
  assert.match(
    list,
    /#1 \d{4}-\d\d-\d\d \d\d:\d\d UTC by 700: done; sent 290 of 300, failed 0, blocked 10/,
  );
  assert.equal((await bot.stop()).code, 0);
});
