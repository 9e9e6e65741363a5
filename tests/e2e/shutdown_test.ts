import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

const SLOW_REPLY_MS = 1500;

Deno.test("SIGTERM with 50 slow updates in flight finishes and confirms them all; a restart gets none again", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-" });
  try {
    const first = await BotProcess.start({ api, cwd });
    await first.waitReady();

    // Each reply takes 1.5 s at "Telegram", so 50 updates of 50 chats are in flight at once.
    api.delay("sendMessage", SLOW_REPLY_MS);
    const ids = Array.from(
      { length: 50 },
      (_, i) => api.pushMessage({ chatId: 5000 + i, text: "/start" }),
    );
    await api.waitFor(
      () => api.callsOf("sendMessage").length === 50 || undefined,
      15_000,
      "50 replies in progress",
    );
    assert.equal(api.sentMessages().length, 0, "no reply has completed before the signal");

    first.kill("SIGTERM");
    // Readiness turns 503 at once while the updates finish.
    const health = await first.get("/health");
    assert.equal(health.status, 503);
    assert.match(JSON.parse(health.body).output, /stopping/);

    const status = await first.status;
    assert.equal(status.code, 0);
    const summary = first.logs(/^stopped after/)[0];
    assert.ok(summary, "one summary line");
    assert.equal(summary.finished, 50);
    assert.deepEqual(summary.abandoned, []);
    assert.equal(api.sentMessages().length, 50, "every user got the reply");
    assert.equal(api.pendingCount(), 0, "all 50 were confirmed to Telegram");
    assert.ok(api.confirmedOffset > Math.max(...ids));

    api.delay("sendMessage", 0);
    const deliveriesBefore = new Map(api.deliveries);
    await using second = await BotProcess.start({ api, cwd });
    await second.waitReady();
    const late = api.pushMessage({ chatId: 9999, text: "/help" });
    await api.waitFor(
      () => api.sentMessages(9999).length === 1 || undefined,
      15_000,
      "the next update",
    );
    for (const id of ids) {
      assert.equal(
        api.deliveries.get(id),
        deliveriesBefore.get(id),
        `update ${id} was not delivered again`,
      );
    }
    assert.equal(api.sentMessages().length, 51, "nothing lost, nothing answered twice");
    assert.equal(api.deliveries.get(late), 1, "a quickly handled update is fetched once");
    assert.equal((await second.stop()).code, 0);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("SIGTERM past SHUTDOWN_TIMEOUT abandons the unfinished update, which the restart handles again", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-" });
  try {
    const first = await BotProcess.start({ api, cwd, env: { SHUTDOWN_TIMEOUT: "1" } });
    await first.waitReady();
    api.delay("sendMessage", 60_000);
    const stuck = api.pushMessage({ chatId: 77, text: "/start" });
    await api.waitFor(
      () => api.callsOf("sendMessage").length === 1 || undefined,
      15_000,
      "the reply in progress",
    );
    first.kill("SIGTERM");
    assert.equal((await first.status).code, 0);
    assert.deepEqual(first.logs(/^stopped after/)[0]?.abandoned, [stuck]);
    // Telegram may consider it delivered: it is kept in the polling inbox.

    api.delay("sendMessage", 0);
    await using second = await BotProcess.start({ api, cwd });
    await second.waitReady();
    const redelivered = await second.waitForLog(/^update handled$/);
    assert.equal(
      redelivered.update_id,
      stuck,
      "the restarted program handles the abandoned update",
    );
    assert.equal(
      api.callsOf("sendMessage").length,
      2,
      "its reply is sent again by the new process",
    );
    assert.equal((await second.stop()).code, 0);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a second SIGTERM, sent on purpose after the first, exits at once", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, env: { SHUTDOWN_TIMEOUT: "60" } });
  await bot.waitReady();
  api.delay("sendMessage", 60_000);
  api.pushMessage({ chatId: 78, text: "/start" });
  await api.waitFor(
    () => api.callsOf("sendMessage").length === 1 || undefined,
    15_000,
    "the reply in progress",
  );
  bot.kill("SIGTERM");
  await bot.waitForLog(/^stopping/);
  // One repeated within 2 s is the same request (a terminal's Ctrl-C arrives twice), and said
  // to be (a copy within 100 ms, which `deno task` passes on, is logged at debug level only).
  await new Promise((resolve) => setTimeout(resolve, 300));
  bot.kill("SIGTERM");
  await bot.waitForLog(/^SIGTERM again: still stopping gracefully/);
  await new Promise((resolve) => setTimeout(resolve, 2100));
  bot.kill("SIGTERM");
  const status = await bot.status;
  assert.equal(status.code, 1);
  assert.ok(bot.logs(/second SIGTERM/).length === 1);
});
