/**
 * The gate's store script: in one atomic round trip it drops an update seen before (by
 * `update_id`) and, unless the sender is exempt, takes a token from their bucket. Both keys
 * must belong to one entity (the sender), so that the script also runs on Redis Cluster:
 * `[["seen", sender, updateId], ["rl", sender]]`.
 */
import type { Verdict } from "../../bot/token_bucket.ts";
import type { AtomicScript, Json } from "../store.ts";
import { applyBucket, BUCKET_LUA, type RateLimitArgs } from "./rate_limit.ts";

/** Arguments: how long an update id is remembered, whether to limit, the limiter settings. */
export type GateArgs = [dedupTtlMs: number, limit: boolean, ...RateLimitArgs];

/** What the gate decided. */
export type GateVerdict = { kind: "duplicate" } | Verdict;

/** Dedup by update id, then the token bucket, atomically. */
export const gateScript: AtomicScript<GateArgs, GateVerdict & Record<string, Json>> = {
  name: "gate",
  lua: `${BUCKET_LUA}
    local now = tonumber(ARGV[1])
    -- SET NX answers nil (false in Lua) when the key exists: this update came before.
    if not redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[2]), 'NX') then
      return cjson.encode({kind = 'duplicate'})
    end
    if ARGV[3] ~= 'true' then return cjson.encode({kind = 'pass'}) end
    return cjson.encode(consume_bucket(KEYS[2], now, tonumber(ARGV[4]), tonumber(ARGV[5]),
      tonumber(ARGV[6]), tonumber(ARGV[7])))`,
  apply([seen, bucket], [dedupTtlMs, limit, ...limiter], nowMs) {
    if (seen !== null && seen !== undefined) return { writes: [], result: { kind: "duplicate" } };
    const remember = { value: 1, ttlMs: dedupTtlMs };
    if (!limit) return { writes: [remember, undefined], result: { kind: "pass" } };
    const { write, verdict } = applyBucket(bucket, limiter, nowMs);
    return { writes: [remember, write], result: verdict };
  },
};
