import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import { BotProcess, type LogLine, metricSample, slowUpdate } from "./program.ts";

const ELECTED = /^took the polling lease as /;
/** The leader's lease TTL (10 s) plus a renewal interval and start-up slack. */
const TAKEOVER_AFTER_CRASH_MS = 16_000;
/** A standby tries every third of the TTL; after a release it needs no more than that. */
const TAKEOVER_AFTER_RELEASE_MS = 5_000;

interface HealthCheck {
  status: string;
  output?: string;
}

async function pollingCheck(
  bot: BotProcess,
): Promise<{ http: number; status: string; check: HealthCheck }> {
  const res = await bot.get("/health");
  const body = JSON.parse(res.body) as { status: string; checks: Record<string, HealthCheck[]> };
  return { http: res.status, status: body.status, check: body.checks["telegram:polling"]![0]! };
}

/**
 * Waits until `bot`'s polling check passes: a new leader first replays what its predecessor
 * left in the inbox, and its check says "polling has not started" until its first poll.
 */
async function pollingPasses(bot: BotProcess): Promise<void> {
  const deadline = Date.now() + 5_000;
  let last = await pollingCheck(bot);
  while (last.check.status !== "pass" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = await pollingCheck(bot);
  }
  assert.equal(last.check.status, "pass", `the polling check still says ${last.check.output}`);
}

function holderOf(bot: BotProcess): string | undefined {
  return bot.logs(ELECTED).at(-1)?.holder as string | undefined;
}

async function leaderGauge(bot: BotProcess): Promise<number> {
  return metricSample((await bot.get("/metrics")).body, "bot_polling_leader");
}

Deno.test("polling leader lease: of three instances sharing Redis one polls; a stopped or killed leader is replaced", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  // The embedded PGlite cannot be shared: the instances share one Postgres, as in production.
  const env = {
    BOT_MODE: "polling",
    REDIS_URL: redis.url,
    DATABASE_URL: await pg.createDatabase("leader"),
  };
  // Each has its own working directory (DATA_DIR) and HTTP port.
  await using first = await BotProcess.start({ api, env });
  await using second = await BotProcess.start({ api, env });
  await using third = await BotProcess.start({ api, env });
  const all = [first, second, third];
  await Promise.all(all.map((bot) => bot.waitReady()));

  // Exactly one leads; the others are ready, standing by, and say who leads.
  await api.waitFor(() => all.filter((bot) => holderOf(bot)).length === 1, 10_000, "a leader");
  const leader = all.find((bot) => holderOf(bot))!;
  const standbys = all.filter((bot) => bot !== leader);
  const leaderId = holderOf(leader)!;
  for (const standby of standbys) {
    await standby.waitForLog(new RegExp(`^standing by: instance ${leaderId} holds`));
    const health = await pollingCheck(standby);
    assert.equal(health.http, 200);
    assert.equal(health.status, "warn");
    assert.equal(health.check.status, "warn");
    assert.equal(health.check.output, `standing by: instance ${leaderId} holds the polling lease`);
    assert.equal(await leaderGauge(standby), 0);
  }
  await pollingPasses(leader);
  assert.equal(await leaderGauge(leader), 1);

  api.pushMessage({ chatId: 701, text: "/start", firstName: "Ada" });
  await api.waitFor(() => api.sentMessages(701).length === 1, 15_000, "the reply");
  await leader.waitForLog(/^update handled$/);
  for (const standby of standbys) assert.equal(standby.logs(/^update /).length, 0);

  // A graceful stop releases the lease: a standby takes over at once, not after the TTL.
  assert.equal((await leader.stop()).code, 0);
  assert.equal(leader.logs(/^released the polling lease$/).length, 1);
  await api.waitFor(
    () => standbys.find((bot) => holderOf(bot)),
    TAKEOVER_AFTER_RELEASE_MS,
    "a standby to take over after the release",
  );
  const successor = standbys.find((bot) => holderOf(bot))!;
  const lastStandby = standbys.find((bot) => bot !== successor)!;
  await api.waitFor(
    () => lastStandby.logs(new RegExp(`^standing by: instance ${holderOf(successor)} holds`))[0],
    5_000,
    "the last standby to notice the new leader",
  );
  await pollingPasses(successor);
  api.pushMessage({ chatId: 702, text: "/help" });
  await api.waitFor(() => api.sentMessages(702).length === 1, 15_000, "the successor's reply");
  // Killed only once the update is remembered as handled: one killed between its reply and its
  // commit is handled again by design (at least once), which is not what this test is about.
  await successor.waitForLog(/^update handled$/);

  // A crashed leader holds the lease until its TTL runs out; then the last standby polls.
  const killedAt = Date.now();
  successor.kill("SIGKILL");
  await successor.status;
  api.pushMessage({ chatId: 703, text: "/help" });
  const elected = await lastStandby.waitForLog(ELECTED, TAKEOVER_AFTER_CRASH_MS);
  // Not before the lease ran out (the last renewal was at most a third of the TTL before).
  assert.ok(Date.parse(String(elected.time)) - killedAt > 3_000, "the crashed leader's lease held");
  await api.waitFor(() => api.sentMessages(703).length === 1, 15_000, "the reply after the crash");
  assert.equal((await pollingCheck(lastStandby)).check.status, "pass");
  assert.equal(await leaderGauge(lastStandby), 1);

  // Never two pollers at once: Telegram had no reason to answer a poll with 409.
  const conflicts = api.calls.filter((call) =>
    call.method === "getUpdates" && (call.response as { error_code?: number })?.error_code === 409
  );
  assert.equal(conflicts.length, 0);
  // Every message was answered exactly once.
  assert.deepEqual([701, 702, 703].map((chat) => api.sentMessages(chat).length), [1, 1, 1]);
  assert.equal((await lastStandby.stop()).code, 0);
  assert.equal(api.pendingCount(), 0);
});

/** How many times `bot` ran update `id` to its end (dropped as a duplicate does not count). */
function runs(bot: BotProcess, id: number): LogLine[] {
  return bot.logs(/^update /).filter((line) =>
    line.update_id === id && line.outcome !== "duplicate"
  );
}

/** Two instances sharing Redis and Postgres, once one of them leads. */
async function twoInstances(
  api: FakeBotApi,
  env: Record<string, string>,
): Promise<{ leader: BotProcess; standby: BotProcess } & AsyncDisposable> {
  const a = await BotProcess.start({ api, env });
  const b = await BotProcess.start({ api, env });
  await Promise.all([a.waitReady(), b.waitReady()]);
  await api.waitFor(() => [a, b].some((bot) => holderOf(bot)), 10_000, "a leader");
  const leader = holderOf(a) ? a : b;
  return {
    leader,
    standby: leader === a ? b : a,
    async [Symbol.asyncDispose]() {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
    },
  };
}

Deno.test("polling leader lease: a killed leader's slow update is handled once by its successor, nothing twice", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const env = { REDIS_URL: redis.url, DATABASE_URL: await pg.createDatabase("leader_kill") };
  await using bots = await twoInstances(api, env);
  const { leader, standby } = bots;

  const slow = await slowUpdate(api, 711, 60_000);
  const quick = [712, 713].map((chatId) => api.pushMessage({ chatId, text: "/help" }));
  await api.waitFor(() => api.sentMessages().length === 2, 15_000, "the quick replies");
  await leader.waitFor(() => quick.every((id) => runs(leader, id).length === 1) || undefined);
  leader.kill("SIGKILL");
  await leader.status;
  api.delay("answerCallbackQuery", 0);

  await standby.waitForLog(ELECTED, TAKEOVER_AFTER_CRASH_MS);
  await standby.waitFor(() => runs(standby, slow)[0], 15_000, "the slow update replayed");
  const after = api.pushMessage({ chatId: 714, text: "/help" });
  await standby.waitFor(() => runs(standby, after)[0], 15_000, "the successor's next update");
  assert.equal(runs(leader, slow).length, 0, "cut off by the kill");
  assert.equal(runs(standby, slow).length, 1, "handled once by the successor");
  for (const id of quick) assert.equal(runs(standby, id).length, 0, `update ${id} not again`);
  assert.deepEqual([712, 713, 714].map((chat) => api.sentMessages(chat).length), [1, 1, 1]);
  assert.equal(runs(standby, after).length, 1);
  assert.equal((await standby.stop()).code, 0);
  assert.equal(api.pendingCount(), 0);
});

Deno.test("polling leader lease: what a stopping leader abandoned is replayed by its successor only after it exited", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const env = {
    REDIS_URL: redis.url,
    DATABASE_URL: await pg.createDatabase("leader_abandon"),
    SHUTDOWN_TIMEOUT: "1",
  };
  await using bots = await twoInstances(api, env);
  const { leader, standby } = bots;

  const stuck = await slowUpdate(api, 721, 60_000);
  leader.kill("SIGTERM");
  assert.equal((await leader.status).code, 0);
  const exitedAt = Date.now();
  assert.deepEqual(leader.logs(/^stopped after/)[0]?.abandoned, [stuck]);
  api.delay("answerCallbackQuery", 0);

  // The successor polls at once: new updates are not held up by the abandoned one...
  await standby.waitForLog(ELECTED, TAKEOVER_AFTER_RELEASE_MS);
  api.pushMessage({ chatId: 722, text: "/help" });
  await api.waitFor(() => api.sentMessages(722).length === 1, 15_000, "the successor's reply");
  // ...and it runs the abandoned one once the old leader's claim on it lapsed.
  const replayed = await standby.waitFor(() => runs(standby, stuck)[0], 40_000, "the replay");
  const startedAt = Date.parse(String(replayed.time)) - Number(replayed.duration_ms);
  assert.ok(startedAt > exitedAt, "never while the old leader could still be running it");
  assert.equal(runs(standby, stuck).length, 1);
  assert.equal(runs(leader, stuck).length, 0);
  assert.equal((await standby.stop()).code, 0);
});
