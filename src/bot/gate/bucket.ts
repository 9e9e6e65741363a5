/**
 * The rate limiter's maths: a token bucket with temporary bans, as a pure function of (state,
 * now, config). The stores run the same rules atomically (Lua in Redis, an atomic operation
 * in Deno KV); this function is the reference they are tested against.
 */

/** Limiter settings, resolved from the environment. */
export interface BucketConfig {
  /** Most updates in a burst, and per window (`RATE_LIMIT_MAX_REQUESTS`). */
  capacity: number;
  /** The window the capacity refills over, in ms (`RATE_LIMIT_TIME_WINDOW`). */
  windowMs: number;
  /** Limited updates tolerated before a ban; 0 never bans (`RATE_LIMIT_BAN_AFTER`). */
  banAfter: number;
  /** How long a ban lasts, in ms (`RATE_LIMIT_BAN_DURATION`). */
  banMs: number;
}

/** One user's bucket as stored. */
export interface BucketState {
  /** Tokens left at `at` (fractional while refilling). */
  tokens: number;
  /** When `tokens` was computed, epoch ms. */
  at: number;
  /** Limited updates since the bucket was last full. */
  violations: number;
  /** Whether the user was told about the limit since the bucket was last full. */
  told: boolean;
  /** End of the current ban, epoch ms; 0 when not banned. */
  bannedUntil: number;
}

/** What to do with the update. */
export type Verdict =
  | { kind: "pass" }
  /** Over the limit: drop it; `notify` is true for the first one, which gets the notice. */
  | { kind: "limited"; retryAfterMs: number; notify: boolean }
  /** Banned: drop it; `notify` is true once per ban. */
  | { kind: "banned"; untilMs: number; notify: boolean };

const EPSILON = 1e-9;

/** A full bucket: what a user who has not written for a while has. */
export function fullBucket(config: BucketConfig, nowMs: number): BucketState {
  return { tokens: config.capacity, at: nowMs, violations: 0, told: false, bannedUntil: 0 };
}

/**
 * Takes one token for an update at `nowMs`. Returns the new state, the verdict, and how long
 * the state must be kept (after that it equals a full bucket and may be forgotten).
 */
export function consume(
  previous: BucketState | null,
  nowMs: number,
  config: BucketConfig,
): { state: BucketState; verdict: Verdict; keepMs: number } {
  let state = previous ?? fullBucket(config, nowMs);
  if (state.bannedUntil > nowMs) {
    const verdict: Verdict = { kind: "banned", untilMs: state.bannedUntil, notify: !state.told };
    state = { ...state, told: true };
    return { state, verdict, keepMs: state.bannedUntil - nowMs };
  }
  if (state.bannedUntil !== 0) state = fullBucket(config, nowMs); // the ban is over

  const perMs = config.capacity / config.windowMs;
  // A clock that went back (another instance's) must not add tokens.
  const elapsed = Math.max(0, nowMs - state.at);
  const tokens = Math.min(config.capacity, state.tokens + elapsed * perMs);
  // A bucket that filled up again means the user calmed down: old violations are forgiven.
  const calm = tokens >= config.capacity;
  const violations = calm ? 0 : state.violations;
  const told = calm ? false : state.told;

  // Refilling in small steps accumulates rounding error; a hair below 1 is a whole token.
  if (tokens >= 1 - EPSILON) {
    // `told` survives a pass: one notice per episode of spam, not one per refilled token.
    const next = { tokens: Math.max(0, tokens - 1), at: nowMs, violations, told, bannedUntil: 0 };
    return { state: next, verdict: { kind: "pass" }, keepMs: refillMs(next, config) };
  }
  const retryAfterMs = Math.ceil((1 - tokens) / perMs);
  if (config.banAfter > 0 && violations + 1 > config.banAfter) {
    const bannedUntil = nowMs + config.banMs;
    const next = { tokens, at: nowMs, violations: violations + 1, told: true, bannedUntil };
    return {
      state: next,
      verdict: { kind: "banned", untilMs: bannedUntil, notify: true },
      keepMs: config.banMs,
    };
  }
  const next = { tokens, at: nowMs, violations: violations + 1, told: true, bannedUntil: 0 };
  return {
    state: next,
    verdict: { kind: "limited", retryAfterMs, notify: !told },
    keepMs: refillMs(next, config),
  };
}

/** Milliseconds until `state`'s bucket is full again. */
function refillMs(state: BucketState, config: BucketConfig): number {
  return Math.ceil((config.capacity - state.tokens) * config.windowMs / config.capacity);
}
