import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startRedis } from "../support/redis_server.ts";
import { BotProcess } from "./program.ts";

const ENTRY = "tests/e2e/fixtures/dialog_bot.ts";
const CHAT = 4201;
/** locales/en/core.json `dialog.unavailable`. */
const UNAVAILABLE =
  "I can't reach my conversation storage right now. Your progress so far is kept: please send that again in a minute.";

/** What `GET /health` says, and its store check. */
interface Health {
  http: number;
  status: string;
  store: { status: string; output?: string };
}

/** Asks `GET /health` once. */
async function health(bot: BotProcess): Promise<Health> {
  const res = await bot.get("/health");
  const body = JSON.parse(res.body) as {
    status: string;
    checks: Record<string, Health["store"][]>;
  };
  return { http: res.status, status: body.status, store: body.checks["store:responseTime"]![0]! };
}

/** Polls `GET /health` until the store check reports `status`; returns the whole answer. */
async function healthWhen(bot: BotProcess, status: string, timeoutMs: number): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await health(bot);
    if (now.store.status === status) return now;
    if (Date.now() > deadline) {
      throw new Error(`the store check stayed ${JSON.stringify(now)} for ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Sends `text` and waits for the next answer in the chat. */
async function say(api: FakeBotApi, text: string): Promise<string> {
  const before = api.sentMessages(CHAT).length;
  api.pushMessage({ chatId: CHAT, text });
  return await api.waitFor(
    () => api.sentMessages(CHAT)[before]?.text,
    20_000,
    `an answer to ${JSON.stringify(text)}`,
  );
}

Deno.test("Redis outage: a dialog waits with its progress kept, other commands work, and it continues once Redis is back", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis({ persist: true });
  await using bot = await BotProcess.start({ api, entry: ENTRY, env: { REDIS_URL: redis.url } });
  await bot.waitReady();

  assert.equal(await say(api, "/form"), "Step 1 of 3: what is your name?");
  assert.equal(await say(api, "Ada"), "Step 2 of 3: how old are you, Ada?");

  await redis.stop();
  const down = await healthWhen(bot, "fail", 15_000);
  assert.equal(down.http, 503);
  assert.equal(down.status, "fail");

  // Commands that need no dialog still answer; the dialog's answer is asked to wait.
  assert.match(await say(api, "/help"), /^Here is what I can do:/);
  assert.equal(await say(api, "42"), UNAVAILABLE);
  assert.equal((await bot.get("/health/live")).status, 200);

  // Back without a restart of the bot; the dialog state in Redis was kept.
  await redis.start();
  const up = await healthWhen(bot, "pass", 15_000);
  assert.equal(up.http, 200);
  assert.equal(up.status, "pass");
  assert.equal(await say(api, "42"), "Step 3 of 3: which city do you live in?");
  assert.equal(await say(api, "Paris"), "Done: Ada, 42, Paris.");

  const answers = api.sentMessages(CHAT).map((m) => m.text);
  assert.equal(answers.length, 6, answers.join("\n---\n"));
  assert.equal((await bot.stop()).code, 0);
  assert.equal(bot.logs(/unhandled/).length, 0);
  assert.equal(bot.logs(/^the store is unreachable/).length, 1, "the outage is logged once");
});

Deno.test("a hung Redis (SIGSTOP: connections open, no replies) is treated as an outage, not waited for", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis({ persist: true });
  await using bot = await BotProcess.start({
    api,
    entry: ENTRY,
    // Also how long a command may wait for Redis' reply.
    env: { REDIS_URL: redis.url, DB_CONNECT_TIMEOUT: "2" },
  });
  await bot.waitReady();
  assert.equal(await say(api, "/form"), "Step 1 of 3: what is your name?");
  // Hung only once that update is committed: one caught between its reply and its commit gets
  // the "could not save your last step" notice, by design, which is not what this test is about.
  await bot.waitForLog(/^update handled$/);

  redis.signal("SIGSTOP");
  // The update in flight waits at most the reply timeout, then the gate works in memory.
  const started = Date.now();
  assert.match(await say(api, "/help"), /^Here is what I can do:/);
  assert.ok(Date.now() - started < 10_000, `answered after ${Date.now() - started} ms`);
  const down = await healthWhen(bot, "fail", 15_000);
  assert.equal(down.http, 503);
  // Later updates do not wait for the hung server again.
  const next = Date.now();
  assert.equal(await say(api, "Ada"), UNAVAILABLE);
  assert.ok(Date.now() - next < 1_500, `answered after ${Date.now() - next} ms`);

  redis.signal("SIGCONT");
  await healthWhen(bot, "pass", 15_000);
  assert.equal(await say(api, "Ada"), "Step 2 of 3: how old are you, Ada?");
  assert.equal((await bot.stop()).code, 0);
  assert.ok(bot.logs(/^redis connection lost/).length >= 1);
  assert.equal(bot.logs(/unhandled/).length, 0);
});
