/**
 * The job runner as the issue asks for it: a stop lets a round save its progress within the
 * timeout and the next start goes on from there; repeated failures warn in `/health` and are
 * counted; leader jobs run on one instance, are taken over when it stops, and stop when it
 * loses the lease; cron slots run once across instances and restarts.
 */
import assert from "node:assert/strict";
import type { Job } from "../../src/jobs/job.ts";
import { JobRunner } from "../../src/jobs/runner.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { tempKvStore } from "../support/stores.ts";
import { leaseKey } from "../../src/store/lease.ts";
import type { KeyValueStore } from "../../src/store/store.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A Deno KV store in a temp dir; `shared` runners treat it as if other instances used it. */
const tempStore = () => tempKvStore("runner-test-");

function runner(
  store: KeyValueStore,
  metrics: Metrics,
  options: { shared?: boolean; id?: string; offsetMs?: number } = {},
) {
  return new JobRunner({
    store,
    shared: options.shared ?? false,
    instanceId: options.id ?? "a",
    metrics,
    now: () => Date.now() + (options.offsetMs ?? 0),
  });
}

/** Works through items 0…999, one per 5 ms, keeping its place in the job's progress. */
function countingJob(done: number[]): Job {
  return {
    name: "count",
    schedule: { everyMs: 60_000 },
    async run({ signal, progress }) {
      let next = (await progress.load() as number | null) ?? 0;
      while (next < 1000) {
        if (signal.aborted) return await progress.save(next);
        done.push(next++);
        await sleep(5);
      }
      await progress.save(next);
    },
  };
}

Deno.test("JobRunner.halt() lets a round save its progress; the next start goes on from there, repeating nothing", async () => {
  await using store = await tempStore();
  using metrics = new Metrics();
  const first: number[] = [];
  const a = runner(store, metrics);
  a.add(countingJob(first));
  a.start();
  await until(() => first.length >= 20, 5000, "some work");
  const stopping = performance.now();
  await a.stop(1000);
  assert.ok(performance.now() - stopping < 500, "the round stopped soon after its signal");
  const second: number[] = [];
  const b = runner(store, metrics);
  b.add(countingJob(second));
  b.start();
  await until(() => second.length >= 20, 5000, "more work");
  await b.stop(1000);
  assert.equal(second[0], first.at(-1)! + 1, "resumed right after the last finished item");
  assert.deepEqual(
    [...first, ...second],
    Array.from({ length: first.length + second.length }, (_, i) => i),
  );
});

Deno.test("JobRunner.halt() gives up on a round that ignores its signal once the timeout passes", async () => {
  await using store = await tempStore();
  using metrics = new Metrics();
  const r = runner(store, metrics);
  r.add({ name: "stuck", schedule: { everyMs: 60_000 }, run: () => new Promise(() => {}) });
  r.start();
  await sleep(50);
  const started = performance.now();
  await r.stop(300);
  const took = performance.now() - started;
  assert.ok(took >= 250 && took < 1000, `stopped after ${took} ms`);
});

Deno.test("JobRunner: failing rounds in a row make /health warn, a success clears it; both are counted", async () => {
  await using store = await tempStore();
  using metrics = new Metrics();
  const release = Promise.withResolvers<void>();
  let round = 0;
  const r = runner(store, metrics);
  r.add({
    name: "flaky",
    schedule: { everyMs: 20 },
    async run() {
      if (++round <= 3) throw new Error(`database is down (${round})`);
      if (round === 4) await release.promise;
    },
  });
  r.start();
  const [name, check] = r.checks()[0]!;
  assert.equal(name, "job:flaky");
  await until(() => r.status("flaky")?.failures === 3, 5000, "three failures");
  const warned = await check(new AbortController().signal);
  assert.equal(warned.status, "warn");
  assert.equal(warned.output, "3 failed rounds in a row: database is down (3)");
  assert.ok(typeof warned.time === "number", "the last round's time is reported");
  release.resolve();
  await until(() => r.status("flaky")?.failures === 0, 5000, "a success");
  assert.equal((await check(new AbortController().signal)).status, "pass");
  await r.stop(1000);
  const runs = (await metrics.jobRuns.get()).values.filter((v) => v.labels.job === "flaky");
  const count = (result: string) => runs.find((v) => v.labels.result === result)?.value ?? 0;
  assert.equal(count("error"), 3);
  assert.ok(count("ok") >= 1);
  const durations = (await metrics.jobDuration.get()).values
    .find((v) => v.metricName === "bot_job_duration_seconds_count" && v.labels.job === "flaky");
  assert.equal(durations?.value, count("error") + count("ok"));
});

Deno.test("JobRunner: a leader job runs on one of two instances, the other takes over when it stops", async () => {
  await using store = await tempStore();
  using metrics = new Metrics();
  const ranOn: string[] = [];
  const job = (id: string): Job => ({
    name: "leader-only",
    schedule: { everyMs: 100 },
    run: () => Promise.resolve(void ranOn.push(id)),
  });
  const a = runner(store, metrics, { shared: true, id: "a" });
  a.add(job("a"));
  a.start();
  await until(() => ranOn.length > 0, 5000, "a first round");
  const b = runner(store, metrics, { shared: true, id: "b" });
  b.add(job("b"));
  b.start();
  // A trigger meant for the leader neither runs the job on a standby nor blocks its loop.
  for (let i = 0; i < 5; i++) b.trigger("leader-only");
  const timer = performance.now();
  await sleep(20);
  assert.ok(performance.now() - timer < 200, "the event loop stays free");
  await sleep(500);
  assert.ok(!ranOn.includes("b"), "the standby does not run it");
  const standby = await b.checks()[0]![1](new AbortController().signal);
  assert.equal(standby.output, "runs on instance a");
  await a.stop(1000);
  await until(() => ranOn.includes("b"), 6000, "the standby to take over");
  await b.stop(1000);
});

Deno.test("JobRunner: a leader that loses the lease has its round aborted", async () => {
  await using store = await tempStore();
  using metrics = new Metrics();
  let reason: unknown = null;
  const r = runner(store, metrics, { shared: true, id: "a" });
  r.add({
    name: "long",
    schedule: { everyMs: 60_000 },
    run: ({ signal }) =>
      new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => resolve(void (reason = signal.reason)))
      ),
  });
  r.start();
  await until(() => r.status("long")?.lastStartedAt !== null, 5000, "the round");
  // Another instance took the lease (this one could not renew it in time).
  await store.set(leaseKey("jobs"), { holder: "b", expiresAt: Date.now() + 10_000 }, {
    ttlMs: 10_000,
  });
  await until(() => reason !== null, 6000, "the abort");
  assert.match(String(reason), /another instance took the jobs lease/);
  await r.stop(1000);
});
