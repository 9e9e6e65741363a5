import assert from "node:assert/strict";
import { FAKE_TOKEN, FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess, freePort } from "./program.ts";

Deno.test("a bad environment exits 78 and names every bad variable, without a stack trace", async () => {
  const { code, stdout, stderr } = await BotProcess.run({
    env: {
      BOT_TOKEN: "123:not-a-real-token-SECRETPART",
      BOT_MODE: "webhook",
      HTTP_PORT: "99999",
      LOG_LEVEL: "chatty",
      SHUTDOWN_TIMEOUT: "-5",
      ADMIN_IDS: "42,alice",
      DATA_DIR: "/etc/service-desk",
    },
  });
  assert.equal(code, 78);
  for (
    const variable of [
      "BOT_TOKEN",
      "WEBHOOK_URL",
      "WEBHOOK_SECRET",
      "HTTP_PORT",
      "LOG_LEVEL",
      "SHUTDOWN_TIMEOUT",
      "ADMIN_IDS",
    ]
  ) {
    assert.match(stderr, new RegExp(`^  ${variable}: `, "m"), `${variable} is named`);
  }
  assert.match(stderr, /invalid configuration \(\d+ problems\)/);
  assert.doesNotMatch(stderr, /SECRETPART/, "the token is never echoed");
  assert.doesNotMatch(stderr, /\bat .*\.ts:\d+/, "no stack trace");
  assert.equal(stdout, "");
});

Deno.test("DATA_DIR outside the directories the binary may write is a configuration error", async () => {
  const { code, stderr } = await BotProcess.run({ env: { DATA_DIR: "/var/tmp/elsewhere" } });
  assert.equal(code, 78);
  assert.match(stderr, /DATA_DIR: "\/var\/tmp\/elsewhere" is outside the directories/);
});

Deno.test("a missing BOT_TOKEN exits 78 with a hint", async () => {
  const { code, stderr } = await BotProcess.run({ env: { BOT_TOKEN: "" } });
  assert.equal(code, 78);
  assert.match(stderr, /BOT_TOKEN: is required/);
});

Deno.test("a token Telegram refuses stops the program with exit 77 (no restart loop) and a clear line", async () => {
  await using api = await FakeBotApi.start({
    token: "999999:another-token_abcdefghijklmnopqrstuvwx",
  });
  const { code, stdout } = await BotProcess.run({ api });
  assert.equal(code, 77);
  assert.match(stdout, /Telegram refused BOT_TOKEN \(401 Unauthorized\)/);
});

Deno.test("secrets never reach the logs, even at debug level with network errors", async () => {
  const closedPort = freePort();
  await using bot = await BotProcess.start({
    env: {
      BOT_API_ROOT: `http://127.0.0.1:${closedPort}`,
      LOG_LEVEL: "debug",
      METRICS_TOKEN: "metrics-secret-value-123",
    },
  });
  await bot.waitForLog(/getMe failed, retrying/);
  assert.equal((await bot.stop()).code, 0);
  const output = bot.stdoutText() + bot.stderrText;
  const secretPart = FAKE_TOKEN.split(":")[1]!;
  assert.doesNotMatch(output, new RegExp(secretPart));
  assert.doesNotMatch(output, /metrics-secret-value-123/);
  assert.match(
    output,
    new RegExp(`cannot connect to 127\\.0\\.0\\.1:${closedPort}: .*refused`, "i"),
    "the underlying network error is logged",
  );
});

Deno.test("HTTP_PROXY: Bot API calls go through the proxy (Deno's fetch reads it, sandbox and all)", async (t) => {
  // Deno's fetch reads the lower-case spelling too: the program must not bypass it.
  for (const name of ["HTTP_PROXY", "http_proxy"]) {
    await t.step(name, async () => {
      await using api = await FakeBotApi.start();
      // A host nobody can resolve: only the proxy (the fake, which takes absolute-form requests
      // as a forward proxy does) can answer for it.
      await using bot = await BotProcess.start({
        api,
        env: { BOT_API_ROOT: "http://telegram.invalid:8081", [name]: api.apiRoot },
      });
      await bot.waitReady();
      api.pushMessage({ chatId: 5, text: "/help", firstName: "Pat" });
      await api.waitFor(() => api.sentMessages().length === 1, 10_000, "the reply");
      assert.match(api.sentMessages()[0]!.text, /^Here is what I can do:/);
      assert.equal((await bot.stop()).code, 0);
    });
  }
});

Deno.test("a busy HTTP port stops the program with exit 1 and says which address", async () => {
  await using api = await FakeBotApi.start();
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const { code, stdout } = await BotProcess.run({ api, env: { HTTP_PORT: String(port) } });
  assert.equal(code, 1);
  assert.match(
    stdout,
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: Address already in use`),
  );
});

Deno.test("LOG_FILE under logs/ is created and receives the same JSON lines as stdout", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-" });
  try {
    await using bot = await BotProcess.start({ api, cwd, env: { LOG_FILE: "logs/bot.log" } });
    await bot.waitReady();
    assert.equal((await bot.stop()).code, 0);
    const lines = (await Deno.readTextFile(`${cwd}/logs/bot.log`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.ok(lines.some((line) => /^ready as /.test(line.msg)));
    assert.ok(lines.some((line) => /^stopped after /.test(line.msg)));
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
