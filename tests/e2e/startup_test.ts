/**
 * Bad starts, as an operator meets them: a database that is down at start (waited for, with
 * `/health` saying why), credentials or a database that waiting cannot fix (one short line,
 * exit 77 so the unit does not restart in a loop), Telegram unreachable or failing (one short
 * line per attempt, each attempt one request), and a data folder whose links lead out of the
 * sandbox.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { holdMigrationLock } from "../support/migration_lock.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { redisCli, startRedis } from "../support/redis_server.ts";
import { BotProcess, freePort, type LogLine, webhookEnv } from "./program.ts";

/** One log line as the operator's journal shows it. */
const size = (line: LogLine) => JSON.stringify(line).length;

Deno.test("start-up: a database down at start is waited for with /health saying why, then the bot gets ready", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("late");
  await pg.stop();
  await using bot = await BotProcess.start({ api, env: { DATABASE_URL: url } });
  const retry = await bot.waitForLog(/^opening storage failed, retrying/);
  assert.match(String(retry.reason), /unreachable: connection refused/);
  assert.ok(size(retry) < 600, `a ${size(retry)}-byte line: ${JSON.stringify(retry)}`);
  assert.ok(!JSON.stringify(retry).includes('"stack"'), "no stack for a network failure");
  const health = await bot.get("/health");
  assert.equal(health.status, 503);
  assert.match(
    JSON.parse(health.body).output,
    /opening storage failed, retrying: .*connection refused/,
  );

  await pg.start();
  await bot.waitReady(60_000);
  assert.ok(bot.logs(/^opening storage works after \d+ attempts/).length === 1, "recovery logged");
  assert.equal((await bot.get("/health")).status, 200);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("start-up: a migration behind another session's lock is waited for, and the log and /health say who holds it", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("locked");
  await using lock = await holdMigrationLock(url);
  {
    await using bot = await BotProcess.start({ api, env: { DATABASE_URL: url } });
    const line = await bot.waitForLog(/has waited \d+ s for a lock held by a session of psql/);
    assert.equal(line.level, "warning");
    const health = await bot.get("/health");
    assert.equal(health.status, 503);
    assert.match(
      JSON.parse(health.body).output,
      /applying database migrations: creating schema_migrations has waited \d+ s for a lock held by a session of psql \(pid \d+, idle in transaction for \d+ s\)/,
    );
    await lock.release();
    await bot.waitReady();
    assert.equal((await bot.stop()).code, 0);
  }
});

Deno.test("start-up: a Redis that evicts keys and saves nothing is named by doctor and in the start's log, and the bot runs on", async () => {
  await using api = await FakeBotApi.start();
  // Set up as a cache: a size limit with LRU eviction, and (the test default) no persistence.
  await using redis = await startRedis();
  await redisCli(redis, "config", "set", "maxmemory", "64mb");
  await redisCli(redis, "config", "set", "maxmemory-policy", "allkeys-lru");
  const env = { REDIS_URL: redis.url };
  const doctor = await BotProcess.run({ api, args: ["doctor"], env });
  assert.equal(doctor.code, 0, doctor.stdout);
  assert.match(
    doctor.stdout,
    /^WARN store +Redis evicts keys when full \(maxmemory 64 MiB, maxmemory-policy allkeys-lru\): .* set maxmemory-policy noeviction$/m,
  );
  assert.match(
    doctor.stdout,
    /^WARN store +Redis keeps nothing across a restart .* set appendonly yes$/m,
  );

  await using bot = await BotProcess.start({ api, env });
  await bot.waitReady();
  const warnings = bot.logs(/^Redis (evicts keys when full|keeps nothing across a restart)/);
  assert.deepEqual(warnings.map((line) => line.level), ["warning", "warning"]);
  assert.equal((await bot.get("/health")).status, 200);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("start-up: a Redis that refuses INFO and CONFIG (a managed service's ACL) is named as unknown by doctor and in the start's log, and the bot runs on", async () => {
  await using api = await FakeBotApi.start();
  await using redis = await startRedis();
  await redisCli(redis, "acl", "setuser", "bot", "on", ">bot-pw", "~*", "&*", "+@all", "-info");
  await redisCli(redis, "acl", "setuser", "bot", "-config");
  const env = { REDIS_URL: `redis://bot:bot-pw@127.0.0.1:${redis.port}` };
  const doctor = await BotProcess.run({ api, args: ["doctor"], env });
  assert.equal(doctor.code, 0, doctor.stdout);
  assert.match(doctor.stdout, /^ok +store +redis answers in /m);
  assert.match(
    doctor.stdout,
    /^WARN store +cannot read how the store keeps data: .*NOPERM.*info/im,
  );

  await using bot = await BotProcess.start({ api, env });
  await bot.waitReady();
  const [warning, ...more] = bot.logs(/^cannot read how the store keeps data: /);
  assert.equal(warning?.level, "warning");
  assert.match(String(warning?.msg), /Redis refused INFO: NOPERM/);
  assert.equal(more.length, 0);
  assert.equal((await bot.get("/health")).status, 200);
  // The bot does its work with that user: a /start is answered.
  api.pushMessage({ chatId: 801, text: "/start", languageCode: "en" });
  await api.waitFor(() => api.sentMessages(801).length > 0, 10_000, "the /start answered");
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("start-up: what waiting cannot fix ends the start at once with exit 77 and one short line", async (t) => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres({ password: "right-password" });
  const wrong = pg.url.replace("right-password", "wrong-password");
  const cases: { name: string; env: Record<string, string>; said: RegExp }[] = [
    {
      name: "a wrong database password",
      env: { DATABASE_URL: wrong },
      said: /password authentication failed for user "postgres"/,
    },
    {
      name: "a database that does not exist",
      env: { DATABASE_URL: pg.urlOf("nope") },
      said: /database "nope" does not exist/,
    },
    {
      // The store and the database open at once: the failure waiting cannot fix wins.
      name: "a wrong database password while Redis is unreachable",
      env: { DATABASE_URL: wrong, REDIS_URL: `redis://127.0.0.1:${freePort()}` },
      said: /password authentication failed for user "postgres"/,
    },
  ];
  for (const { name, env, said } of cases) {
    await t.step(name, async () => {
      const started = performance.now();
      const run = await BotProcess.run({ api, env });
      assert.equal(run.code, 77, run.stdout);
      // Well within the store's 10 s connect deadline: the hopeless failure ends the wait.
      assert.ok(performance.now() - started < 8_000, "no retries, no waiting");
      const fatal = run.stdout.split("\n").find((line) => line.includes('"level":"fatal"'))!;
      assert.match(JSON.parse(fatal).msg, said);
      assert.match(JSON.parse(fatal).msg, /^cannot start: /);
      assert.ok(fatal.length < 700, `a ${fatal.length}-byte line: ${fatal}`);
      assert.ok(!run.stdout.includes("wrong-password"), "the password is never shown");
    });
  }

  await t.step("a wrong Redis password", async () => {
    await using redis = await startRedis({ password: "right-password" });
    const run = await BotProcess.run({
      api,
      env: {
        DATABASE_URL: pg.url,
        REDIS_URL: redis.url.replace("right-password", "wrong-password"),
      },
    });
    assert.equal(run.code, 77, run.stdout);
    const fatal = run.stdout.split("\n").find((line) => line.includes('"level":"fatal"'))!;
    const said = JSON.parse(fatal).msg as string;
    assert.match(said, /^cannot start: Redis at 127\.0\.0\.1:\d+ refused the credentials/);
    assert.match(said, /check the password in REDIS_URL/);
    // Redis's own words once, not once more as the cause.
    assert.equal(said.split("WRONGPASS").length - 1, 1, said);
    assert.ok(!run.stdout.includes("wrong-password"), "the password is never shown");
  });

  await t.step("doctor says the same in one line", async () => {
    const run = await BotProcess.run({ api, env: { DATABASE_URL: wrong }, args: ["doctor"] });
    assert.equal(run.code, 1);
    const line = run.stdout.split("\n").find((l) => l.startsWith("FAIL database"))!;
    assert.match(line, /password authentication failed for user "postgres"/);
    assert.ok(line.length < 400, line);
  });

  await t.step("a token Telegram refuses", async () => {
    await using other = await FakeBotApi.start({
      token: "999999:another-token_abcdefghijklmnopqrstuvw",
    });
    const run = await BotProcess.run({ api: other, env: {} });
    assert.equal(run.code, 77, run.stdout);
    assert.match(run.stdout, /Telegram refused BOT_TOKEN/);
  });

  await t.step("a token Telegram refuses while the database is unreachable", async () => {
    // Telegram is asked while the storage is waited for: the refusal ends the wait.
    await using other = await FakeBotApi.start({
      token: "999999:another-token_abcdefghijklmnopqrstuvw",
    });
    await using bot = await BotProcess.start({
      api: other,
      env: { DATABASE_URL: `postgres://postgres@127.0.0.1:${freePort()}/nowhere` },
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const status = await Promise.race([
      bot.status,
      new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 8_000)),
    ]);
    clearTimeout(timer);
    assert.ok(status !== null, `still waiting for the database:\n${bot.stdoutText()}`);
    assert.equal(status.code, 77, bot.stdoutText());
    assert.match(bot.stdoutText(), /Telegram refused BOT_TOKEN/);
  });
});

Deno.test("start-up: Telegram unreachable at start costs one short line per attempt, and a stop still works", async () => {
  const closed = `http://127.0.0.1:${freePort()}`;
  await using bot = await BotProcess.start({ env: { BOT_API_ROOT: closed } });
  await bot.waitForLog(/^getMe failed, retrying/, 30_000);
  await bot.waitFor(() => bot.logs(/^getMe failed, retrying/).length >= 2 || undefined, 30_000);
  for (const line of bot.logs(/^getMe failed, retrying/)) {
    assert.ok(size(line) < 600, `a ${size(line)}-byte line: ${JSON.stringify(line)}`);
    assert.ok(!JSON.stringify(line).includes('"stack"'), JSON.stringify(line));
  }
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("start-up: each failed getMe is one line with Telegram's answer, and a 429's retry_after is waited out", async () => {
  await using api = await FakeBotApi.start();
  api.failNext("getMe", { error_code: 502 }, 2);
  api.failNext("getMe", { error_code: 429, retry_after: 3 });
  await using bot = await BotProcess.start({ api });
  await bot.waitReady(60_000);
  // Every attempt the operator is told of is one request, not a hidden series of retries.
  const failed = bot.logs(/^getMe failed, retrying/);
  assert.deepEqual(failed.map((line) => line.attempt), [1, 2, 3]);
  assert.match(String(failed[0]!.reason), /502/);
  assert.match(String(failed[2]!.reason), /429/);
  assert.ok(Number(failed[2]!.wait_ms) >= 3000, `waited ${failed[2]!.wait_ms} ms, asked 3 s`);
  assert.equal(bot.logs(/^getMe works after 4 attempts/).length, 1);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("start-up: the transports' own calls (getWebhookInfo, setWebhook) are one request per logged attempt too", async (t) => {
  const failTwice = async (
    method: string,
    env: (port: number) => Record<string, string>,
  ) => {
    await using api = await FakeBotApi.start();
    api.failNext(method, { error_code: 502 }, 2);
    const port = freePort();
    await using bot = await BotProcess.start({
      api,
      env: { ...env(port), HTTP_PORT: String(port) },
    });
    await bot.waitReady(60_000);
    const failed = bot.logs(new RegExp(`^${method} failed, retrying`));
    assert.deepEqual(failed.map((line) => line.attempt), [1, 2]);
    assert.equal(bot.logs(new RegExp(`^${method} works after 3 attempts`)).length, 1);
    assert.equal(api.callsOf(method).length, 3, "two failed requests and the one that worked");
    assert.equal((await bot.stop()).code, 0);
  };
  await t.step("polling: getWebhookInfo", () => failTwice("getWebhookInfo", () => ({})));
  await t.step(
    "webhook: setWebhook",
    () => failTwice("setWebhook", (port) => webhookEnv(port, "startup-Secret_0123456789")),
  );
});

Deno.test("start-up: a symbolic link in data/ that leads out of the sandbox refuses the start (78)", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "bot-symlink-" });
  try {
    await Deno.mkdir(`${cwd}/data`);
    await Deno.symlink("/etc", `${cwd}/data/kv.sqlite3`);
    const run = await BotProcess.run({ cwd, env: {} });
    assert.equal(run.code, 78, run.stderr);
    assert.match(
      run.stderr,
      /DATA_DIR: ".*data\/kv\.sqlite3" is a symbolic link to \/etc, outside/,
    );
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
