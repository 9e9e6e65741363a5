import assert from "node:assert/strict";
import type { Api } from "grammy";
import type { JobContext } from "../../src/jobs/job.ts";
import { newestBackupSeconds, scheduledBackupJob } from "../../src/jobs/scheduled_backup.ts";
import { logger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import type { BackupRound } from "../../src/ops/backup.ts";
import type { Json } from "../../src/store/store.ts";

const ROUND: BackupRound = {
  result: {
    path: "backups/service-desk-bot-20260301T030000Z.backup.gz",
    bytes: 4301,
    schemaVersion: 6,
    tables: {},
    keys: 0,
    durationMs: 12,
  },
  pruned: ["service-desk-bot-20260201T030000Z.backup.gz"],
};

/** What the job did: messages to admins, reports to the alerter, its saved progress. */
function harness(backup: () => Promise<BackupRound>, day: { now: Date }) {
  const sent: { chat: number; text: string; quiet: unknown }[] = [];
  const reports: unknown[][] = [];
  let saved: Json = null;
  const metrics = new Metrics();
  const job = scheduledBackupJob({
    cron: "0 3 * * *",
    backup,
    alerter: { report: (...args: unknown[]) => Promise.resolve(void reports.push(args)) },
    api: () =>
      ({
        sendMessage: (chat: number, text: string, other: { disable_notification?: boolean }) =>
          Promise.resolve(void sent.push({ chat, text, quiet: other.disable_notification })),
      }) as unknown as Api,
    adminIds: [1, 2],
    locale: "en",
    metrics: metrics.background,
    now: () => day.now,
  });
  const context: JobContext = {
    signal: new AbortController().signal,
    log: logger("jobs", "backup"),
    progress: {
      load: () => Promise.resolve(saved),
      save: (v) => Promise.resolve(void (saved = v)),
    },
  };
  return { job, run: () => job.run(context), sent, reports, metrics };
}

Deno.test("scheduledBackupJob: a success is told quietly, once a day, and clears a backup alert", async () => {
  const day = { now: new Date("2026-03-01T03:00:00Z") };
  const h = harness(() => Promise.resolve(ROUND), day);
  using _metrics = h.metrics;
  assert.deepEqual(h.job.schedule, { cron: "0 3 * * *" });
  await h.run();
  await h.run();
  assert.deepEqual(
    h.sent,
    [1, 2].map((chat) => ({
      chat,
      text:
        "💾 Scheduled backup <code>service-desk-bot-20260301T030000Z.backup.gz</code>: 4.2 KiB. Old backups deleted: 1.",
      quiet: true,
    })),
  );
  assert.deepEqual(h.reports, [["backup", false], ["backup", false]]);
  day.now = new Date("2026-03-02T03:00:00Z");
  await h.run();
  assert.equal(h.sent.length, 4, "the next day is told again");
  const ok = (await h.metrics.background.backups.get()).values.find((v) =>
    v.labels.result === "ok"
  );
  assert.equal(ok?.value, 3);
});

Deno.test("scheduledBackupJob: a failure is alerted at once with the reason, and the round fails", async () => {
  const h = harness(
    () => Promise.reject(new Error("EACCES: permission denied, mkdir 'backups'")),
    { now: new Date("2026-03-01T03:00:00Z") },
  );
  using _metrics = h.metrics;
  await assert.rejects(h.run(), /permission denied/);
  assert.deepEqual(h.reports, [[
    "backup",
    true,
    "EACCES: permission denied, mkdir 'backups'",
    { alertAfterMs: 0 },
  ]]);
  assert.deepEqual(h.sent, [], "the alerter tells the admins, not the job");
});

Deno.test("newestBackupSeconds() reads the newest complete backup's time; none without any", async () => {
  const dir = await Deno.makeTempDir({ prefix: "backups-test-" });
  try {
    assert.equal(await newestBackupSeconds(`${dir}/missing`), null);
    assert.equal(await newestBackupSeconds(dir), null);
    const write = async (name: string, at: number) => {
      await Deno.writeTextFile(`${dir}/${name}`, "x");
      await Deno.utime(`${dir}/${name}`, at, at);
    };
    await write("service-desk-bot-20260101T030000Z.backup.gz", 1_767_236_400);
    await write("service-desk-bot-20260102T030000Z.backup.gz", 1_767_322_800);
    await write("service-desk-bot-20260103T030000Z.backup.gz.partial", 1_767_409_200);
    await write("notes.txt", 1_767_500_000);
    assert.equal(await newestBackupSeconds(dir), 1_767_322_800);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
