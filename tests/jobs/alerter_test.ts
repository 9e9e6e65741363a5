/**
 * The alerter as admins see it: one message per problem and one when it clears, whatever the
 * number of instances and rounds; the store's own outage and a store that is down are decided
 * per instance, in memory; a message Telegram did not take goes out later.
 */
import assert from "node:assert/strict";
import type { Api } from "grammy";
import { Alerter } from "../../src/jobs/alerter.ts";
import { logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { tempKvStore } from "../support/stores.ts";
import type { KeyValueStore } from "../../src/store/store.ts";

const ADMINS = [1, 2];

/** A bot API that records messages, and refuses them while `down` is set. */
function fakeApi() {
  const sent: { chat: number; text: string }[] = [];
  const api = {
    down: false,
    sent,
    sendMessage(chat: number, text: string) {
      if (api.down) return Promise.reject(new Error("Network request failed"));
      sent.push({ chat, text });
      return Promise.resolve({ message_id: sent.length });
    },
  };
  return api;
}

function alerter(
  store: KeyValueStore,
  metrics: Metrics,
  api: ReturnType<typeof fakeApi>,
  instanceId: string,
  now: () => number = Date.now,
): Alerter {
  return new Alerter({
    store,
    instanceId,
    api: () => api as unknown as Api,
    adminIds: ADMINS,
    locale: "en",
    alertAfterMs: 0,
    staleMs: 60_000,
    metrics: metrics.background,
    log: logger("alerts"),
    now,
  });
}

async function withStore(body: (store: KeyValueStore, metrics: Metrics) => Promise<void>) {
  await using store = await tempKvStore("alerter-test-");
  using metrics = new Metrics();
  await body(store, metrics);
}

const texts = (api: ReturnType<typeof fakeApi>, chat: number) =>
  api.sent.filter((m) => m.chat === chat).map((m) => m.text);

Deno.test("Alerter: two instances seeing the database down tell each admin once, and once when it is back", async () => {
  await withStore(async (store, metrics) => {
    const api = fakeApi();
    const [a, b] = [alerter(store, metrics, api, "a"), alerter(store, metrics, api, "b")];
    for (let round = 0; round < 3; round++) {
      await a.report("database", true, "connection refused");
      await b.report("database", true, "connection refused");
    }
    await a.report("database", false);
    await b.report("database", false);
    await b.report("database", false);
    for (const admin of ADMINS) {
      assert.deepEqual(texts(api, admin), [
        "🚨 <b>The database</b>: failing.\n<code>connection refused</code>",
        "✅ Recovered: <b>The database</b> works again.",
      ]);
    }
    const counted = (await metrics.background.alerts.get()).values
      .filter((v) => v.labels.problem === "database").map((v) => [v.labels.change, v.value]);
    assert.deepEqual(counted, [["raised", 1], ["cleared", 1]]);
  });
});

Deno.test("Alerter: the store's own outage is decided by each instance alone", async () => {
  await withStore(async (store, metrics) => {
    const api = fakeApi();
    const [a, b] = [alerter(store, metrics, api, "a"), alerter(store, metrics, api, "b")];
    for (const instance of [a, b, a, b]) {
      await instance.report("store", true, "Redis is unreachable", { local: true });
    }
    for (const instance of [a, b, a]) await instance.report("store", false, "", { local: true });
    // One alert and one recovery per instance: the store could not have told them apart.
    assert.equal(texts(api, 1).filter((t) => t.startsWith("🚨")).length, 2);
    assert.equal(texts(api, 1).filter((t) => t.startsWith("✅")).length, 2);
  });
});

Deno.test("Alerter: while the store is down a problem is decided in memory, with ALERT_AFTER, until it clears", async () => {
  using metrics = new Metrics();
  let clock = 0;
  const broken = { run: () => Promise.reject(new Error("The client is offline")) };
  const store = broken as unknown as KeyValueStore;
  const api = fakeApi();
  const a = new Alerter({
    store,
    instanceId: "a",
    api: () => api as unknown as Api,
    adminIds: [1],
    locale: "en",
    alertAfterMs: 60_000,
    staleMs: 60_000,
    metrics: metrics.background,
    log: logger("alerts"),
    now: () => clock,
  });
  await a.report("database", true, "timeout");
  clock = 59_000;
  await a.report("database", true, "timeout");
  assert.deepEqual(api.sent, []);
  clock = 61_000;
  await a.report("database", true, "timeout");
  assert.deepEqual(texts(api, 1), [
    "🚨 <b>The database</b>: failing for 61 seconds.\n<code>timeout</code>",
  ]);
  clock = 90_000;
  await a.report("database", false);
  assert.equal(texts(api, 1).length, 2);
});

Deno.test("Alerter: a message Telegram did not take goes out at the next report; one that became moot never does", async () => {
  await withStore(async (store, metrics) => {
    const api = fakeApi();
    const a = alerter(store, metrics, api, "a");
    api.down = true;
    await a.report("disk", true, "120 MiB free");
    assert.deepEqual(api.sent, []);
    api.down = false;
    await a.report("disk", true, "110 MiB free");
    assert.deepEqual(texts(api, 1), [
      "🚨 <b>Free disk space under DATA_DIR</b>: failing.\n<code>120 MiB free</code>",
    ]);
    // Raised and cleared while Telegram was unreachable: nobody needs to hear of it.
    api.down = true;
    await a.report("events", true, "3 events dropped");
    await a.report("events", false);
    api.down = false;
    await a.flush();
    assert.equal(texts(api, 1).filter((text) => text.includes("event log")).length, 0);
  });
});
