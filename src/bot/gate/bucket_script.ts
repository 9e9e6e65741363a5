/**
 * The token bucket of `src/bot/token_bucket.ts` for atomic store scripts (the gate): Lua that
 * reads the user's bucket, applies the rules of `consume()` and writes the new bucket with its
 * TTL, and its twin for Deno KV, which calls `consume()` itself. Run inside one script, every
 * instance shares one limit and concurrent updates cannot pass more than it allows. The Lua
 * is a line-by-line transcription of `consume()`; the tests run both against the same inputs.
 */
import { type BucketConfig, type BucketState, consume, type Verdict } from "./bucket.ts";
import type { Json } from "../../store/store.ts";

/** Arguments: the limiter settings, in a fixed order. */
export type RateLimitArgs = [capacity: number, windowMs: number, banAfter: number, banMs: number];

/** The script's arguments for `config`. */
export function rateLimitArgs(config: BucketConfig): RateLimitArgs {
  return [config.capacity, config.windowMs, config.banAfter, config.banMs];
}

function isState(value: Json): value is BucketState & Record<string, Json> {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    typeof value.tokens === "number" && typeof value.at === "number";
}

/**
 * Lua defining `consume_bucket(key, raw, now, capacity, window, ban_after, ban_ms)`: applies the
 * rules of `consume()` to the bucket `raw` read from `key` (false when there is none), writes it
 * back with its TTL and returns the verdict as a table. Scripts that limit (the gate) include
 * it; they read the bucket with their other keys, in one MGET.
 */
export const BUCKET_LUA = `
  local function consume_bucket(key, raw, now, capacity, window, ban_after, ban_ms)
    local epsilon = 1e-9
    local s = raw and cjson.decode(raw) or nil
    if type(s) ~= 'table' or type(s.tokens) ~= 'number' or type(s.at) ~= 'number' then
      s = {tokens = capacity, at = now, violations = 0, told = false, bannedUntil = 0}
    end
    -- Written by hand: cjson (and redis.call, for a number argument) would write every number
    -- with glibc's floating-point formatting, slow for a time in ms; %d is not.
    local function save(state, keep)
      redis.call('SET', key, string.format(
        '{"tokens":%.14g,"at":%d,"violations":%d,"told":%s,"bannedUntil":%d}', state.tokens,
        state.at, state.violations, state.told and 'true' or 'false', state.bannedUntil),
        'PX', string.format('%d', math.max(1, math.ceil(keep))))
    end
    if s.bannedUntil > now then
      local notify = not s.told
      s.told = true
      save(s, s.bannedUntil - now)
      return {kind = 'banned', untilMs = s.bannedUntil, notify = notify}
    end
    if s.bannedUntil ~= 0 then
      s = {tokens = capacity, at = now, violations = 0, told = false, bannedUntil = 0}
    end
    local per_ms = capacity / window
    local elapsed = math.max(0, now - s.at)
    local tokens = math.min(capacity, s.tokens + elapsed * per_ms)
    local calm = tokens >= capacity
    local violations = calm and 0 or s.violations
    local told = (not calm) and s.told
    if tokens >= 1 - epsilon then
      local next = {tokens = math.max(0, tokens - 1), at = now, violations = violations,
        told = told, bannedUntil = 0}
      save(next, (capacity - next.tokens) * window / capacity)
      return {kind = 'pass'}
    end
    local retry = math.ceil((1 - tokens) / per_ms)
    if ban_after > 0 and violations + 1 > ban_after then
      local until_ms = now + ban_ms
      save({tokens = tokens, at = now, violations = violations + 1, told = true,
        bannedUntil = until_ms}, ban_ms)
      return {kind = 'banned', untilMs = until_ms, notify = true}
    end
    save({tokens = tokens, at = now, violations = violations + 1, told = true,
      bannedUntil = 0}, (capacity - tokens) * window / capacity)
    return {kind = 'limited', retryAfterMs = retry, notify = not told}
  end
`;

/** The TS twin of `consume_bucket` for stores without Lua: the write and the verdict. */
export function applyBucket(
  current: Json | undefined,
  [capacity, windowMs, banAfter, banMs]: RateLimitArgs,
  nowMs: number,
): { write: { value: Json; ttlMs: number }; verdict: Verdict & Record<string, Json> } {
  const state = current !== undefined && isState(current) ? current : null;
  const result = consume(state, nowMs, { capacity, windowMs, banAfter, banMs });
  return {
    write: { value: result.state as unknown as Json, ttlMs: Math.max(1, result.keepMs) },
    verdict: result.verdict as Verdict & Record<string, Json>,
  };
}
