import type { Update } from "grammy/types";
import { chatKey } from "../bot/update_info.ts";
import type { Metrics } from "../metrics/metrics.ts";

/** Options of {@link UpdateScheduler}. */
export interface SchedulerOptions {
  /** Handles one update; a rejection is reported to `onError` and counts as finished. */
  handle: (update: Update) => Promise<void>;
  /** Most updates handled at the same time across chats. @default 100 */
  concurrency?: number;
  /** The in-flight gauge. */
  metrics?: Pick<Metrics, "updatesInFlight">;
  /** Told about an update whose handler threw past the pipeline's own error stage. */
  onError?: (update: Update, error: unknown) => void;
}

/** What a drain achieved. */
export interface DrainResult {
  /** Updates that were in flight when the drain began and finished in time. */
  finished: number;
  /** Ids of updates still running when time ran out, oldest first. */
  abandoned: number[];
}

/**
 * Runs updates of one chat strictly one after another and updates of different chats
 * concurrently, at most `concurrency` at a time. Knows which updates are in flight, so that
 * transports confirm only finished ones and a stop can wait for them.
 */
export class UpdateScheduler {
  readonly #handle: SchedulerOptions["handle"];
  readonly #limit: number;
  readonly #metrics: SchedulerOptions["metrics"];
  readonly #onError: SchedulerOptions["onError"];
  /** The last scheduled run of each chat: the next update of that chat waits for it. */
  readonly #tails = new Map<string, Promise<void>>();
  /** Every scheduled, unfinished update by id. */
  readonly #running = new Map<number, Promise<void>>();
  readonly #waiting: Array<() => void> = [];
  #active = 0;
  #handled = 0;

  constructor(options: SchedulerOptions) {
    this.#handle = options.handle;
    this.#limit = Math.max(1, options.concurrency ?? 100);
    this.#metrics = options.metrics;
    this.#onError = options.onError;
  }

  /** Updates scheduled and not finished. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** Updates finished since the start. */
  get handled(): number {
    return this.#handled;
  }

  /** Ids of the updates scheduled and not finished, ascending. */
  pendingIds(): number[] {
    return [...this.#running.keys()].sort((a, b) => a - b);
  }

  /**
   * Schedules an update; the promise settles when it has been handled (it never rejects).
   * Scheduling an update that is already running returns the running one's promise.
   */
  schedule(update: Update): Promise<void> {
    const existing = this.#running.get(update.update_id);
    if (existing) return existing;
    const key = chatKey(update);
    const before = key === null ? undefined : this.#tails.get(key);
    const run = (async () => {
      if (before) await before;
      await this.#acquire();
      try {
        await this.#handle(update);
      } catch (error) {
        this.#onError?.(update, error);
      } finally {
        this.#release();
      }
    })().finally(() => {
      this.#running.delete(update.update_id);
      this.#handled++;
      this.#metrics?.updatesInFlight.dec();
      if (key !== null && this.#tails.get(key) === run) this.#tails.delete(key);
    });
    this.#running.set(update.update_id, run);
    this.#metrics?.updatesInFlight.inc();
    if (key !== null) this.#tails.set(key, run);
    return run;
  }

  /**
   * Waits for every update in flight now (and those scheduled meanwhile) to finish, for at
   * most `timeoutMs`. Returns how many finished and which were abandoned.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    const handledBefore = this.#handled;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    try {
      while (this.#running.size > 0) {
        const done = await Promise.race([
          Promise.all(this.#running.values()).then(() => true),
          timeout.then(() => false),
        ]);
        if (!done) break;
      }
    } finally {
      clearTimeout(timer);
    }
    const abandoned = this.pendingIds();
    return { finished: this.#handled - handledBefore, abandoned };
  }

  async #acquire(): Promise<void> {
    if (this.#active < this.#limit) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    // The slot passes straight to the next waiter, so #active stays the same.
    if (next) next();
    else this.#active--;
  }
}
