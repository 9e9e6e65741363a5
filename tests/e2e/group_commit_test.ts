/**
 * The gate's and commits' store calls of updates handled at the same time travel to Redis as
 * one batch (`src/store/script_batch.ts`). These tests run the real program in webhook mode on a
 * real Redis and check that the crash guarantees hold through batches: an update answered 200
 * is never handled again, one cut off by a SIGKILL is handled when Telegram delivers it again.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { type RedisServer, startRedis } from "../support/redis_server.ts";
import { textMessage } from "../updates.ts";
import { BotProcess, freePort, WEBHOOK_PATH, webhookEnv } from "./program.ts";

const SECRET = "group_commit-Secret_0123456789";
const CHATS = 40;
const FIRST_CHAT = 4_200;

/** Script round trips Redis counted so far (EVALSHA and EVAL). */
async function scriptCalls(redis: RedisServer): Promise<number> {
  const { stdout } = await new Deno.Command("redis-cli", {
    args: ["-p", String(redis.port), "INFO", "commandstats"],
  }).output();
  let calls = 0;
  for (
    const match of new TextDecoder().decode(stdout).matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)
  ) {
    calls += Number(match[1]);
  }
  return calls;
}

/** One `/help` per chat, as Telegram would POST them. */
function bodies(): string[] {
  return Array.from(
    { length: CHATS },
    (_, i) =>
      JSON.stringify(textMessage({ updateId: 90_000 + i, chatId: FIRST_CHAT + i, text: "/help" })),
  );
}

/** POSTs `body`, each on a connection of its own; the status, or 0 when the connection broke. */
async function post(bot: BotProcess, body: string): Promise<number> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const res = await fetch(`${bot.url}${WEBHOOK_PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET },
      body,
      client,
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  } finally {
    client.close();
  }
}

function start(api: FakeBotApi, redis: RedisServer): Promise<BotProcess> {
  return BotProcess.start({
    api,
    env: { ...webhookEnv(freePort(), SECRET), REDIS_URL: redis.url },
  });
}

Deno.test("group commit: updates of 40 chats at once share their round trips to Redis", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using bot = await start(api, redis);
  await bot.waitReady();
  const before = await scriptCalls(redis);
  const statuses = await Promise.all(bodies().map((body) => post(bot, body)));
  assert.deepEqual(new Set(statuses), new Set([200]));
  // Alone, each update costs two (below): its gate with its reply's flood turn, its commit.
  const calls = await scriptCalls(redis) - before;
  assert.ok(calls < 2 * CHATS, `${calls} script calls for ${CHATS} updates`);
  for (let i = 0; i < CHATS; i++) assert.equal(api.sentMessages(FIRST_CHAT + i).length, 1);
  // Delivered again: every one of them is a duplicate now.
  assert.deepEqual(
    new Set(await Promise.all(bodies().map((body) => post(bot, body)))),
    new Set([200]),
  );
  for (let i = 0; i < CHATS; i++) assert.equal(api.sentMessages(FIRST_CHAT + i).length, 1);
  assert.equal(bot.logs(/^update duplicate$/).length, CHATS);
});

Deno.test("group commit: a SIGKILL among batched commits loses no update and repeats none answered", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  const all = bodies();
  let answered: boolean[];
  {
    await using first = await start(api, redis);
    await first.waitReady();
    // Telegram's limit (30 a second for the bot) holds the last replies back: some updates are
    // still being handled, their commits on their way, when the program is killed.
    const posting = Promise.all(all.map((body) => post(first, body)));
    await api.waitFor(() => api.sentMessages().length >= 15 || undefined, 20_000, "15 replies");
    first.kill("SIGKILL");
    answered = (await posting).map((status) => status === 200);
  }
  assert.ok(answered.some((ok) => ok), "some were answered before the kill");
  assert.ok(answered.some((ok) => !ok), "some were cut off by the kill");
  const repliesBefore = Array.from(
    { length: CHATS },
    (_, i) => api.sentMessages(FIRST_CHAT + i).length,
  );

  // Telegram delivers everything again (it would only the unanswered ones: the answered ones
  // show that a repeated delivery is dropped).
  await using second = await start(api, redis);
  await second.waitReady();
  const statuses = await Promise.all(all.map((body) => post(second, body)));
  assert.deepEqual(new Set(statuses), new Set([200]));
  const handledAgain = new Set(second.logs(/^update handled$/).map((line) => line.update_id));
  for (let i = 0; i < CHATS; i++) {
    const replies = api.sentMessages(FIRST_CHAT + i).length;
    const again = handledAgain.has(90_000 + i);
    if (answered[i]) {
      assert.ok(!again, `chat ${i}: answered before the kill, yet handled again`);
      assert.equal(replies, 1, `chat ${i}: answered before the kill`);
    } else if (again) {
      // Cut off before its commit: handled again (twice replied if its reply had gone out).
      assert.equal(replies, repliesBefore[i]! + 1, `chat ${i}: handled after the restart`);
    } else {
      // Committed, but killed before its 200 went out: remembered, so not handled again.
      assert.equal(replies, 1, `chat ${i}: committed before the kill`);
    }
  }
});

Deno.test("group commit: an update alone costs two round trips: its gate with its reply's flood turn, then its commit", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using bot = await start(api, redis);
  await bot.waitReady();
  const say = async (updateId: number, chatId: number) => {
    const body = JSON.stringify(textMessage({ updateId, chatId, text: "/help" }));
    assert.equal(await post(bot, body), 200);
    assert.equal(api.sentMessages(chatId).length, 1);
  };
  // The first loads the scripts (EVALSHA answered NOSCRIPT, then EVAL) and registers the user.
  await say(95_000, 9_501);
  await say(95_001, 9_502);
  const before = await scriptCalls(redis);
  await say(95_002, 9_503);
  assert.equal(await scriptCalls(redis) - before, 2);
});
