/**
 * The gate's fallback while the store is unreachable: each instance dedups and limits on its
 * own, in memory. Limits then hold per instance instead of across all of them, and an update
 * is recognised as a duplicate only by the instance that saw it, but the bot keeps answering
 * and spam is still throttled. Both maps are bounded.
 */
import type { RateLimitConfig } from "../../config.ts";
import { type BucketState, consume, type Verdict } from "./bucket.ts";

/** What the fallback decided: as the gate script, without lease or dialog state. */
export type LocalVerdict = { kind: "duplicate" } | Verdict;

/** How many recent update ids the fallback remembers. */
const SEEN_LIMIT = 10_000;
/** How many users' buckets it keeps; beyond that the oldest are forgotten. */
const BUCKET_LIMIT = 100_000;

/** In-memory dedup and token buckets with the same rules as the store script. */
export class LocalGate {
  readonly #config: RateLimitConfig;
  readonly #seen = new Set<number>();
  /**
   * The remembered ids in the order they came, as a ring: the slot written next holds the
   * oldest. (Deleting a Set's first entry after many deletions makes V8 skip every deleted
   * slot to find it, which grew costly once the Set was full.)
   */
  readonly #order: (number | undefined)[] = new Array(SEEN_LIMIT);
  #next = 0;
  readonly #buckets = new Map<number, BucketState>();

  constructor(config: RateLimitConfig) {
    this.#config = config;
  }

  /** Remembers that `updateId` was handled. */
  markSeen(updateId: number): void {
    if (this.#seen.has(updateId)) return;
    const oldest = this.#order[this.#next];
    if (oldest !== undefined) this.#seen.delete(oldest);
    this.#order[this.#next] = updateId;
    this.#next = (this.#next + 1) % SEEN_LIMIT;
    this.#seen.add(updateId);
  }

  /** The verdict for `updateId` from `sender`, as the gate script would give it. */
  check(sender: number, updateId: number, limit: boolean, nowMs: number): LocalVerdict {
    if (this.#seen.has(updateId)) return { kind: "duplicate" };
    if (!limit) return { kind: "pass" };
    const { state, verdict } = consume(this.#buckets.get(sender) ?? null, nowMs, this.#config);
    this.#buckets.delete(sender);
    this.#buckets.set(sender, state);
    if (this.#buckets.size > BUCKET_LIMIT) {
      this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    return verdict;
  }
}
