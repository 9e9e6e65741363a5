/**
 * The background event writer: handlers hand it events and go on; it writes them to the
 * database in batches (by size and by time). Its queue is bounded, so a long database outage
 * costs the oldest events (counted) rather than memory; stopping flushes what is left.
 */
import type { Counter, Gauge } from "prom-client";
import { logger } from "../log.ts";
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
   * Longest an event waits before its batch is written.
   * @default 1000
   */
  flushIntervalMs?: number;
  /**
   * Most events held; beyond it the oldest are dropped.
   * @default 50000
   */
  capacity?: number;
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
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #stop = new AbortController();
  #queue: EventRecord[] = [];
  #inFlight = 0;
  #failures = 0;
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
    this.#timer = setInterval(() => this.#kick(true), options.flushIntervalMs ?? 1000);
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
        await this.#write(batch);
        if (this.#abandoned) return;
        this.#failures = 0;
        this.#metrics?.eventsWritten.inc(batch.length);
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
        this.#metrics?.eventWriteErrors.inc();
        if (this.#failures === 1 || this.#failures % 30 === 0) {
          log.warn("event log write failed ({failures} in a row), {pending} events wait: {error}", {
            failures: this.#failures,
            pending: this.#queue.length,
            error: String(error),
          });
        }
        return;
      } finally {
        this.#inFlight = 0;
        this.#metrics?.eventQueue.set(this.pending);
      }
    }
  }

  #drop(count: number, reason: "queue_full" | "shutdown"): void {
    this.#metrics?.eventsDropped.inc({ reason }, count);
  }
}
