/**
 * The long-polling transport. With a store that other instances share, the instances hold a
 * leader lease (`polling`): the holder polls, the others stand by (`/health` warns, naming
 * the holder) and one of them takes over when the holder stops or dies. With the embedded
 * store there is one instance, which polls without a lease. A stop ends the poll, waits for
 * the updates in flight, confirms the finished (or recorded) ones and only then gives the
 * lease up, so that a standby never polls while we still confirm.
 *
 * Fetched updates are recorded in the inbox (`inbox.ts`) and confirmed to Telegram at once, so
 * that a slow update never holds up the next poll. Before it polls, at the start and on
 * becoming the leader, the instance replays the inbox's batches that nobody is handling any
 * more (their owner crashed, or stopped and abandoned them), and while it polls it looks for
 * such batches at every heartbeat; the gate drops what had been handled. Every instance keeps
 * its claim on its own batches alive while it may still handle them, also after losing the
 * lease and through a stop's drain, so that no update is replayed while its first run lasts.
 */
import type { Api } from "grammy";
import { asError } from "../errors.ts";
import type { Check, CheckResult } from "../health.ts";
import { type Logger, logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Startup } from "../startup.ts";
import { LeaderLease, type LeaseStatus } from "../store/leader.ts";
import type { KeyValueStore } from "../store/store.ts";
import type { Update } from "grammy/types";
import { delay } from "../util/delay.ts";
import { UpdateInbox } from "./inbox.ts";
import { Poller, type PollerStatus, pollingHealth } from "./polling.ts";
import type { DrainResult, UpdateScheduler } from "./scheduler.ts";
import type { Transport } from "./transport.ts";

/** Options of {@link PollingTransport}. */
export interface PollingTransportOptions {
  scheduler: UpdateScheduler;
  startup: Startup;
  /** Aborts at the stop. */
  signal: AbortSignal;
  /** The store; when other instances share it, polling runs under the `polling` lease. */
  store: KeyValueStore;
  /** This instance's name among those sharing the store. */
  instanceId: string;
  metrics: Pick<
    Metrics,
    "pollErrors" | "updatesDropped" | "leaseChanges" | "pollingLeader"
  >;
  log: Logger;
}

/** Receiving updates with `getUpdates`; see the module documentation. */
export class PollingTransport implements Transport {
  readonly mode = "polling" as const;
  readonly failed: Promise<Error>;
  readonly checks: Readonly<Record<string, Check>>;
  readonly #o: PollingTransportOptions;
  #reportFailure: (error: Error) => void = () => {};
  #poller: Poller | null = null;
  #lease: LeaderLease | null = null;
  #stopping: Promise<DrainResult> | null = null;
  readonly #inbox: UpdateInbox;
  /** Ends the inbox's heartbeats, after the drain of a stop. */
  readonly #beats = new AbortController();
  #beating: Promise<void> | null = null;
  /** Counts leaderships: a start that waited past the end of its term polls not. */
  #term = 0;
  #starting: Promise<void> | null = null;

  constructor(options: PollingTransportOptions) {
    this.#o = options;
    this.#inbox = new UpdateInbox({
      store: options.store,
      owner: options.instanceId,
      log: logger("inbox"),
    });
    this.failed = new Promise((resolve) => this.#reportFailure = resolve);
    this.checks = {
      // component:measurement, as the health draft names checks: Telegram, seen by polling.
      "telegram:polling": () =>
        Promise.resolve(
          (this.#lease && standbyHealth(this.#lease.status)) ??
            pollingHealth(this.#poller?.status ?? null),
        ),
    };
  }

  /** How the poller is doing while this instance polls; null while it stands by. */
  get pollerStatus(): PollerStatus | null {
    return this.#poller?.status ?? null;
  }

  async start(api: Api, allowedUpdates: readonly string[]): Promise<void> {
    const { startup, signal, store, instanceId, metrics, log } = this.#o;
    const info = await startup.until("getWebhookInfo", () => api.getWebhookInfo(signal as never));
    if (info.url !== "") {
      log.warning("a webhook is registered; removing it to use long polling", {
        pending: info.pending_update_count,
      });
      await startup.until("deleteWebhook", () => api.deleteWebhook({}, signal as never));
    }
    const startPolling = async (term: number) => {
      const current = () => !signal.aborted && !this.#stopping && term === this.#term;
      await this.#takeOver(current);
      if (!current()) return;
      const poller = new Poller({
        api,
        scheduler: this.#o.scheduler,
        allowedUpdates,
        log,
        metrics,
        inbox: this.#inbox,
      });
      this.#poller = poller;
      poller.run().catch((error) => this.#reportFailure(asError(error)));
    };
    if (!store.shared) {
      // The embedded store serves the one instance that owns DATA_DIR: nobody to stand by for.
      metrics.pollingLeader.set(1);
      await startPolling(this.#term);
      this.#beating = this.#heartbeats();
      return;
    }
    this.#lease = new LeaderLease({
      store,
      name: "polling",
      holder: instanceId,
      log: logger("leader"),
      metrics: { leaseChanges: metrics.leaseChanges, leader: metrics.pollingLeader },
      // Not awaited: the lease must be renewed while the start waits for claims to lapse.
      onElected: () => void (this.#starting = startPolling(++this.#term)),
      onDeposed: async () => {
        this.#term++;
        await this.#starting;
        const deposed = this.#poller;
        this.#poller = null;
        await deposed?.stop();
        if (deposed) await this.#confirm(deposed);
      },
    });
    this.#lease.run();
    this.#beating = this.#heartbeats();
  }

  stop(drain: () => Promise<DrainResult>): Promise<DrainResult> {
    this.#stopping ??= (async () => {
      await this.#starting;
      const poller = this.#poller;
      await poller?.stop();
      const drained = await drain();
      if (poller) await this.#confirm(poller);
      // The claim is renewed through the drain; now it is given up, or kept a little longer
      // for what was abandoned.
      this.#beats.abort();
      await this.#beating;
      const late = new AbortController();
      await Promise.race([this.#inbox.stop(), delay(INBOX_STOP_MS, late.signal).catch(() => {})]);
      late.abort();
      await this.#lease?.release();
      return drained;
    })();
    return this.#stopping;
  }

  /**
   * Before polling: replays what a previous leader or process left unfinished, waiting (at
   * most a claim's TTL and a heartbeat) while another instance that still runs claims batches,
   * so that a chat's older updates run before its newer ones.
   */
  async #takeOver(current: () => boolean): Promise<void> {
    const deadline = Date.now() + this.#inbox.claimTtlMs + this.#inbox.heartbeatMs;
    for (;;) {
      const { updates, claimed } = await this.#inbox.heartbeat({ adopt: true });
      this.#replay(updates);
      if (claimed === 0 || !current() || Date.now() > deadline) return;
      await delay(CLAIM_POLL_MS);
    }
  }

  /** Renews the inbox claim and, while polling, adopts the batches nobody handles any more. */
  async #heartbeats(): Promise<void> {
    const signal = this.#beats.signal;
    while (!signal.aborted) {
      await delay(this.#inbox.heartbeatMs, signal).catch(() => {});
      if (signal.aborted) break;
      const polling = this.#poller !== null && this.#stopping === null;
      this.#replay((await this.#inbox.heartbeat({ adopt: polling })).updates);
    }
  }

  /** Hands replayed updates to the scheduler; the inbox trims them once they finished. */
  #replay(updates: readonly Update[]): void {
    for (const update of updates) {
      this.#o.scheduler.schedule(update).finally(() => this.#inbox.finished(update.update_id));
    }
  }

  /**
   * Tells Telegram which fetched updates finished or are in the inbox; the others come again.
   */
  async #confirm(stopped: Poller): Promise<void> {
    await stopped.confirm(AbortSignal.timeout(5000)).catch((error) =>
      this.#o.log.warning(
        "could not confirm the handled updates to Telegram; they will come again",
        { error },
      )
    );
  }
}

/** Longest a stop waits for the inbox's last trims and its claim. */
const INBOX_STOP_MS = 5000;
/** How often a new leader looks whether the claims it waits for lapsed. */
const CLAIM_POLL_MS = 250;

/**
 * The polling check of an instance that does not hold the lease (`warn`, so `/health` stays
 * 200: standing by is normal), or null while it does and the poller's own health applies.
 */
export function standbyHealth(status: LeaseStatus): CheckResult | null {
  if (status.role === "leader") return null;
  if (status.storeError !== null) {
    return {
      status: "warn",
      output: `standing by: the store is unreachable, so the ${status.name} lease cannot be ` +
        `taken: ${status.storeError}`,
    };
  }
  if (status.holder === null) {
    return { status: "warn", output: `standing by: waiting for the ${status.name} lease` };
  }
  return {
    status: "warn",
    output: `standing by: instance ${status.holder} holds the ${status.name} lease`,
  };
}
