import assert from "node:assert/strict";
import { delay } from "../../src/util/delay.ts";

/** Whether a promise has settled once pending callbacks have run. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  const pending = Symbol("pending");
  const first = await Promise.race([
    promise.then(() => "settled", () => "settled"),
    new Promise((resolve) => queueMicrotask(() => queueMicrotask(() => resolve(pending)))),
  ]);
  return first !== pending;
}

Deno.test("delay() resolves after the wait", async (t) => {
  await t.step("without a signal", async () => {
    assert.equal(await delay(1), undefined);
  });

  await t.step("with a signal that never aborts", async () => {
    const controller = new AbortController();
    await delay(1, controller.signal);
    // Aborting afterwards is harmless: the wait is over.
    controller.abort(new Error("late"));
  });
});

Deno.test("delay() rejects with the signal's reason", async (t) => {
  await t.step("at once when the signal is already aborted", async () => {
    const reason = new Error("stopping");
    const waiting = delay(60_000, AbortSignal.abort(reason));
    assert.ok(await isSettled(waiting), "delay waited although the signal was aborted");
    await assert.rejects(waiting, (error) => error === reason);
  });

  await t.step("at once when the signal aborts during the wait", async () => {
    const controller = new AbortController();
    const waiting = delay(60_000, controller.signal);
    assert.equal(await isSettled(waiting), false);
    const reason = new Error("SIGTERM");
    controller.abort(reason);
    assert.ok(await isSettled(waiting), "delay kept waiting after the abort");
    // The 60 s timer must be gone, or the test's timer sanitizer fails.
    await assert.rejects(waiting, (error) => error === reason);
  });

  await t.step("with a DOMException when aborted without a reason", async () => {
    const controller = new AbortController();
    const waiting = delay(60_000, controller.signal);
    controller.abort();
    await assert.rejects(waiting, (error) => error instanceof DOMException);
  });
});
