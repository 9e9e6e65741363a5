/**
 * Retention, as an operator sees it: the event log of a database that has run for two months
 * is cut back to `EVENT_RETENTION_DAYS` by the program at its start, in small batches, and so are
 * the delivered items of the outbox, while newer events, undelivered items and every request
 * with its history stay.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import { openTestDatabase } from "./broadcasts.ts";
import { BotProcess, metricSample } from "./program.ts";

const DAY_MS = 86_400_000;

Deno.test("retention: events and deliveries older than EVENT_RETENTION_DAYS are deleted at start, newer ones, owed ones and request history stay", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("retention");
  const env = { REDIS_URL: redis.url, DATABASE_URL: url, EVENT_RETENTION_DAYS: "30" };
  assert.equal((await BotProcess.run({ api, env, args: ["migrate"] })).code, 0);

  // One event every 20 minutes for 60 days: 2160 older than 30 days, 2160 newer.
  const now = Date.now();
  const ages = Array.from({ length: 4320 }, (_, i) => (i + 0.5) * DAY_MS / 72);
  const db = await openTestDatabase(url);
  try {
    await db.sql`
      insert into events (update_id, user_id, chat_id, type, command, outcome, duration_ms, at)
      select n, 5000 + n % 7, 5000 + n % 7, 'message', null, 'handled', 3,
        ${new Date(now).toISOString()}::timestamptz - (age * interval '1 millisecond')
      from unnest(${ages}::float8[]) with ordinality as t(age, n)`;
    // A request closed 45 days ago keeps its history.
    await db.sql`insert into users (id, first_name) values (5001, 'Ada')`;
    const old = new Date(now - 45 * DAY_MS);
    await db.sql`
      insert into requests (user_id, category, description, contact, status, created_at,
        updated_at, closed_at)
      values (5001, 'IT', 'The printer jams', '+1 555 0100', 'done', ${old}, ${old}, ${old})`;
    await db.sql`
      insert into request_history (request_number, actor_id, action, from_status, to_status, at)
      values (1, 5001, 'created', null, 'new', ${old}), (1, 900, 'done', 'new', 'done', ${old})`;
    // Deliveries owed about it: two delivered 45 and 10 days ago, one still owed since 45 days.
    const recent = new Date(now - 10 * DAY_MS);
    await db.sql`
      insert into outbox (kind, ref, payload, created_at, done_at, next_attempt_at)
      values ('relay_to_staff', 'old', '{"text":"my phone is +1 555 0100"}', ${old}, ${old}, ${old}),
        ('relay_to_staff', 'recent', '{}', ${recent}, ${recent}, ${recent}),
        ('notify_user', 'owed', '{}', ${old}, null, ${new Date(now + DAY_MS)})`;

    await using bot = await BotProcess.start({ api, env });
    await bot.waitReady();
    const done = await bot.waitForLog(/^deleted \d+ events rows older than 30 days$/, 30_000);
    assert.equal(done.count, 2160);

    const [left] = await db.sql<{ n: number; oldest: Date }[]>`
      select count(*)::int as n, min(at) as oldest from events`;
    // The 2160 newer ones stay (and the program's own events since its start).
    assert.ok(left!.n >= 2160, `${left!.n} events left`);
    assert.ok(left!.oldest.getTime() > now - 30 * DAY_MS, "nothing older than 30 days is left");
    const [history] = await db.sql<{ n: number }[]>`select count(*)::int as n from request_history`;
    assert.equal(history!.n, 2, "a closed request keeps its history");
    // Delivered more than 30 days ago: gone; delivered since, or still owed: kept.
    await bot.waitForLog(/^deleted 1 outbox rows older than 30 days$/, 30_000);
    const outbox = await db.sql<{ ref: string }[]>`
      select ref from outbox where ref in ('old', 'recent', 'owed') order by ref`;
    assert.deepEqual(outbox.map((row) => row.ref), ["owed", "recent"]);
    const metrics = (await bot.get("/metrics")).body;
    assert.equal(metricSample(metrics, 'bot_retention_deleted_total{table="events"}'), 2160);
    assert.equal(metricSample(metrics, 'bot_retention_deleted_total{table="outbox"}'), 1);
    assert.equal((await bot.stop()).code, 0);
  } finally {
    await db.close();
  }
});
