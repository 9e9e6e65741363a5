import assert from "node:assert/strict";
import { translate } from "../../src/bot/i18n.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

const ADMIN = 900;
const COMMANDS = ["/health", "/metrics", "/stats", "/backup", "/ban 603", "/unban 603"];

/** Sends `text` from `chatId` and waits for the bot's next message to that chat. */
async function ask(api: FakeBotApi, chatId: number, text: string): Promise<string> {
  const before = api.sentMessages(chatId).length;
  api.pushMessage({ chatId, text, languageCode: "en" });
  const sent = await api.waitFor(
    () => api.sentMessages(chatId).length > before && api.sentMessages(chatId),
    15_000,
    `an answer to ${text}`,
  );
  return sent[before]!.text;
}

Deno.test("admin commands answer admins with real content; everyone else gets the unknown-command reply", async (t) => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({
    api,
    env: { ADMIN_IDS: String(ADMIN), RATE_LIMIT_ENABLED: "false" },
  });
  await bot.waitReady();
  for (const user of [601, 602, 603]) await ask(api, user, "/start");

  await t.step("/stats counts the users", async () => {
    const stats = await ask(api, ADMIN, "/stats");
    assert.match(stats, /<b>Statistics<\/b>/);
    // The three users and the admin.
    assert.match(stats, /Users: 4; new today \(UTC\): 4; blocked the bot: 0; banned: 0/);
    assert.match(stats, /Requests: none yet/);
    assert.match(stats, /Median time to close: no request has been closed yet/);
  });

  await t.step("/health shows every check's status and value, each in its unit", async () => {
    const health = await ask(api, ADMIN, "/health");
    assert.match(health, /<b>Health: ✅ pass<\/b>/);
    for (const check of ["database", "store", "telegram"]) {
      assert.match(health, new RegExp(`✅ <b>${check}:responseTime</b>: pass, [\\d.]+ ms`));
    }
    assert.match(health, /<b>telegram:polling<\/b>: pass/);
    assert.match(health, /✅ <b>disk:free<\/b>: pass, \d+ MiB/);
    assert.match(health, /✅ <b>outbox:pending<\/b>: pass, 0 items/);
  });

  await t.step("/metrics shows counts, rates and latency percentiles", async () => {
    const metrics = await ask(api, ADMIN, "/metrics");
    // /start ×3, /stats and /health were handled before this one.
    assert.match(metrics, /Updates: 5; success rate 100\.0 % \(0 failed\)/);
    assert.match(metrics, /Handling time: p50 \d+ ms, p95 \d+ ms, p99 \d+ ms/);
    assert.match(metrics, /up for 00:\d\d:\d\d/);
    assert.match(metrics, /User cache: [\d.]+ % hits \(\d+ of 6 lookups\)/);
    assert.match(metrics, /Rate limiter: 0 limited, 0 dropped while banned/);
    assert.match(metrics, /Duplicates dropped: 0/);
    assert.match(metrics, /Telegram API retries: 0 /);
  });

  await t.step("/backup sends the backup file", async () => {
    api.pushMessage({ chatId: ADMIN, text: "/backup", languageCode: "en" });
    const [sent] = await api.waitFor(
      () => api.callsOf("sendDocument").length > 0 && api.callsOf("sendDocument"),
      20_000,
      "the backup document",
    );
    assert.equal(String(sent!.chat_id), String(ADMIN));
    const document = sent!.document as { file_name: string; file_size: number };
    assert.match(document.file_name, /^service-desk-bot-\d{8}T\d{6}Z\.backup\.gz$/);
    assert.ok(document.file_size > 100, `size ${document.file_size}`);
    assert.match(String(sent!.caption), /^Backup <code>service-desk-bot-.*<\/code>: [\d.]+ KiB/);
    const onDisk = await Deno.stat(`${bot.cwd}/backups/${document.file_name}`);
    assert.equal(onDisk.size, document.file_size);
  });

  await t.step("/ban drops the user's messages unanswered; /unban answers them again", async () => {
    assert.match(
      await ask(api, ADMIN, "/ban 601"),
      /^User \(601\) is banned: I will ignore their messages\. Send \/unban 601 to undo it\.$/,
    );
    const answered = api.sentMessages(601).length;
    api.pushMessage({ chatId: 601, text: "/start", languageCode: "en" });
    await bot.waitForLog(/^update banned$/);
    assert.match(await ask(api, ADMIN, "/stats"), /banned: 1/);
    assert.equal(api.sentMessages(601).length, answered, "no answer while banned");

    assert.match(await ask(api, ADMIN, "/unban 601"), /no longer banned/);
    await ask(api, 601, "/start");
    assert.match(await ask(api, ADMIN, "/stats"), /banned: 0/);
  });

  await t.step("/ban refuses admins, unknown users and a missing id, politely", async () => {
    assert.match(await ask(api, ADMIN, `/ban ${ADMIN}`), /is an admin and cannot be banned/);
    assert.match(await ask(api, ADMIN, "/ban 123456"), /don't know a user with id 123456/);
    assert.match(await ask(api, ADMIN, "/ban someone"), /numeric id/);
    assert.match(await ask(api, ADMIN, "/stats"), /banned: 0/);
  });

  await t.step("a non-admin gets the normal unknown-command reply for each command", async () => {
    const documents = api.callsOf("sendDocument").length;
    for (const command of COMMANDS) {
      const name = command.split(" ")[0]!;
      assert.equal(
        await ask(api, 602, command),
        translate("en", "unknown.command", { command: name }),
      );
    }
    assert.equal(api.callsOf("sendDocument").length, documents);
  });

  assert.equal((await bot.stop()).code, 0);
});
