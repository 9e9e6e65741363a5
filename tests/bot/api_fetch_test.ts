/**
 * The Bot API's HTTP client against a raw TCP server that answers exactly as each test
 * scripts it: kept-alive connections, the ways a response can be framed, servers that close,
 * hang or answer garbage, aborts, and what goes to Deno's `fetch` instead.
 */
import assert from "node:assert/strict";
import { Api, GrammyError, HttpError, InputFile, type Transformer } from "grammy";
import { apiFetch, type DirectOptions } from "../../src/bot/api_fetch.ts";
import { freePort } from "../support/ports.ts";
import { denoEval, makeTestCertificates } from "../support/test_ca.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request as the server read it, with the number of the connection it came on. */
interface Seen {
  connection: number;
  head: string;
  body: string;
}

/** What the server does with a request: bytes to write, then whether to close. */
type Script = (seen: Seen) => { reply?: string; close?: boolean; hang?: boolean };

/** A raw HTTP/1.1 server on loopback whose answers `script` decides. */
function rawServer(script: Script) {
  const port = freePort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const seen: Seen[] = [];
  const conns = new Set<Deno.Conn>();
  const ended: number[] = [];
  let connections = 0;
  const serve = async (conn: Deno.Conn, number: number) => {
    let pending = new Uint8Array(0);
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(buffer.subarray(0, n), pending.length);
        pending = joined;
        for (;;) {
          const text = decoder.decode(pending);
          const headEnd = text.indexOf("\r\n\r\n");
          if (headEnd < 0) break;
          const head = text.slice(0, headEnd);
          const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
          const total = encoder.encode(text.slice(0, headEnd + 4)).length + length;
          if (pending.length < total) break;
          const body = decoder.decode(pending.subarray(total - length, total));
          pending = pending.slice(total);
          const request = { connection: number, head, body };
          seen.push(request);
          const action = script(request);
          if (action.hang) continue;
          if (action.reply !== undefined) await conn.write(encoder.encode(action.reply));
          if (action.close) {
            conn.close();
            return;
          }
        }
      }
    } catch {
      // Closed by the client or by the test.
    } finally {
      ended.push(number);
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serve(conn, ++connections);
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    ended,
    get connections() {
      return connections;
    },
    /** Closes every open connection from the server's side. */
    dropAll() {
      for (const conn of conns) conn.close();
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const conn of conns) conn.close();
      await accepting;
    },
  };
}

const json = (body: unknown, extra = "", status = "200 OK") => {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${
    encoder.encode(text).length
  }\r\n${extra}\r\n${text}`;
};

const call = (fetch: typeof globalThis.fetch, url: string, method: string, payload: unknown = {}) =>
  fetch(`${url}/bot123:abc/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "keep-alive" },
    body: JSON.stringify(payload),
  });

const until = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

Deno.test("calls share one kept-alive connection; the request is what grammY asked for", async () => {
  await using server = rawServer(() => ({ reply: json({ ok: true, result: "héllo" }) }));
  const client = apiFetch();
  try {
    for (let i = 0; i < 3; i++) {
      const response = await call(client.fetch, server.url, "sendMessage", { text: `ü ${i}` });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.deepEqual(await response.json(), { ok: true, result: "héllo" });
    }
    assert.equal(server.connections, 1);
    const [first] = server.seen;
    assert.match(first!.head, /^POST \/bot123:abc\/sendMessage HTTP\/1\.1\r\n/);
    assert.match(first!.head, /\r\nhost: 127\.0\.0\.1:\d+\r\n/);
    assert.match(first!.head, /\r\ncontent-type: application\/json\r\n/);
    // The length counts bytes, not characters.
    assert.match(first!.head, /\r\ncontent-length: 15\r\n/);
    assert.deepEqual(JSON.parse(first!.body), { text: "ü 0" });
  } finally {
    client.close();
  }
  await until(() => server.ended.length === 1, "the idle connection to close");
});

Deno.test("error statuses, chunked bodies, 100 Continue and `connection: close` are read as sent", async () => {
  const replies = [
    json(
      { ok: false, error_code: 429, parameters: { retry_after: 3 } },
      "",
      "429 Too Many Requests",
    ),
    `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n` +
    `5;ext=1\r\n{"ok"\r\n9\r\n:true,"re\r\nB\r\nsult":[1,2]\r\n1\r\n}\r\n0\r\nx-trailer: 1\r\n\r\n`,
    json({ ok: true, result: 3 }, "connection: close\r\n"),
    json({ ok: true, result: 4 }),
  ];
  await using server = rawServer(() => ({ reply: replies.shift()! }));
  const client = apiFetch();
  try {
    const limited = await call(client.fetch, server.url, "sendMessage");
    assert.equal(limited.status, 429);
    assert.deepEqual(await limited.json(), {
      ok: false,
      error_code: 429,
      parameters: { retry_after: 3 },
    });
    assert.deepEqual(await (await call(client.fetch, server.url, "a")).json(), {
      ok: true,
      result: [1, 2],
    });
    assert.deepEqual(await (await call(client.fetch, server.url, "b")).json(), {
      ok: true,
      result: 3,
    });
    assert.deepEqual(await (await call(client.fetch, server.url, "c")).json(), {
      ok: true,
      result: 4,
    });
    // The connection the server said it would close was not used again.
    assert.deepEqual(server.seen.map((s) => s.connection), [1, 1, 1, 2]);
  } finally {
    client.close();
  }
});

Deno.test("bytes after a response (a wrong content-length) are never taken for the next answer", async () => {
  const replies = [
    json({ ok: true, result: 1 }) + "HTTP/1.1 200 OK",
    json({ ok: true, result: 2 }),
  ];
  await using server = rawServer(() => ({ reply: replies.shift()! }));
  const client = apiFetch();
  try {
    assert.deepEqual(await (await call(client.fetch, server.url, "a")).json(), {
      ok: true,
      result: 1,
    });
    assert.deepEqual(await (await call(client.fetch, server.url, "b")).json(), {
      ok: true,
      result: 2,
    });
    assert.deepEqual(server.seen.map((s) => s.connection), [1, 2]);
  } finally {
    client.close();
  }
});

Deno.test("an idle connection the server closed is not reused: the next call opens another", async () => {
  await using server = rawServer(() => ({ reply: json({ ok: true, result: true }) }));
  const client = apiFetch();
  try {
    assert.equal((await call(client.fetch, server.url, "a")).status, 200);
    server.dropAll();
    await until(() => server.ended.length === 1, "the server to close its side");
    // The client reads the close while idle; give its read loop a turn.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal((await call(client.fetch, server.url, "b")).status, 200);
    assert.deepEqual(server.seen.map((s) => s.connection), [1, 2]);
  } finally {
    client.close();
  }
});

Deno.test("a server that closes within a response, answers garbage or never answers fails the call, not the next one", async () => {
  const actions: ReturnType<Script>[] = [
    { reply: 'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"ok":', close: true },
    { close: true },
    { reply: "SSH-2.0-OpenSSH_9.2\r\n\r\n" },
    { hang: true },
    { reply: json({ ok: true, result: "fine" }) },
  ];
  await using server = rawServer(() => actions.shift()!);
  const client = apiFetch();
  try {
    await assert.rejects(
      call(client.fetch, server.url, "a"),
      /closed the connection within the response body/,
    );
    await assert.rejects(
      call(client.fetch, server.url, "b"),
      /closed the connection without a response/,
    );
    await assert.rejects(call(client.fetch, server.url, "c"), /not an HTTP\/1\.1 status line/);
    // grammY's timeout aborts the call: the connection is closed, the reason is the abort's.
    const controller = new AbortController();
    const hung = client.fetch(`${server.url}/bot123:abc/d`, {
      method: "POST",
      body: "{}",
      signal: controller.signal,
    });
    await until(() => server.seen.length === 4, "the hung call to arrive");
    controller.abort(new Error("Request to 'd' timed out after 60 seconds"));
    await assert.rejects(hung, /timed out after 60 seconds/);
    await until(() => server.ended.includes(4), "the aborted call's connection to close");
    assert.deepEqual(await (await call(client.fetch, server.url, "e")).json(), {
      ok: true,
      result: "fine",
    });
    assert.deepEqual(server.seen.map((s) => s.connection), [1, 2, 3, 4, 5]);
  } finally {
    client.close();
  }
});

Deno.test("a call to a port nobody listens on fails with a network error that names it", async () => {
  const client = apiFetch();
  const port = freePort();
  await assert.rejects(
    call(client.fetch, `http://127.0.0.1:${port}`, "getMe"),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}`));
      return true;
    },
  );
});

Deno.test("uploads, non-POST calls and every call behind a proxy go to Deno's fetch", async () => {
  await using server = rawServer(() => ({
    reply: json({ ok: true, result: true }, "connection: close\r\n"),
  }));
  const client = apiFetch();
  const proxied = apiFetch({ viaFetch: true });
  try {
    // A byte body (grammY's multipart uploads are streams): Deno's fetch sends it, with its
    // own user agent, which this client never sends.
    const upload = await client.fetch(`${server.url}/bot123:abc/sendDocument`, {
      method: "POST",
      body: encoder.encode("--x--"),
    });
    assert.equal(upload.status, 200);
    await upload.body?.cancel();
    const viaProxy = await call(proxied.fetch, server.url, "getMe");
    assert.equal(viaProxy.status, 200);
    await viaProxy.body?.cancel();
    assert.equal(server.seen.length, 2);
    for (const seen of server.seen) assert.match(seen.head, /\r\nuser-agent: Deno\//i);
  } finally {
    client.close();
    proxied.close();
  }
});

Deno.test("https: the certificate is verified against the trusted CAs (DENO_CERT included)", async () => {
  await using tls = await makeTestCertificates("api-tls-");
  // In a process of its own, as the bot runs: DENO_CERT is read when Deno starts.
  const script = `
    import { apiFetch } from ${
    JSON.stringify(new URL("../../src/bot/api_fetch.ts", import.meta.url).href)
  };
    const server = Deno.serve({
      hostname: "127.0.0.1", port: 0, onListen() {},
      cert: Deno.readTextFileSync(${JSON.stringify(tls.cert)}),
      key: Deno.readTextFileSync(${JSON.stringify(tls.key)}),
    }, async (request) => Response.json({ ok: true, result: await request.json() }));
    const client = apiFetch();
    try {
      const url = "https://localhost:" + server.addr.port + "/bot1:x/getMe";
      const answers = [];
      for (const n of [1, 2]) {
        const response = await client.fetch(url, { method: "POST", body: JSON.stringify({ n }) });
        answers.push(await response.json());
      }
      console.log(JSON.stringify(answers));
    } finally {
      client.close();
      await server.shutdown();
    }`;
  const run = (env: Record<string, string>) => denoEval(script, env);
  const trusted = await run({ DENO_CERT: tls.ca });
  assert.equal(trusted.code, 0, decoder.decode(trusted.stderr));
  assert.deepEqual(JSON.parse(decoder.decode(trusted.stdout)), [
    { ok: true, result: { n: 1 } },
    { ok: true, result: { n: 2 } },
  ]);
  const untrusted = await run({});
  assert.notEqual(untrusted.code, 0);
  assert.match(decoder.decode(untrusted.stderr), /certificate/i);
});

/** A grammY `Api` on `url` that makes its calls through `client`, as the bot's do. */
function directApi(
  client: ReturnType<typeof apiFetch>,
  url: string,
  options: Partial<DirectOptions> = {},
) {
  const api = new Api("123:abc", { apiRoot: url, fetch: client.fetch, timeoutSeconds: 60 });
  /** The calls grammY's own client made: what the direct transformer handed on. */
  const handedOn: string[] = [];
  const spy: Transformer = (prev, method, payload, signal) => {
    handedOn.push(method);
    return prev(method, payload, signal);
  };
  api.config.use(spy);
  api.config.use(client.direct({
    apiRoot: url,
    token: "123:abc",
    timeoutSeconds: 60,
    webhookReply: (method) => method === "answerCallbackQuery",
    ...options,
  }));
  return { api, handedOn };
}

Deno.test("direct calls send what grammY would send and answer what grammY would answer", async () => {
  await using server = rawServer(({ head }) =>
    head.includes("/deleteMessage ")
      ? {
        reply: json(
          { ok: false, error_code: 400, description: "Bad Request: message to delete not found" },
          "",
          "400 Bad Request",
        ),
      }
      : { reply: json({ ok: true, result: { message_id: 7, text: "ü" } }) }
  );
  const client = apiFetch();
  try {
    const { api, handedOn } = directApi(client, server.url);
    const payload = {
      parse_mode: "HTML" as const,
      reply_markup: { inline_keyboard: [[{ text: "ü", callback_data: "x" }]] },
      // grammY leaves out what is null or undefined; so must the direct path.
      link_preview_options: undefined,
      reply_parameters: null as never,
    };
    const sent = await api.sendMessage(5, "héllo", payload);
    assert.deepEqual(sent, { message_id: 7, text: "ü" });
    await assert.rejects(api.deleteMessage(5, 1), (error: unknown) => {
      assert.ok(error instanceof GrammyError);
      assert.equal(error.error_code, 400);
      assert.equal(error.method, "deleteMessage");
      return true;
    });
    assert.deepEqual(handedOn, [], "both calls went directly");
    // The same call through grammY's own client, for comparison.
    await new Api("123:abc", { apiRoot: server.url, fetch: client.fetch })
      .sendMessage(5, "héllo", payload);
    const [direct, , viaGrammy] = server.seen;
    assert.equal(direct!.body, viaGrammy!.body);
    assert.deepEqual(JSON.parse(direct!.body), {
      chat_id: 5,
      text: "héllo",
      parse_mode: "HTML",
      reply_markup: { inline_keyboard: [[{ text: "ü", callback_data: "x" }]] },
    });
    assert.match(direct!.head, /^POST \/bot123:abc\/sendMessage HTTP\/1\.1\r\n/);
    assert.match(direct!.head, /\r\ncontent-type: application\/json\r\n/);
    assert.ok(
      direct!.head.includes(`\r\ncontent-length: ${encoder.encode(direct!.body).length}\r\n`),
    );
    assert.equal(server.connections, 1, "one kept-alive connection for all three");
  } finally {
    client.close();
  }
});

Deno.test("direct calls: webhook replies, uploads, calls with a signal and proxied calls go to grammY", async () => {
  await using server = rawServer(() => ({ reply: json({ ok: true, result: true }) }));
  const client = apiFetch();
  const proxied = apiFetch({ viaFetch: true });
  try {
    const { api, handedOn } = directApi(client, server.url);
    await api.answerCallbackQuery("q");
    await api.sendDocument(5, new InputFile(encoder.encode("file"), "a.txt"));
    await api.sendMediaGroup(5, [{
      type: "document",
      media: new InputFile(encoder.encode("file"), "b.txt"),
    }]);
    await api.sendMessage(5, "stoppable", undefined, new AbortController().signal as never);
    await api.sendMessage(5, "direct");
    assert.deepEqual(handedOn, [
      "answerCallbackQuery",
      "sendDocument",
      "sendMediaGroup",
      "sendMessage",
    ]);
    const behindProxy = directApi(proxied, server.url);
    await behindProxy.api.sendMessage(5, "proxied");
    assert.deepEqual(behindProxy.handedOn, ["sendMessage"]);
    const texts = server.seen.map(({ body }) => /"text":"(\w+)"/.exec(body)?.[1]).filter(Boolean);
    assert.deepEqual(texts, ["stoppable", "direct", "proxied"]);
  } finally {
    client.close();
    proxied.close();
  }
});

Deno.test("direct calls: a network failure or a server that never answers is grammY's HttpError", async () => {
  const client = apiFetch();
  try {
    const nobody = `http://127.0.0.1:${freePort()}`;
    await assert.rejects(directApi(client, nobody).api.getChat(5), (error: unknown) => {
      assert.ok(error instanceof HttpError);
      assert.equal(error.message, "Network request for 'getChat' failed!");
      assert.match(String((error.error as Error).message), /cannot connect to 127\.0\.0\.1/);
      return true;
    });
    await using silent = rawServer(() => ({ hang: true }));
    const started = performance.now();
    await assert.rejects(
      directApi(client, silent.url, { timeoutSeconds: 1 }).api.getChat(5),
      (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(error.message, "Network request for 'getChat' failed!");
        assert.equal(
          (error.error as Error).message,
          "Request to 'getChat' timed out after 1 seconds",
        );
        return true;
      },
    );
    let took = performance.now() - started;
    assert.ok(took >= 1000 && took < 2500, `timed out after ${took} ms`);
    // The connection that timed out is closed, not handed to the next call.
    await until(() => silent.ended.length === 1, "the timed-out connection to close");
    // A server that never completes the TLS handshake: the connecting counts against the call.
    const https = `https://${new URL(silent.url).host}`;
    const connecting = performance.now();
    await assert.rejects(
      directApi(client, https, { timeoutSeconds: 1 }).api.getChat(5),
      (error: unknown) => {
        assert.ok(error instanceof HttpError);
        assert.equal(
          (error.error as Error).message,
          "Request to 'getChat' timed out after 1 seconds",
        );
        return true;
      },
    );
    took = performance.now() - connecting;
    assert.ok(took >= 1000 && took < 2500, `timed out after ${took} ms`);
  } finally {
    client.close();
  }
});

Deno.test("a connection idle past its time is closed; one in use never is", async () => {
  await using server = rawServer(({ body }) =>
    body.includes("slow") ? { hang: true } : { reply: json({ ok: true, result: true }) }
  );
  const client = apiFetch({ idleMs: 200 });
  try {
    const response = await call(client.fetch, server.url, "getMe");
    await response.body?.cancel();
    const idleFrom = performance.now();
    await until(() => server.ended.length === 1, "the idle connection to close");
    const idleFor = performance.now() - idleFrom;
    assert.ok(idleFor >= 150 && idleFor < 1000, `closed after ${idleFor} ms idle`);
    // A call in progress for longer than the idle time keeps its connection, while another
    // connection idles out beside it.
    const { api } = directApi(client, server.url);
    const slow = api.sendMessage(5, "slow");
    await until(() => server.connections === 2, "the slow call's connection");
    const fast = await call(client.fetch, server.url, "getMe");
    await fast.body?.cancel();
    await until(() => server.ended.length === 2, "the second idle connection to close");
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(server.ended, [1, 3], "the busy connection was closed");
    server.dropAll();
    await assert.rejects(slow);
  } finally {
    client.close();
  }
});
