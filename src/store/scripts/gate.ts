/**
 * The gate's store script: in one atomic round trip it drops an update handled before (by
 * `update_id`) and, unless the sender is exempt, takes a token from their bucket. Both keys
 * must belong to one entity (the sender), so that the script also runs on Redis Cluster:
 * `[seenKey(sender, updateId), ["rl", sender]]`.
 *
 * An update counts as seen only once it has been handled (`markSeen`): one abandoned at a
 * shutdown, or cut off by a crash, is handled again when Telegram delivers it again.
 */
import type { Verdict } from "../../bot/token_bucket.ts";
import type { AtomicScript, Json, KeyValueStore, StoreKey } from "../store.ts";
import { applyBucket, BUCKET_LUA, type RateLimitArgs } from "./bucket.ts";

/** How long a handled update id is remembered: Telegram gives up redelivering within a day. */
export const SEEN_TTL_MS = 24 * 60 * 60 * 1000;

/** Where the gate remembers that `sender`'s update `updateId` was handled. */
export function seenKey(sender: number, updateId: number): StoreKey {
  return ["seen", sender, updateId];
}

/** Records that the update was handled, so that later deliveries of it are dropped. */
export async function markSeen(
  store: KeyValueStore,
  sender: number,
  updateId: number,
): Promise<void> {
  await store.set(seenKey(sender, updateId), 1, { ttlMs: SEEN_TTL_MS });
}

/** Arguments: whether to limit, then the limiter settings. */
export type GateArgs = [limit: boolean, ...RateLimitArgs];

/** What the gate decided. */
export type GateVerdict = { kind: "duplicate" } | Verdict;

/** Dedup by handled update id, then the token bucket, atomically. */
export const gateScript: AtomicScript<GateArgs, GateVerdict & Record<string, Json>> = {
  name: "gate",
  lua: `${BUCKET_LUA}
    local now = tonumber(ARGV[1])
    if redis.call('EXISTS', KEYS[1]) == 1 then return cjson.encode({kind = 'duplicate'}) end
    if ARGV[2] ~= 'true' then return cjson.encode({kind = 'pass'}) end
    return cjson.encode(consume_bucket(KEYS[2], now, tonumber(ARGV[3]), tonumber(ARGV[4]),
      tonumber(ARGV[5]), tonumber(ARGV[6])))`,
  apply([seen, bucket], [limit, ...limiter], nowMs) {
    if (seen !== null && seen !== undefined) return { writes: [], result: { kind: "duplicate" } };
    if (!limit) return { writes: [], result: { kind: "pass" } };
    const { write, verdict } = applyBucket(bucket, limiter, nowMs);
    return { writes: [undefined, write], result: verdict };
  },
};
