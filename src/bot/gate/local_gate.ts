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
  readonly #buckets = new Map<number, BucketState>();

  constructor(config: RateLimitConfig) {
    this.#config = config;
  }

  /** Remembers that `updateId` was handled. */
  markSeen(updateId: number): void {
    this.#seen.add(updateId);
    // A Set iterates in insertion order: the first entry is the oldest.
    if (this.#seen.size > SEEN_LIMIT) this.#seen.delete(this.#seen.values().next().value!);
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
