import assert from "node:assert/strict";
import { join } from "node:path";
import { Composer } from "grammy";
import type { BotContext } from "../../src/bot/context.ts";
import { createBot, type CreateBotOptions, pipelineStages } from "../../src/bot/pipeline.ts";
import type { TelegramProfile, UserRow } from "../../src/db/users.ts";
import { openKvStore } from "../../src/store/kv_store.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { type Call, recordingFetch, testBotOptions, testGate } from "../support/bots.ts";
import { textMessage } from "../updates.ts";

const ADMIN = 900;

/** A temporary Deno KV store, removed on dispose. */
async function tempStore(): Promise<KeyValueStore & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "pipeline-order-test-" });
  const store = await openKvStore(join(dir, "kv.sqlite3"));
  return Object.assign(store, {
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  });
}

/** Profiles kept in memory: the user stage's view of the database, with bans. */
function usersWithBans(banned: Set<number>) {
  return {
    resolve(profile: TelegramProfile): Promise<UserRow> {
      const at = new Date();
      return Promise.resolve({
        ...profile,
        locale: null,
        notifications: true,
        createdAt: at,
        lastSeenAt: at,
        blockedAt: null,
        bannedAt: banned.has(profile.id) ? at : null,
      });
    },
  };
}

function options(store: KeyValueStore, extra: Partial<CreateBotOptions> = {}): CreateBotOptions {
  return testBotOptions({ gate: testGate(store, { adminIds: [ADMIN] }), ...extra });
}

Deno.test("pipelineStages() runs context, errors, gate, user, features, commit in that order", async () => {
  await using store = await tempStore();
  const full = pipelineStages(options(store, { users: usersWithBans(new Set()) }));
  assert.deepEqual(full.map((stage) => stage.name), [
    "context",
    "errors",
    "gate",
    "user",
    "features",
    "commit",
  ]);
  const bare = pipelineStages({ ...options(store), gate: undefined });
  assert.deepEqual(bare.map((stage) => stage.name), ["context", "errors", "features"]);
});

Deno.test("createBot() drops a banned user's update after the gate, still commits it, and never an admin's", async () => {
  await using store = await tempStore();
  const calls: Call[] = [];
  const built = options(store, {
    users: usersWithBans(new Set([7, ADMIN])),
    fetch: recordingFetch(calls),
  });
  const bot = createBot(built);
  const outcomes = async () =>
    Object.fromEntries(
      (await built.metrics.updates.get()).values.map((v) => [v.labels.outcome, v.value]),
    );
  await bot.handleUpdate(textMessage({ updateId: 1, chatId: 7, text: "/start" }));
  assert.equal(calls.length, 0, "no answer to a banned user");
  assert.deepEqual(await outcomes(), { banned: 1 });
  // Committed: the same update delivered again is a duplicate, not handled twice.
  await bot.handleUpdate(textMessage({ updateId: 1, chatId: 7, text: "/start" }));
  assert.deepEqual(await outcomes(), { banned: 1, duplicate: 1 });
  await bot.handleUpdate(textMessage({ updateId: 2, chatId: ADMIN, text: "/start" }));
  assert.equal(calls.length, 1, "an admin is answered even with a ban on record");
  assert.equal(calls[0]!.body.chat_id, ADMIN);
});

Deno.test("createBot() apologises for a failing handler and alerts the admins once per error", async () => {
  await using store = await tempStore();
  const calls: Call[] = [];
  const boom = new Composer<BotContext>();
  boom.command("boom", () => {
    throw new Error("kaboom <script>");
  });
  const bot = createBot(options(store, {
    users: usersWithBans(new Set()),
    fetch: recordingFetch(calls),
    features: [{ name: "boom", composer: boom }],
  }));
  for (let i = 1; i <= 3; i++) {
    await bot.handleUpdate(textMessage({ updateId: i, chatId: 5, text: "/boom" }));
  }
  const toUser = calls.filter((c) => c.body.chat_id === 5);
  const toAdmin = calls.filter((c) => c.body.chat_id === ADMIN);
  assert.equal(toUser.length, 3);
  assert.match(String(toUser[0]!.body.text), /something went wrong/);
  assert.equal(toAdmin.length, 1);
  assert.equal(toAdmin[0]!.body.parse_mode, "HTML");
  const alert = String(toAdmin[0]!.body.text);
  assert.match(alert, /Error: kaboom &lt;script&gt;/);
  assert.match(alert, /Update 1 \(message\), chat 5, user 5 User/);
});

Deno.test("createBot() quotes no token in an alert, even when the error quotes a Bot API URL", async () => {
  await using store = await tempStore();
  const calls: Call[] = [];
  const built = options(store, { users: usersWithBans(new Set()), fetch: recordingFetch(calls) });
  const download = new Composer<BotContext>();
  download.command("file", () => {
    throw new Error(
      `error sending request for url (${built.apiRoot}/file/bot${built.token}/a.pdf)`,
    );
  });
  const bot = createBot({ ...built, features: [{ name: "file", composer: download }] });
  await bot.handleUpdate(textMessage({ updateId: 1, chatId: 5, text: "/file" }));
  const alert = String(calls.find((c) => c.body.chat_id === ADMIN)!.body.text);
  assert.ok(!alert.includes(built.token.split(":")[1]!), alert);
  assert.match(alert, /\/file\/bot\[redacted\]\/a\.pdf/);
});

Deno.test("createBot() records a user who blocked the bot instead of alerting; alerts a 403 in a group", async (t) => {
  await using store = await tempStore();
  const forbidden = { error_code: 403, description: "Forbidden: bot was blocked by the user" };
  const reply = new Composer<BotContext>();
  reply.command("hello", (ctx) => ctx.reply("hello"));
  reply.command("group", (ctx) => ctx.api.sendMessage(-100123, "to the staff"));
  reply.command("boom", () => {
    throw new Error("kaboom");
  });
  function setup(fail: (call: Call) => boolean) {
    const calls: Call[] = [];
    const blocked: number[] = [];
    const bot = createBot(options(store, {
      users: usersWithBans(new Set()),
      fetch: recordingFetch(calls, (call) => fail(call) ? forbidden : null),
      features: [{ name: "reply", composer: reply }],
      onBlocked: (id) => Promise.resolve(void blocked.push(id)),
    }));
    return { bot, calls, blocked, toAdmin: () => calls.filter((c) => c.body.chat_id === ADMIN) };
  }
  let updateId = 100;
  const send = (bot: ReturnType<typeof setup>["bot"], chatId: number, text: string) =>
    bot.handleUpdate(textMessage({ updateId: updateId++, chatId, text }));

  await t.step("a reply failing with 403: recorded, no apology, no alert", async () => {
    const { bot, calls, blocked, toAdmin } = setup((c) => c.body.chat_id === 5);
    await send(bot, 5, "/hello");
    assert.deepEqual(blocked, [5]);
    assert.equal(calls.length, 1, "only the failed reply");
    assert.equal(toAdmin().length, 0);
  });

  await t.step("a failing handler whose apology gets 403: recorded, and alerted", async () => {
    const { bot, blocked, toAdmin } = setup((c) => c.body.chat_id === 6);
    await send(bot, 6, "/boom");
    assert.deepEqual(blocked, [6]);
    assert.equal(toAdmin().length, 1);
  });

  await t.step("a 403 from a group is no user's block: alerted", async () => {
    const { bot, blocked, toAdmin } = setup((c) => c.body.chat_id === -100123);
    await send(bot, 7, "/group");
    assert.deepEqual(blocked, []);
    assert.equal(toAdmin().length, 1);
    assert.match(String(toAdmin()[0]!.body.text), /Forbidden: bot was blocked/);
  });

  await t.step("an alert that cannot be sent is logged and the update still ends", async () => {
    const { bot, toAdmin } = setup((c) => c.body.chat_id === ADMIN);
    await send(bot, 8, "/boom");
    assert.equal(toAdmin().length, 1, "tried once");
  });
});
