import assert from "node:assert/strict";
import type { Dialog } from "../../src/bot/dialog/dialog.ts";
import { greetingFeature } from "../../src/bot/features/account.ts";
import { createBot } from "../../src/bot/pipeline.ts";
import type { DialogRecord } from "../../src/bot/dialog/record.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { counter, feature, form } from "../e2e/fixtures/dialog_bot.ts";
import { openRedisStore } from "../../src/store/redis_store.ts";
import { startRedis } from "../support/redis_server.ts";
import { type Call, recordingFetch, testBotOptions, testGate } from "../support/bots.ts";
import { testOnBothStores } from "../support/stores.ts";
import { textMessage } from "../updates.ts";

const HOUR = 3_600_000;

/** A bot on `store` whose `sendMessage` calls land in `sent`, by chat. */
function testBot(store: KeyValueStore, options: { leaseMs?: number; instanceId?: string } = {}) {
  const calls: Call[] = [];
  const { metrics, ...rest } = testBotOptions();
  const bot = createBot({
    ...rest,
    metrics,
    fetch: recordingFetch(calls),
    gate: testGate(store, {
      leaseMs: options.leaseMs ?? 0,
      instanceId: options.instanceId ?? "test",
    }),
    // The greeting answers /help, a command no dialog step should take as an answer.
    features: [greetingFeature, {
      name: "test",
      composer: feature,
      dialogs: [form, counter] as Dialog<string, unknown>[],
    }],
  });
  const sent = () =>
    calls.filter((c) => c.method === "sendMessage")
      .map((c) => ({ chat: Number(c.body.chat_id), text: String(c.body.text) }));
  let updateId = 1 + Math.floor(Math.random() * 1e6) * 100;
  const send = async (chatId: number, text: string) => {
    await bot.handleUpdate(textMessage({ updateId: updateId++, chatId, text }));
  };
  const answers = (chat: number) => sent().filter((m) => m.chat === chat).map((m) => m.text);
  return { bot, send, sent, answers, metrics };
}

async function record(store: KeyValueStore, chat: number): Promise<DialogRecord | null> {
  return await store.get(["fsm", chat, chat]) as DialogRecord | null;
}

testOnBothStores("dialogs through the pipeline", async (t, store) => {
  await t.step(
    "each update's gate and commit are timed in bot_store_round_trip_seconds",
    async () => {
      const { send, metrics } = testBot(store);
      const counts = async () => {
        const sample = await metrics.storeRoundTrip.get();
        const count = (script: string) =>
          sample.values.find((v) =>
            v.metricName === "bot_store_round_trip_seconds_count" && v.labels.script === script
          )?.value ?? 0;
        return { gate: count("gate"), finish: count("finish") };
      };
      await send(31, "/help");
      await send(31, "/form");
      await send(31, "Ada");
      assert.deepEqual(await counts(), { gate: 3, finish: 3 });
    },
  );

  await t.step("a dialog is stored only when its state changes", async () => {
    const { send, answers } = testBot(store);
    await send(1, "/form");
    assert.equal((await record(store, 1))?.v, 1);
    await send(1, "/where");
    await send(1, "/help");
    assert.equal((await record(store, 1))?.v, 1, "reading the state wrote nothing");
    await send(1, "Ada");
    await send(1, "not a number");
    assert.equal((await record(store, 1))?.v, 2, "a refused answer wrote nothing");
    await send(1, "42");
    await send(1, "Paris");
    assert.deepEqual(answers(1).filter((a) => !a.startsWith("Here is")), [
      "Step 1 of 3: what is your name?",
      "You are at step name.",
      "Step 2 of 3: how old are you, Ada?",
      "Please send your age as a whole number, like 42.",
      "Step 3 of 3: which city do you live in?",
      "Done: Ada, 42, Paris.",
    ]);
    const left = await record(store, 1);
    assert.equal(left?.s, null);
    assert.equal(left?.v, 4);
  });

  await t.step("a user coming back to an expired dialog is told, once", async () => {
    const { send, answers } = testBot(store);
    const past = Date.now() - 1;
    await store.set(["fsm", 2, 2], {
      v: 3,
      s: "form:age",
      d: JSON.stringify({ name: "Ada" }),
      sAt: past,
      dAt: past,
    });
    await send(2, "42");
    await send(2, "/where");
    assert.deepEqual(answers(2), [
      "Your unfinished conversation with me expired after 1 hour without activity, so I had to drop it. Please start it again.",
      "You are not in a dialog.",
    ]);
    assert.equal((await record(store, 2))?.v, 4);
  });

  await t.step("a command after an expired dialog is told and still answered", async () => {
    const { send, answers } = testBot(store);
    const past = Date.now() - 1;
    await store.set(["fsm", 3, 3], { v: 1, s: "form:city", d: "{}", sAt: past, dAt: past });
    await send(3, "/form");
    await send(3, "Bob");
    assert.match(answers(3)[0]!, /expired/);
    assert.deepEqual(answers(3).slice(1), [
      "Step 1 of 3: what is your name?",
      "Step 2 of 3: how old are you, Bob?",
    ]);
  });

  await t.step("saved data that no longer fits resets the dialog with an apology", async () => {
    const { send, answers } = testBot(store);
    const later = Date.now() + HOUR;
    const misfits = [
      { s: "form:age", d: JSON.stringify({ name: 42 }) },
      { s: "form:renamed-step", d: "{}" },
      { s: "removed-dialog:step", d: "{}" },
    ];
    for (const [i, misfit] of misfits.entries()) {
      const chat = 40 + i;
      await store.set(["fsm", chat, chat], { v: 1, ...misfit, sAt: later, dAt: later });
      await send(chat, "42");
      await send(chat, "/where");
      assert.deepEqual(answers(chat), [
        "Sorry: the bot was updated and your unfinished conversation no longer fits it, so I had to drop it. Please start it again.",
        "You are not in a dialog.",
      ]);
    }
  });

  await t.step("data past FSM_DATA_TTL resets the dialog instead of failing", async () => {
    const { send, answers } = testBot(store);
    await store.set(["fsm", 5, 5], {
      v: 1,
      s: "counter:counting",
      d: JSON.stringify({ count: 3 }),
      sAt: Date.now() + HOUR,
      dAt: Date.now() - 1,
    });
    await send(5, "+");
    assert.match(answers(5)[0]!, /no longer fits/);
  });

  await t.step("two instances sharing the store lose no update of one chat", async () => {
    const a = testBot(store, { leaseMs: 10_000, instanceId: "a" });
    const b = testBot(store, { leaseMs: 10_000, instanceId: "b" });
    await a.send(6, "/count");
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).send(6, "+")),
    );
    const counts = [...a.answers(6), ...b.answers(6)]
      .filter((text) => text.startsWith("count="))
      .map((text) => Number(text.slice(6)))
      .sort((x, y) => x - y);
    assert.deepEqual(counts, Array.from({ length: 20 }, (_, i) => i + 1));
  });

  await t.step("a state written by someone else meanwhile is not overwritten", async () => {
    const { bot, answers, metrics } = testBot(store);
    await bot.handleUpdate(textMessage({ updateId: 7_000_001, chatId: 7, text: "/count" }));
    // Between this update's gate and its commit, another writer bumps the version.
    const sneaky = textMessage({ updateId: 7_000_002, chatId: 7, text: "+" });
    const original = store.run.bind(store);
    let injected = false;
    store.run = (async (script, keys, args) => {
      if (script.name === "finish" && !injected) {
        injected = true;
        const current = await store.get(["fsm", 7, 7]) as DialogRecord;
        await store.set(["fsm", 7, 7], { ...current, v: current.v + 1 });
      }
      return await original(script, keys, args);
    }) as KeyValueStore["run"];
    try {
      await bot.handleUpdate(sneaky);
    } finally {
      store.run = original;
    }
    assert.match(answers(7).at(-1)!, /crossed each other/);
    const data = JSON.parse((await record(store, 7))!.d!);
    assert.deepEqual(data, { count: 0 }, "the conflicting write was dropped");
    const sample = await metrics.dialogCommits.get();
    assert.equal(sample.values.find((v) => v.labels.result === "conflict")?.value, 1);
  });
});

Deno.test("dialogs: while Redis is unreachable, commands work and dialog steps say progress is kept", async () => {
  await using redis = await startRedis();
  const down = await openRedisStore({ url: redis.url, keyPrefix: "t:" });
  await redis.stop();
  const { send, answers } = testBot(down);
  await send(8, "/help");
  await send(8, "42");
  await send(8, "/form");
  const texts = answers(8);
  assert.match(texts[0]!, /^Here is what I can do/);
  const unavailable =
    "I can't reach my conversation storage right now. Your progress so far is kept: please send that again in a minute.";
  assert.deepEqual(texts.slice(1), [unavailable, unavailable]);
  await down.close();
});
