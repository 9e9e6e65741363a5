/**
 * The flood limits of `limits.ts` as atomic store scripts, each written as Lua for Redis and as
 * TypeScript for Deno KV, so that every instance of the bot shares one set of logs:
 *
 * - {@link takeScript}, before each outgoing message: checks the bot-wide log, the chat's log
 *   and (for bulk messages) the broadcast pace, and records the send in all of them, or says
 *   how long to wait. One round trip per message.
 * - {@link pauseScript}, after Telegram answered 429: pauses a log (the bot's or the chat's)
 *   for `retry_after`, so that every instance waits it out.
 *
 * Keys: every flood key has the entity `bot` ({@link floodKeys}), so the bot-wide log and a
 * chat's log sit in one Redis Cluster slot and one script takes both in one round trip. That
 * puts all flood keys on one cluster node; every message touches the bot-wide log anyway, so
 * the node that holds it carries all of this traffic whichever way the keys were spread.
 */
import { NAMESPACES } from "../../store/namespaces.ts";
import type { AtomicScript, Json, ScriptWrite, StoreKey } from "../../store/store.ts";
import { admit, type LogRule, pauseLog, toFloodLog } from "./limits.ts";

/** The keys of one message to `chat`: the bot's log, the chat's log and the broadcast pace. */
export function floodKeys(
  chat: number | string,
): { global: StoreKey; chat: StoreKey; bulk: StoreKey } {
  return {
    global: [NAMESPACES.flood, "bot", "all"],
    chat: [NAMESPACES.flood, "bot", "chat", chat],
    bulk: [NAMESPACES.flood, "bot", "bulk"],
  };
}

/** Arguments of {@link takeScript}: one `[limit, keep, windowMs]` per key, in key order. */
export type TakeArgs = [rules: [number, number, number][]];

/** What {@link takeScript} answers: 0 when the message may go now. */
export interface TakeAnswer {
  waitMs: number;
  [key: string]: Json;
}

/** The rules as the script takes them. */
export function takeArgs(rules: readonly LogRule[]): TakeArgs {
  return [rules.map((rule) => [rule.limit, rule.keep, rule.windowMs])];
}

/** Checks and records one send in every log of its keys; see the module documentation. */
export const takeScript: AtomicScript<TakeArgs, TakeAnswer> = {
  name: "flood_take",
  lua: `
    local now = tonumber(ARGV[1])
    local rules = cjson.decode(ARGV[2])
    local wait = 0
    local logs = {}
    for i, rule in ipairs(rules) do
      local window = rule[3]
      local raw = redis.call('GET', KEYS[i])
      local log = raw and cjson.decode(raw) or nil
      local times = {}
      if type(log) == 'table' then
        if type(log.t) == 'table' then
          for _, at in ipairs(log.t) do
            if type(at) == 'number' and at > now - window then times[#times + 1] = at end
          end
        end
        if type(log.p) == 'number' and log.p > now then wait = math.max(wait, log.p - now) end
      end
      table.sort(times)
      logs[i] = times
      local limit = math.max(1, rule[1])
      if #times >= limit then
        wait = math.max(wait, times[#times - limit + 1] + window - now)
      end
    end
    if wait > 0 then return cjson.encode({waitMs = math.ceil(wait)}) end
    for i, rule in ipairs(rules) do
      local times = logs[i]
      times[#times + 1] = now
      local kept = {}
      for j = math.max(1, #times - rule[2] + 1), #times do kept[#kept + 1] = times[j] end
      redis.call('SET', KEYS[i], cjson.encode({t = kept, p = 0}), 'PX',
        math.max(1, math.ceil(rule[3])))
    end
    return cjson.encode({waitMs = 0})`,
  apply(current, [rules], nowMs) {
    const parsed: LogRule[] = rules.map(([limit, keep, windowMs]) => ({ limit, keep, windowMs }));
    const { waitMs, writes } = admit(current.map(toFloodLog), parsed, nowMs);
    const scriptWrites: ScriptWrite[] = writes === null
      ? []
      : writes.map(({ log, ttlMs }) => ({ value: log as unknown as Json, ttlMs }));
    return { writes: scriptWrites, result: { waitMs } };
  },
};

/** Arguments of {@link pauseScript}: how long to pause, and the log's window. */
export type PauseArgs = [pauseMs: number, windowMs: number];

/** Pauses the log at its key until `now + pauseMs`; answers when the pause ends. */
export const pauseScript: AtomicScript<PauseArgs, number> = {
  name: "flood_pause",
  lua: `
    local now = tonumber(ARGV[1])
    local pause = cjson.decode(ARGV[2])
    local window = cjson.decode(ARGV[3])
    local raw = redis.call('GET', KEYS[1])
    local log = raw and cjson.decode(raw) or nil
    local t = {}
    local p = 0
    if type(log) == 'table' then
      if type(log.t) == 'table' then t = log.t end
      if type(log.p) == 'number' then p = log.p end
    end
    p = math.max(p, now + pause)
    local ttl = math.max(1, p - now, window)
    redis.call('SET', KEYS[1], cjson.encode({t = t, p = p}), 'PX', math.ceil(ttl))
    return cjson.encode(p)`,
  apply([current], [pauseMs, windowMs], nowMs) {
    const { log, ttlMs } = pauseLog(toFloodLog(current ?? null), nowMs + pauseMs, nowMs, windowMs);
    return { writes: [{ value: log as unknown as Json, ttlMs }], result: log.p };
  },
};
