import assert from "node:assert/strict";
import { deleteEventsBefore, insertEvents } from "../../src/db/events.ts";
import type { JobContext } from "../../src/jobs/job.ts";
import { retentionJob } from "../../src/jobs/retention.ts";
import { logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

const DAY_MS = 86_400_000;
const NOW = new Date("2026-03-01T12:00:00Z");

function context(signal = new AbortController().signal): JobContext {
  return {
    signal,
    log: logger("jobs", "retention"),
    progress: { load: () => Promise.resolve(null), save: () => Promise.resolve() },
  };
}

testOnBothBackends("retentionJob", async (t, { fresh }) => {
  const { db, reset } = await migrated(fresh);
  /** Events `days` old, one each. */
  const seed = (days: number[]) =>
    insertEvents(
      db.sql,
      days.map((d, i) => ({
        updateId: i + 1,
        userId: 100 + i,
        chatId: 100 + i,
        type: "message",
        command: null,
        outcome: "handled",
        durationMs: 1,
        at: new Date(NOW.getTime() - d * DAY_MS),
      })),
    );
  const ages = async () =>
    (await db.sql<{ at: Date }[]>`select at from events order by at desc`)
      .map((row) => Math.round((NOW.getTime() - row.at.getTime()) / DAY_MS));

  await t.step("deletes events older than the retention in batches; newer ones stay", async () => {
    await reset();
    await seed([1, 10, 29, 31, 45, 90, 365]);
    using metrics = new Metrics();
    let statements = 0;
    const job = retentionJob({
      purges: {
        events: (before, limit) => (statements++, deleteEventsBefore(db.sql, before, limit)),
      },
      days: 30,
      metrics: metrics.background,
      batchSize: 2,
      now: () => NOW,
    });
    assert.deepEqual(job.schedule, { everyMs: 3_600_000 }, "hourly, and at start (an interval)");
    await job.run(context());
    assert.deepEqual(await ages(), [1, 10, 29]);
    assert.equal(statements, 3, "4 rows in batches of 2, and one that found the rest empty");
    const counted = (await metrics.background.retentionDeleted.get()).values
      .find((v) => v.labels.table === "events");
    assert.equal(counted?.value, 4);
  });

  await t.step("a stop between two batches leaves the rest to the next round", async () => {
    await reset();
    await seed([40, 41, 42, 43, 44]);
    using metrics = new Metrics();
    const stop = new AbortController();
    const job = retentionJob({
      purges: {
        events: async (before, limit) => {
          const n = await deleteEventsBefore(db.sql, before, limit);
          stop.abort();
          return n;
        },
      },
      days: 30,
      metrics: metrics.background,
      batchSize: 2,
      now: () => NOW,
    });
    await job.run(context(stop.signal));
    assert.equal((await ages()).length, 3);
    await job.run(context());
    assert.deepEqual(await ages(), []);
  });
});
