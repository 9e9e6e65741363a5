/**
 * The start opens the storage while Telegram is asked who the bot is (`startStorageWhile`): on
 * the embedded backends in a temp `DATA_DIR`, what each side's outcome does to the other.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../src/config.ts";
import { openDatabase } from "../src/db/database.ts";
import { DatabaseError } from "../src/errors.ts";
import { Health } from "../src/health.ts";
import { type Logger, logger } from "../src/log.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { Startup } from "../src/startup.ts";
import { startStorageWhile, type Storage } from "../src/storage.ts";
import { FAKE_TOKEN } from "./fake_bot_api.ts";

/** What a start would pass, with the steps `/health` was told and the storage lines logged. */
function startParts(dataDir: string) {
  const config = loadConfig({ BOT_TOKEN: FAKE_TOKEN, DATA_DIR: dataDir });
  const lifetime = new AbortController();
  const steps: string[] = [];
  const logged: string[] = [];
  const log = logger("test");
  const recording = {
    info: (message: string, properties?: Record<string, unknown>) => {
      logged.push(message);
      log.info(message, properties);
    },
    warning: (message: string, properties?: Record<string, unknown>) =>
      log.warning(message, properties),
  } as unknown as Logger;
  const startup = new Startup({
    health: { setPhase: (_phase, reason) => steps.push(reason ?? "") },
    signal: lifetime.signal,
    log: recording,
  });
  const metrics = new Metrics();
  metrics[Symbol.dispose]();
  const kept: Storage[] = [];
  const options = {
    metrics,
    health: new Health(),
    startup,
    log: recording,
    keep: (storage: Storage) => kept.push(storage),
  };
  return { config, lifetime, steps, logged, kept, options };
}

async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!await probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

Deno.test("startStorageWhile(): a storage open before Telegram answers is kept at once, and /health says Telegram is waited for", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "storage-start-" });
  const parts = startParts(dataDir);
  const { promise: answer, resolve: answered } = Promise.withResolvers<string>();
  try {
    const both = startStorageWhile(parts.config, answer, parts.options);
    await until("the storage to be kept", () => parts.kept.length === 1);
    assert.equal(parts.steps.at(-1), "connecting to Telegram");
    answered("@desk_bot");
    const [storage, botInfo] = await both;
    assert.equal(botInfo, "@desk_bot");
    assert.equal(storage, parts.kept[0]);
    await storage.close(5000);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startStorageWhile(): Telegram's refusal ends the start at once; a storage that opens after the stop is closed, not kept", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "storage-start-" });
  const parts = startParts(dataDir);
  try {
    const refused = new Error("Telegram refused BOT_TOKEN");
    await assert.rejects(
      startStorageWhile(parts.config, Promise.reject(refused), parts.options),
      (error) => error === refused,
    );
    // The stop that follows a failed start.
    parts.lifetime.abort(new Error("stopping: start-up failed"));
    await until("the storage to open", () => parts.logged.some((m) => m.startsWith("storage:")));
    // Closed: the embedded database can be opened again (a served DATA_DIR is refused as in use).
    await until("the late storage to be closed", async () => {
      try {
        const db = await openDatabase({ config: parts.config.database, dataDir });
        await db.close();
        return true;
      } catch (error) {
        if (error instanceof DatabaseError && /in use/.test(error.message)) return false;
        throw error;
      }
    });
    assert.deepEqual(parts.kept, []);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
