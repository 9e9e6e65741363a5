import assert from "node:assert/strict";
import { logger, redactor, setupLogging } from "../src/log.ts";

const SECRET = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";
const WEBHOOK_SECRET = "hook/secret+value=";

/** Configures JSON logging into an array; dispose to reset logging. */
async function capture(secrets: string[] = [], level: "info" | "debug" = "info") {
  const lines: string[] = [];
  const close = await setupLogging({
    level,
    format: "json",
    file: null,
    secrets,
    write: (line) => lines.push(line),
  });
  return {
    lines,
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    async [Symbol.asyncDispose]() {
      await close();
    },
  };
}

Deno.test("setupLogging() writes one JSON object per line", async () => {
  await using log = await capture();
  logger("http").info("listening on {host}:{port}", { host: "127.0.0.1", port: 8080 });
  assert.equal(log.lines.length, 1);
  const line = log.lines[0]!;
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"), JSON.stringify(line));
  const [record] = log.records();
  assert.equal(record!.level, "info");
  assert.equal(record!.logger, "bot.http");
  assert.equal(record!.msg, "listening on 127.0.0.1:8080");
  assert.equal(record!.host, "127.0.0.1");
  assert.equal(record!.port, 8080);
  assert.equal(typeof record!.time, "string");
  assert.equal(new Date(record!.time as string).toISOString(), record!.time);
});

Deno.test("setupLogging() writes nothing below the configured level", async () => {
  await using log = await capture([], "info");
  logger("x").debug("noise");
  logger("x").warning("careful");
  assert.deepEqual(log.records().map((r) => r.level), ["warning"]);
});

Deno.test("setupLogging() serializes an Error property with message and stack", async () => {
  await using log = await capture();
  const cause = new TypeError("socket closed");
  const error = new Error("update failed", { cause });
  logger("bot").error("handler failed", { error, update_id: 7 });
  const [record] = log.records();
  const serialized = record!.error as Record<string, unknown>;
  assert.equal(serialized.name, "Error");
  assert.equal(serialized.message, "update failed");
  assert.match(String(serialized.stack), /update failed\n\s+at /);
  assert.equal((serialized.cause as Record<string, unknown>).message, "socket closed");
  assert.equal(record!.update_id, 7);
});

Deno.test("setupLogging() redacts secrets everywhere in a line", async (t) => {
  await using log = await capture([SECRET, WEBHOOK_SECRET]);
  const cases: Array<{ name: string; write: () => void }> = [
    { name: "in the message", write: () => logger("a").info(`token is ${SECRET}`) },
    { name: "in a property", write: () => logger("a").info("config", { token: SECRET }) },
    {
      name: "in an error message",
      write: () =>
        logger("a").error("call failed", {
          error: new Error(`fetch https://api.telegram.org/bot${SECRET}/getMe failed`),
        }),
    },
    {
      name: "percent-encoded inside a URL",
      write: () =>
        logger("a").error("call failed", {
          url: `https://api.telegram.org/bot${encodeURIComponent(SECRET)}/getMe`,
          hook: `https://x.example/?s=${encodeURIComponent(WEBHOOK_SECRET)}`,
        }),
    },
    {
      name: "in a message placeholder",
      write: () => logger("a").warning("secret {s} seen", { s: WEBHOOK_SECRET }),
    },
  ];
  for (const { name, write } of cases) {
    await t.step(name, () => {
      log.lines.length = 0;
      write();
      assert.equal(log.lines.length, 1);
      const line = log.lines[0]!;
      for (const secret of [SECRET, WEBHOOK_SECRET]) {
        assert.ok(!line.includes(secret), `${secret} leaked: ${line}`);
        assert.ok(!line.includes(encodeURIComponent(secret)), `${secret} leaked: ${line}`);
      }
      assert.match(line, /\[redacted\]/);
      // Still valid JSON after redaction.
      JSON.parse(line);
    });
  }
});

Deno.test("redactor() leaves text without secrets alone", () => {
  assert.equal(redactor([])("nothing to hide"), "nothing to hide");
  assert.equal(redactor(["", SECRET])("plain"), "plain");
  assert.equal(redactor(["a.b"])("axb a.b"), "axb [redacted]");
});

Deno.test("setupLogging()'s close function stops writing to the sink", async () => {
  const lines: string[] = [];
  const close = await setupLogging({
    level: "info",
    format: "json",
    file: null,
    secrets: [],
    write: (line) => lines.push(line),
  });
  logger("a").info("before");
  await close();
  logger("a").info("after");
  assert.deepEqual(lines.map((line) => JSON.parse(line).msg), ["before"]);
});

Deno.test("setupLogging() also appends to LOG_FILE", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/bot.log`;
    const close = await setupLogging({
      level: "info",
      format: "json",
      file,
      secrets: [SECRET],
      write: () => {},
    });
    logger("a").info(`one ${SECRET}`);
    await close();
    const text = await Deno.readTextFile(file);
    assert.equal(JSON.parse(text.trim()).msg, "one [redacted]");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serializeError() keeps a failed query's text but not its parameters (user data)", async () => {
  const { serializeError } = await import("../src/log.ts");
  const error = Object.assign(new Error("value too long for type character varying(10)"), {
    query: "insert into requests (contact) values ($1)",
    parameters: ["+7 900 123-45-67"],
    args: ["+7 900 123-45-67"],
  });
  const json = JSON.stringify(serializeError(error));
  assert.match(json, /insert into requests/);
  assert.ok(!json.includes("123-45-67"), json);
});
