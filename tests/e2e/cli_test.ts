import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess, freePort } from "./program.ts";

Deno.test("the start task's permission flags stop file reads outside data/, process spawning and FFI", async () => {
  const { code, stdout } = await BotProcess.run({ entry: "tests/e2e/fixtures/sandbox_probe.ts" });
  assert.equal(code, 0);
  const results = JSON.parse(stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(results, {
    "read /etc/passwd": "NotCapable",
    "read the project's deno.json": "NotCapable",
    "write /tmp": "NotCapable",
    "spawn a process": "NotCapable",
    "load a native library": "NotCapable",
    "read HOME": "unset",
    "see HOME or PATH in the whole environment": "no",
    "write data/": "allowed",
  });
});

Deno.test("doctor reports the sandbox, the data directory, storage, Telegram's view and the webhook", async () => {
  await using api = await FakeBotApi.start();
  api.pushMessage({ chatId: 42, text: "/start" });
  api.setChatMembers(-1001234567890, { [api.botInfo.id]: "administrator" });
  api.setForum(-1001234567890);
  const { code, stdout } = await BotProcess.run({
    api,
    args: ["doctor"],
    env: { LOG_LEVEL: "warn", ADMIN_IDS: "42,43", STAFF_CHAT_ID: "-1001234567890" },
  });
  assert.equal(code, 0, stdout);
  assert.match(stdout, /^ok +config +mode polling, .*, log warning\/json$/m);
  assert.match(stdout, /^ok +sandbox +may not run other programs$/m);
  assert.match(stdout, /^ok +sandbox +may not read \/etc\/passwd$/m);
  assert.match(stdout, /^ok +data +DATA_DIR \.\/data is writable$/m);
  // The sandbox lets the program read the free space under DATA_DIR (statfs).
  assert.match(stdout, /^ok +data +\d+ MiB free under DATA_DIR \.\/data$/m);
  assert.match(stdout, /^ok +database +the embedded database cannot cancel a slow statement/m);
  assert.match(stdout, /^ok +database +one connection .*; a query waits at most 5 s for it/m);
  assert.match(stdout, /^ok +telegram +token accepted: @service_desk_test_bot/m);
  assert.match(stdout, /^ok +staff +the bot is an administrator of STAFF_CHAT_ID -1001234567890/m);
  assert.match(stdout, /^ok +staff +.* is a forum: each request gets its own topic$/m);
  assert.match(stdout, /^ok +admins +admin 42 .*has started the bot/m);
  assert.match(stdout, /^WARN admins +admin 43 has not started the bot/m);
  assert.match(stdout, /^ok +webhook +none registered \(polling mode\)/m);
  // Warnings (admin 43; the migrations the first start applies) are not problems.
  assert.match(stdout, /no problems found \(\d+ warning\(s\)\)/);
});

Deno.test("doctor fails with exit 1 when the bot cannot post in STAFF_CHAT_ID", async () => {
  await using api = await FakeBotApi.start();
  api.setChatMembers(-1001234567890, {});
  const { code, stdout } = await BotProcess.run({
    api,
    args: ["doctor"],
    env: { STAFF_CHAT_ID: "-1001234567890" },
  });
  assert.equal(code, 1, stdout);
  assert.match(stdout, /^FAIL staff +the bot is not a member of STAFF_CHAT_ID -1001234567890/m);
});

Deno.test("doctor fails with exit 1 when Telegram refuses the token", async () => {
  await using api = await FakeBotApi.start({
    token: "999999:another-token_abcdefghijklmnopqrstuvwx",
  });
  const { code, stdout } = await BotProcess.run({ api, args: ["doctor"] });
  assert.equal(code, 1);
  assert.match(stdout, /^FAIL telegram +Telegram refused BOT_TOKEN \(401\)/m);
});

Deno.test("healthcheck exits 0 against a ready instance and 1 when nothing answers", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  const healthy = await BotProcess.run({
    args: ["healthcheck"],
    env: { HTTP_PORT: String(bot.port) },
  });
  assert.equal(healthy.code, 0);
  assert.match(healthy.stdout, /^pass/);
  assert.equal((await bot.stop()).code, 0);

  const unreachable = await BotProcess.run({
    args: ["healthcheck"],
    env: { HTTP_PORT: String(freePort()) },
  });
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stdout, /^unreachable/);
});

Deno.test("version, help and an unknown command", async (t) => {
  await t.step("version prints the program and version", async () => {
    const { code, stdout } = await BotProcess.run({ args: ["version"] });
    assert.equal(code, 0);
    assert.match(stdout, /^service-desk-bot \d+\.\d+\.\d+ \(deno /);
  });
  await t.step("help lists the commands and exit codes", async () => {
    const { code, stdout } = await BotProcess.run({ args: ["help"] });
    assert.equal(code, 0);
    for (const word of ["healthcheck", "doctor", "version", "78", "77", "2 usage"]) {
      assert.match(stdout, new RegExp(word));
    }
    assert.match(stdout, /restore FILE +restore a backup: FILE is its name in BACKUP_DIR/);
  });
  await t.step("an unknown command prints usage and exits 2", async () => {
    const { code, stderr } = await BotProcess.run({ args: ["frobnicate"] });
    assert.equal(code, 2);
    assert.match(stderr, /unknown command "frobnicate"/);
    assert.match(stderr, /Usage:/);
  });
});
