/**
 * Infrastructure alerts, as admins see them: Redis stops for longer than `ALERT_AFTER` and
 * each admin gets exactly one alert, however long it stays down; once it is back, each gets
 * exactly one "recovered" message.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import { BotProcess, metricSample } from "./program.ts";

const ADMINS = [821, 822];
const ALERT =
  /^🚨 <b>The store \(Redis \/ Deno KV\)<\/b>: failing for \d+ seconds\.\n<code>.+<\/code>$/s;
const RECOVERED = /^✅ Recovered: <b>The store \(Redis \/ Deno KV\)<\/b> works again\.$/;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("alerts: Redis down longer than ALERT_AFTER → one alert per admin, then one recovered message", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  await using bot = await BotProcess.start({
    api,
    env: {
      REDIS_URL: redis.url,
      DATABASE_URL: await pg.createDatabase("alerts"),
      ADMIN_IDS: ADMINS.join(","),
      ALERT_AFTER: "2",
    },
  });
  await bot.waitReady();
  const of = (admin: number, pattern: RegExp) =>
    api.sentMessages(admin).filter((m) => pattern.test(m.text));

  const down = Date.now();
  await redis.stop();
  await api.waitFor(() => ADMINS.every((a) => of(a, ALERT).length > 0), 20_000, "the alerts");
  assert.ok(Date.now() - down >= 2000, "not before ALERT_AFTER");
  // Still down for several more rounds of the check: no second alert.
  await sleep(6000);
  for (const admin of ADMINS) assert.equal(of(admin, ALERT).length, 1, `alerts to ${admin}`);
  assert.equal(of(ADMINS[0]!, RECOVERED).length, 0);

  await redis.start();
  await api.waitFor(() => ADMINS.every((a) => of(a, RECOVERED).length > 0), 20_000, "recovered");
  await sleep(3000);
  for (const admin of ADMINS) {
    assert.equal(of(admin, ALERT).length, 1, `alerts to ${admin}`);
    assert.equal(of(admin, RECOVERED).length, 1, `recovered messages to ${admin}`);
    // Nothing else went wrong meanwhile: the database, polling and the disk were fine.
    assert.equal(api.sentMessages(admin).length, 2, JSON.stringify(api.sentMessages(admin)));
  }
  const metrics = (await bot.get("/metrics")).body;
  assert.equal(metricSample(metrics, 'bot_alerts_total{problem="store",change="raised"}'), 1);
  assert.equal(metricSample(metrics, 'bot_alerts_total{problem="store",change="cleared"}'), 1);
  assert.equal((await bot.stop()).code, 0);
});
