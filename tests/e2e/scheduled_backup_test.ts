/**
 * Scheduled backups, as an operator sees them: with `BACKUP_SCHEDULE="* * * * *"` the program
 * writes a backup at the next minute by itself, each admin gets one quiet message with the
 * file's name and size, and `/metrics` shows when the newest backup was made. The test waits
 * for the next minute, so it takes up to a minute.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { startRedis } from "../support/redis_server.ts";
import { BotProcess, metricSample } from "./program.ts";

const ADMINS = [811, 812];
const NOTICE =
  /^💾 Scheduled backup <code>(service-desk-bot-\d{8}T\d{6}Z\.backup\.gz)<\/code>: [\d.]+ (B|KiB|MiB)\. Old backups deleted: 0\.$/;

Deno.test("scheduled backup: BACKUP_SCHEDULE writes a backup on time and each admin is told once, quietly", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await using pg = await startPostgres();
  await using bot = await BotProcess.start({
    api,
    env: {
      REDIS_URL: redis.url,
      DATABASE_URL: await pg.createDatabase("scheduled_backup"),
      ADMIN_IDS: ADMINS.join(","),
      BACKUP_SCHEDULE: "* * * * *",
    },
  });
  await bot.waitReady();
  const before = metricSample(
    (await bot.get("/metrics")).body,
    "bot_backup_last_success_timestamp_seconds",
  );
  assert.equal(before, 0, "no backup yet");

  const notices = () =>
    ADMINS.map((admin) =>
      api.sentOf("sendMessage", admin).filter((s) => NOTICE.test(String(s.params.text)))
    );
  await api.waitFor(() => notices().every((n) => n.length > 0), 75_000, "the backup notices");
  const written = await Array.fromAsync(Deno.readDir(`${bot.cwd}/backups`));
  assert.equal(written.length, 1, "one backup file");
  const [name] = written.map((entry) => entry.name);
  for (const [notice] of notices()) {
    assert.equal(NOTICE.exec(String(notice!.params.text))?.[1], name);
    assert.equal(notice!.params.disable_notification, true, "the success is told quietly");
    // At the minute the schedule names (the backup is named after its start, in UTC).
    assert.equal(new Date(notice!.at).getUTCSeconds() < 30, true);
  }
  const metrics = (await bot.get("/metrics")).body;
  const newest = metricSample(metrics, "bot_backup_last_success_timestamp_seconds");
  assert.ok(Math.abs(newest - Date.now() / 1000) < 90, `newest backup at ${newest}`);
  assert.equal(metricSample(metrics, 'bot_scheduled_backups_total{result="ok"}'), 1);
  // /health shows when the job last ran.
  const [check] = JSON.parse((await bot.get("/health")).body).checks["job:backup"];
  assert.equal(check.status, "pass");
  assert.equal(new Date(check.time).getUTCSeconds() < 30, true, check.time);
  assert.equal((await bot.stop()).code, 0);
});
