import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import { startRoundRobinProxy } from "../support/round_robin_proxy.ts";
import { textMessage } from "../updates.ts";
import { BotProcess, freePort, type LogLine, metricSample, WEBHOOK_PATH } from "./program.ts";

const ENTRY = "tests/e2e/fixtures/dialog_bot.ts";
const SECRET = "instances_e2e-Secret_0123456789";

/** One chat per part, so that the parts share the two instances without touching each other. */
const CHAT = { form: 4101, limit: 4102, count: 4103, slow: [4104, 4105, 4106, 4107], dup: 4108 };

/** The `update …` log lines of `chatId` on `bot`. */
function updatesOf(bot: BotProcess, chatId: number): LogLine[] {
  return bot.logs(/^update /).filter((line) => line.chat_id === chatId);
}

/** POSTs an update to the webhook behind `url` as Telegram does and returns the status. */
async function post(url: string, update: unknown): Promise<number> {
  const res = await fetch(`${url}${WEBHOOK_PATH}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET },
    body: JSON.stringify(update),
  });
  await res.body?.cancel();
  return res.status;
}

/** What the chat saw and what went wrong on the instances, for a failure message. */
function evidence(api: FakeBotApi, bots: BotProcess[], chatId: number): string {
  const problems = bots.flatMap((bot, i) =>
    bot.lines.filter((line) => line.level === "error" || line.level === "warning")
      .map((line) => `instance ${i}: ${JSON.stringify(line)}`)
  );
  return [
    `chat ${chatId} got:`,
    ...api.sentMessages(chatId).map((m) => `  ${JSON.stringify(m.text)}`),
    ...problems.slice(-20),
  ].join("\n");
}

/** Waits for the next answer in `chatId` matching `pattern` that was not seen before. */
async function nextAnswer(
  api: FakeBotApi,
  bots: BotProcess[],
  chatId: number,
  pattern: RegExp,
): Promise<string> {
  const before = api.sentMessages(chatId).length;
  try {
    return await api.waitFor(
      () =>
        api.sentMessages(chatId).slice(before).map((m) => m.text).find((text) =>
          pattern.test(text)
        ),
      20_000,
      `an answer matching ${pattern}`,
    );
  } catch (error) {
    throw new Error(`${error}\n${evidence(api, bots, chatId)}`);
  }
}

Deno.test("two webhook instances behind a round-robin balancer share dialogs, limits, chat leases and dedup", async (t) => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const ports = [freePort(), freePort()];
  // Telegram posts to the balancer, which hands the requests to the instances in turn.
  await using proxy = startRoundRobinProxy(ports.map((port) => `http://127.0.0.1:${port}`));
  const shared = {
    BOT_MODE: "webhook",
    WEBHOOK_URL: `${proxy.url}${WEBHOOK_PATH}`,
    WEBHOOK_SECRET: SECRET,
    REDIS_URL: redis.url,
    // The embedded PGlite cannot be shared: the instances share one Postgres, as in production.
    DATABASE_URL: await pg.createDatabase("instances"),
    RATE_LIMIT_MAX_REQUESTS: "20",
    // Long: replies to one chat go out at about one a second (Telegram's per-chat limit, kept
    // by the flood control), so the answers below take ~20 s; a one-minute window would give
    // back tokens meanwhile.
    RATE_LIMIT_TIME_WINDOW: "600",
    // The counting chat sends more than 20 messages at once: its user is exempt from the limit.
    ADMIN_IDS: String(CHAT.count),
  };
  // Each has its own working directory (DATA_DIR) and HTTP port.
  await using first = await BotProcess.start({
    api,
    entry: ENTRY,
    env: { ...shared, HTTP_PORT: String(ports[0]) },
  });
  await using second = await BotProcess.start({
    api,
    entry: ENTRY,
    env: { ...shared, HTTP_PORT: String(ports[1]) },
  });
  const bots = [first, second];
  await Promise.all(bots.map((bot) => bot.waitReady()));

  await t.step("a dialog whose messages land on alternate instances loses no step", async () => {
    const countsBefore = [...proxy.counts];
    const steps = [
      { send: "/form", answer: /^Step 1 of 3: what is your name\?$/ },
      { send: "Ada", answer: /^Step 2 of 3: how old are you, Ada\?$/ },
      { send: "42", answer: /^Step 3 of 3: which city do you live in\?$/ },
      { send: "Paris", answer: /^Done: Ada, 42, Paris\.$/ },
    ];
    for (const step of steps) {
      api.pushMessage({ chatId: CHAT.form, text: step.send });
      await nextAnswer(api, bots, CHAT.form, step.answer);
    }
    const answers = api.sentMessages(CHAT.form).map((m) => m.text);
    assert.equal(answers.length, steps.length, evidence(api, bots, CHAT.form));
    for (const [i, step] of steps.entries()) assert.match(answers[i]!, step.answer);
    // Each instance got two of the four messages, one after the other, and handled them (the
    // answer goes out before the commit, so the last step's log line may still be coming).
    assert.deepEqual(proxy.counts.map((n, i) => n - countsBefore[i]!), [2, 2]);
    await api.waitFor(
      () => bots.reduce((sum, bot) => sum + updatesOf(bot, CHAT.form).length, 0) === 4,
      10_000,
      "the four updates of the dialog handled",
    );
    assert.deepEqual(bots.map((bot) => updatesOf(bot, CHAT.form).length), [2, 2]);
    const handlers = [...updatesOf(first, CHAT.form), ...updatesOf(second, CHAT.form)]
      .sort((a, b) => Number(a.update_id) - Number(b.update_id))
      .map((line) => updatesOf(first, CHAT.form).includes(line) ? 0 : 1);
    assert.ok(
      handlers.every((handler, i) => i === 0 || handler !== handlers[i - 1]),
      `the steps alternate between the instances: ${handlers.join(",")}`,
    );
  });

  await t.step("the rate limit is shared: 25 rapid messages, 20 answers, one notice", async () => {
    for (let i = 0; i < 25; i++) {
      api.pushMessage({ chatId: CHAT.limit, text: "/help", languageCode: "en" });
    }
    await api.waitFor(
      () => bots.reduce((sum, bot) => sum + updatesOf(bot, CHAT.limit).length, 0) === 25,
      45_000,
      "25 updates handled",
    );
    const sent = api.sentMessages(CHAT.limit).map((m) => m.text);
    assert.equal(sent.filter((text) => /\/help/.test(text)).length, 20, sent.join("\n---\n"));
    const notices = sent.filter((text) => /too fast/.test(text));
    assert.equal(notices.length, 1, sent.join("\n---\n"));
    assert.match(notices[0]!, /Please wait \d+ seconds?,/);
    assert.equal(sent.length, 21);
    // Both instances took part, and together they let exactly 20 through.
    const passed = bots.map((bot) =>
      updatesOf(bot, CHAT.limit).filter((line) => line.outcome === "handled").length
    );
    assert.ok(passed.every((n) => n > 0), `both instances handled some: ${passed}`);
    assert.equal(passed[0]! + passed[1]!, 20);
  });

  await t.step(
    "one chat is never handled on two instances at once; other chats run meanwhile",
    async () => {
      api.pushMessage({ chatId: CHAT.count, text: "/count" });
      await nextAnswer(api, bots, CHAT.count, /^Counting: send \+ to add one\.$/);
      const pluses = Array.from(
        { length: 30 },
        (_, i) => textMessage({ updateId: 500_000 + i, chatId: CHAT.count, text: "+" }),
      );
      const slows = CHAT.slow.map((chatId, i) =>
        textMessage({ updateId: 600_000 + i, chatId, text: `/slow ${chatId}` })
      );
      // Everything at once, straight to the balancer: both instances get a share of each.
      const statuses = await Promise.all([...pluses, ...slows].map((u) => post(proxy.url, u)));
      assert.deepEqual(statuses, statuses.map(() => 200));

      // The webhook answers 200 only after handling, so every reply has been sent by now. One
      // update at a time: each saw the previous one's count, and answered after it.
      const counts = api.sentMessages(CHAT.count).slice(1).map((m) => m.text);
      assert.deepEqual(
        counts,
        Array.from({ length: 30 }, (_, i) => `count=${i + 1}`),
        evidence(api, bots, CHAT.count),
      );
      const plusHandlers = bots.map((bot) =>
        updatesOf(bot, CHAT.count).filter((line) => Number(line.update_id) >= 500_000).length
      );
      assert.ok(plusHandlers.every((n) => n > 0), `both instances counted: ${plusHandlers}`);
      assert.equal(plusHandlers[0]! + plusHandlers[1]!, 30);
      let waits = 0;
      for (const bot of bots) {
        waits += metricSample((await bot.get("/metrics")).body, "bot_chat_lease_waits_total");
      }
      assert.ok(waits > 0, "updates of the counting chat waited for the other instance");

      // The slow updates of four other chats were not queued behind the counting chat, nor
      // behind each other: all four were running at one moment.
      for (const chatId of CHAT.slow) {
        assert.deepEqual(api.sentMessages(chatId).map((m) => m.text), [`slow done: ${chatId}`]);
      }
      const spans = CHAT.slow.map((chatId) => {
        const [line] = bots.flatMap((bot) => updatesOf(bot, chatId));
        const end = Date.parse(String(line!.time));
        return { start: end - Number(line!.duration_ms), end };
      });
      const latestStart = Math.max(...spans.map((span) => span.start));
      const earliestEnd = Math.min(...spans.map((span) => span.end));
      assert.ok(latestStart < earliestEnd, `the slow updates overlap: ${JSON.stringify(spans)}`);
    },
  );

  await t.step("an update delivered twice through the balancer is handled once", async () => {
    const update = textMessage({ updateId: 700_000, chatId: CHAT.dup, text: "/help" });
    const before = proxy.routed.length;
    assert.equal(await post(proxy.url, update), 200);
    assert.equal(await post(proxy.url, update), 200);
    // The two deliveries went to different instances.
    assert.deepEqual(new Set(proxy.routed.slice(before)), new Set([0, 1]));
    assert.equal(api.sentMessages(CHAT.dup).length, 1);
    const outcomes = bots.flatMap((bot) => updatesOf(bot, CHAT.dup).map((line) => line.outcome));
    assert.deepEqual(outcomes.sort(), ["duplicate", "handled"]);
  });

  for (const bot of bots) assert.equal((await bot.stop()).code, 0);
  assert.equal(api.pendingCount(), 0);
});
