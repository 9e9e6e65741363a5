/**
 * A leader lease in the key-value store, so that of several instances in polling mode exactly
 * one calls `getUpdates` and the others stand by (Telegram answers a second poller with 409).
 *
 * Every instance runs a {@link LeaderLease}: it tries to take or renew the lease every
 * `renewEveryMs` (a third of the TTL by default). The holder renews it; a standby takes it
 * once it is free: at once when the leader released it at a graceful stop, within the TTL when
 * the leader crashed. An instance loses the lease only when it failed to renew it for longer
 * than the TTL and another instance took it meanwhile.
 *
 * Outage policy: while the store is unreachable, the leader keeps leading (a second poller
 * would only get Telegram's 409, which the poller retries) and a standby stays a standby until
 * the store answers again; either way the outage is logged once, not per attempt.
 */
import type { Counter, Gauge } from "../metrics/prometheus.ts";
import type { Logger } from "../log.ts";
import { acquireLeaseScript, leaseKey, releaseLeaseScript } from "./lease.ts";
import type { KeyValueStore } from "./store.ts";
import { delay } from "../util/delay.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@link LeaderLease}. */
export interface LeaderLeaseOptions {
  /** Where the lease lives; shared by every instance. */
  store: KeyValueStore;
  /** The lease's name, e.g. `polling`; also the `lease` label of the metrics. */
  name: string;
  /** Who this instance is, as other instances see it (`host-pid-random`, unique per process). */
  holder: string;
  /** How long the lease lasts unless renewed. @default 10000 */
  ttlMs?: number;
  /** How often to renew it (leader) or try to take it (standby). @default ttlMs / 3 */
  renewEveryMs?: number;
  /** Where changes and outages go. */
  log: Logger;
  /** `leaseChanges` counts changes by lease and change; `leader` is 1 while this instance leads. */
  metrics: { leaseChanges: Counter<"lease" | "change">; leader: Gauge };
  /** Called once this instance took the lease; renewals wait for it. */
  onElected?: () => void | Promise<void>;
  /** Called once another instance took the lease from this one; renewals wait for it. */
  onDeposed?: () => void | Promise<void>;
}

/** What the lease looks like from this instance, for health checks. */
export interface LeaseStatus {
  /** The lease's name. */
  name: string;
  /** This instance's holder id. */
  self: string;
  /** `leader` while this instance holds the lease; `standby` otherwise, also before the first try. */
  role: "leader" | "standby";
  /** The holder as of the store's last answer, or null before the first one. */
  holder: string | null;
  /** Why the store did not answer the last try, or null when it did. */
  storeError: string | null;
}

/** Holds, renews and gives up one named lease; see the module documentation. */
export class LeaderLease {
  readonly #o: Required<LeaderLeaseOptions>;
  readonly #stop = new AbortController();
  #status: LeaseStatus;
  #loop: Promise<void> | null = null;
  #releasing: Promise<void> | null = null;

  constructor(options: LeaderLeaseOptions) {
    const ttlMs = options.ttlMs ?? 10_000;
    this.#o = {
      ...options,
      ttlMs,
      renewEveryMs: options.renewEveryMs ?? ttlMs / 3,
      onElected: options.onElected ?? (() => {}),
      onDeposed: options.onDeposed ?? (() => {}),
    };
    if (!(this.#o.renewEveryMs > 0 && this.#o.renewEveryMs < ttlMs)) {
      throw new RangeError(`renewEveryMs must be between 0 and ttlMs (${ttlMs})`);
    }
    this.#status = {
      name: options.name,
      self: this.#o.holder,
      role: "standby",
      holder: null,
      storeError: null,
    };
  }

  /** This instance's holder id. */
  get holder(): string {
    return this.#o.holder;
  }

  /** Whether this instance holds the lease. */
  get leading(): boolean {
    return this.#status.role === "leader";
  }

  /** How the lease looks from here. */
  get status(): LeaseStatus {
    return { ...this.#status };
  }

  /**
   * Tries to take or renew the lease now and then every `renewEveryMs`, until `signal` aborts
   * or {@link release} is called. Never rejects: store errors are the outage policy's business.
   */
  run(signal?: AbortSignal): Promise<void> {
    const stop = signal ? AbortSignal.any([signal, this.#stop.signal]) : this.#stop.signal;
    this.#loop ??= this.#run(stop);
    return this.#loop;
  }

  /**
   * Stops trying and gives the lease up if this instance holds it, so that a standby takes over
   * at once instead of after the TTL. Call it once the work the lease guards has stopped.
   * Calling it again returns the same promise.
   */
  release(): Promise<void> {
    this.#releasing ??= (async () => {
      const done = new AbortController();
      // Past the TTL the lease has ended anyway: a store that hangs must not hold up a stop.
      const late = delay(this.#o.ttlMs, done.signal).then(
        () => this.#o.log.warning("gave up releasing the {lease} lease", { lease: this.#o.name }),
        () => {},
      );
      await Promise.race([this.#release(), late]);
      done.abort();
    })();
    return this.#releasing;
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const waitMs = await this.#attempt(signal);
      await delay(waitMs, signal).catch(() => {});
    }
  }

  /** One try; answers how long to wait before the next. */
  async #attempt(signal: AbortSignal): Promise<number> {
    const { store, name, holder, ttlMs, renewEveryMs, log, metrics } = this.#o;
    let answer;
    try {
      answer = await store.run(acquireLeaseScript, [leaseKey(name)], [holder, ttlMs]);
    } catch (error) {
      this.#outage(error);
      return renewEveryMs;
    }
    // A release is under way: it decides what happens to the lease.
    if (signal.aborted) return 0;
    const before = this.#status;
    if (before.storeError !== null) log.info("the store answers again", { lease: name });
    this.#status = {
      ...before,
      role: answer.held ? "leader" : "standby",
      holder: answer.holder,
      storeError: null,
    };
    if (answer.held && before.role !== "leader") {
      metrics.leaseChanges.inc({ lease: name, change: "acquired" });
      metrics.leader.set(1);
      log.info("took the {lease} lease as {holder}", { lease: name, holder });
      await this.#notify("onElected");
    } else if (!answer.held && before.role === "leader") {
      metrics.leaseChanges.inc({ lease: name, change: "lost" });
      metrics.leader.set(0);
      log.warning("lost the {lease} lease to {other}: it could not be renewed within {ttl_ms} ms", {
        lease: name,
        other: answer.holder,
        ttl_ms: ttlMs,
      });
      await this.#notify("onDeposed");
    } else if (!answer.held && answer.holder !== before.holder) {
      log.info("standing by: instance {other} holds the {lease} lease", {
        lease: name,
        other: answer.holder,
      });
    }
    // A standby tries again as soon as the lease runs out, so a crashed leader is replaced fast.
    return answer.held ? renewEveryMs : Math.min(renewEveryMs, answer.ttlMs + 10);
  }

  #outage(error: unknown): void {
    const message = errorMessage(error);
    const first = this.#status.storeError === null;
    this.#status = { ...this.#status, storeError: message };
    if (!first) return;
    const { log, name } = this.#o;
    if (this.leading) {
      log.warning("the store is unreachable: keeping the {lease} lease until it answers again", {
        lease: name,
        error: message,
      });
    } else {
      log.warning("the store is unreachable: standing by for the {lease} lease until it answers", {
        lease: name,
        error: message,
      });
    }
  }

  async #notify(callback: "onElected" | "onDeposed"): Promise<void> {
    try {
      await this.#o[callback]();
    } catch (error) {
      this.#o.log.error("the {lease} lease's {callback} failed", {
        lease: this.#o.name,
        callback,
        error,
      });
    }
  }

  async #release(): Promise<void> {
    const { store, name, holder, ttlMs, log, metrics } = this.#o;
    this.#stop.abort();
    await this.#loop;
    const wasLeader = this.leading;
    this.#status = { ...this.#status, role: "standby" };
    metrics.leader.set(0);
    try {
      // Even a standby asks: a try that raced the stop may have taken the lease.
      if (await store.run(releaseLeaseScript, [leaseKey(name)], [holder])) {
        metrics.leaseChanges.inc({ lease: name, change: "released" });
        log.info("released the {lease} lease", { lease: name, holder });
      }
    } catch (error) {
      if (!wasLeader) return;
      log.warning("could not release the {lease} lease: a standby takes over within {ttl_ms} ms", {
        lease: name,
        ttl_ms: ttlMs,
        error: errorMessage(error),
      });
    }
  }
}
