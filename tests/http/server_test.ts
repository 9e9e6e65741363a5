import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import {
  type AcceptSource,
  type HttpServer,
  ListenerStoppedError,
  serveHttp,
  type ServeHttpOptions,
  type ServerClock,
  type ServerLog,
} from "../../src/http/server.ts";

// The server must never let a rejection escape; the runner's own report is replaced by a
// list that every test checks, so that the failing test is the one that caused it.
const unhandled: unknown[] = [];
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled.push(event.reason);
});

/** The program passes a @logtape/logtape Logger as the server's log. */
const _loggerFits: ServerLog = getLogger(["test"]);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Answers `METHOD /path body`, with the full URL in `x-url`. */
async function echo(req: Request): Promise<Response> {
  const body = req.body ? await req.text() : "";
  return new Response(`${req.method} ${new URL(req.url).pathname} ${body}`, {
    headers: { "x-url": req.url },
  });
}

function start(options: Partial<ServeHttpOptions> = {}): HttpServer {
  return serveHttp({ hostname: "127.0.0.1", port: 0, handler: echo, ...options });
}

async function assertNoUnhandledRejection(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(unhandled, []);
}

/** Polls a condition that the server reaches on its own; fails after `timeoutMs`. */
async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A clock that moves only when the test says so; due callbacks run in time order. */
class FakeClock implements ServerClock {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  schedule(fn: () => void, ms: number): () => void {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return () => this.#timers.delete(id);
  }

  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = target;
  }
}

/** Collects what the server logs. */
class RecordingLog implements ServerLog {
  readonly warnings: { message: string; properties: Record<string, unknown> }[] = [];
  warning(message: string, properties: Record<string, unknown> = {}): void {
    this.warnings.push({ message, properties });
  }
  info(): void {}
}

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** A client that writes raw bytes and parses the responses by hand. */
class RawClient implements Disposable {
  #buf = new Uint8Array(0);

  constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
  }

  /** The next response; `head` when it answers a HEAD request (no body follows). */
  async response({ head = false } = {}): Promise<RawResponse> {
    let end: number;
    while ((end = indexOfBlankLine(this.#buf)) < 0) {
      if (!await this.#more()) {
        throw new Error(`closed before a response; got ${JSON.stringify(this.#text())}`);
      }
    }
    const lines = decoder.decode(this.#buf.subarray(0, end)).split("\r\n");
    const status = Number(lines[0]!.split(" ")[1]);
    const headers = new Headers();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    this.#buf = this.#buf.slice(end + 4);
    const bodyless = head || status === 100 || status === 204 || status === 304;
    const length = bodyless ? 0 : Number(headers.get("content-length") ?? 0);
    while (this.#buf.length < length) {
      if (!await this.#more()) throw new Error("closed in the middle of a body");
    }
    const body = decoder.decode(this.#buf.subarray(0, length));
    this.#buf = this.#buf.slice(length);
    return { status, headers, body };
  }

  /** Everything the server still sends until it closes the connection. */
  async rest(): Promise<string> {
    while (await this.#more());
    return this.#text();
  }

  [Symbol.dispose](): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  #text(): string {
    return decoder.decode(this.#buf);
  }

  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch {
      n = null; // A reset ends the stream too.
    }
    if (n === null) return false;
    const grown = new Uint8Array(this.#buf.length + n);
    grown.set(this.#buf);
    grown.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = grown;
    return true;
  }
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** Sends `data` and waits until the server has read it, so that what follows acts after. */
async function deliver(server: HttpServer, client: RawClient, data: string): Promise<void> {
  const expected = server.stats.bytesReceived + encoder.encode(data).length;
  await client.send(data);
  await waitFor("the bytes to arrive", () => server.stats.bytesReceived >= expected);
}

/** One request on a fresh connection; the connection is closed afterwards. */
async function exchange(port: number, raw: string | Uint8Array): Promise<RawResponse> {
  using client = await RawClient.connect(port);
  await client.send(raw);
  return await client.response();
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: bot.test\r\n\r\n`;
const POST = (path: string, body: string) =>
  `POST ${path} HTTP/1.1\r\nHost: bot.test\r\nContent-Length: ${
    encoder.encode(body).length
  }\r\n\r\n${body}`;

Deno.test("serveHttp() keeps connections alive and answers pipelined requests in order", async (t) => {
  let active = 0;
  let mostActive = 0;
  await using server = start({
    handler: async (req) => {
      active++;
      mostActive = Math.max(mostActive, active);
      // Yield a few times so that a second request would overlap if the server allowed it.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      active--;
      const path = new URL(req.url).pathname;
      if (path === "/bye") {
        return new Response("bye", {
          headers: { connection: "close", "x-custom": "1", "transfer-encoding": "chunked" },
        });
      }
      return await echo(req);
    },
  });
  const port = server.addr.port;

  await t.step("two requests on one HTTP/1.1 connection", async () => {
    using client = await RawClient.connect(port);
    await client.send(GET("/one"));
    const first = await client.response();
    assert.equal(first.status, 200);
    assert.equal(first.body, "GET /one ");
    assert.equal(first.headers.get("keep-alive"), "timeout=30");
    assert.equal(first.headers.get("connection"), null);
    assert.match(first.headers.get("date") ?? "", /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
    await client.send(GET("/two"));
    assert.equal((await client.response()).body, "GET /two ");
  });

  await t.step("pipelined requests are answered in order, one at a time", async () => {
    using client = await RawClient.connect(port);
    await client.send(GET("/a") + POST("/b", "xyz") + "\r\n" + GET("/c"));
    assert.equal((await client.response()).body, "GET /a ");
    assert.equal((await client.response()).body, "POST /b xyz");
    assert.equal((await client.response()).body, "GET /c ");
    assert.equal(mostActive, 1);
  });

  await t.step("Connection: close from the client closes after the response", async () => {
    using client = await RawClient.connect(port);
    await client.send("GET /x HTTP/1.1\r\nHost: bot.test\r\nConnection: close\r\n\r\n" + GET("/y"));
    const res = await client.response();
    assert.equal(res.body, "GET /x ");
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(await client.rest(), "");
  });

  await t.step("Connection: close from the handler closes after the response", async () => {
    using client = await RawClient.connect(port);
    await client.send(GET("/bye"));
    const res = await client.response();
    assert.equal(res.body, "bye");
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(res.headers.get("x-custom"), "1");
    assert.equal(res.headers.get("transfer-encoding"), null);
    assert.equal(res.headers.get("content-length"), "3");
    assert.equal(await client.rest(), "");
  });

  await t.step("HTTP/1.0 closes unless asked to keep alive", async () => {
    using plain = await RawClient.connect(port);
    await plain.send("GET /old HTTP/1.0\r\n\r\n");
    const res = await plain.response();
    // Without Host, the URL names the listen address.
    assert.equal(res.headers.get("x-url"), `http://127.0.0.1:${port}/old`);
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(await plain.rest(), "");

    using kept = await RawClient.connect(port);
    await kept.send("GET /k1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal((await kept.response()).headers.get("connection"), "keep-alive");
    await kept.send("GET /k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal((await kept.response()).body, "GET /k2 ");
  });

  await t.step("HEAD gets the headers only", async () => {
    using client = await RawClient.connect(port);
    await client.send(`HEAD /h HTTP/1.1\r\nHost: bot.test\r\n\r\n${GET("/after")}`);
    const head = await client.response({ head: true });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String("HEAD /h ".length));
    // Had a body followed the HEAD response, this would parse garbage.
    assert.equal((await client.response()).body, "GET /after ");
  });
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() reads request bodies", async (t) => {
  await using server = start();
  const port = server.addr.port;

  await t.step("by Content-Length", async () => {
    assert.equal((await exchange(port, POST("/p", "héllo"))).body, "POST /p héllo");
  });

  await t.step(
    "chunked, with extensions and trailers, followed by a pipelined request",
    async () => {
      using client = await RawClient.connect(port);
      await client.send(
        "POST /c HTTP/1.1\r\nHost: bot.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n" + GET("/next"),
      );
      assert.equal((await client.response()).body, "POST /c hello world");
      assert.equal((await client.response()).body, "GET /next ");
    },
  );

  await t.step("chunked, arriving in pieces", async () => {
    using client = await RawClient.connect(port);
    const pieces = [
      "POST /c HTTP/1.1\r\nHost: bot.test\r\nTransfer-Encoding: Chunked\r\n\r\n",
      "a\r",
      "\n0123",
      "456789\r\n",
      "0\r\n",
      "\r\n",
    ];
    // Each piece is read by the server before the next is sent: every boundary is exercised.
    for (const piece of pieces) await deliver(server, client, piece);
    assert.equal((await client.response()).body, "POST /c 0123456789");
  });

  await t.step("a body on GET is read and not passed on", async () => {
    using client = await RawClient.connect(port);
    await client.send(
      `GET /g HTTP/1.1\r\nHost: bot.test\r\nContent-Length: 3\r\n\r\nabc${GET("/g2")}`,
    );
    assert.equal((await client.response()).body, "GET /g ");
    assert.equal((await client.response()).body, "GET /g2 ");
  });

  await t.step("Expect: 100-continue gets 100 Continue before the body is sent", async () => {
    using client = await RawClient.connect(port);
    await client.send(
      "POST /e HTTP/1.1\r\nHost: bot.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    assert.equal((await client.response()).status, 100);
    await client.send("body");
    assert.equal((await client.response()).body, "POST /e body");
  });

  await t.step("the URL comes from Host, or from an absolute-form target", async () => {
    const res = await exchange(port, "GET /u?q=1 HTTP/1.1\r\nHost: Bot.Test:8443\r\n\r\n");
    assert.equal(res.headers.get("x-url"), "http://bot.test:8443/u?q=1");
    const absolute = await exchange(port, "GET http://other.test/a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(absolute.headers.get("x-url"), "http://other.test/a");
  });
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() refuses malformed and smuggling requests, then closes", async (t) => {
  let handled = 0;
  await using server = start({
    maxBodyBytes: 1000,
    maxHeaderBytes: 1024,
    handler: (req) => {
      handled++;
      return echo(req);
    },
  });
  const port = server.addr.port;
  const smuggled = GET("/smuggled");
  const cases: [string, string, number][] = [
    [
      "Content-Length with Transfer-Encoding",
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      400,
    ],
    [
      "two different Content-Lengths",
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 28\r\n\r\n${smuggled}`,
      400,
    ],
    [
      "two equal Content-Lengths",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
      400,
    ],
    ["a Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na", 400],
    ["a signed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400],
    ["a hex Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\na", 400],
    ["an empty Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400],
    [
      "Transfer-Encoding: gzip, chunked",
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    [
      "Transfer-Encoding repeated",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
    ],
    [
      "Transfer-Encoding: identity",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
      400,
    ],
    [
      "Transfer-Encoding in HTTP/1.0",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
    ],
    ["bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n", 400],
    ["a bare LF inside the head", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400],
    ["a bare CR inside the head", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400],
    ["a space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400],
    ["a header name with a bracket", "GET / HTTP/1.1\r\nHost: x\r\nX(a): b\r\n\r\n", 400],
    ["an empty header name", "GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400],
    ["a NUL in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400],
    ["two spaces in the request line", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["a tab in the request line", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["no version", "GET /\r\nHost: x\r\n\r\n", 400],
    ["a lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400],
    ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505],
    ["no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400],
    ["two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400],
    ["an invalid Host", "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", 400],
    ["an authority-form target", "GET bot.test:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["CONNECT", "CONNECT bot.test:443 HTTP/1.1\r\nHost: bot.test:443\r\n\r\n", 501],
    [
      "an invalid chunk size",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
      400,
    ],
    [
      "chunk data longer than its size",
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n`,
      400,
    ],
    [
      "a chunk line with a bare LF",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n",
      400,
    ],
    [
      "a Content-Length above the limit",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
      413,
    ],
    [
      "chunks above the limit",
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n${
        "a".repeat(500)
      }\r\n1f5\r\n`,
      413,
    ],
    [
      "a head above the limit",
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(1100)}\r\n\r\n`,
      431,
    ],
    ["Expect other than 100-continue", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417],
  ];
  for (const [name, raw, status] of cases) {
    await t.step(`${name}: ${status}`, async () => {
      using client = await RawClient.connect(port);
      await client.send(raw);
      const res = await client.response();
      assert.equal(res.status, status);
      assert.equal(res.headers.get("connection"), "close");
      assert.equal(await client.rest(), "");
    });
  }
  assert.equal(handled, 0);
  assert.equal(server.stats.rejected, cases.length);
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() closes connections that are too slow", async (t) => {
  const clock = new FakeClock();
  const big = new Uint8Array(32 * 1024 * 1024);
  await using server = start({
    clock,
    headerTimeoutMs: 1000,
    idleTimeoutMs: 2000,
    bodyTimeoutMs: 1500,
    writeTimeoutMs: 1000,
    handler: (req) =>
      new URL(req.url).pathname === "/big" ? Promise.resolve(new Response(big)) : echo(req),
  });
  const { stats } = server;
  const port = server.addr.port;

  await t.step("a connection that sends nothing is closed without an answer", async () => {
    using client = await RawClient.connect(port);
    await waitFor("the accept", () => stats.open === 1);
    clock.advance(999);
    assert.equal(stats.timeouts.header, 0);
    clock.advance(300);
    assert.equal(stats.timeouts.header, 1);
    assert.equal(await client.rest(), "");
  });

  await t.step("the head must be whole within the header time, however it trickles", async () => {
    using client = await RawClient.connect(port);
    for (const piece of ["GET / HT", "TP/1.1\r\n", "Host: bot"]) {
      await deliver(server, client, piece);
      clock.advance(300);
    }
    assert.equal(stats.timeouts.header, 1);
    // The sweep runs every quarter of the shortest timeout: past the deadline by one sweep.
    clock.advance(400);
    assert.equal(stats.timeouts.header, 2);
    const res = await client.response();
    assert.equal(res.status, 408);
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(await client.rest(), "");
  });

  await t.step("a kept-alive connection is closed after the idle time", async () => {
    using client = await RawClient.connect(port);
    await client.send(GET("/once"));
    assert.equal((await client.response()).headers.get("keep-alive"), "timeout=2");
    clock.advance(1900);
    assert.equal(stats.timeouts.idle, 0);
    clock.advance(400);
    assert.equal(stats.timeouts.idle, 1);
    assert.equal(await client.rest(), "");
  });

  await t.step("a kept-alive request's header time starts at its first byte", async () => {
    using client = await RawClient.connect(port);
    await client.send(GET("/first"));
    await client.response();
    clock.advance(1500);
    await deliver(server, client, "GET /second HTTP/1.1\r\n");
    clock.advance(700);
    await client.send("Host: bot.test\r\n\r\n");
    assert.equal((await client.response()).body, "GET /second ");
    assert.deepEqual(stats.timeouts, { header: 2, idle: 1, body: 0, write: 0 });
  });

  await t.step("a body that does not arrive within the body time gets 408", async () => {
    using client = await RawClient.connect(port);
    await deliver(
      server,
      client,
      "POST /b HTTP/1.1\r\nHost: bot.test\r\nContent-Length: 10\r\n\r\nabc",
    );
    clock.advance(1400);
    assert.equal(stats.timeouts.body, 0);
    clock.advance(400);
    assert.equal(stats.timeouts.body, 1);
    assert.equal((await client.response()).status, 408);
  });

  await t.step(
    "a client that does not read its response is closed after the write time",
    async () => {
      using client = await RawClient.connect(port);
      await client.send(GET("/big"));
      await waitFor("the write timeout", () => {
        clock.advance(500);
        return stats.timeouts.write === 1;
      });
      await waitFor("the close", () => stats.open === 0);
    },
  );
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() evicts idle connections at the cap", async (t) => {
  const clock = new FakeClock();
  let release = () => {};
  const busy = new Promise<void>((resolve) => release = resolve);
  await using server = start({
    clock,
    maxConnections: 50,
    evictGraceMs: 500,
    handler: async (req) => {
      if (new URL(req.url).pathname === "/busy") await busy;
      return await echo(req);
    },
  });
  const { stats } = server;
  const port = server.addr.port;
  const idle: RawClient[] = [];
  try {
    await t.step("connections beyond the cap get 503 while all are fresh", async () => {
      for (let i = 0; i < 50; i++) idle.push(await RawClient.connect(port));
      await waitFor("50 accepts", () => stats.accepted === 50);
      const more = await Promise.all(
        Array.from({ length: 250 }, () => RawClient.connect(port)),
      );
      idle.push(...more);
      await waitFor("300 accepts", () => stats.accepted === 300);
      assert.equal(stats.refused, 250);
      const refused = await more[0]!.response();
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("connection"), "close");
    });

    await t.step("a request gets through once idle ones are past the grace", async () => {
      clock.advance(600);
      const res = await exchange(port, GET("/health"));
      assert.equal(res.status, 200);
      assert.equal(stats.evicted, 1);
      assert.equal((await exchange(port, GET("/health"))).status, 200);
      assert.equal(stats.evicted, 2);
    });

    await t.step("connections in the middle of a request are never evicted", async () => {
      for (const client of idle.splice(0)) client[Symbol.dispose]();
      await waitFor("the idle ones to close", () => stats.open === 0);
      using a = await RawClient.connect(port);
      await a.send(GET("/busy"));
      await waitFor("the handler", () => stats.requests === 3);
      using b = await RawClient.connect(port);
      const head = "POST /slow HTTP/1.1\r\nHost: bot.test\r\nContent-Length: 9\r\n\r\nabc";
      const expected = stats.bytesReceived + head.length;
      await b.send(head);
      await waitFor("the start of the body", () => stats.bytesReceived === expected);
      const connectMany = async (n: number, accepted: number) => {
        idle.push(...await Promise.all(Array.from({ length: n }, () => RawClient.connect(port))));
        await waitFor(`${accepted} accepts`, () => stats.accepted === accepted);
      };
      // 48 idle connections fill the cap; once past the grace, each newcomer evicts one.
      await connectMany(48, 352);
      clock.advance(600);
      await connectMany(48, 400);
      assert.equal(stats.evicted, 2 + 48);
      assert.equal(stats.refused, 250);
      // Only fresh ones and the two busy ones are left: nothing may be evicted.
      await connectMany(1, 401);
      assert.equal(stats.evicted, 2 + 48);
      assert.equal(stats.refused, 251);
      release();
      assert.equal((await a.response()).body, "GET /busy ");
      await b.send("defghi");
      assert.equal((await b.response()).body, "POST /slow abcdefghi");
    });
  } finally {
    for (const client of idle) client[Symbol.dispose]();
  }
  await assertNoUnhandledRejection();
});

/** A listener that fails its next accepts with the errors queued in `failures`. */
function faultyListener(failures: Error[]): ServeHttpOptions["listen"] {
  return (options): AcceptSource => {
    const listener = Deno.listen(options);
    return {
      addr: listener.addr,
      accept: () => {
        const failure = failures.shift();
        return failure ? Promise.reject(failure) : listener.accept();
      },
      close: () => listener.close(),
    };
  };
}

const emfile = () =>
  Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
const econnaborted = () =>
  Object.assign(new Deno.errors.ConnectionAborted("Software caused connection abort"), {
    code: "ECONNABORTED",
  });

Deno.test("serveHttp() keeps accepting through accept errors", async (t) => {
  const failures: Error[] = [];
  const log = new RecordingLog();
  // A long grace: the connection accepted just before the failures must not be evictable.
  await using server = start({ listen: faultyListener(failures), log, evictGraceMs: 60_000 });
  const { stats } = server;
  const port = server.addr.port;

  await t.step("EMFILE evicts an idle connection, and the listener recovers", async () => {
    using idle = await RawClient.connect(port);
    await idle.send(GET("/idle"));
    await idle.response();
    // The server already waits in accept(); the failures come after the next connection,
    // which is in its grace period: only the idle one can be evicted.
    failures.push(emfile(), emfile(), emfile(), econnaborted(), econnaborted());
    using next = await RawClient.connect(port);
    await waitFor("the failures to be used", () => failures.length === 0);
    assert.equal(await idle.rest(), "");
    await next.send(GET("/next"));
    assert.equal((await next.response()).body, "GET /next ");
    using after = await RawClient.connect(port);
    await after.send(GET("/after"));
    assert.equal((await after.response()).body, "GET /after ");
    assert.equal(stats.acceptErrors, 5);
    assert.equal(stats.evicted, 1);
  });

  await t.step("each kind of error is logged once per interval", () => {
    assert.deepEqual(log.warnings.map((w) => w.properties.kind), ["EMFILE", "ECONNABORTED"]);
    assert.match(log.warnings[0]!.message, /accept failed/);
  });
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() rejects finished when the listener stops by itself", async () => {
  let listener: Deno.Listener | undefined;
  await using server = start({ listen: (options) => listener = Deno.listen(options) });
  using idle = await RawClient.connect(server.addr.port);
  await idle.send(GET("/x"));
  await idle.response();
  listener!.close();
  const error = await server.finished.then(() => null, (error) => error);
  assert.ok(error instanceof ListenerStoppedError);
  assert.ok(error.cause instanceof Deno.errors.BadResource);
  assert.equal(await idle.rest(), "");
  assert.equal(server.connections, 0);
  await server.shutdown();
  await assertNoUnhandledRejection();
});

Deno.test("HttpServer.shutdown() finishes requests in progress and closes idle connections", async (t) => {
  await t.step("idle ones close at once; the slow one is answered, then closed", async () => {
    let entered = () => {};
    const handlerEntered = new Promise<void>((resolve) => entered = resolve);
    let release = () => {};
    const released = new Promise<void>((resolve) => release = resolve);
    await using server = start({
      handler: async (req) => {
        if (new URL(req.url).pathname === "/slow") {
          entered();
          await released;
        }
        return await echo(req);
      },
    });
    const port = server.addr.port;
    using slow = await RawClient.connect(port);
    await slow.send(GET("/slow"));
    await handlerEntered;
    using kept = await RawClient.connect(port);
    await kept.send(GET("/kept"));
    await kept.response();
    using silent = await RawClient.connect(port);
    await waitFor("three connections", () => server.connections === 3);

    const stopping = server.shutdown(5000);
    assert.equal(server.shutdown(1), stopping);
    assert.equal(await kept.rest(), "");
    assert.equal(await silent.rest(), "");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
    release();
    const res = await slow.response();
    assert.equal(res.body, "GET /slow ");
    assert.equal(res.headers.get("connection"), "close");
    assert.equal(await slow.rest(), "");
    slow[Symbol.dispose]();
    await stopping;
    await server.finished;
  });

  await t.step("what still runs when the time is up is closed", async () => {
    const clock = new FakeClock();
    await using server = start({ clock, handler: () => new Promise<Response>(() => {}) });
    using client = await RawClient.connect(server.addr.port);
    await client.send(GET("/never"));
    await waitFor("the request", () => server.stats.requests === 1);
    const stopping = server.shutdown(3000);
    clock.advance(2999);
    assert.equal(server.connections, 1);
    clock.advance(1);
    assert.equal(await client.rest(), "");
    await stopping;
  });
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() holds memory in proportion to the bytes received", async (t) => {
  await using server = start({
    handler: async (req) => new Response(String((await req.arrayBuffer()).byteLength)),
  });
  const { stats } = server;
  const constant = 4096 + 16 * 1024; // the read buffer and a body buffer's first allocation
  /** Sends the pieces one by one, checking the bound once each has arrived. */
  const trickle = async (client: RawClient, pieces: Uint8Array[], body: () => number) => {
    let peak = 0;
    for (const piece of pieces) {
      const expected = stats.bytesReceived + piece.length;
      await client.send(piece);
      await waitFor("the piece", () => stats.bytesReceived >= expected);
      peak = Math.max(peak, stats.bufferedBytes);
      assert.ok(
        stats.bufferedBytes <= 2 * body() + constant,
        `${stats.bufferedBytes} bytes buffered for ${body()} received`,
      );
    }
    return peak;
  };

  await t.step("a declared 1 MiB body sent slowly", async () => {
    using client = await RawClient.connect(server.addr.port);
    const total = 1024 * 1024;
    const head = `POST /up HTTP/1.1\r\nHost: bot.test\r\nContent-Length: ${total}\r\n\r\n`;
    const start = stats.bytesReceived + head.length;
    await client.send(head);
    const sizes = [...Array(64).fill(16), ...Array(31).fill(4096)];
    for (let sent = 64 * 16 + 31 * 4096; sent < total; sent += 64 * 1024) {
      sizes.push(Math.min(64 * 1024, total - sent));
    }
    const peak = await trickle(
      client,
      sizes.map((size) => new Uint8Array(size)),
      () => stats.bytesReceived - start,
    );
    assert.ok(peak > total / 2, "the body is held as it arrives");
    assert.equal((await client.response()).body, String(total));
    assert.ok(stats.bufferedBytes <= 4096);
  });

  await t.step("a chunked body sent slowly", async () => {
    using client = await RawClient.connect(server.addr.port);
    const head = "POST /up HTTP/1.1\r\nHost: bot.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    const start = stats.bytesReceived + head.length;
    await client.send(head);
    const chunk = encoder.encode(`64\r\n${"x".repeat(100)}\r\n`);
    await trickle(client, Array(200).fill(chunk), () => stats.bytesReceived - start);
    await client.send("0\r\n\r\n");
    assert.equal((await client.response()).body, "20000");
  });
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() answers its direct route without WHATWG objects, the rest through the handler", async (t) => {
  const seen: { method: string; secret: string | null; length: string | null; body: string }[] = [];
  await using server = start({
    direct: {
      path: "/hook",
      handler(request) {
        const body = decoder.decode(request.body);
        seen.push({
          method: request.method,
          secret: request.header("x-secret"),
          length: request.header("content-length"),
          body,
        });
        if (body === "fail") return Promise.reject(new Error("direct failed"));
        return Promise.resolve({
          status: 202,
          headers: [["content-type", "application/json"], ["x-direct", "yes"]],
          body: JSON.stringify({ got: body }),
        });
      },
    },
    onError: (error) => new Response(`sorry: ${(error as Error).message}`, { status: 503 }),
  });

  await t.step(
    "the exact path goes to the direct handler, kept alive, pipelined in order",
    async () => {
      using client = await RawClient.connect(server.addr.port);
      await client.send(
        `POST /hook HTTP/1.1\r\nHost: bot.test\r\nX-Secret: s1\r\nContent-Length: 4\r\n\r\n` +
          `h\u00e9l` + POST("/hook", "second"),
      );
      const first = await client.response();
      assert.equal(first.status, 202);
      assert.equal(first.headers.get("x-direct"), "yes");
      assert.equal(first.headers.get("content-type"), "application/json");
      assert.equal(first.headers.get("connection"), null);
      assert.deepEqual(JSON.parse(first.body), { got: "h\u00e9l" });
      const second = await client.response();
      assert.deepEqual(JSON.parse(second.body), { got: "second" });
      assert.deepEqual(seen.slice(0, 2), [
        { method: "POST", secret: "s1", length: "4", body: "h\u00e9l" },
        { method: "POST", secret: null, length: "6", body: "second" },
      ]);
    },
  );

  await t.step("another path, or the path with a query, goes to the handler", async () => {
    const other = await exchange(server.addr.port, POST("/other", "x"));
    assert.equal(other.body, "POST /other x");
    const query = await exchange(server.addr.port, POST("/hook?x=1", "y"));
    assert.equal(query.body, "POST /hook y");
    assert.equal(seen.length, 2);
  });

  await t.step("a direct handler that fails gets onError's answer", async () => {
    const res = await exchange(server.addr.port, POST("/hook", "fail"));
    assert.equal(res.status, 503);
    assert.equal(res.body, "sorry: direct failed");
  });

  await t.step("the server's own limits still apply before it", async () => {
    const res = await exchange(
      server.addr.port,
      "POST /hook HTTP/1.1\r\nHost: bot.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    );
    assert.equal(res.status, 400);
    assert.equal(seen.length, 3);
  });
  // Five reached a handler; the refused one counts as rejected.
  assert.equal(server.stats.requests, 5);
  assert.equal(server.stats.rejected, 1);
  await assertNoUnhandledRejection();
});

Deno.test("serveHttp() answers with onError's response when the handler fails", async (t) => {
  await t.step("by default: 500 internal error, logged, connection kept", async () => {
    const log = new RecordingLog();
    await using server = start({ log, handler: () => Promise.reject(new Error("boom")) });
    using client = await RawClient.connect(server.addr.port);
    for (const path of ["/a", "/b"]) {
      await client.send(GET(path));
      const res = await client.response();
      assert.equal(res.status, 500);
      assert.equal(res.body, "internal error\n");
    }
    assert.equal(log.warnings.length, 2);
    assert.equal(log.warnings[0]!.properties.message, "boom");
  });

  await t.step("a custom onError, also for a handler that throws synchronously", async () => {
    await using server = start({
      handler: () => {
        throw new Error("sync");
      },
      onError: (error) => new Response(`sorry: ${(error as Error).message}`, { status: 503 }),
    });
    const res = await exchange(server.addr.port, GET("/"));
    assert.equal(res.status, 503);
    assert.equal(res.body, "sorry: sync");
  });

  await t.step("an onError that throws, or a handler that returns no Response", async () => {
    await using server = start({
      handler: () => Promise.resolve("text" as unknown as Response),
      onError: () => {
        throw new Error("worse");
      },
    });
    const res = await exchange(server.addr.port, GET("/"));
    assert.equal(res.status, 500);
    assert.equal(res.body, "internal error\n");
  });
  await assertNoUnhandledRejection();
});

Deno.test({
  name: "serveHttp() keeps answering under a real descriptor limit of 128",
  async fn() {
    const fixture = new URL("./fixtures/low_fd_server.ts", import.meta.url).pathname;
    const child = new Deno.Command("prlimit", {
      args: ["--nofile=128:128", Deno.execPath(), "run", "--allow-net", fixture],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.then((status) => {
      exited = true;
      return status;
    });
    const stderr = new Response(child.stderr).text();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const attackers: Deno.TcpConn[] = [];
    try {
      const first = await within(20_000, "fixture start", lines.read());
      const { port } = JSON.parse(first.value ?? "{}") as { port: number };
      // 400 idle connections: far more than the 128 descriptors the fixture may open.
      for (let batch = 0; batch < 8; batch++) {
        attackers.push(
          ...await Promise.all(
            Array.from({ length: 50 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
          ),
        );
      }
      const probe = await within(20_000, "probe under attack", exchange(port, GET("/health")));
      assert.equal(probe.status, 200);
      const during = JSON.parse(probe.body);
      assert.ok(during.acceptErrors > 0, "the descriptor limit was reached");
      assert.ok(during.evicted > 0, "idle connections were evicted");

      for (const conn of attackers.splice(0)) conn.close();
      for (let i = 0; i < 20; i++) {
        const res = await within(10_000, `request ${i} after`, exchange(port, GET("/health")));
        assert.equal(res.status, 200);
      }
      assert.equal(exited, false, "the fixture is still running");
      child.kill("SIGTERM");
      assert.equal((await status).code, 0);
      await lines.cancel();
      assert.doesNotMatch(await stderr, /panicked|listener died/);
    } finally {
      for (const conn of attackers) conn.close();
      if (!exited) child.kill("SIGKILL");
      await status;
      await lines.cancel().catch(() => {});
      await stderr;
    }
    await assertNoUnhandledRejection();
  },
});

Deno.test("serveHttp() hands header names on in lower case, however a client spells them", async () => {
  await using server = start({
    handler: (req) =>
      Promise.resolve(Response.json({
        secret: req.headers.get("x-telegram-bot-api-secret-token"),
        type: req.headers.get("content-type"),
        odd: req.headers.get("x-odd^name_"),
        // Same length as a known name, one letter off: not taken for it.
        near: req.headers.get("content-typf"),
        names: [...req.headers.keys()].sort(),
      })),
  });
  const response = await exchange(
    server.addr.port,
    "POST /h HTTP/1.1\r\nHOST: bot.test\r\nX-Telegram-Bot-Api-Secret-TOKEN: s3cret\r\n" +
      "Content-TYPE: application/json\r\nX-Odd^Name_: 1\r\nContent-Typf: 2\r\n" +
      "content-LENGTH: 2\r\n\r\n{}",
  );
  assert.equal(response.status, 200);
  assert.deepEqual(JSON.parse(response.body), {
    secret: "s3cret",
    type: "application/json",
    odd: "1",
    near: "2",
    names: [
      "content-length",
      "content-type",
      "content-typf",
      "host",
      "x-odd^name_",
      "x-telegram-bot-api-secret-token",
    ],
  });
});

Deno.test("serveHttp() hands header values on byte for byte, obs-text (bytes over 0x7f) included", async () => {
  await using server = start({
    handler: (req) =>
      Promise.resolve(Response.json({
        agent: req.headers.get("user-agent"),
        note: req.headers.get("x-note"),
        url: req.url,
      })),
  });
  const head = (note: string) =>
    `GET /h?q=1 HTTP/1.1\r\nHost: bot.test\r\nUser-Agent: probe/1.0\r\nX-Note: ${note}\r\n\r\n`;
  // An ASCII head, and one with the ISO-8859-1 bytes of "café" in a value (RFC 9110 §5.5:
  // obs-text), which must arrive as those bytes' chars, not decoded as UTF-8 or Windows-1252.
  const ascii = await exchange(server.addr.port, head("plain"));
  assert.deepEqual(JSON.parse(ascii.body), {
    agent: "probe/1.0",
    note: "plain",
    url: "http://bot.test/h?q=1",
  });
  const bytes = Uint8Array.from(head("caf\u00e9 \u0080\u0099"), (c) => c.charCodeAt(0));
  const latin1 = await exchange(server.addr.port, bytes);
  assert.equal(latin1.status, 200);
  assert.deepEqual(JSON.parse(latin1.body), {
    agent: "probe/1.0",
    note: "caf\u00e9 \u0080\u0099",
    url: "http://bot.test/h?q=1",
  });
});
