/**
 * A broadcast with two webhook instances behind a balancer, sharing Redis and Postgres: one
 * instance sends (it holds the jobs lease) while users talk to both; it is SIGKILLed half way
 * and the other takes the broadcast over. Together they send each subscriber exactly one copy
 * and never more than `BROADCAST_RATE` in any second, because the pace lives in Redis.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import { startRoundRobinProxy } from "../support/round_robin_proxy.ts";
import {
  busiestSecond,
  copiesPerUser,
  copyTimes,
  floodRefusals,
  seedSubscribers,
  sendBroadcast,
  summaryOf,
} from "./broadcasts.ts";
import { BotProcess, freePort, WEBHOOK_PATH } from "./program.ts";

const ADMIN = 720;
const CHATTY = [721, 722];
const RATE = 25;
const SUBSCRIBERS = Array.from({ length: 300 }, (_, i) => 40_001 + i);
const JOBS_LEADER = /^took the jobs lease as /;

Deno.test("broadcast: two webhook instances share the pace; the survivor of a SIGKILL finishes it, each subscriber getting one copy", async () => {
  await using api = await FakeBotApi.start({ floodLimits: true });
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("broadcast_instances");
  const ports = [freePort(), freePort()];
  await using proxy = startRoundRobinProxy(ports.map((port) => `http://127.0.0.1:${port}`));
  const shared = {
    BOT_MODE: "webhook",
    WEBHOOK_URL: `${proxy.url}${WEBHOOK_PATH}`,
    WEBHOOK_SECRET: "broadcast_e2e-Secret_0123456789",
    REDIS_URL: redis.url,
    DATABASE_URL: url,
    ADMIN_IDS: String(ADMIN),
    BROADCAST_RATE: String(RATE),
  };
  await using first = await BotProcess.start({
    api,
    env: { ...shared, HTTP_PORT: String(ports[0]) },
  });
  await using second = await BotProcess.start({
    api,
    env: { ...shared, HTTP_PORT: String(ports[1]) },
  });
  const bots = [first, second];
  await Promise.all(bots.map((bot) => bot.waitReady()));
  for (const chat of [ADMIN, ...CHATTY]) {
    api.pushMessage({ chatId: chat, text: "/stop" });
    await api.waitFor(() => api.sentMessages(chat).length > 0, 20_000, "the answer to /stop");
  }
  await seedSubscribers(url, SUBSCRIBERS);
  // Both instances serve the admin's steps (the dialog lives in Redis).
  await sendBroadcast(api, ADMIN, "The office is closed on Friday");
  const sender = await api.waitFor(
    () => bots.find((bot) => bot.logs(JOBS_LEADER).length > 0),
    10_000,
    "the instance that runs the jobs",
  );
  const survivor = bots.find((bot) => bot !== sender)!;

  // Users keep talking to both instances; half way, the sending instance dies.
  const talk = setInterval(() => {
    for (const chat of CHATTY) api.pushMessage({ chatId: chat, text: "/help" });
  }, 1500);
  try {
    await api.waitFor(() => copyTimes(api, SUBSCRIBERS).length >= 150, 30_000, "150 copies");
    const lastSend = copyTimes(api, SUBSCRIBERS).at(-1)!;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastSend + 15 - Date.now())));
    sender.kill("SIGKILL");
    await sender.status;
    const atKill = copyTimes(api, SUBSCRIBERS).length;

    // The survivor takes the jobs lease once it runs out, and the claim of the recipient in
    // flight at the kill once that runs out.
    const summary = await summaryOf(api, ADMIN, 60_000);
    assert.match(summary, /^✅ Broadcast #1 finished in \d+ seconds: sent 300, failed 0/);
    assert.equal(survivor.logs(JOBS_LEADER).length, 1, "the survivor took the jobs over");
    assert.ok(atKill < SUBSCRIBERS.length, "the kill came before the end");

    const wrong = [...copiesPerUser(api, SUBSCRIBERS)].filter(([, n]) => n !== 1);
    assert.deepEqual(wrong, [], `exactly one copy each (${atKill} before the kill)`);
    const times = copyTimes(api, SUBSCRIBERS);
    assert.ok(busiestSecond(times) <= RATE, `busiest second: ${busiestSecond(times)} > ${RATE}`);
    assert.ok(busiestSecond(api.sendTimes()) <= 30, "all sends together stay under 30/s");
    assert.equal(floodRefusals(api), 0, "Telegram never had to refuse a message");
    // Both instances answered the users meanwhile.
    for (const bot of bots) {
      assert.ok(bot.logs(/^update /).some((line) => CHATTY.includes(Number(line.chat_id))));
    }
  } finally {
    clearInterval(talk);
  }
  assert.equal((await survivor.stop()).code, 0);
});
