/**
 * The background event writer: handlers hand it events and go on; it writes them to the
 * database in batches (by size and by time). Its queue is bounded, so a long database outage
 * costs the oldest events (counted) rather than memory; stopping flushes what is left.
 *
 * A batch the database refuses for its data (a value of the wrong type, a character Postgres
 * cannot store) is split until the rows it refuses are found; each is cleaned up and tried once
 * more, then dropped and counted (`rejected`), so one bad row never stops the log. A batch that
 * fails for any other reason (the database is down) waits with growing delays and is retried.
 */
import type { Counter, Gauge } from "../metrics/prometheus.ts";
import { logger } from "../log.ts";
import { causeChain } from "../errors.ts";
import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";
import type { EventRecord } from "./events.ts";

/** The metrics the writer keeps. */
export interface EventWriterMetrics {
  eventQueue: Gauge;
  eventsWritten: Counter;
  eventsDropped: Counter<"reason">;
  eventWriteErrors: Counter;
}

/** Options of {@link EventWriter}. */
export interface EventWriterOptions {
  /** Writes one batch; a rejection keeps the batch for a retry. */
  write: (batch: readonly EventRecord[]) => Promise<void>;
  /** Where to count. */
  metrics?: EventWriterMetrics;
  /**
   * Most events in one write; a full batch is written at once.
   * @default 500
   */
  batchSize?: number;
  /**
   * Longest an event waits before its batch is written; null: only when a batch is full or
   * on {@link EventWriter.flush} (a job drives it).
   * @default 1000
   */
  flushIntervalMs?: number | null;
  /**
   * Most events held; beyond it the oldest are dropped.
   * @default 50000
   */
  capacity?: number;
  /** The clock of the backoff after a failed write, in ms. @default performance.now */
  now?: () => number;
}

const log = logger("events");

/** Settles (never rejects) when `signal` aborts. */
function abortion(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Batches events into the database without ever making a handler wait. */
export class EventWriter {
  readonly #write: EventWriterOptions["write"];
  readonly #metrics: EventWriterMetrics | undefined;
  readonly #batchSize: number;
  readonly #capacity: number;
  readonly #timer: ReturnType<typeof setInterval> | undefined;
  readonly #stop = new AbortController();
  #queue: EventRecord[] = [];
  #inFlight = 0;
  #failures = 0;
  #lastError: string | null = null;
  readonly #now: () => number;
  /** After a failed write, nothing is tried before this time (performance.now()). */
  #retryAt = 0;
  #running: Promise<void> | null = null;
  #closing: Promise<void> | null = null;
  /** Whether the running drain also writes a partial batch (interval passed, or flush()). */
  #flushAll = false;
  /** Set when close() gave up: a write that settles later must not count or retry. */
  #abandoned = false;

  constructor(options: EventWriterOptions) {
    this.#write = options.write;
    this.#metrics = options.metrics;
    this.#batchSize = options.batchSize ?? 500;
    this.#capacity = options.capacity ?? 50_000;
    this.#now = options.now ?? (() => performance.now());
    const every = options.flushIntervalMs === undefined ? 1000 : options.flushIntervalMs;
    this.#timer = every === null ? undefined : setInterval(() => this.#kick(true), every);
  }

  /** Why the last write failed, while writes keep failing; null once one worked. */
  get lastError(): string | null {
    return this.#lastError;
  }

  /** Events queued or being written. */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  /** Queues an event; returns at once. */
  record(event: EventRecord): void {
    if (this.#closing) {
      this.#drop(1, "shutdown");
      return;
    }
    // The batch being written is not counted: if its write fails, the trim in #drain drops
    // the oldest of all, so the oldest are always what goes.
    if (this.#queue.length >= this.#capacity) {
      // A tenth at once: shifting one event per call would copy the whole queue every time.
      const excess = Math.max(1, Math.ceil(this.#capacity / 10));
      this.#queue.splice(0, excess);
      this.#drop(excess, "queue_full");
    }
    this.#queue.push(event);
    this.#metrics?.eventQueue.set(this.pending);
    if (this.#queue.length >= this.#batchSize) this.#kick(false);
  }

  /** Writes everything queued now; resolves when the queue is empty or a write failed. */
  flush(): Promise<void> {
    this.#flushAll = true;
    this.#kick(true);
    return this.#running ?? Promise.resolve();
  }

  /**
   * Stops the timer and writes what is left, retrying until `timeoutMs` has passed; what
   * still cannot be written is dropped, counted and logged. Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      const deadline = setTimeout(() => this.#stop.abort(), timeoutMs);
      const untilDeadline = (promise: Promise<unknown>) =>
        Promise.race([promise, abortion(this.#stop.signal)]);
      try {
        // A batch in flight counts too: if its write fails, it is back in the queue.
        while (this.pending > 0 && !this.#stop.signal.aborted) {
          await untilDeadline(this.flush());
          if (this.#queue.length > 0 && !this.#running && !this.#stop.signal.aborted) {
            await delay(
              backoffDelay(this.#failures, { baseMs: 100, maxMs: 2000 }),
              this.#stop.signal,
            )
              .catch(() => {});
          }
        }
      } finally {
        clearTimeout(deadline);
        this.#stop.abort();
      }
      // A write still hanging at the deadline is given up on, like everything queued.
      const lost = this.pending;
      if (lost > 0) {
        log.error("the database did not take the event log in time: dropped {count} events", {
          count: lost,
        });
        this.#drop(lost, "shutdown");
        this.#queue = [];
        this.#abandoned = true;
      }
      this.#metrics?.eventQueue.set(0);
    })();
    return this.#closing;
  }

  /** Starts writing: full batches only, or (`all`) everything queued. */
  #kick(all: boolean): void {
    if (all) this.#flushAll = true;
    if (this.#running || this.#queue.length === 0 || this.#abandoned) return;
    // A database that just failed is given its backoff; close() waits it out itself.
    if (this.#now() < this.#retryAt && !this.#closing) return;
    // Start on a later tick: `write` must never run on the stack of the handler that recorded.
    this.#running = Promise.resolve().then(() => this.#drain()).finally(() => {
      this.#running = null;
    });
  }

  async #drain(): Promise<void> {
    // Partial batches wait for the interval or a flush, so a steady trickle of events is
    // still written in full batches instead of one insert per handful of events.
    for (;;) {
      const full = this.#queue.length >= this.#batchSize;
      if (!full && !(this.#flushAll && this.#queue.length > 0)) break;
      // A partial batch answers one flush request; what arrives meanwhile waits for the next.
      if (!full) this.#flushAll = false;
      const batch = this.#queue.splice(0, this.#batchSize);
      this.#inFlight = batch.length;
      try {
        const written = await this.#writeIsolating(batch);
        if (this.#abandoned) return;
        if (this.#failures > 0) {
          log.info("the event log is written again after {failures} failed writes", {
            failures: this.#failures,
          });
        }
        this.#failures = 0;
        this.#lastError = null;
        this.#retryAt = 0;
        this.#metrics?.eventsWritten.inc(written);
      } catch (error) {
        if (this.#abandoned) return;
        // Keep the batch (oldest first) for the next attempt, within the capacity.
        this.#queue = batch.concat(this.#queue);
        const excess = this.#queue.length - this.#capacity;
        if (excess > 0) {
          this.#queue.splice(0, excess);
          this.#drop(excess, "queue_full");
        }
        this.#failures++;
        this.#lastError = causeChain(error);
        this.#retryAt = this.#now() +
          backoffDelay(this.#failures - 1, { baseMs: 500, maxMs: 30_000 });
        this.#metrics?.eventWriteErrors.inc();
        if (this.#failures === 1 || this.#failures % 30 === 0) {
          log.warn("event log write failed ({failures} in a row), {pending} events wait: {error}", {
            failures: this.#failures,
            pending: this.#queue.length,
            error: causeChain(error),
          });
        }
        return;
      } finally {
        this.#inFlight = 0;
        this.#metrics?.eventQueue.set(this.pending);
      }
    }
  }

  /**
   * Writes `batch`; when the database refuses its data, halves it until the refused rows are
   * alone, cleans each up for one more try, and drops what is still refused. Rejects (keeping
   * nothing written twice: a refused insert wrote nothing) when the failure is not about data.
   * Returns how many rows were written.
   */
  async #writeIsolating(batch: readonly EventRecord[]): Promise<number> {
    try {
      await this.#write(batch);
      return batch.length;
    } catch (error) {
      if (!isDataError(error)) throw error;
      if (batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        return await this.#writeIsolating(batch.slice(0, half)) +
          await this.#writeIsolating(batch.slice(half));
      }
      const cleaned = sanitizeEvent(batch[0]!);
      try {
        await this.#write([cleaned]);
        return 1;
      } catch (again) {
        if (!isDataError(again)) throw again;
        this.#drop(1, "rejected");
        log.warning("the database refused event {update_id}, dropped: {error}", {
          update_id: cleaned.updateId,
          error: causeChain(again),
        });
        return 0;
      }
    }
  }

  #drop(count: number, reason: "queue_full" | "shutdown" | "rejected"): void {
    this.#metrics?.eventsDropped.inc({ reason }, count);
  }
}

/** Whether Postgres refused the data itself (SQLSTATE classes 22 and 23), not the connection. */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^(22|23)[0-9A-Z]{3}$/.test(code);
}

/** An event with every field forced into what the table takes. */
function sanitizeEvent(event: EventRecord): EventRecord {
  const id = (value: number | null) => Number.isSafeInteger(value) ? value : null;
  // Control characters other than tab and newlines are no part of a command or a type.
  const text = (value: string) =>
    // deno-lint-ignore no-control-regex -- finding control characters is the point
    value.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, "\uFFFD").slice(0, 200);
  return {
    updateId: Number.isSafeInteger(event.updateId) ? event.updateId : 0,
    userId: id(event.userId),
    chatId: id(event.chatId),
    type: text(String(event.type)),
    command: event.command === null ? null : text(String(event.command)),
    outcome: text(String(event.outcome)),
    durationMs: Number.isFinite(event.durationMs) ? event.durationMs : 0,
    at: event.at instanceof Date && !Number.isNaN(event.at.getTime()) ? event.at : new Date(),
  };
}
