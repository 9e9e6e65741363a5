import assert from "node:assert/strict";
import type { Update } from "grammy/types";
import { logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { UpdateScheduler } from "../../src/transport/scheduler.ts";
import {
  MAX_WEBHOOK_BODY_BYTES,
  webhookHandler,
  webhookReplyOf,
  webhookRoute,
} from "../../src/transport/webhook.ts";
import { textMessage } from "../updates.ts";

const SECRET = "webhook_SECRET-123";
const URL_ = "http://127.0.0.1:8080/tg/hook";
const LIMIT = 1024;

const UPDATE = textMessage({ updateId: 1, chatId: 5, text: "hi", firstName: "A" });

/** A webhook handler wired to a real scheduler whose handler records updates. */
class Harness implements Disposable {
  readonly handled: Update[] = [];
  readonly metrics = new Metrics();
  accepting = true;
  /** When set, handling waits for this promise. */
  block: Promise<void> | null = null;
  readonly scheduler = new UpdateScheduler({
    handle: async (update) => {
      if (this.block) await this.block;
      this.handled.push(update);
    },
  });
  readonly handler;

  /** `buffered`: as the program's HTTP server serves the handler (bodies read whole). */
  constructor(options: { buffered?: boolean } = {}) {
    this.handler = webhookHandler({
      secret: SECRET,
      scheduler: this.scheduler,
      accepting: () => this.accepting,
      log: logger("test"),
      metrics: this.metrics,
      maxBodyBytes: LIMIT,
      ...options,
    });
  }

  async rejected(status: number): Promise<number> {
    const text = await this.metrics.registry.getSingleMetricAsString("bot_webhook_rejected_total");
    const line = text.split("\n").find((l) =>
      l.startsWith(`bot_webhook_rejected_total{status="${status}"} `)
    );
    return line === undefined ? 0 : Number(line.split(" ").at(-1));
  }

  [Symbol.dispose](): void {
    this.metrics[Symbol.dispose]();
  }
}

function post(
  body: BodyInit | null,
  headers: Record<string, string> = { "x-telegram-bot-api-secret-token": SECRET },
): Request {
  return new Request(URL_, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
}

/** Whether a promise has settled once every ready callback and timer ran. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol("pending");
  const first = await Promise.race([
    promise.then(() => "settled", () => "settled"),
    new Promise((resolve) => setTimeout(() => resolve(pending), 0)),
  ]);
  return first !== pending;
}

Deno.test("webhookHandler() refuses requests without the right secret", async (t) => {
  const cases: Array<{ name: string; headers: Record<string, string> }> = [
    { name: "missing", headers: {} },
    { name: "empty", headers: { "x-telegram-bot-api-secret-token": "" } },
    { name: "wrong", headers: { "x-telegram-bot-api-secret-token": "guess" } },
    { name: "a prefix", headers: { "x-telegram-bot-api-secret-token": SECRET.slice(0, -1) } },
    {
      name: "different case",
      headers: { "x-telegram-bot-api-secret-token": SECRET.toLowerCase() },
    },
  ];
  for (const { name, headers } of cases) {
    await t.step(`${name} secret → 401`, async () => {
      using h = new Harness();
      const res = await h.handler(post(JSON.stringify(UPDATE), headers));
      assert.equal(res.status, 401);
      assert.equal((await res.json()).ok, false);
      assert.deepEqual(h.handled, []);
      assert.equal(h.scheduler.handled, 0);
      assert.equal(await h.rejected(401), 1);
    });
  }

  await t.step("while stopping, a wrong secret still gets 401", async () => {
    using h = new Harness();
    h.accepting = false;
    const res = await h.handler(post(JSON.stringify(UPDATE), {}));
    assert.equal(res.status, 401);
    await res.body?.cancel();
  });
});

Deno.test("webhookHandler() answers 503 with retry-after while stopping", async () => {
  using h = new Harness();
  h.accepting = false;
  const res = await h.handler(post(JSON.stringify(UPDATE)));
  assert.equal(res.status, 503);
  assert.ok(Number(res.headers.get("retry-after")) > 0, "retry-after missing");
  assert.equal((await res.json()).ok, false);
  assert.deepEqual(h.handled, []);
  assert.equal(await h.rejected(503), 1);
});

Deno.test("webhookHandler() refuses a body over the limit with 413", async (t) => {
  await t.step("declared in content-length, before reading the body", async () => {
    using h = new Harness();
    let pulled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled = true;
        controller.enqueue(new TextEncoder().encode(JSON.stringify(UPDATE)));
        controller.close();
      },
    }, { highWaterMark: 0 });
    const res = await h.handler(
      post(body, {
        "x-telegram-bot-api-secret-token": SECRET,
        "content-length": String(LIMIT + 1),
      }),
    );
    assert.equal(res.status, 413);
    await res.body?.cancel();
    assert.equal(pulled, false, "the body was read although its declared size is too big");
    assert.deepEqual(h.handled, []);
    assert.equal(await h.rejected(413), 1);
  });

  await t.step("streamed without content-length, even when endless", async () => {
    using h = new Harness();
    let cancelled = false;
    const chunk = new TextEncoder().encode(`{"update_id":1,"padding":"${"x".repeat(300)}`);
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(chunk);
      },
      cancel() {
        cancelled = true;
      },
    });
    const req = post(endless);
    assert.equal(req.headers.get("content-length"), null);
    const res = await h.handler(req);
    assert.equal(res.status, 413);
    await res.body?.cancel();
    assert.ok(cancelled, "the handler kept the endless body open");
    assert.deepEqual(h.handled, []);
  });

  await t.step("a body of exactly the limit is accepted", async () => {
    using h = new Harness();
    const padded = (text: string) =>
      JSON.stringify(textMessage({ updateId: 1, chatId: 5, text, firstName: "A" }));
    const body = padded("x".repeat(LIMIT - padded("").length));
    assert.equal(body.length, LIMIT);
    const res = await h.handler(post(body));
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.equal(h.handled.length, 1);
  });

  await t.step("the default limit is 1 MiB", () => {
    assert.equal(MAX_WEBHOOK_BODY_BYTES, 1024 * 1024);
  });
});

Deno.test("webhookHandler() refuses a body that is not an update with 400", async (t) => {
  const cases: Array<{ name: string; body: BodyInit | null }> = [
    { name: "bad JSON", body: "{not json" },
    { name: "empty body", body: "" },
    { name: "no body", body: null },
    { name: "a JSON array", body: JSON.stringify([UPDATE]) },
    { name: "a JSON string", body: JSON.stringify("update") },
    { name: "null", body: "null" },
    { name: "no update_id", body: JSON.stringify({ message: UPDATE.message }) },
    { name: "a string update_id", body: JSON.stringify({ ...UPDATE, update_id: "1" }) },
    { name: "a fractional update_id", body: JSON.stringify({ ...UPDATE, update_id: 1.5 }) },
    { name: "invalid UTF-8", body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) },
  ];
  for (const { name, body } of cases) {
    await t.step(name, async () => {
      using h = new Harness();
      const res = await h.handler(post(body));
      assert.equal(res.status, 400);
      assert.equal((await res.json()).ok, false);
      assert.deepEqual(h.handled, []);
      assert.equal(await h.rejected(400), 1);
    });
  }
});

Deno.test("webhookHandler() answers 405 to anything but POST", async (t) => {
  for (const method of ["GET", "PUT", "DELETE"]) {
    await t.step(method, async () => {
      using h = new Harness();
      const res = await h.handler(
        new Request(URL_, {
          method,
          headers: { "x-telegram-bot-api-secret-token": SECRET },
        }),
      );
      assert.equal(res.status, 405);
      await res.body?.cancel();
      assert.deepEqual(h.handled, []);
    });
  }
});

Deno.test("webhookHandler() answers 200 only after the update was handled", async () => {
  using h = new Harness();
  const gate = Promise.withResolvers<void>();
  h.block = gate.promise;
  const responding = h.handler(post(JSON.stringify(UPDATE)));
  assert.equal(await isSettled(responding), false, "answered before the update was handled");
  assert.deepEqual(h.scheduler.pendingIds(), [1]);
  gate.resolve();
  const res = await responding;
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true });
  assert.deepEqual(h.handled, [UPDATE]);
  assert.equal(h.scheduler.inFlight, 0);
});

Deno.test("webhookHandler() handles a redelivered update once while it runs", async () => {
  using h = new Harness();
  const gate = Promise.withResolvers<void>();
  h.block = gate.promise;
  let scheduled = 0;
  const schedule = h.scheduler.schedule.bind(h.scheduler);
  h.scheduler.schedule = (update) => {
    scheduled++;
    return schedule(update);
  };
  const first = h.handler(post(JSON.stringify(UPDATE)));
  const retry = h.handler(post(JSON.stringify(UPDATE)));
  // Both requests must have reached the scheduler while the first is still running.
  while (scheduled < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(await isSettled(retry), false);
  gate.resolve();
  for (const res of await Promise.all([first, retry])) {
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  assert.equal(h.handled.length, 1);
});

Deno.test("webhookHandler() answers 200 to a malformed update (Telegram would send it again) and drops it", async (t) => {
  const user = { id: 5, is_bot: false, first_name: "A" };
  const chat = { id: 5, type: "private" };
  const cases: Array<{ name: string; body: unknown }> = [
    { name: "a null message", body: { update_id: 1, message: null } },
    { name: "a message that is a string", body: { update_id: 2, message: "hi" } },
    {
      name: "a language_code that is a number",
      body: { update_id: 3, message: { message_id: 1, chat, from: { ...user, language_code: 5 } } },
    },
    {
      name: "a text that is an object",
      body: { update_id: 4, message: { message_id: 1, chat, from: user, text: { a: 1 } } },
    },
    {
      name: "a sender id that is a string",
      body: {
        update_id: 5,
        message: { message_id: 1, chat, from: { ...user, id: "abc" }, text: "x" },
      },
    },
    {
      name: "two payloads",
      body: { update_id: 6, message: UPDATE.message, edited_message: UPDATE.message },
    },
    { name: "no payload", body: { update_id: 7 } },
    { name: "a negative update_id", body: { ...UPDATE, update_id: -1 } },
    {
      name: "a button press without an id",
      body: { update_id: 8, callback_query: { from: user } },
    },
    {
      name: "an unknown type with a bad sender",
      body: { update_id: 9, inline_query: { from: { id: "x" } } },
    },
  ];
  for (const { name, body } of cases) {
    await t.step(name, async () => {
      using h = new Harness();
      const res = await h.handler(post(JSON.stringify(body)));
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { ok: true, dropped: true });
      assert.deepEqual(h.handled, [], "never reaches the bot");
      const dropped = await h.metrics.registry.getSingleMetricAsString("bot_updates_dropped_total");
      assert.match(dropped, /bot_updates_dropped_total\{reason="malformed"\} 1/);
    });
  }
});

Deno.test("webhookHandler() replaces NUL characters and hands a well-formed update on", async () => {
  using h = new Harness();
  const update = textMessage({
    updateId: 10,
    chatId: 5,
    text: "a\u0000b",
    firstName: "N\u0000ull",
  });
  const res = await h.handler(post(JSON.stringify(update)));
  assert.equal(res.status, 200);
  const [handled] = h.handled as Array<{ message: { text: string; from: { first_name: string } } }>;
  assert.equal(handled?.message.text, "a\uFFFDb");
  assert.equal(handled?.message.from.first_name, "N\uFFFDull");
});

Deno.test("webhookHandler() keeps a trickled body's memory to the bytes received", async () => {
  // Needs `--v8-flags=--expose-gc` (the test task sets it) to tell held buffers from garbage.
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, "run with --v8-flags=--expose-gc");
  using h = new Harness();
  const bytes = new TextEncoder().encode(
    JSON.stringify(textMessage({ updateId: 1, chatId: 5, text: "x".repeat(2000), firstName: "A" })),
  );
  // One byte per chunk, each a view into its own 64 KiB buffer, as a slow client's TCP reads
  // arrive: a reader that kept the views would pin 64 KiB per byte received.
  const buffers: WeakRef<ArrayBuffer>[] = [];
  let mostHeld = 0;
  let at = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at === bytes.length) return controller.close();
      if (at % 500 === 499) {
        // A task boundary first: WeakRef targets stay alive until the current job ends.
        await new Promise((resolve) => setTimeout(resolve, 0));
        gc();
        mostHeld = Math.max(mostHeld, buffers.filter((b) => b.deref() !== undefined).length);
      }
      const buffer = new Uint8Array(65_536);
      buffer[0] = bytes[at++]!;
      buffers.push(new WeakRef(buffer.buffer));
      controller.enqueue(buffer.subarray(0, 1));
    },
  });
  const handler = webhookHandler({
    secret: SECRET,
    scheduler: h.scheduler,
    accepting: () => true,
    log: logger("test"),
    metrics: h.metrics,
  });
  const res = await handler(post(stream));
  assert.equal(res.status, 200);
  assert.equal(h.handled.length, 1);
  assert.ok(mostHeld < 10, `${mostHeld} chunk buffers of 64 KiB were held at once`);
});

Deno.test("webhookHandler() gives up on a body that does not arrive in time (408)", async () => {
  using h = new Harness();
  const handler = webhookHandler({
    secret: SECRET,
    scheduler: h.scheduler,
    accepting: () => true,
    log: logger("test"),
    metrics: h.metrics,
    bodyTimeoutMs: 50,
  });
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"update_id":'));
    },
  });
  const res = await handler(post(stream));
  assert.equal(res.status, 408);
  assert.deepEqual(h.handled, []);
});

Deno.test("webhookHandler() behind a server that reads bodies whole takes the body at once", async (t) => {
  await t.step("an update is handled and answered 200", async () => {
    using h = new Harness({ buffered: true });
    const res = await h.handler(post(new TextEncoder().encode(JSON.stringify(UPDATE))));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
    assert.deepEqual(h.handled, [UPDATE]);
  });

  await t.step("a body over the limit still gets 413", async () => {
    using h = new Harness({ buffered: true });
    const res = await h.handler(post(JSON.stringify({ ...UPDATE, pad: "x".repeat(LIMIT) })));
    assert.equal(res.status, 413);
    await res.body?.cancel();
    assert.deepEqual(h.handled, []);
    assert.equal(await h.rejected(413), 1);
  });

  await t.step("a body that is no JSON still gets 400", async () => {
    using h = new Harness({ buffered: true });
    const res = await h.handler(post("{not json"));
    assert.equal(res.status, 400);
    await res.body?.cancel();
    assert.deepEqual(h.handled, []);
  });
});

Deno.test("webhookHandler() answers with the call the update handed to its envelope", async () => {
  const payload = JSON.stringify({ method: "answerCallbackQuery", callback_query_id: "q1" });
  using metrics = new Metrics();
  const handler = webhookHandler({
    secret: SECRET,
    scheduler: new UpdateScheduler({
      // What grammY does with the first call a method allows: hand it over, answer `true`.
      handle: async (update) => await webhookReplyOf(update)?.send(payload),
    }),
    accepting: () => true,
    log: logger("test"),
    metrics,
  });
  const res = await handler(post(JSON.stringify(UPDATE)));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(await res.text(), payload);
  assert.equal(webhookReplyOf({ update_id: 9 } as Update), undefined, "no envelope outside");
});

Deno.test("webhookRoute() (the program's server, no WHATWG objects) answers as webhookHandler() does", async () => {
  const payload = JSON.stringify({ method: "answerCallbackQuery", callback_query_id: "q1" });
  const update = (id: number) => JSON.stringify({ ...UPDATE, update_id: id });
  const cases: {
    name: string;
    method?: string;
    secret?: string | null;
    body: string;
    accepting?: boolean;
  }[] = [
    { name: "an update", body: update(1) },
    { name: "an update that hands over a call", body: update(2) },
    { name: "a wrong secret", secret: "nope", body: update(3) },
    { name: "no secret", secret: null, body: update(4) },
    { name: "GET", method: "GET", body: "" },
    { name: "while stopping", accepting: false, body: update(5) },
    { name: "too large", body: JSON.stringify({ ...UPDATE, pad: "x".repeat(LIMIT) }) },
    { name: "not JSON", body: "{not json" },
    { name: "not UTF-8", body: "\u00ff" },
    { name: "no update", body: JSON.stringify({ hello: 1 }) },
    { name: "a malformed update", body: JSON.stringify({ update_id: 7, message: 42 }) },
  ];
  const answers = async (direct: boolean) => {
    using metrics = new Metrics();
    let accepting = true;
    const options = {
      secret: SECRET,
      scheduler: new UpdateScheduler({
        handle: async (u: Update) => {
          if (u.update_id === 2) await webhookReplyOf(u)?.send(payload);
        },
      }),
      accepting: () => accepting,
      log: logger("test"),
      metrics,
      maxBodyBytes: LIMIT,
      buffered: true,
    };
    const handler = webhookHandler(options);
    const route = webhookRoute(options, "/tg/hook");
    assert.equal(route.path, "/tg/hook");
    const seen = [];
    for (const c of cases) {
      accepting = c.accepting ?? true;
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (c.secret !== null) headers["x-telegram-bot-api-secret-token"] = c.secret ?? SECRET;
      // "not UTF-8" is sent as the byte 0xff.
      const body = c.name === "not UTF-8"
        ? new Uint8Array([0xff])
        : new TextEncoder().encode(c.body);
      const method = c.method ?? "POST";
      if (direct) {
        const res = await route.handler({
          method,
          header: (name) => new Headers(headers).get(name),
          body,
        });
        seen.push({ name: c.name, status: res.status, headers: res.headers, body: res.body });
      } else {
        const res = await handler(
          new Request(URL_, { method, headers, body: method === "GET" ? null : body }),
        );
        seen.push({
          name: c.name,
          status: res.status,
          headers: [...res.headers],
          body: await res.text(),
        });
      }
    }
    return seen;
  };
  const whatwg = await answers(false);
  assert.deepEqual(await answers(true), whatwg);
  assert.deepEqual(
    whatwg.map(({ status }) => status),
    [200, 200, 401, 401, 405, 503, 413, 400, 400, 400, 200],
  );
  assert.equal(whatwg[1]!.body, payload);
  assert.deepEqual(whatwg[5]!.headers, [["content-type", "application/json"], [
    "retry-after",
    "5",
  ]]);
});
