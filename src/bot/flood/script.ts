/**
 * The flood limits of `limits.ts` as atomic store scripts, each written as Lua for Redis and as
 * TypeScript for Deno KV, so that every instance of the bot shares one set of logs:
 *
 * - {@link takeScript}, before outgoing messages: checks the bot-wide log, the chat's log and
 *   (for bulk messages) the broadcast pace, and records the send in all of them, or says how
 *   long to wait, for each of the messages that asked at the same time (`take_batch.ts`), in
 *   the order they asked. One script call for all of them.
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
import { admitTakes, type LogRule, logTtl, pauseLog, toFloodLog } from "./limits.ts";

/** The bot-wide log's key and the broadcast pace's, the same for every message: made once. */
const GLOBAL_KEY: StoreKey = [NAMESPACES.flood, "bot", "all"];
const BULK_KEY: StoreKey = [NAMESPACES.flood, "bot", "bulk"];

/** The keys of one message to `chat`: the bot's log, the chat's log and the broadcast pace. */
export function floodKeys(
  chat: number | string,
): { global: StoreKey; chat: StoreKey; bulk: StoreKey } {
  return { global: GLOBAL_KEY, chat: [NAMESPACES.flood, "bot", "chat", chat], bulk: BULK_KEY };
}

/**
 * One message's take: the logs it needs, each as `[key index (0-based, into the script's
 * keys), limit, keep, windowMs]` (see {@link LogRule}). One key always comes with one window.
 */
export type TakeSpec = [keyIndex: number, limit: number, keep: number, windowMs: number][];

/**
 * Arguments of {@link takeScript}: the takes of several messages, decided in order; per take
 * how much after the script's time it records its send (0, or `FloodLimits.aheadMs` for a
 * reply's turn taken ahead; see `admitTakes`); and, when any take has one, per take the send
 * time it gives back from its logs before it is decided (0: none), as {@link releaseScript}
 * would: a reply too late for its turn taken ahead returns it in the call that takes its own.
 */
export type TakeArgs =
  | [takes: TakeSpec[], aheadMs: number[]]
  | [takes: TakeSpec[], aheadMs: number[], back: number[]];

/**
 * What {@link takeScript} answers: per take, 0 when the message may go now, else the wait; and
 * the time it recorded the admitted sends at (what {@link releaseScript} takes back).
 */
export interface TakeAnswer {
  waits: number[];
  at: number;
  [key: string]: Json;
}

/** One message's take over `rules`, one per key in key order. */
export function takeSpec(rules: readonly LogRule[], keyIndexes?: readonly number[]): TakeSpec {
  return rules.map((rule, i) => [keyIndexes?.[i] ?? i, rule.limit, rule.keep, rule.windowMs]);
}

/** The arguments of a single take over `rules`, one per key in key order. */
export function takeArgs(rules: readonly LogRule[], aheadMs = 0): TakeArgs {
  return [[takeSpec(rules)], [aheadMs]];
}

/**
 * Checks and records the sends of several messages in turn, as if each took alone in that
 * order, reading and writing each log once: many messages sent at the same time (replies to
 * many chats) share the bot-wide log, whose decoding and encoding was most of a take's cost in
 * Redis. See the module documentation.
 */
export const takeScript: AtomicScript<TakeArgs, TakeAnswer> = {
  name: "flood_take",
  lua: `
    local now = tonumber(ARGV[1])
    local takes = cjson.decode(ARGV[2])
    local ahead = cjson.decode(ARGV[3])
    local back = ARGV[4] and cjson.decode(ARGV[4]) or {}
    -- list[from..to], comma-separated, each written with %d: cjson writes every number with
    -- %.14g, which for a time in ms takes glibc's multi-precision path, and writing the
    -- bot-wide log of 30 send times that way was a third of the script's cost in Redis.
    local formats = {}
    local function integers(list, from, to)
      local count = to - from + 1
      if count < 1 then return '' end
      local format = formats[count]
      if not format then
        format = string.rep('%d,', count - 1) .. '%d'
        formats[count] = format
      end
      return string.format(format, unpack(list, from, to))
    end
    -- Every log read in one call (each key is some message's): a redis.call per key cost more.
    local raws = redis.call('MGET', unpack(KEYS))
    local logs = {}
    local function load(i, window)
      if logs[i] then return logs[i] end
      local raw = raws[i]
      local stored = raw and cjson.decode(raw) or nil
      local log = {times = {}, pause = 0, dirty = false}
      if type(stored) == 'table' then
        if type(stored.t) == 'table' then
          local times, n, sorted, last = log.times, 0, true, -math.huge
          for _, at in ipairs(stored.t) do
            if type(at) == 'number' and at > now - window then
              n = n + 1
              times[n] = at
              if at < last then sorted = false end
              last = at
            end
          end
          if not sorted then table.sort(times) end
        end
        if type(stored.p) == 'number' then log.pause = stored.p end
      end
      logs[i] = log
      return log
    end
    local waits = {}
    for t, take in ipairs(takes) do
      local given = back[t]
      if given and given > 0 then
        for _, need in ipairs(take) do
          local log = load(need[1] + 1, need[4])
          local times = log.times
          for i = #times, 1, -1 do
            if times[i] == given then
              table.remove(times, i)
              log.keep, log.window, log.dirty = need[3], need[4], true
              break
            end
          end
        end
      end
      local wait = 0
      for _, need in ipairs(take) do
        local log = load(need[1] + 1, need[4])
        if log.pause > now then wait = math.max(wait, log.pause - now) end
        local times, limit = log.times, math.max(1, need[2])
        if #times >= limit then wait = math.max(wait, times[#times - limit + 1] + need[4] - now) end
      end
      waits[t] = math.ceil(wait)
      if wait <= 0 then
        local at = now + (ahead[t] or 0)
        for _, need in ipairs(take) do
          local log = logs[need[1] + 1]
          local times = log.times
          times[#times + 1] = at
          if #times > 1 and times[#times - 1] > at then table.sort(times) end
          log.keep, log.window, log.dirty = need[3], need[4], true
        end
      end
    end
    for i, log in pairs(logs) do
      if log.dirty then
        local times = log.times
        -- Kept until its newest send (one recorded ahead, too) leaves the window, and while
        -- paused (only a give-back writes a paused log: a paused log admits no take).
        local pause = log.pause > now and log.pause or 0
        local ttl = math.max(1, math.ceil(math.max(now, times[#times] or now) - now + log.window),
          pause - now)
        redis.call('SET', KEYS[i],
          '{"t":[' .. integers(times, math.max(1, #times - log.keep + 1), #times) .. '],"p":' ..
            (pause > 0 and string.format('%d', pause) or '0') .. '}',
          'PX', string.format('%d', ttl))
      end
    end
    return '{"waits":[' .. integers(waits, 1, #waits) .. '],"at":' .. string.format('%d', now) .. '}'`,
  apply(current, [takes, aheadMs, back], nowMs) {
    const { waits, writes } = admitTakes(current.map(toFloodLog), takes, nowMs, aheadMs, back);
    const scriptWrites: ScriptWrite[] = writes.map((write) =>
      write === undefined ? undefined : { value: write.log as unknown as Json, ttlMs: write.ttlMs }
    );
    return { writes: scriptWrites, result: { waits, at: nowMs } };
  },
};

/** Arguments of {@link releaseScript}: the send time to take back, and each log's window. */
export type ReleaseArgs = [at: number, windowsMs: number[]];

/**
 * Takes back one send recorded at `at` from each log at its keys (a reply's turn taken ahead
 * and not used, see `FloodControl.prefetch`): the logs then hold what was really sent. A log
 * without such a send is left alone. Keeps each log's TTL (the TypeScript twin, which cannot
 * read it, keeps the log for its window, or until its pause ends).
 */
export const releaseScript: AtomicScript<ReleaseArgs, { released: number }> = {
  name: "flood_release",
  lua: `
    local at = tonumber(ARGV[2])
    local released = 0
    for _, key in ipairs(KEYS) do
      local raw = redis.call('GET', key)
      local log = raw and cjson.decode(raw) or nil
      if type(log) == 'table' and type(log.t) == 'table' then
        for i, sent in ipairs(log.t) do
          if sent == at then
            table.remove(log.t, i)
            local ttl = redis.call('PTTL', key)
            if ttl > 0 then
              local times = #log.t > 0 and (string.rep('%d,', #log.t - 1) .. '%d') or ''
              redis.call('SET', key, '{"t":[' .. string.format(times, unpack(log.t)) ..
                '],"p":' .. string.format('%d', tonumber(log.p) or 0) .. '}', 'PX', ttl)
              released = released + 1
            end
            break
          end
        end
      end
    end
    return '{"released":' .. released .. '}'`,
  apply(current, [at, windowsMs], nowMs) {
    let released = 0;
    const writes: ScriptWrite[] = current.map((value, i) => {
      const log = toFloodLog(value ?? null);
      const index = log?.t.indexOf(at) ?? -1;
      if (log === null || index < 0) return undefined;
      released++;
      log.t.splice(index, 1);
      const ttlMs = Math.max(log.p - nowMs, logTtl(log.t, nowMs, windowsMs[i] ?? 1));
      return { value: log as unknown as Json, ttlMs };
    });
    return { writes, result: { released } };
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
    -- Kept while paused, and until its newest send (one recorded ahead, too) leaves the window.
    local newest = now
    for _, at in ipairs(t) do
      if type(at) == 'number' and at > newest then newest = at end
    end
    local ttl = math.max(1, p - now, newest - now + window)
    redis.call('SET', KEYS[1], cjson.encode({t = t, p = p}), 'PX', math.ceil(ttl))
    return cjson.encode(p)`,
  apply([current], [pauseMs, windowMs], nowMs) {
    const { log, ttlMs } = pauseLog(toFloodLog(current ?? null), nowMs + pauseMs, nowMs, windowMs);
    return { writes: [{ value: log as unknown as Json, ttlMs }], result: log.p };
  },
};
