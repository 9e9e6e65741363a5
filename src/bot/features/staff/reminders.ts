/**
 * The staff's reminders, a background job (one instance at a time): a request nobody took for
 * `SLA_TAKE_MINUTES` is brought up in the staff chat (its topic, or under its post), again
 * every `SLA_TAKE_MINUTES`, and after the third reminder each admin hears about it. Which
 * reminders went out is stored with the request, so a restart neither repeats nor skips one.
 * The same job keeps the open-request gauges current for dashboards and alert rules.
 */
import type { RequestLifecycle } from "../../../db/request_lifecycle.ts";
import type { Job } from "../../../jobs/job.ts";
import type { RequestMetrics } from "../../../metrics/requests.ts";

/** What the reminders need. */
export interface RemindersOptions {
  lifecycle: Pick<RequestLifecycle, "remindDue" | "openCounts">;
  /** `SLA_TAKE_MINUTES`; 0: no reminders. */
  slaTakeMinutes: number;
  adminIds: readonly number[];
  metrics: Pick<RequestMetrics, "open" | "oldestNewAge">;
  /** Hurries the outbox after reminders were owed. */
  kickOutbox: () => void;
  /** How often to look. @default 30000 */
  everyMs?: number;
}

/** The reminders job; see the module documentation. */
export function remindersJob(options: RemindersOptions): Job {
  const { lifecycle, slaTakeMinutes, adminIds, metrics } = options;
  return {
    name: "reminders",
    schedule: { everyMs: options.everyMs ?? 30_000 },
    async run({ log }) {
      if (slaTakeMinutes > 0) {
        const reminded = await lifecycle.remindDue(slaTakeMinutes, adminIds);
        if (reminded.length > 0) {
          options.kickOutbox();
          log.info("reminded staff of {count} untaken requests", { count: reminded.length });
        }
      }
      const counts = await lifecycle.openCounts();
      metrics.open.set({ status: "new" }, counts.new);
      metrics.open.set({ status: "in_progress" }, counts.inProgress);
      metrics.oldestNewAge.set(counts.oldestNewSeconds);
    },
  };
}
