/**
 * Hostile input through the real program's webhook, with the right secret (so every body
 * reaches the parser): malformed updates get 200 and are dropped, metric labels stay the
 * known ones, NUL characters and odd ids never stop the event log, and a seeded fuzz of
 * thousands of bodies never gets a 5xx nor leaves an unhandled rejection behind.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import { KNOWN_UPDATE_TYPES } from "../../src/bot/update_check.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { testDatabaseConfig } from "../support/databases.ts";
import { BotProcess, freePort, metricSample, WEBHOOK_PATH, webhookEnv } from "./program.ts";

const SECRET = "hostile_input_SECRET_0123";

async function startBot(api: FakeBotApi, env: Record<string, string> = {}) {
  const port = freePort();
  const bot = await BotProcess.start({
    api,
    env: { ...webhookEnv(port, SECRET), RATE_LIMIT_MAX_REQUESTS: "10000", ...env },
  });
  await bot.waitReady();
  const post = async (body: string | Uint8Array) => {
    const res = await fetch(`${bot.url}${WEBHOOK_PATH}`, {
      method: "POST",
      body: body as BodyInit,
      headers: { "x-telegram-bot-api-secret-token": SECRET, "content-type": "application/json" },
    });
    const text = await res.text();
    return { status: res.status, text };
  };
  const metrics = async () => (await bot.get("/metrics")).body;
  return { bot, post, metrics };
}

const user = (id: unknown = 700) => ({ id, is_bot: false, first_name: "Mallory" });
const chat = (id: unknown = 700) => ({ id, type: "private" });
const message = (fields: Record<string, unknown>) => ({
  message_id: 1,
  date: 1,
  chat: chat(),
  from: user(),
  ...fields,
});

Deno.test("hostile input: malformed updates get 200 and reach no feature; labels stay known; NUL and odd ids never stop the event log", async () => {
  await using api = await FakeBotApi.start();
  const { bot, post, metrics } = await startBot(api);
  await using _bot = bot;
  const bodies: Array<[string, unknown]> = [
    ["a null message", { update_id: 1, message: null }],
    ["a language_code that is a number", {
      update_id: 2,
      message: message({ from: { ...user(), language_code: 5 }, text: "/start" }),
    }],
    ["a text that is an array", { update_id: 3, message: message({ text: ["/start"] }) }],
    ["a sender id that is a string", {
      update_id: 4,
      message: message({ from: user("abc"), text: "/start" }),
    }],
    ["__proto__ as the update type", JSON.parse('{"update_id":5,"__proto__":{"from":{"id":1}}}')],
    ["constructor as the update type", { update_id: 6, constructor: {} }],
    ["an empty update type", { update_id: 7, "": {} }],
  ];
  for (const [name, body] of bodies) {
    const { status } = await post(JSON.stringify(body));
    assert.equal(status, 200, name);
  }
  assert.equal(api.sentMessages(700).length, 0, "no malformed update reached a feature");

  // A NUL in a text and a name reaches the bot as U+FFFD; the update is handled and logged.
  const nul = {
    update_id: 20,
    message: message({
      text: "/start\u0000\u0000",
      entities: [{ type: "bot_command", offset: 0, length: 6 }],
      from: { ...user(), first_name: "N\u0000" },
    }),
  };
  assert.equal((await post(JSON.stringify(nul))).status, 200);
  await api.waitFor(() => api.sentMessages(700).length === 1 || undefined, 15_000, "the greeting");
  const text = await metrics();
  const types = [...text.matchAll(/bot_updates_total\{type="([^"]*)"/g)].map((m) => m[1]!);
  assert.ok(types.every((type) => type === "other" || KNOWN_UPDATE_TYPES.has(type)), types.join());
  assert.ok(metricSample(text, 'bot_updates_dropped_total{reason="malformed"}') >= 4);
  assert.equal((await bot.stop()).code, 0);

  // The stop wrote the event log: the update with NULs is in it, nothing was refused.
  const db = await openDatabase({ config: testDatabaseConfig(null), dataDir: `${bot.cwd}/data` });
  try {
    const rows = await db.sql`select update_id, type, command from events order by update_id`;
    // Only well-formed updates were handled: those of unknown types as "other", whatever key
    // they came under, and the one with NULs as the message it is.
    assert.deepEqual([...rows].map((r) => [r.update_id, r.type]), [
      [5, "other"],
      [6, "other"],
      [7, "other"],
      [20, "message"],
    ]);
    assert.match(String(rows[3]!.command), /^\/start/);
  } finally {
    await db.close();
  }
  assert.equal(metricSample(text, 'bot_events_dropped_total{reason="rejected"}'), 0);
});

/** mulberry32: a small seeded PRNG, so that a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bodies an attacker (or a broken proxy) might post: valid-looking updates with their fields mangled, and garbage. */
function hostileBody(random: () => number, id: number): string | Uint8Array {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const weird = (): unknown =>
    pick([
      null,
      true,
      -1,
      1e308,
      2 ** 53 + 2,
      "",
      "\u0000",
      "\uD800",
      "x".repeat(Math.floor(random() * 5000)),
      [],
      {},
      [[[[[[[[[[]]]]]]]]]],
      { __proto__: { polluted: true } },
      "<b>&amp;",
      "/start",
    ]);
  const kind = Math.floor(random() * 8);
  if (kind === 0) {
    return new Uint8Array(
      Array.from({ length: 1 + Math.floor(random() * 200) }, () => Math.floor(random() * 256)),
    );
  }
  if (kind === 1) return JSON.stringify(weird());
  if (kind === 2) return `{"update_id":${id},"message":${"[".repeat(5000)}`;
  const base: Record<string, unknown> = random() < 0.5
    ? {
      update_id: id,
      message: message({
        text: pick(["/start", "/help", "/new", "hi"]),
        chat: chat(700 + id % 50),
        from: user(700 + id % 50),
      }),
    }
    : {
      update_id: id,
      callback_query: {
        id: String(id),
        from: user(700 + id % 50),
        data: pick(["rq:c:0:abcd", "staff:take:1", "lang:ru", "x"]),
        message: { message_id: 1, date: 1, chat: chat(700 + id % 50) },
      },
    };
  // Mangle a few fields at random depths.
  for (let n = Math.floor(random() * 4); n > 0; n--) {
    const payload = base[Object.keys(base).find((k) => k !== "update_id")!] as Record<
      string,
      unknown
    >;
    const target = random() < 0.5
      ? payload
      : (payload[pick(["from", "chat", "message"])] as Record<string, unknown> | undefined) ??
        payload;
    if (typeof target === "object" && target !== null) {
      target[pick(Object.keys(target).concat(["extra", "entities", "text"]))] = weird();
    }
  }
  if (kind === 3) {
    base[pick(["message", "edited_message", "other_thing", "__proto__", ""])] = weird();
  }
  const json = JSON.stringify(base);
  return kind === 4 ? json.slice(0, Math.floor(random() * json.length)) : json;
}

Deno.test("hostile input: a seeded fuzz of 3000 bodies gets no 5xx, leaves no unhandled rejection, and the bot still answers and logs events", async () => {
  await using api = await FakeBotApi.start();
  const { bot, post, metrics } = await startBot(api);
  await using _bot = bot;
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? 20261201);
  const random = prng(seed);
  const statuses = new Map<number, number>();
  const deadline = performance.now() + 60_000;
  let next = 10_000;
  const worker = async () => {
    while (next < 13_000 && performance.now() < deadline) {
      const id = next++;
      const { status } = await post(hostileBody(random, id));
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const serverErrors = [...statuses].filter(([status]) => status >= 500);
  assert.deepEqual(serverErrors, [], `seed ${seed}: ${JSON.stringify([...statuses])}`);
  assert.deepEqual(
    bot.logs(/unhandled promise rejection|HTTP handler failed/).map((l) => l.msg),
    [],
  );

  const written = metricSample(await metrics(), "bot_events_written_total");
  api.pushMessage({ chatId: 9999, text: "/start" });
  await api.waitFor(
    () => api.sentMessages(9999).length === 1 || undefined,
    15_000,
    "a normal update answered",
  );
  const after = await (async () => {
    for (let i = 0; i < 100; i++) {
      const now = metricSample(await metrics(), "bot_events_written_total");
      if (now > written) return now;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return written;
  })();
  assert.ok(after > written, "the event log still writes");
  assert.equal((await bot.stop()).code, 0);
});
