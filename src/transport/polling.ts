import { type Api, GrammyError, HttpError } from "grammy";
import type { Update } from "grammy/types";
import { causeChain, UnauthorizedTokenError } from "../errors.ts";
import { checkUpdate } from "../bot/update_check.ts";
import type { CheckResult } from "../health.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";
import type { UpdateScheduler } from "./scheduler.ts";

/** Options of {@link Poller}. */
export interface PollerOptions {
  /** The bot's API client. */
  api: Api;
  /** Runs the fetched updates. */
  scheduler: UpdateScheduler;
  /** Update types to ask for. */
  allowedUpdates: readonly string[];
  /** Where warnings go. */
  log: Logger;
  /** Poll error counters. */
  metrics: Pick<Metrics, "pollErrors" | "updatesDropped">;
  /** Long-poll timeout in seconds. @default 30 */
  timeoutSeconds?: number;
  /** Most updates per poll (1–100). @default 100 */
  limit?: number;
  /**
   * Where fetched updates are recorded before they are confirmed to Telegram (see
   * `inbox.ts`); without it, or while it fails, an update is confirmed only once handled.
   */
  inbox?: UpdateJournal | null;
  /** Longest wait for the inbox to record a batch; later counts as not recorded. @default 2000 */
  recordTimeoutMs?: number;
  /**
   * Most fetched updates in flight (running or queued in the scheduler); polling waits while
   * there are more, so that a backlog stays at Telegram instead of in memory. @default 1000
   */
  maxInFlight?: number;
  /**
   * While updates that are not recorded in the inbox are still being handled, how long to wait
   * for them before polling again (which makes Telegram re-send them). @default 500
   */
  redeliveryPauseMs?: number;
}

/** What the poller needs of the inbox (`UpdateInbox`). */
export interface UpdateJournal {
  /** Records a batch; resolves true once it is durable, false when it could not be. */
  record(updates: readonly Update[]): Promise<boolean>;
  /** Told once an update finished. */
  finished(updateId: number): void;
}

/** What the poller last saw, for the health check. */
export interface PollerStatus {
  /** When polling started (ms since epoch), or null before it did. */
  startedAt: number | null;
  /** When the last poll succeeded (ms since epoch), or null before the first. */
  lastSuccessAt: number | null;
  /** When the poll now waiting for Telegram was sent (ms since epoch), or null. */
  pollSentAt: number | null;
  /** The last poll error since the last success, or null. */
  lastError: string | null;
}

/**
 * Long polling that confirms an update to Telegram only once it is safe: recorded in the inbox
 * (which replays it after a crash or a takeover if it did not finish) or handled.
 *
 * Telegram's `offset` confirms every update below it. Each fetched batch is handed to the
 * scheduler and recorded in the inbox in one round trip; once recorded, the next poll asks
 * past it at once, so a slow update holds up nobody. An update the inbox could not record (the
 * store is down, or there is no inbox) keeps the offset at its id until it finished: the
 * poller then waits briefly before polling again, and skips what Telegram re-sends. A stop
 * confirms what finished or was recorded.
 */
export class Poller {
  readonly #o: Required<PollerOptions>;
  readonly #abort = new AbortController();
  /** Ids received at or above the offset, so that re-sent ones are skipped. */
  readonly #received = new Set<number>();
  /** Received updates still being handled, by id. */
  readonly #inFlight = new Map<number, Promise<void>>();
  /** Ids in flight that the inbox has not recorded: Telegram must not be told of them yet. */
  readonly #unrecorded = new Set<number>();
  #maxReceived = -1;
  #confirmed = 0;
  #loop: Promise<void> | null = null;
  #status: PollerStatus = {
    startedAt: null,
    lastSuccessAt: null,
    pollSentAt: null,
    lastError: null,
  };

  constructor(options: PollerOptions) {
    this.#o = {
      timeoutSeconds: 30,
      limit: 100,
      redeliveryPauseMs: 500,
      recordTimeoutMs: 2000,
      maxInFlight: 1000,
      inbox: null,
      ...options,
    };
  }

  /**
   * The offset to poll with: the lowest id in flight that the inbox has not recorded, or one
   * past the last received.
   */
  get offset(): number {
    return this.#unrecorded.size > 0 ? Math.min(...this.#unrecorded) : this.#maxReceived + 1;
  }

  /** What the last polls saw. */
  get status(): PollerStatus {
    return { ...this.#status };
  }

  /**
   * Polls until {@link stop}. Resolves after a stop; rejects when the token is refused, the
   * only error that waiting cannot fix.
   */
  run(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  /** Stops fetching: aborts the long poll in progress. Updates already fetched keep running. */
  async stop(): Promise<void> {
    this.#abort.abort(new Error("polling stopped"));
    await this.#loop?.catch(() => {});
  }

  /**
   * Tells Telegram which updates are done or recorded, without fetching new work. Call after
   * the scheduler drained: unrecorded ids still in flight stay unconfirmed and come back.
   */
  async confirm(signal?: AbortSignal): Promise<void> {
    const offset = this.offset;
    if (offset <= this.#confirmed) return;
    await this.#o.api.getUpdates({ offset, limit: 1, timeout: 0 }, signal as never);
    this.#confirmed = offset;
  }

  async #run(): Promise<void> {
    const { api, log, metrics } = this.#o;
    const signal = this.#abort.signal;
    let failures = 0;
    this.#status.startedAt = Date.now();
    while (!signal.aborted) {
      if (this.#unrecorded.size > 0) {
        // Polling now would only bring back the unrecorded updates: give them a moment.
        await Promise.race([
          Promise.all([...this.#unrecorded].map((id) => this.#inFlight.get(id))),
          delay(this.#o.redeliveryPauseMs, signal).catch(() => {}),
        ]);
        if (signal.aborted) break;
      }
      if (this.#inFlight.size >= this.#o.maxInFlight) {
        // A backlog: let some of it finish before fetching more.
        await Promise.race([
          Promise.race(this.#inFlight.values()),
          delay(this.#o.redeliveryPauseMs, signal).catch(() => {}),
        ]);
        continue;
      }
      let updates: Update[];
      const offset = this.offset;
      this.#status.pollSentAt = Date.now();
      try {
        updates = await api.getUpdates({
          offset,
          limit: this.#o.limit,
          timeout: this.#o.timeoutSeconds,
          allowed_updates: [...this.#o.allowedUpdates] as never,
        }, signal as never);
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof GrammyError && error.error_code === 401) {
          throw new UnauthorizedTokenError({ cause: error });
        }
        const reason = error instanceof GrammyError
          ? (error.error_code === 409 ? "conflict" : "api")
          : error instanceof HttpError
          ? "network"
          : "other";
        metrics.pollErrors.inc({ reason });
        const wait = backoffDelay(failures++, { baseMs: 1000, maxMs: 30_000 });
        this.#status.pollSentAt = null;
        this.#status.lastError = causeChain(error);
        log.warning("getUpdates failed ({reason}), retrying in {wait_ms} ms: {error_message}", {
          reason,
          wait_ms: wait,
          error_message: this.#status.lastError,
        });
        await delay(wait, signal).catch(() => {});
        continue;
      }
      if (failures > 0) log.info("getUpdates works again after {failures} failures", { failures });
      failures = 0;
      this.#status = {
        ...this.#status,
        lastSuccessAt: Date.now(),
        pollSentAt: null,
        lastError: null,
      };
      this.#confirmed = Math.max(this.#confirmed, offset);
      this.#forgetBelow(offset);
      await this.#accept(updates, offset);
    }
  }

  /** Schedules the new updates of a poll's answer and records them in the inbox. */
  async #accept(updates: Update[], offset: number): Promise<void> {
    const { scheduler, log, metrics, inbox } = this.#o;
    const fresh: Update[] = [];
    for (const raw of updates) {
      const id = raw.update_id;
      if (!Number.isSafeInteger(id) || id < offset || this.#received.has(id)) continue;
      this.#received.add(id);
      this.#maxReceived = Math.max(this.#maxReceived, id);
      const checked = checkUpdate(raw);
      if (!checked.ok) {
        // Confirmed with the next poll like any other: asking again would bring it back.
        metrics.updatesDropped.inc({ reason: "malformed" });
        log.warning("dropped malformed update {update_id}: {problem}", {
          update_id: id,
          problem: checked.problem,
        });
        continue;
      }
      fresh.push(checked.update);
    }
    if (fresh.length === 0) return;
    // Recorded before it runs, so that the inbox knows the batch when its updates finish.
    const recording = inbox?.record(fresh);
    for (const update of fresh) {
      const id = update.update_id;
      this.#unrecorded.add(id);
      this.#inFlight.set(
        id,
        scheduler.schedule(update).finally(() => {
          this.#inFlight.delete(id);
          this.#unrecorded.delete(id);
          inbox?.finished(id);
        }),
      );
    }
    if (recording === undefined) return;
    // The next poll confirms the batch to Telegram: only once the inbox holds it.
    const timeout = new AbortController();
    const recorded = await Promise.race([
      recording,
      delay(this.#o.recordTimeoutMs, timeout.signal).then(() => false, () => false),
    ]);
    timeout.abort();
    if (!recorded) return;
    for (const update of fresh) this.#unrecorded.delete(update.update_id);
  }

  #forgetBelow(offset: number): void {
    for (const id of this.#received) if (id < offset) this.#received.delete(id);
  }
}

/** Longest a long poll may stay unanswered: the 30 s poll plus generous slack. */
const POLL_STALE_MS = 75_000;

/**
 * Polling is healthy while polls succeed or one is waiting, as long polls do, for less than
 * {@link POLL_STALE_MS}. `observedValue` is the age of the last answer from Telegram, or,
 * while Telegram never answered, the time since polling started: it grows either way.
 */
export function pollingHealth(status: PollerStatus | null, now = Date.now()): CheckResult {
  if (status === null) return { status: "warn", output: "polling has not started" };
  const since = status.lastSuccessAt ?? status.startedAt;
  const observedValue = since === null ? 0 : now - since;
  if (status.lastError !== null) return { status: "warn", observedValue, output: status.lastError };
  if (status.pollSentAt !== null && now - status.pollSentAt > POLL_STALE_MS) {
    return {
      status: "warn",
      observedValue,
      output: `getUpdates unanswered for ${Math.round((now - status.pollSentAt) / 1000)} s`,
    };
  }
  return { status: "pass", observedValue };
}
