/**
 * What a background job is: a name, a schedule and a `run` that does one round of work. The
 * runner (`runner.ts`) decides where and when it runs; a job only has to stop when its signal
 * aborts and keep its progress with `progress`, so that a round cut off by a stop or a crash
 * goes on where it stopped instead of starting over.
 */
import type { Logger } from "../log.ts";
import type { Json } from "../store/store.ts";

/** When a job runs: every `everyMs` after the previous round started, or on a cron schedule. */
export type Schedule =
  /** A fixed interval; the first round runs at start. */
  | { everyMs: number }
  /** A 5-field cron expression in UTC (minute hour day-of-month month day-of-week). */
  | { cron: string };

/** What one round of a job gets. */
export interface JobContext {
  /** Aborts when the program stops: save progress and return soon. */
  signal: AbortSignal;
  /** A logger bound to the job's name. */
  log: Logger;
  /** The job's progress, kept in the store across restarts (null before the first save). */
  progress: {
    load(): Promise<Json>;
    save(value: Json): Promise<void>;
  };
}

/** A background job; see the module documentation. */
export interface Job {
  /** Unique among the jobs; the `job` label of the metrics and `job:<name>` in `/health`. */
  name: string;
  /** When it runs. */
  schedule: Schedule;
  /**
   * `leader`: on one instance at a time (the `jobs` leader lease when the store is shared);
   * `instance`: on every instance (work about this process, such as its event log queue).
   * @default "leader"
   */
  scope?: "leader" | "instance";
  /** Does one round of work; rejects when the round failed (it is retried next round). */
  run(context: JobContext): Promise<void>;
  /** Called once when the program stops, after the last round: flush what is left. */
  stop?(timeoutMs: number): Promise<void>;
  /** Failed rounds in a row after which `/health` warns. @default 3 */
  warnAfter?: number;
}
