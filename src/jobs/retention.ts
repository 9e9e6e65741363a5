/**
 * The retention job: personal data kept for a limited time is deleted once it is older than
 * `EVENT_RETENTION_DAYS` (see docs/data_retention.md): the event log (one row per handled
 * update, with user and chat ids), the recipient lists of ended broadcasts and the delivered
 * items of the outbox. It deletes in
 * small batches, each its own short statement, so that no lock is held for long and the bot
 * keeps writing events meanwhile; a stop ends it between two batches, and the next round goes
 * on with what is left. Requests and their history are not touched: they are the service
 * desk's record.
 */
import type { Counter } from "../metrics/prometheus.ts";
import type { Job } from "./job.ts";

/** Deletes up to `limit` rows older than `before`; answers how many went. */
export type Purge = (before: Date, limit: number) => Promise<number>;

/** Options of {@link retentionJob}. */
export interface RetentionOptions {
  /** What to delete, by table name (the metric's `table` label). */
  purges: Readonly<Record<string, Purge>>;
  /** How long rows are kept, in days. */
  days: number;
  metrics: { retentionDeleted: Counter<"table"> };
  /** Rows per statement. @default 1000 */
  batchSize?: number;
  /** How often the job runs; it also runs at start. @default one hour */
  everyMs?: number;
  /** The clock. @default () => new Date() */
  now?: () => Date;
}

const DAY_MS = 86_400_000;

/** The retention job; see the module documentation. */
export function retentionJob(options: RetentionOptions): Job {
  const { purges, days, metrics } = options;
  const batchSize = options.batchSize ?? 1000;
  const now = options.now ?? (() => new Date());
  return {
    name: "retention",
    schedule: { everyMs: options.everyMs ?? 3_600_000 },
    async run({ signal, log }) {
      const before = new Date(now().getTime() - days * DAY_MS);
      for (const [table, purge] of Object.entries(purges)) {
        let deleted = 0;
        while (!signal.aborted) {
          const n = await purge(before, batchSize);
          deleted += n;
          metrics.retentionDeleted.inc({ table }, n);
          if (n < batchSize) break;
        }
        if (deleted > 0) {
          log.info("deleted {count} {table} rows older than {days} days", {
            count: deleted,
            table,
            days,
          });
        }
      }
    },
  };
}
