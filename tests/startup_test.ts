import assert from "node:assert/strict";
import { logger } from "../src/log.ts";
import { Startup } from "../src/startup.ts";

Deno.test("Startup: /health names every step being retried, then the step running now", async () => {
  const said: string[] = [];
  const lifetime = new AbortController();
  const startup = new Startup({
    health: { setPhase: (_phase, reason) => said.push(reason ?? "") },
    signal: lifetime.signal,
    log: logger("test"),
    backoff: { baseMs: 5, maxMs: 10 },
  });
  startup.step("opening the database and the store");
  /** A call that fails with `message` until `open` says otherwise. */
  const failing = (message: string) => {
    const state = { open: false };
    return {
      state,
      call: () => state.open ? Promise.resolve("done") : Promise.reject(new Error(message)),
    };
  };
  const storage = failing("connection refused");
  const telegram = failing("dns error");
  const opening = startup.until("opening storage", storage.call);
  const asking = startup.until("getMe", telegram.call);
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Both are waited for at once: neither hides the other.
  assert.equal(
    said.at(-1),
    "opening storage failed, retrying: connection refused; getMe failed, retrying: dns error; " +
      "opening the database and the store",
  );
  storage.state.open = true;
  await opening;
  assert.equal(
    said.at(-1),
    "getMe failed, retrying: dns error; opening the database and the store",
  );
  startup.step("connecting to Telegram");
  assert.equal(said.at(-1), "getMe failed, retrying: dns error; connecting to Telegram");
  telegram.state.open = true;
  await asking;
  assert.equal(said.at(-1), "connecting to Telegram");
  lifetime.abort();
});
