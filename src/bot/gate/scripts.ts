/**
 * The pipeline's two store scripts, one round trip each:
 *
 * - `gateScript`, before any feature runs: drops an update handled before (by `update_id`),
 *   waits out another instance holding the chat, takes a token from the sender's bucket, takes
 *   the chat's lease, and loads (renewing its TTL) the sender's dialog state and, in a private
 *   chat, their cached profile.
 * - `finishScript`, once the features are done: writes the dialog state if it changed (a
 *   compare-and-set on its version, fenced by the lease), remembers the update as handled for a
 *   day and releases the lease.
 *
 * Every key belongs to the chat (the entity, and so the Redis Cluster hash tag, see
 * `keys.ts`), so both scripts also run on Redis Cluster; the profile is read only in a private
 * chat, where the sender is the chat. An update counts as handled only once `finishScript` ran:
 * one abandoned at a shutdown, or cut off by a crash, is handled when Telegram delivers it again.
 */
import type { Verdict } from "./bucket.ts";
import { NAMESPACES } from "../../store/namespaces.ts";
import { type DialogRecord, EXPIRED_DIALOG_MEMORY_MS } from "../dialog/record.ts";
import type { AtomicScript, Json, ScriptWrite, StoreKey } from "../../store/store.ts";
import { UserCache } from "../../store/user_cache.ts";
import { applyBucket, BUCKET_LUA, type RateLimitArgs } from "./bucket_script.ts";

/** How long a handled update id is remembered: Telegram gives up redelivering within a day. */
export const SEEN_TTL_MS = 24 * 60 * 60 * 1000;

/** The keys one update touches, all of its chat. */
export interface GateKeys {
  seen: StoreKey;
  bucket: StoreKey;
  dialog: StoreKey;
  lease: StoreKey;
  /** The sender's cached profile; only in a private chat (same entity as the chat). */
  profile: StoreKey | null;
}

/** The keys of update `updateId` from `sender` in `chat`. */
export function gateKeys(chat: number, sender: number, updateId: number): GateKeys {
  return {
    seen: [NAMESPACES.seen, chat, updateId],
    bucket: [NAMESPACES.bucket, chat, sender],
    dialog: [NAMESPACES.dialog, chat, sender],
    lease: [NAMESPACES.chatLease, chat],
    profile: chat === sender ? UserCache.key(sender) : null,
  };
}

/** The keys of {@link gateScript}, in its order: seen, bucket, dialog, lease (and profile). */
export function gateScriptKeys(keys: GateKeys): StoreKey[] {
  const storeKeys = [keys.seen, keys.bucket, keys.dialog, keys.lease];
  if (keys.profile) storeKeys.push(keys.profile);
  return storeKeys;
}

/** The keys of {@link finishScript}, in its order: seen, dialog, lease. */
export function finishScriptKeys(keys: GateKeys): StoreKey[] {
  return [keys.seen, keys.dialog, keys.lease];
}

/** Arguments of {@link gateScript}. */
export type GateArgs = [
  limit: boolean,
  ...RateLimitArgs,
  /** Who takes the chat's lease; `""` takes none (a single instance handles every chat). */
  leaseToken: string,
  leaseMs: number,
  stateTtlMs: number,
  dataTtlMs: number,
];

/** What the gate decided. */
export type GateVerdict =
  | { kind: "duplicate" }
  /** Another instance handles an update of this chat; ask again after `waitMs`. */
  | { kind: "busy"; waitMs: number }
  | Exclude<Verdict, { kind: "pass" }>
  | {
    kind: "pass";
    /** The dialog record as stored, renewed if it was alive; absent when none. */
    dialog?: DialogRecord;
    /** The cached profile as stored; absent when not cached or not read. */
    profile?: Json;
    /** Whether the profile key was read (a private chat). */
    profileRead: boolean;
    /** The time the script ran at, in ms since epoch. */
    at: number;
  };

/**
 * A dialog renewed less than this long ago is not rewritten: a user typing fast costs no write,
 * and the TTLs are at most this much (or a tenth of the TTL) short.
 */
export const RENEW_STEP_MS = 60_000;

const DIALOG_LUA = `
  local function touch_dialog(key, raw, now, state_ttl, data_ttl)
    if not raw then return nil end
    local d = cjson.decode(raw)
    if d.s == cjson.null or d.sAt <= now then return raw end
    local step = math.min(${RENEW_STEP_MS}, math.floor(math.min(state_ttl, data_ttl) / 10))
    if d.sAt >= now + state_ttl - step and (d.dAt <= now or d.dAt >= now + data_ttl - step) then
      return raw
    end
    d.sAt = now + state_ttl
    if d.dAt > now then d.dAt = now + data_ttl end
    local encoded = cjson.encode(d)
    redis.call('SET', key, encoded, 'PX',
      string.format('%d', math.max(state_ttl, data_ttl) + ${EXPIRED_DIALOG_MEMORY_MS}))
    return encoded
  end
`;

/** Renews a live dialog record's TTLs unless renewed recently (the TS twin of `touch_dialog`). */
function touchDialog(
  current: Json,
  nowMs: number,
  stateTtlMs: number,
  dataTtlMs: number,
): { record: DialogRecord | null; write: ScriptWrite } {
  const record = current as DialogRecord | null;
  if (record === null) return { record: null, write: undefined };
  if (record.s === null || record.sAt <= nowMs) return { record, write: undefined };
  const step = Math.min(RENEW_STEP_MS, Math.floor(Math.min(stateTtlMs, dataTtlMs) / 10));
  if (
    record.sAt >= nowMs + stateTtlMs - step &&
    (record.dAt <= nowMs || record.dAt >= nowMs + dataTtlMs - step)
  ) {
    return { record, write: undefined };
  }
  const renewed: DialogRecord = {
    ...record,
    sAt: nowMs + stateTtlMs,
    dAt: record.dAt > nowMs ? nowMs + dataTtlMs : record.dAt,
  };
  return {
    record: renewed,
    write: {
      value: renewed as unknown as Json,
      ttlMs: Math.max(stateTtlMs, dataTtlMs) + EXPIRED_DIALOG_MEMORY_MS,
    },
  };
}

/**
 * Dedup, lease, token bucket and dialog load, atomically. Keys:
 * `[seen, bucket, dialog, lease]` plus `profile` in a private chat (see {@link gateKeys}).
 */
export const gateScript: AtomicScript<GateArgs, GateVerdict & Record<string, Json>> = {
  name: "gate",
  lua: `${BUCKET_LUA}${DIALOG_LUA}
    local now = tonumber(ARGV[1])
    -- Every key read in one call (false for a missing one): each redis.call has a cost of its
    -- own, more than reading a key nobody needs (the bucket of an exempt admin, say).
    local seen, bucket, stored_dialog, holder, profile = unpack(redis.call('MGET', unpack(KEYS)))
    if seen then return cjson.encode({kind = 'duplicate'}) end
    local token = ARGV[7]
    local lease_ms = tonumber(ARGV[8])
    if lease_ms > 0 and holder and holder ~= token then
      return cjson.encode({kind = 'busy', waitMs = math.max(1, redis.call('PTTL', KEYS[4]))})
    end
    if ARGV[2] == 'true' then
      local verdict = consume_bucket(KEYS[2], bucket, now, tonumber(ARGV[3]), tonumber(ARGV[4]),
        tonumber(ARGV[5]), tonumber(ARGV[6]))
      if verdict.kind ~= 'pass' then return cjson.encode(verdict) end
    end
    if lease_ms > 0 then redis.call('SET', KEYS[4], token, 'PX', string.format('%d', lease_ms)) end
    -- The stored dialog and profile are JSON already: spliced in as they are, not encoded again.
    -- The time (whole ms) with %d: %.0f took glibc's floating-point path, several times slower.
    local answer = '{"kind":"pass","at":' .. string.format('%d', now) .. ',"profileRead":' ..
      (KEYS[5] and 'true' or 'false')
    local dialog = touch_dialog(KEYS[3], stored_dialog, now, tonumber(ARGV[9]), tonumber(ARGV[10]))
    if dialog then answer = answer .. ',"dialog":' .. dialog end
    if profile then answer = answer .. ',"profile":' .. profile end
    return answer .. '}'`,
  apply(
    current,
    args,
    nowMs,
  ): { writes: ScriptWrite[]; result: GateVerdict & Record<string, Json> } {
    const [seen, bucket, dialog, lease, profile] = current;
    const [limit, capacity, windowMs, banAfter, banMs, token, leaseMs, stateTtlMs, dataTtlMs] =
      args;
    if (seen !== null && seen !== undefined) return { writes: [], result: { kind: "duplicate" } };
    // The stores keep the token JSON-encoded: Lua compares the encoded argument.
    const encodedToken = JSON.stringify(token);
    if (
      leaseMs > 0 && lease !== null && lease !== undefined && JSON.stringify(lease) !== encodedToken
    ) {
      // Deno KV reports no TTL to scripts; the caller polls with its own backoff.
      return { writes: [], result: { kind: "busy", waitMs: 1 } };
    }
    const writes: ScriptWrite[] = [undefined, undefined, undefined, undefined];
    if (limit) {
      const { write, verdict } = applyBucket(bucket, [capacity, windowMs, banAfter, banMs], nowMs);
      writes[1] = write;
      if (verdict.kind !== "pass") {
        return { writes, result: verdict as GateVerdict & Record<string, Json> };
      }
    }
    if (leaseMs > 0) writes[3] = { value: token, ttlMs: leaseMs };
    const touched = touchDialog(dialog ?? null, nowMs, stateTtlMs, dataTtlMs);
    writes[2] = touched.write;
    const result: GateVerdict & Record<string, Json> = {
      kind: "pass",
      at: nowMs,
      profileRead: current.length > 4,
    };
    if (touched.record !== null) result.dialog = touched.record;
    if (profile !== null && profile !== undefined) result.profile = profile;
    return { writes, result };
  },
};

/** The dialog write of {@link finishScript}: the new record if the stored one is `expect`. */
export type DialogWrite = {
  /** The version the update loaded (0 when there was no record). */
  expect: number;
  /** The record to store, its version `expect + 1`. */
  record: DialogRecord;
  /** The record's TTL in milliseconds. */
  ttlMs: number;
};

/** Arguments of {@link finishScript}. */
export type FinishArgs = [leaseToken: string, write: DialogWrite | null];

/** What {@link finishScript} did with the dialog write. */
export type FinishResult =
  | { written: boolean }
  /** Not written: the record's version is no longer `expect`. */
  | { written: false; conflict: "version"; version: number }
  /** Not written: the lease expired and another instance holds the chat now. */
  | { written: false; conflict: "lease" };

/**
 * Commit of one update, atomically. Keys: `[seen, dialog, lease]` (see {@link gateKeys}).
 * The write is fenced: it lands only while the lease is ours or free (nobody took over after it
 * expired) and the record's version is still the one loaded.
 */
export const finishScript: AtomicScript<FinishArgs, FinishResult & Record<string, Json>> = {
  name: "finish",
  lua: `
    local token = ARGV[2]
    local holder = redis.call('GET', KEYS[3])
    -- Most updates leave the dialog as it was: no write to decode, a constant answer.
    local result = '{"written":false}'
    if ARGV[3] ~= 'null' then
      local write = cjson.decode(ARGV[3])
      local raw = redis.call('GET', KEYS[2])
      local version = raw and cjson.decode(raw).v or 0
      if token ~= '""' and holder and holder ~= token then
        result = cjson.encode({written = false, conflict = 'lease'})
      elseif version ~= write.expect then
        result = cjson.encode({written = false, conflict = 'version', version = version})
      else
        redis.call('SET', KEYS[2], cjson.encode(write.record), 'PX',
          string.format('%d', write.ttlMs))
        result = '{"written":true}'
      end
    end
    redis.call('SET', KEYS[1], '1', 'PX', '${SEEN_TTL_MS}')
    if holder and holder == token then redis.call('DEL', KEYS[3]) end
    return result`,
  apply([_seen, dialog, lease], [token, write]): {
    writes: ScriptWrite[];
    result: FinishResult & Record<string, Json>;
  } {
    const encodedToken = JSON.stringify(token);
    const holder = lease === null || lease === undefined ? null : JSON.stringify(lease);
    const writes: ScriptWrite[] = [{ value: 1, ttlMs: SEEN_TTL_MS }, undefined, undefined];
    if (holder !== null && holder === encodedToken) writes[2] = null;
    if (write === null) return { writes, result: { written: false } };
    const version = (dialog as DialogRecord | null)?.v ?? 0;
    if (token !== "" && holder !== null && holder !== encodedToken) {
      return { writes, result: { written: false, conflict: "lease" } };
    }
    if (version !== write.expect) {
      return { writes, result: { written: false, conflict: "version", version } };
    }
    writes[1] = { value: write.record as unknown as Json, ttlMs: write.ttlMs };
    return { writes, result: { written: true } };
  },
};

/** Arguments of {@link renewLeaseScript}. */
export type RenewArgs = [leaseToken: string, leaseMs: number];

/** Extends the chat's lease while a long update runs; `held` false when it was lost. Keys: `[lease]`. */
export const renewLeaseScript: AtomicScript<RenewArgs, { held: boolean }> = {
  name: "renew-lease",
  lua: `
    if redis.call('GET', KEYS[1]) == ARGV[2] then
      redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
      return cjson.encode({held = true})
    end
    return cjson.encode({held = false})`,
  apply([lease], [token, leaseMs]) {
    if (lease === null || lease === undefined || lease !== token) {
      return { writes: [], result: { held: false } };
    }
    return { writes: [{ value: token, ttlMs: leaseMs }], result: { held: true } };
  },
};
