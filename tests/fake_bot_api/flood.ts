/**
 * Telegram's documented flood limits as pure maths over the successful sends so far: about 30
 * messages a second overall, one a second to a private chat (a short burst is tolerated) and 20 a
 * minute to a group. The fake asks {@linkcode floodWait} before a send and records it with
 * {@linkcode recordSend} after, so only successful sends count, as with Telegram.
 *
 * @module
 */

/** The limits, in messages; see {@linkcode TELEGRAM_FLOOD_LIMITS}. */
export interface FloodLimits {
  /** Messages per second across all chats. @default 30 */
  globalPerSecond: number;
  /** Sustained messages per second to one private chat. @default 1 */
  privatePerSecond: number;
  /** Messages a private chat takes at once before the per-second rate bites. @default 3 */
  privateBurst: number;
  /** Messages per minute to one group, supergroup or channel. @default 20 */
  groupPerMinute: number;
}

/** The limits Telegram documents in its bot FAQ, with a burst of 3 for private chats. */
export const TELEGRAM_FLOOD_LIMITS: Readonly<FloodLimits> = {
  globalPerSecond: 30,
  privatePerSecond: 1,
  privateBurst: 3,
  groupPerMinute: 20,
};

/** What the limits remember: the last minute of sends and a token bucket per private chat. */
export interface FloodState {
  /** Successful sends of the last minute, oldest first; `at` in milliseconds. */
  readonly recent: ReadonlyArray<{ readonly chatId: number; readonly at: number }>;
  /** Tokens left per private chat, as of `at`. */
  readonly buckets: ReadonlyMap<number, { readonly tokens: number; readonly at: number }>;
}

/** The state before any send. */
export const NO_SENDS: FloodState = { recent: [], buckets: new Map() };

const MINUTE = 60_000;
const SECOND = 1_000;

/** Whole seconds to wait before a send to `chatId` at `now` is allowed; 0 when it is allowed now. */
export function floodWait(
  state: FloodState,
  chatId: number,
  now: number,
  limits: FloodLimits = TELEGRAM_FLOOD_LIMITS,
): number {
  let waitMs = 0;
  const lastSecond = state.recent.filter((s) => s.at > now - SECOND);
  if (lastSecond.length >= limits.globalPerSecond) {
    // The send that has to leave the window before there is room again.
    const oldest = lastSecond[lastSecond.length - limits.globalPerSecond];
    waitMs = Math.max(waitMs, (oldest?.at ?? now) + SECOND - now);
  }
  if (chatId > 0) {
    const tokens = bucketTokens(state, chatId, now, limits);
    if (tokens < 1) waitMs = Math.max(waitMs, ((1 - tokens) / limits.privatePerSecond) * SECOND);
  } else {
    const inChat = state.recent.filter((s) => s.chatId === chatId && s.at > now - MINUTE);
    if (inChat.length >= limits.groupPerMinute) {
      const oldest = inChat[inChat.length - limits.groupPerMinute];
      waitMs = Math.max(waitMs, (oldest?.at ?? now) + MINUTE - now);
    }
  }
  // Telegram never says "retry after 0": a refused send always waits at least a second.
  return waitMs <= 0 ? 0 : Math.max(1, Math.ceil(waitMs / SECOND));
}

/** The state after a successful send to `chatId` at `now`. */
export function recordSend(
  state: FloodState,
  chatId: number,
  now: number,
  limits: FloodLimits = TELEGRAM_FLOOD_LIMITS,
): FloodState {
  const recent = [...state.recent.filter((s) => s.at > now - MINUTE), { chatId, at: now }];
  if (chatId <= 0) return { recent, buckets: state.buckets };
  const buckets = new Map(state.buckets);
  buckets.set(chatId, { tokens: bucketTokens(state, chatId, now, limits) - 1, at: now });
  return { recent, buckets };
}

function bucketTokens(state: FloodState, chatId: number, now: number, limits: FloodLimits): number {
  const bucket = state.buckets.get(chatId);
  if (bucket === undefined) return limits.privateBurst;
  const refilled = bucket.tokens + ((now - bucket.at) / SECOND) * limits.privatePerSecond;
  return Math.min(limits.privateBurst, refilled);
}
