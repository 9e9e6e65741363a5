/**
 * The long-polling transport. With a store that other instances share, the instances hold a
 * leader lease (`polling`): the holder polls, the others stand by (`/health` warns, naming
 * the holder) and one of them takes over when the holder stops or dies. With the embedded
 * store there is one instance, which polls without a lease. A stop ends the poll, waits for
 * the updates in flight, confirms the finished ones and only then gives the lease up, so that
 * a standby never polls while we still confirm.
 */
import type { Api } from "grammy";
import type { Check, CheckResult } from "../health.ts";
import { type Logger, logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Startup } from "../startup.ts";
import { LeaderLease, type LeaseStatus } from "../store/leader.ts";
import type { KeyValueStore } from "../store/store.ts";
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

  constructor(options: PollingTransportOptions) {
    this.#o = options;
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
    const startPolling = () => {
      if (signal.aborted) return;
      const poller = new Poller({
        api,
        scheduler: this.#o.scheduler,
        allowedUpdates,
        log,
        metrics,
      });
      this.#poller = poller;
      poller.run().catch((error) =>
        this.#reportFailure(error instanceof Error ? error : new Error(String(error)))
      );
    };
    if (!store.shared) {
      // The embedded store serves the one instance that owns DATA_DIR: nobody to stand by for.
      metrics.pollingLeader.set(1);
      startPolling();
      return;
    }
    this.#lease = new LeaderLease({
      store,
      name: "polling",
      holder: instanceId,
      log: logger("leader"),
      metrics: { leaseChanges: metrics.leaseChanges, leader: metrics.pollingLeader },
      onElected: startPolling,
      onDeposed: async () => {
        const deposed = this.#poller;
        this.#poller = null;
        await deposed?.stop();
        if (deposed) await this.#confirm(deposed);
      },
    });
    this.#lease.run();
  }

  stop(drain: () => Promise<DrainResult>): Promise<DrainResult> {
    this.#stopping ??= (async () => {
      const poller = this.#poller;
      await poller?.stop();
      const drained = await drain();
      if (poller) await this.#confirm(poller);
      await this.#lease?.release();
      return drained;
    })();
    return this.#stopping;
  }

  /** Tells Telegram which fetched updates finished; the unfinished ones come again. */
  async #confirm(stopped: Poller): Promise<void> {
    await stopped.confirm(AbortSignal.timeout(5000)).catch((error) =>
      this.#o.log.warning(
        "could not confirm the handled updates to Telegram; they will come again",
        { error },
      )
    );
  }
}

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
