/**
 * Keeps the chat leases of the updates in flight alive while they run: one timer for all of
 * them instead of one per update (starting and clearing a timer per update cost more than the
 * rest of the gate's own work). The timer starts with the first lease and stops at the first
 * tick that finds none held, so a bot that is idle for a tick has nothing ticking, and it never
 * keeps the process alive (unref). A lease is renewed once it is `everyMs` old and every
 * `everyMs` after, so with `everyMs` a quarter of the lease's TTL it is renewed at most half a
 * TTL after it was taken or last renewed.
 */

/** One held lease, as the gate registers it. */
export interface HeldLease {
  /** When it was taken or last renewed (performance.now()). */
  renewedAt: number;
}

/** The leases in flight and the timer that renews them. */
export class LeaseRenewals<Lease extends HeldLease> {
  readonly #held = new Set<Lease>();
  readonly #renew: (lease: Lease) => void;
  readonly #everyMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** `renew` is called for each lease due; it must not throw (it reports its own failures). */
  constructor(renew: (lease: Lease) => void, everyMs: number) {
    this.#renew = renew;
    this.#everyMs = everyMs;
  }

  /** Starts renewing `lease`. */
  add(lease: Lease): void {
    this.#held.add(lease);
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#tick(), this.#everyMs);
    Deno.unrefTimer(this.#timer);
  }

  /** Stops renewing `lease`. */
  delete(lease: Lease): void {
    this.#held.delete(lease);
  }

  #tick(): void {
    if (this.#held.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    for (const lease of this.#held) {
      if (now - lease.renewedAt < this.#everyMs) continue;
      lease.renewedAt = now;
      this.#renew(lease);
    }
  }
}
