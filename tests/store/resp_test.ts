import assert from "node:assert/strict";
import {
  encodeCommand,
  parseRedisUrl,
  parseReply,
  RedisConnectionError,
  RedisReplyError,
  type Reply,
} from "../../src/store/resp_protocol.ts";
import { RespClient, type RespClientOptions } from "../../src/store/resp.ts";
import { freePort } from "../support/ports.ts";
import { denoEval, makeTestCertificates } from "../support/test_ca.ts";
import { startRedis } from "../support/redis_server.ts";

const encoder = new TextEncoder();

/** Every reply in `text`, parsed from buffers cut at every possible place. */
function parseAll(text: string): (Reply | RedisReplyError)[] {
  const bytes = encoder.encode(text);
  let whole: (Reply | RedisReplyError)[] | null = null;
  for (let cut = 0; cut <= bytes.length; cut++) {
    const replies: (Reply | RedisReplyError)[] = [];
    const parser = { bytes, at: 0, end: cut };
    for (;;) {
      const reply = parseReply(parser);
      if (typeof reply === "symbol") break;
      replies.push(reply);
    }
    // What was incomplete at the cut parses once the rest has arrived.
    parser.end = bytes.length;
    for (;;) {
      const reply = parseReply(parser);
      if (typeof reply === "symbol") break;
      replies.push(reply);
    }
    assert.equal(parser.at, bytes.length, `cut at ${cut}`);
    if (whole === null) whole = replies;
    else assert.deepEqual(replies, whole, `cut at ${cut}`);
  }
  return whole!;
}

Deno.test("RESP replies parse the same however the bytes arrive", () => {
  const replies = parseAll(
    "+OK\r\n:42\r\n$-1\r\n$6\r\nh\u00e9llo\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n-ERR wrong\r\n*-1\r\n$0\r\n\r\n",
  );
  assert.deepEqual(replies.slice(0, 5), ["OK", 42, null, "h\u00e9llo", ["a", [1]]]);
  assert.ok(replies[5] instanceof RedisReplyError);
  assert.equal((replies[5] as Error).message, "ERR wrong");
  assert.deepEqual(replies.slice(6), [null, ""]);
});

Deno.test("commands encode as arrays of bulk strings, UTF-8 lengths in bytes", () => {
  const text = new TextDecoder().decode(
    encodeCommand(["SET", "k\u00e9", encoder.encode("v"), ""]),
  );
  assert.equal(text, "*4\r\n$3\r\nSET\r\n$3\r\nk\u00e9\r\n$1\r\nv\r\n$0\r\n\r\n");
});

Deno.test("Redis URLs: host, port, TLS, credentials and database", () => {
  assert.deepEqual(parseRedisUrl("redis://cache"), {
    hostname: "cache",
    port: 6379,
    tls: false,
    username: null,
    password: null,
    database: 0,
  });
  assert.deepEqual(parseRedisUrl("rediss://default:p%40ss@[::1]:6380/3"), {
    hostname: "::1",
    port: 6380,
    tls: true,
    username: "default",
    password: "p@ss",
    database: 3,
  });
  assert.throws(() => parseRedisUrl("http://cache"), /redis:\/\//);
  assert.throws(() => parseRedisUrl("redis://cache/x"), /database/);
});

function options(url: string, extra: Partial<RespClientOptions> = {}): RespClientOptions {
  return {
    url,
    connectTimeoutMs: 2_000,
    reconnect: (_retries, cause, everReady) => everReady ? 50 : cause,
    ...extra,
  };
}

Deno.test("a client authenticates, selects its database and pipelines", async () => {
  await using redis = await startRedis({ password: "s3cret pass" });
  const client = await RespClient.connect(options(`${redis.url}/2`));
  try {
    // Sent in one tick: one write, replies in order.
    const replies = await Promise.all([
      client.send(["SET", "k", "v\u00e9"]),
      client.send(["GET", "k"]),
      client.send(["INCR", "n"]),
      client.send(["GET", "missing"]),
      client.send(["CLIENT", "INFO"]),
    ]);
    assert.deepEqual(replies.slice(0, 4), ["OK", "v\u00e9", 1, null]);
    assert.match(String(replies[4]), / db=2 /);
    // An error reply fails only its own command.
    const [bad, good] = await Promise.allSettled([
      client.send(["NO_SUCH_COMMAND"]),
      client.send(["PING"]),
    ]);
    assert.ok(bad.status === "rejected" && bad.reason instanceof RedisReplyError);
    assert.deepEqual(good, { status: "fulfilled", value: "PONG" });
    // A large value crosses several reads.
    const large = "x".repeat(300_000);
    await client.send(["SET", "large", large]);
    assert.equal(await client.send(["GET", "large"]), large);
  } finally {
    await client.close();
  }
  await assert.rejects(client.send(["PING"]), RedisConnectionError);
});

Deno.test("a wrong password is refused at once, with Redis' answer", async () => {
  await using redis = await startRedis({ password: "right" });
  const started = performance.now();
  await assert.rejects(
    RespClient.connect(options(`redis://:wrong@127.0.0.1:${redis.port}`)),
    (error: unknown) => error instanceof RedisReplyError && /WRONGPASS/.test(error.message),
  );
  assert.ok(performance.now() - started < 1_000);
  await assert.rejects(
    RespClient.connect(options(`redis://127.0.0.1:${redis.port}`)).then(async (client) => {
      try {
        await client.send(["GET", "k"]);
      } finally {
        await client.close();
      }
    }),
    (error: unknown) => error instanceof RedisReplyError && /NOAUTH/.test(error.message),
  );
});

Deno.test("commands in flight fail when the connection is lost; the client reconnects", async () => {
  await using redis = await startRedis();
  const errors: string[] = [];
  let ready = 0;
  const client = await RespClient.connect(options(redis.url, {
    onError: (error) => errors.push(error.message),
    onReady: () => ready++,
  }));
  try {
    const blocked = assert.rejects(client.send(["BLPOP", "never", "0"]), RedisConnectionError);
    await redis.stop();
    await blocked;
    // Offline: commands fail at once instead of waiting for the next connection.
    await assert.rejects(client.send(["PING"]), /offline/);
    // Long enough for reconnect attempts to find nobody listening.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await redis.start();
    const deadline = Date.now() + 5_000;
    while (!client.isReady && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await client.send(["PING"]), "PONG");
    assert.equal(ready, 2);
    assert.ok(errors.some((message) => /lost/.test(message)), errors.join("\n"));
    assert.ok(errors.some((message) => /refused/.test(message)), errors.join("\n"));
  } finally {
    await client.close();
  }
});

Deno.test("a server that accepts but never answers times the handshake out", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    const started = performance.now();
    await assert.rejects(
      RespClient.connect(options(`redis://:pw@127.0.0.1:${port}`, { connectTimeoutMs: 200 })),
      /timed out after 200 ms/,
    );
    assert.ok(performance.now() - started < 1_000);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
  }
});

Deno.test("rediss:// connects over TLS, trusting the CA that DENO_CERT names", async () => {
  await using tls = await makeTestCertificates("redis-tls-");
  const port = freePort();
  await using _redis = await startRedis({
    password: "tls pass",
    tls: { port, certFile: tls.cert, keyFile: tls.key },
  });
  // In a process of its own, as the bot runs: DENO_CERT is read when Deno starts.
  const script = `
    import { RespClient } from ${
    JSON.stringify(new URL("../../src/store/resp.ts", import.meta.url).href)
  };
    const client = await RespClient.connect({
      url: "rediss://:tls%20pass@localhost:${port}/1",
      connectTimeoutMs: 5000,
      reconnect: (_retries, cause) => cause,
    });
    console.log(JSON.stringify([
      await client.send(["SET", "k", "over tls"]),
      await client.send(["GET", "k"]),
    ]));
    await client.close();`;
  const run = (env: Record<string, string>) => denoEval(script, env);
  const trusted = await run({ DENO_CERT: tls.ca });
  const decoder = new TextDecoder();
  assert.equal(trusted.code, 0, decoder.decode(trusted.stderr));
  assert.deepEqual(JSON.parse(decoder.decode(trusted.stdout)), ["OK", "over tls"]);
  // Without the CA the certificate is refused, and the error says so.
  const untrusted = await run({});
  assert.notEqual(untrusted.code, 0);
  assert.match(decoder.decode(untrusted.stderr), /certificate/i);
});

Deno.test("a hung server (no reply, connection open) counts as lost after replyTimeoutMs", async () => {
  await using redis = await startRedis();
  const errors: string[] = [];
  const client = await RespClient.connect(options(redis.url, {
    replyTimeoutMs: 300,
    connectTimeoutMs: 300,
    onError: (error) => errors.push(error.message),
  }));
  try {
    assert.equal(await client.send(["PING"]), "PONG");
    redis.signal("SIGSTOP");
    const started = performance.now();
    await assert.rejects(client.send(["PING"]), /no reply from Redis for \d+ ms/);
    const waited = performance.now() - started;
    assert.ok(waited >= 300 && waited < 1_500, `rejected after ${Math.round(waited)} ms`);
    // Offline until a new connection is ready, which takes a server that answers: commands
    // fail at once meanwhile instead of waiting for the watchdog again.
    await new Promise((resolve) => setTimeout(resolve, 700));
    await assert.rejects(client.send(["PING"]), /offline/);
    assert.ok(errors.some((message) => /timed out/.test(message)), errors.join("\n"));
    redis.signal("SIGCONT");
    const deadline = Date.now() + 5_000;
    while (!client.isReady && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await client.send(["PING"]), "PONG");
    assert.ok(errors.some((message) => /lost: no reply/.test(message)), errors.join("\n"));
  } finally {
    await client.close();
  }
});

Deno.test("close() ends whatever the connection is doing: waiting for a hung server, reconnecting", async (t) => {
  await t.step(
    "commands in flight on a hung server: close() returns once the watchdog gives up",
    async () => {
      await using redis = await startRedis();
      const client = await RespClient.connect(options(redis.url, { replyTimeoutMs: 200 }));
      redis.signal("SIGSTOP");
      const inFlight = assert.rejects(client.send(["PING"]), RedisConnectionError);
      const started = performance.now();
      await client.close();
      assert.ok(performance.now() - started < 2_000);
      await inFlight;
      redis.signal("SIGCONT");
    },
  );

  await t.step("closed while reconnecting: no connection or timer outlives it", async () => {
    await using redis = await startRedis();
    const client = await RespClient.connect(options(redis.url));
    await redis.stop();
    // The lost connection schedules reconnects every 50 ms; close between and during them.
    await new Promise((resolve) => setTimeout(resolve, 120));
    await redis.start();
    await new Promise((resolve) => setTimeout(resolve, 45));
    await client.close();
    await assert.rejects(client.send(["PING"]), /offline/);
    // The test's op and timer sanitizers fail it if a socket or a retry survived.
  });
});
