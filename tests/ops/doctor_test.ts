import assert from "node:assert/strict";
import { type Env, loadConfig } from "../../src/config.ts";
import { doctor, type Finding, formatFindings } from "../../src/ops/doctor.ts";
import { type AddFinding, telegramFindings, type Verdict } from "../../src/ops/doctor_telegram.ts";
import { FAKE_TOKEN, FakeBotApi } from "../fake_bot_api.ts";
import { freePort } from "../support/ports.ts";
import { startPostgres } from "../support/postgres_server.ts";

const STAFF = -1001234567890;

/** What `telegramFindings` reports for `env`, against `api`, at `now`. */
async function telegram(
  api: FakeBotApi,
  env: Env = {},
  now?: () => number,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add: AddFinding = (area, verdict, text) => findings.push({ area, verdict, text });
  const config = loadConfig({ BOT_TOKEN: FAKE_TOKEN, BOT_API_ROOT: api.apiRoot, ...env });
  await telegramFindings(config, add, now ? { now } : {});
  return findings;
}

/** The one finding of `area` whose text matches `pattern`, with its verdict checked. */
function finding(findings: Finding[], area: string, verdict: Verdict, pattern: RegExp): Finding {
  const matching = findings.filter((f) => f.area === area && pattern.test(f.text));
  assert.equal(
    matching.length,
    1,
    `one ${area} finding ${pattern} in\n${formatFindings(findings)}`,
  );
  assert.equal(matching[0]!.verdict, verdict, matching[0]!.text);
  return matching[0]!;
}

Deno.test("telegramFindings() checks that the bot can post in STAFF_CHAT_ID", async (t) => {
  const env = { STAFF_CHAT_ID: String(STAFF), ADMIN_IDS: "" };

  await t.step("unset: a warning that requests are posted nowhere", async () => {
    await using api = await FakeBotApi.start();
    const findings = await telegram(api, { ADMIN_IDS: "" });
    finding(findings, "staff", "warn", /STAFF_CHAT_ID is not set/);
  });

  await t.step("a member of a plain group may post; not a forum", async () => {
    await using api = await FakeBotApi.start();
    const findings = await telegram(api, env);
    finding(
      findings,
      "staff",
      "ok",
      /the bot is a member of STAFF_CHAT_ID -1001234567890 \("Group"\) and may post there/,
    );
    finding(
      findings,
      "staff",
      "ok",
      /is not a forum: a request's messages are replies to its post/,
    );
    // getChatMember was asked about the bot itself.
    const asked = api.calls.filter((c) => c.method === "getChatMember");
    assert.deepEqual(asked.map((c) => Number(c.params.user_id)), [api.botInfo.id]);
  });

  await t.step("an administrator of a forum: each request gets a topic", async () => {
    await using api = await FakeBotApi.start();
    api.setChatMembers(STAFF, { [api.botInfo.id]: "administrator" });
    api.setForum(STAFF);
    const findings = await telegram(api, env);
    finding(findings, "staff", "ok", /the bot is an administrator of STAFF_CHAT_ID/);
    finding(findings, "staff", "ok", /is a forum: each request gets its own topic/);
  });

  await t.step("a plain member of a forum cannot create topics: a warning", async () => {
    await using api = await FakeBotApi.start();
    api.setForum(STAFF);
    const findings = await telegram(api, env);
    finding(findings, "staff", "warn", /is a forum, but the bot may not create topics there/);
  });

  const refusals: Array<[string, () => (api: FakeBotApi) => void, RegExp]> = [
    ["not a member", () => (api) => api.setChatMembers(STAFF, {}), /is not a member of .*: add it/],
    [
      "banned",
      () => (api) => api.setChatMembers(STAFF, { [api.botInfo.id]: "kicked" }),
      /was removed and banned from/,
    ],
    [
      "muted",
      () => (api) => api.setChatMembers(STAFF, { [api.botInfo.id]: "restricted" }),
      /may not send messages in .*: lift its restriction/,
    ],
    [
      "an unknown chat",
      () => (api) =>
        api.failNext("getChat", { error_code: 400, description: "Bad Request: chat not found" }),
      /Telegram knows no such chat for this bot: add the bot to the group, or fix the id/,
    ],
  ];
  for (const [name, setup, text] of refusals) {
    await t.step(`${name}: a failure`, async () => {
      await using api = await FakeBotApi.start();
      setup()(api);
      const findings = await telegram(api, env);
      finding(findings, "staff", "fail", text);
      assert.equal(findings.filter((f) => f.area === "staff").length, 1);
    });
  }
});

Deno.test("telegramFindings() checks that every admin has started the bot", async (t) => {
  await t.step("one has, one has not", async () => {
    await using api = await FakeBotApi.start();
    api.pushMessage({ chatId: 42, text: "/start", firstName: "Olga" });
    const findings = await telegram(api, { ADMIN_IDS: "42,43" });
    finding(
      findings,
      "admins",
      "ok",
      /^admin 42 \(Olga\) has started the bot: alerts can reach them$/,
    );
    finding(
      findings,
      "admins",
      "warn",
      /^admin 43 has not started the bot, so alerts cannot reach them: they should send it \/start$/,
    );
  });

  await t.step("none: a warning", async () => {
    await using api = await FakeBotApi.start();
    const findings = await telegram(api, {});
    finding(findings, "admins", "warn", /ADMIN_IDS is empty/);
  });
});

Deno.test("telegramFindings() reports whether Telegram can reach the webhook", async (t) => {
  await using api = await FakeBotApi.start();
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}/hook`;
  closed.close();
  const webhook = { BOT_MODE: "webhook", WEBHOOK_URL: url, WEBHOOK_SECRET: "s".repeat(20) };

  await t.step("polling with no webhook: fine", async () => {
    finding(await telegram(api), "webhook", "ok", /none registered \(polling mode\)/);
  });

  await t.step("webhook mode, another URL registered: a warning", async () => {
    finding(
      await telegram(api, webhook),
      "webhook",
      "warn",
      new RegExp(`Telegram has no webhook; the bot registers ${url}`),
    );
  });

  await fetch(`${api.apiRoot}/bot${FAKE_TOKEN}/setWebhook`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ url, secret_token: webhook.WEBHOOK_SECRET }),
  }).then((res) => res.body?.cancel());

  await t.step("registered and no delivery error: fine", async () => {
    finding(
      await telegram(api, webhook),
      "webhook",
      "ok",
      new RegExp(`registered at ${url}; no delivery errors`),
    );
  });

  api.pushMessage({ chatId: 7, text: "hello" });
  await api.waitFor(() => api.lastWebhookError, 10_000, "a failed delivery");

  await t.step("a delivery failed just now: Telegram cannot reach it", async () => {
    const text =
      finding(await telegram(api, webhook), "webhook", "fail", /Telegram cannot reach/).text;
    assert.match(
      text,
      new RegExp(
        `^Telegram cannot reach ${url}: its last delivery failed \\d+ s ago: Connection failed`,
      ),
    );
    assert.match(text, /1 update waiting/);
  });

  await t.step("the last failure is an hour old: a warning", async () => {
    const later = () => Date.now() + 3600_000;
    finding(
      await telegram(api, webhook, later),
      "webhook",
      "warn",
      /a delivery failed 36\d\d s ago/,
    );
  });
});

Deno.test("telegramFindings() stops at a refused token", async () => {
  await using api = await FakeBotApi.start({
    token: "999999:another-token_abcdefghijklmnopqrstuvwx",
  });
  const findings = await telegram(api, { STAFF_CHAT_ID: String(STAFF), ADMIN_IDS: "42" });
  assert.deepEqual(findings, [{
    area: "telegram",
    verdict: "fail",
    text: "Telegram refused BOT_TOKEN (401): get a new one from @BotFather",
  }]);
});

Deno.test("telegramFindings() says why the Bot API cannot be reached", async () => {
  const findings: Finding[] = [];
  const add: AddFinding = (area, verdict, text) => findings.push({ area, verdict, text });
  const closed = `http://127.0.0.1:${freePort()}`;
  await telegramFindings(loadConfig({ BOT_TOKEN: FAKE_TOKEN, BOT_API_ROOT: closed }), add);
  assert.equal(findings.length, 1, formatFindings(findings));
  // grammY's "Network request failed!" alone does not tell the operator what to fix.
  assert.match(
    finding(findings, "telegram", "fail", /^cannot reach the Bot API/).text,
    /^cannot reach the Bot API: Network request for 'getMe' failed!: .*Connection refused/,
  );
});

Deno.test("doctor() reports free disk space, the statement timeout and the pool", async (t) => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("desk");
  const dataDir = await Deno.makeTempDir({ prefix: "doctor-test-" });
  const run = (
    env: Env,
    space = { freeBytes: 10_000 * 1024 * 1024 } as
      | { freeBytes: number }
      | { unknown: string },
  ) =>
    doctor(
      loadConfig({
        BOT_TOKEN: FAKE_TOKEN,
        BOT_API_ROOT: api.apiRoot,
        DATA_DIR: dataDir,
        DATABASE_URL: url,
        ...env,
      }),
      { diskSpace: () => Promise.resolve(space) },
    );
  try {
    await t.step(
      "DB_STATEMENT_TIMEOUT as the database applies it, the pool's size and wait",
      async () => {
        const findings = await run({
          DB_STATEMENT_TIMEOUT: "2",
          DB_POOL_SIZE: "4",
          DB_POOL_TIMEOUT: "1.5",
        });
        finding(
          findings,
          "database",
          "ok",
          /^statement timeout 2s \(DB_STATEMENT_TIMEOUT\): longer statements are cancelled$/,
        );
        finding(
          findings,
          "database",
          "ok",
          /^pool of up to 4 connections \(DB_POOL_SIZE\); a query waits at most 1\.5 s for it \(DB_POOL_TIMEOUT\)$/,
        );
        finding(findings, "data", "ok", /^10000 MiB free under DATA_DIR /);
      },
    );

    await t.step("the database applying another timeout than configured: a warning", async () => {
      const { default: postgres } = await import("postgres");
      const admin = postgres(url, { max: 1, onnotice: () => {} });
      await admin`alter database desk set statement_timeout = '3s'`;
      await admin.end();
      const findings = await run({ DB_STATEMENT_TIMEOUT: "0" });
      finding(
        findings,
        "database",
        "warn",
        /^the database applies statement_timeout 3s, but DB_STATEMENT_TIMEOUT asks for no limit/,
      );
    });

    await t.step("little free space: a warning naming DISK_MIN_FREE_MB", async () => {
      const findings = await run({ DISK_MIN_FREE_MB: "500" }, { freeBytes: 100 * 1024 * 1024 });
      finding(
        findings,
        "data",
        "warn",
        /^100 MiB free under DATA_DIR .*, below DISK_MIN_FREE_MB=500/,
      );
    });

    await t.step("free space that cannot be read: a warning that says why", async () => {
      const findings = await run({}, {
        unknown: "free space unknown: the program needs --allow-sys=statfs to read it",
      });
      finding(findings, "data", "warn", /needs --allow-sys=statfs/);
    });

    await t.step("a Bot API that hangs up: why, and never the token its URL carries", async () => {
      // Accepts and closes at once: fetch's error quotes the whole URL, /bot<token>/getMe.
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const closing = (async () => {
        for await (const connection of listener) connection.close();
      })();
      try {
        const root = `http://127.0.0.1:${listener.addr.port}`;
        const findings = await run({ BOT_API_ROOT: root });
        const text = finding(findings, "telegram", "fail", /^cannot reach the Bot API/).text;
        assert.match(text, /getMe/);
        assert.ok(!text.includes(FAKE_TOKEN.split(":")[1]!), text);
        assert.match(text, /\[redacted\]/);
      } finally {
        listener.close();
        await closing.catch(() => {});
      }
    });
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
