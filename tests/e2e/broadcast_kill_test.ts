/**
 * A broadcast survives a stop and a crash: while it sends to 300 subscribers the program is
 * stopped with SIGTERM (the job checkpoints at once) and later SIGKILLed, and started again each
 * time; every subscriber ends up with exactly one copy, and the pace across the restarts stays
 * within `BROADCAST_RATE` (the pace is kept in Redis). The kill lands between two sends, outside
 * the documented window (between Telegram's answer and the mark) in which a crash sends one
 * message twice.
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

const ADMIN = 710;
const RATE = 25;
const SUBSCRIBERS = Array.from({ length: 300 }, (_, i) => 30_001 + i);

Deno.test("broadcast: stopped by SIGTERM, then SIGKILLed, and restarted each time, each of 300 subscribers gets it exactly once", async () => {
  await using api = await FakeBotApi.start({ floodLimits: true });
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("broadcast_kill");
  const cwd = await Deno.makeTempDir({ prefix: "bot-broadcast-kill-" });
  const env = {
    REDIS_URL: redis.url,
    DATABASE_URL: url,
    ADMIN_IDS: String(ADMIN),
    BROADCAST_RATE: String(RATE),
  };
  let bot = await BotProcess.start({ api, cwd, env });
  try {
    await bot.waitReady();
    api.pushMessage({ chatId: ADMIN, text: "/stop" });
    await api.waitFor(() => api.sentMessages(ADMIN).length > 0, 20_000, "the answer to /stop");
    await seedSubscribers(url, SUBSCRIBERS);
    await sendBroadcast(api, ADMIN, "New opening hours from Monday");

    // A third of the way: SIGTERM. The job stops between two sends, gives back the recipient
    // it had claimed, and the program exits at once, well within SHUTDOWN_TIMEOUT.
    await api.waitFor(() => copyTimes(api, SUBSCRIBERS).length >= 100, 30_000, "100 copies");
    const stopping = Date.now();
    assert.equal((await bot.stop()).code, 0);
    assert.ok(Date.now() - stopping < 5000, `the stop took ${Date.now() - stopping} ms`);
    const atTerm = copyTimes(api, SUBSCRIBERS).length;
    // Nothing was left claimed: after the restart it goes on at once, not after a claim ran out.
    const db = await openTestDatabase(url);
    try {
      const [open] = await db.sql<{ sent: number; claimed: number }[]>`
        select count(*) filter (where status = 'sent')::int as sent,
          count(*) filter (where status = 'claimed')::int as claimed
        from broadcast_recipients`;
      assert.deepEqual({ ...open }, { sent: atTerm, claimed: 0 });
    } finally {
      await db.close();
    }
    bot = await BotProcess.start({ api, cwd, env });
    await bot.waitReady(60_000);

    // Two thirds of the way, a moment after a send, the program dies without a chance to
    // clean up.
    await api.waitFor(() => copyTimes(api, SUBSCRIBERS).length >= 200, 30_000, "200 copies");
    const lastSend = copyTimes(api, SUBSCRIBERS).at(-1)!;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastSend + 15 - Date.now())));
    bot.kill("SIGKILL");
    await bot.status;
    const atKill = copyTimes(api, SUBSCRIBERS).length;
    assert.ok(atKill < SUBSCRIBERS.length, "the kill came before the end");

    bot = await BotProcess.start({ api, cwd, env });
    await bot.waitReady(60_000);
    // The recipient claimed at the kill waits out its claim (10 s) before it is sent to.
    const summary = await summaryOf(api, ADMIN, 60_000);
    assert.match(
      summary,
      /^✅ Broadcast #1 finished in \d+ seconds: sent 300, failed 0, blocked 0/,
    );

    const wrong = [...copiesPerUser(api, SUBSCRIBERS)].filter(([, n]) => n !== 1);
    assert.deepEqual(
      wrong,
      [],
      `exactly one copy each (${atTerm} before the stop, ${atKill} before the kill)`,
    );
    const times = copyTimes(api, SUBSCRIBERS);
    assert.ok(busiestSecond(times) <= RATE, `busiest second: ${busiestSecond(times)} > ${RATE}`);
    assert.equal(floodRefusals(api), 0);
    const after = await openTestDatabase(url);
    try {
      const states = await after.sql<{ status: string; n: number }[]>`
        select status, count(*)::int as n from broadcast_recipients group by status`;
      assert.deepEqual(states.map((row) => ({ ...row })), [{ status: "sent", n: 300 }]);
    } finally {
      await after.close();
    }
    assert.equal((await bot.stop()).code, 0);
  } finally {
    await bot[Symbol.asyncDispose]();
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});
