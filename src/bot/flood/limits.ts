/**
 * The outbound flood limits' maths, as pure functions of (state, now, rules): every limit is a
 * sliding log, "at most `count` messages in any window of `windowMs`", which is how Telegram
 * counts (about 30 a second per bot, 20 a minute per group) and what a test can check by
 * looking at send times. The stores run the same rules atomically (`script.ts`); these
 * functions are the reference they are tested against.
 */

/** One limit: at most `count` messages in any window of `windowMs`. */
export interface WindowLimit {
  count: number;
  windowMs: number;
}

/** The limits of one bot, resolved. */
export interface FloodLimits {
  /** Every message of the bot. */
  global: WindowLimit;
  /** One private chat: a short burst, then about one a second. */
  privateChat: WindowLimit;
  /** One group, supergroup or channel. */
  group: WindowLimit;
  /** Of `global.count`, how many bulk messages must leave to the replies to users. */
  reserve: number;
  /** The pace of bulk messages (broadcasts), whatever else is sent. */
  bulk: WindowLimit;
  /**
   * How much later than it was taken a reply's turn taken ahead is recorded, which is how long
   * it stays usable (`FloodControl.prefetch`); 0 takes no turn ahead.
   */
  aheadMs: number;
}

/**
 * Added to every window: a send and its arrival at Telegram are apart by a few milliseconds of
 * network and scheduling, which must not put one message too many into Telegram's window.
 */
export const JITTER_GUARD_MS = 50;

/**
 * How long a reply's turn taken ahead (`FloodControl.prefetch`, with the update's gate) stays
 * usable. Such a turn is recorded this much later than it was taken, and a reply that comes
 * later takes a turn of its own: the log never holds a send earlier than it really went, and
 * the windows stay as they are (see {@link admitTakes}). A reply that used it counts in the logs
 * up to this much longer than needed, which would cost 50 / 1100 (4.5 %) of the replies a
 * second if every reply at the bot-wide limit went on such a turn. They do not: at the limit
 * most turns taken ahead are refused (the replies already waiting take the room first), and
 * `bench/flood_bench.ts` measures 28.5 replies a second with and without them (32 and 40 asked
 * for a second; 30 in 1.05 s is 28.6).
 */
export const PREFETCH_VALID_MS = 50;

/** Telegram's documented limits with the guard, and bulk messages at `bulkPerSecond`. */
export function floodLimits(bulkPerSecond: number): FloodLimits {
  const reserve = 5;
  const global = { count: 30, windowMs: 1000 + JITTER_GUARD_MS };
  const bulkRate = Math.max(1, Math.min(bulkPerSecond, global.count - reserve));
  return {
    global,
    // Three at once (a reply and its follow-ups), then one a second, as Telegram tolerates.
    privateChat: { count: 3, windowMs: 3000 + JITTER_GUARD_MS },
    group: { count: 20, windowMs: 60_000 + JITTER_GUARD_MS },
    reserve,
    // Evenly spaced: one per 1/rate s, so that no second ever holds more than the rate.
    bulk: { count: 1, windowMs: Math.ceil((1000 + JITTER_GUARD_MS) / bulkRate) },
    aheadMs: PREFETCH_VALID_MS,
  };
}

/** One sliding log as stored: send times (ms, oldest first) and the end of a pause (0: none). */
export interface FloodLog {
  t: number[];
  p: number;
}

/** How one log is checked: at most `limit` sends in the window, keeping `keep` times. */
export interface LogRule {
  /** Sends this caller may find in the window and still go (less than `keep` for bulk). */
  limit: number;
  /** How many send times the log keeps: the limit's count. */
  keep: number;
  windowMs: number;
}

/** What {@link admit} decided. */
export interface Admission {
  /** 0: send now (the logs were updated); otherwise ask again after this many ms. */
  waitMs: number;
  /** The logs to store when admitted, with how long each must be kept; null when waiting. */
  writes: { log: FloodLog; ttlMs: number }[] | null;
}

/**
 * Whether one message may go at `now` under every rule (each with its own log): it may when
 * no log is paused and each has fewer than its `limit` sends in its window. Admitted, each
 * log gets `now` appended; otherwise the answer is how long until the last obstacle is gone.
 * ({@link admitTakes} with this one message.)
 */
export function admit(
  logs: readonly (FloodLog | null)[],
  rules: readonly LogRule[],
  now: number,
): Admission {
  const take = rules.map((rule, i): Need => [i, rule.limit, rule.keep, rule.windowMs]);
  const { waits: [waitMs], writes } = admitTakes(rules.map((_, i) => logs[i] ?? null), [take], now);
  if (waitMs! > 0) return { waitMs: waitMs!, writes: null };
  return { waitMs: 0, writes: writes.map((write) => write!) };
}

/** One log's rule in a take: `[key index, limit, keep, windowMs]` (see `script.ts`). */
type Need = readonly [keyIndex: number, limit: number, keep: number, windowMs: number];

/**
 * Several messages' takes over shared logs, decided in order as {@link admit} would decide each
 * alone on the logs the earlier ones left: per take 0 (admitted) or how long to wait, and per
 * log the write it needs (undefined: untouched). The reference of the take script's Lua.
 *
 * `ahead[n]`: take n records its send that much after `now` (a reply's turn taken ahead, which
 * may go up to that much later, see {@link PREFETCH_VALID_MS}). The limits stay exact with such sends in the
 * logs: every take counts every send after `now - windowMs`, later ones included, so whoever
 * is admitted last among the messages of any of Telegram's windows counted all the others (a
 * send recorded no earlier than it went is counted at least as long as it should be).
 *
 * `back[n]` (above 0): take n first removes one send recorded at that time from each of its
 * logs (a reply's stale turn taken ahead, given back in the call that takes its own turn); the
 * log is written even if the take is then refused.
 */
export function admitTakes(
  logs: readonly (FloodLog | null)[],
  takes: readonly (readonly Need[])[],
  now: number,
  ahead: readonly number[] = [],
  back: readonly number[] = [],
): { waits: number[]; writes: ({ log: FloodLog; ttlMs: number } | undefined)[] } {
  const loaded = new Map<number, { times: number[]; pause: number }>();
  const touched = new Map<number, { keep: number; windowMs: number }>();
  const load = (i: number, windowMs: number) => {
    let log = loaded.get(i);
    if (log === undefined) {
      const stored = logs[i] ?? null;
      const times = stored === null ? [] : stored.t.filter((at) => at > now - windowMs);
      // Sorted: instances' clocks differ a little, so a shared log is not always in order.
      log = { times: times.sort((a, b) => a - b), pause: stored?.p ?? 0 };
      loaded.set(i, log);
    }
    return log;
  };
  const waits = takes.map((take, n) => {
    const given = back[n] ?? 0;
    if (given > 0) {
      for (const [i, , keep, windowMs] of take) {
        const { times } = load(i, windowMs);
        const index = times.lastIndexOf(given);
        if (index < 0) continue;
        times.splice(index, 1);
        touched.set(i, { keep, windowMs });
      }
    }
    let wait = 0;
    for (const [i, limit, , windowMs] of take) {
      const { times, pause } = load(i, windowMs);
      if (pause > now) wait = Math.max(wait, pause - now);
      const room = Math.max(1, limit);
      if (times.length >= room) wait = Math.max(wait, times[times.length - room]! + windowMs - now);
    }
    if (wait > 0) return Math.ceil(wait);
    const at = now + (ahead[n] ?? 0);
    for (const [i, , keep, windowMs] of take) {
      const { times } = loaded.get(i)!;
      times.push(at);
      if (times.length > 1 && times[times.length - 2]! > at) times.sort((a, b) => a - b);
      touched.set(i, { keep, windowMs });
    }
    return 0;
  });
  const writes = logs.map((_, i) => {
    const rule = touched.get(i);
    if (rule === undefined) return undefined;
    const { times: all, pause } = loaded.get(i)!;
    // Only a give-back writes a paused log (a paused log admits no take): the pause stays.
    const p = pause > now ? pause : 0;
    const times = all.slice(-rule.keep);
    return { log: { t: times, p }, ttlMs: Math.max(p - now, logTtl(times, now, rule.windowMs)) };
  });
  return { waits, writes };
}

/**
 * `log` paused until `until` (a later pause already there is kept), and how long to keep it:
 * while paused, and for its window, in which its send times still count.
 */
export function pauseLog(
  log: FloodLog | null,
  until: number,
  now: number,
  windowMs: number,
): { log: FloodLog; ttlMs: number } {
  const p = Math.max(log?.p ?? 0, until);
  const t = log?.t ?? [];
  return { log: { t, p }, ttlMs: Math.max(p - now, logTtl(t, now, windowMs)) };
}

/** How long a log must be kept: until its newest send (one recorded ahead, too) leaves the window. */
export function logTtl(times: readonly number[], now: number, windowMs: number): number {
  const newest = times.length === 0 ? now : Math.max(now, ...times);
  return Math.max(1, Math.ceil(newest - now + windowMs));
}

/** A stored value read leniently: a log without send times (`{}` from Lua) has none. */
export function toFloodLog(value: unknown): FloodLog | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { t, p } = value as Partial<FloodLog>;
  return {
    t: Array.isArray(t) ? t.filter((at): at is number => typeof at === "number") : [],
    p: typeof p === "number" ? p : 0,
  };
}
