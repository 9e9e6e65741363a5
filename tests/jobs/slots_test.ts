/**
 * Leader cron jobs and their slots: a slot runs once across a lease change, a slot missed or cut
 * off while the program was down runs at start, and one that ran to its end does not run again.
 * The runners' clocks are moved so that a minute starts a moment after the test does.
 */
import assert from "node:assert/strict";
import type { Job } from "../../src/jobs/job.ts";
import { JobRunner } from "../../src/jobs/runner.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { tempKvStore } from "../support/stores.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { nextCronTime, parseCron, previousCronTime } from "../../src/util/cron.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const SLOT_KEY = ["job", "every-minute", "slot"] as const;

async function withStore(body: (store: KeyValueStore, metrics: Metrics) => Promise<void>) {
  await using store = await tempKvStore("slots-test-");
  using metrics = new Metrics();
  await body(store, metrics);
}

/** A runner whose clock reads `offsetMs` ahead of the real one. */
function runner(store: KeyValueStore, metrics: Metrics, id: string, offsetMs: number): JobRunner {
  return new JobRunner({
    store,
    shared: true,
    instanceId: id,
    metrics,
    now: () => Date.now() + offsetMs,
  });
}

function everyMinute(ran: { id: string; at: number }[], id: string, offsetMs: number): Job {
  return {
    name: "every-minute",
    schedule: { cron: "* * * * *" },
    run: () => Promise.resolve(void ran.push({ id, at: Date.now() + offsetMs })),
  };
}

Deno.test("previousCronTime() finds the latest matching minute at or before a time", () => {
  const spec = parseCron("0 3 * * *");
  const at = Date.UTC(2026, 4, 2, 10, 30);
  assert.equal(previousCronTime(spec, at, 86_400_000), Date.UTC(2026, 4, 2, 3, 0));
  assert.equal(
    previousCronTime(spec, Date.UTC(2026, 4, 2, 3, 0, 30), 60_000),
    Date.UTC(2026, 4, 2, 3, 0),
  );
  assert.equal(previousCronTime(spec, Date.UTC(2026, 4, 2, 2, 0), 3_600_000), null);
});

Deno.test("cron slots: a slot run by the leader is not run again by the instance that takes over", async () => {
  await withStore(async (store, metrics) => {
    // The next minute starts 400 ms from now, by the runners' clocks.
    const offset = nextCronTime(parseCron("* * * * *"), Date.now()) - Date.now() - 400;
    const ran: { id: string; at: number }[] = [];
    const a = runner(store, metrics, "a", offset);
    a.add(everyMinute(ran, "a", offset));
    a.start();
    await sleep(100);
    const b = runner(store, metrics, "b", offset);
    b.add(everyMinute(ran, "b", offset));
    b.start();
    await sleep(800);
    assert.deepEqual(ran.map((r) => r.id), ["a"], "the leader ran the slot");
    await a.stop(1000);
    // The standby takes the lease within a few seconds, finds the slot done and waits.
    await sleep(4500);
    assert.ok(b.leading, "b took the lease");
    assert.deepEqual(ran.map((r) => r.id), ["a"]);
    const status = b.checks()[0]![1];
    assert.equal((await status(new AbortController().signal)).status, "pass");
    await b.stop(1000);
  });
});

for (
  const [title, record, runs] of [
    ["a slot missed while the program was down runs at start", "previous", true],
    ["a slot cut off by a stop or a crash runs again at start", "cut", true],
    ["a slot that ran to its end does not run again at a restart", "done", false],
    ["a job that never ran waits for its next slot", "none", false],
  ] as const
) {
  Deno.test(`cron slots: ${title}`, async () => {
    await withStore(async (store, metrics) => {
      // 5 s into a minute, by the runner's clock.
      const slot = previousCronTime(parseCron("* * * * *"), Date.now(), 60_000)!;
      const offset = slot + 5000 - Date.now();
      if (record === "previous") await store.set(SLOT_KEY, { slot: slot - 60_000, done: true });
      if (record === "cut") await store.set(SLOT_KEY, { slot, done: false });
      if (record === "done") await store.set(SLOT_KEY, { slot, done: true });
      const ran: { id: string; at: number }[] = [];
      const r = new JobRunner({
        store,
        shared: false,
        instanceId: "a",
        metrics,
        now: () => Date.now() + offset,
      });
      r.add(everyMinute(ran, "a", offset));
      r.start();
      await sleep(500);
      await r.stop(1000);
      assert.equal(ran.length, runs ? 1 : 0);
      if (runs) assert.deepEqual(await store.get(SLOT_KEY), { slot, done: true });
    });
  });
}
