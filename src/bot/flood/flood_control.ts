/**
 * Outbound flood control: every message the bot posts (replies, relays, notifications,
 * broadcasts) waits here until Telegram's limits allow it, in logs that all instances share
 * through the store (`script.ts`: one script call per message, or one for all the messages
 * asking at the same time, `take_batch.ts`), so that N instances together stay under the
 * limits. A reply to a private chat usually goes on a turn taken with the update's gate
 * (`turns_ahead.ts`). Replies to users go first: bulk messages (broadcasts) leave a reserve of
 * the bot-wide limit to them and keep their own pace. A 429 from Telegram pauses the whole bot
 * (a private chat: Telegram's per-bot limit is the likely cause) or the group for
 * `retry_after`, for every instance.
 *
 * A store that no other instance shares (the embedded Deno KV) is not asked at all: the one
 * instance keeps the logs in memory, exactly and without a write per message. While a shared
 * store is unreachable, each instance does the same: the limits then hold per instance, and
 * the bot keeps talking.
 */
import type { Transformer } from "grammy";
import { errorMessage } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import type { BackgroundMetrics } from "../../metrics/background.ts";
import type { KeyValueStore, StoreKey } from "../../store/store.ts";
import { delay } from "../../util/delay.ts";
import { retryAfterSeconds } from "../api_retry.ts";
import {
  admit,
  type FloodLimits,
  type FloodLog,
  type LogRule,
  pauseLog,
  type WindowLimit,
} from "./limits.ts";
import { floodKeys, pauseScript } from "./script.ts";
import { TakeBatch } from "./take_batch.ts";
import { TurnsAhead } from "./turns_ahead.ts";

/** Who is waiting for a message: a user (a reply) or nobody in particular (a broadcast). */
export type Priority = "interactive" | "bulk";

/** The methods that post messages: what Telegram's flood limits count. */
export const LIMITED_METHODS: ReadonlySet<string> = new Set([
  "sendMessage",
  "sendPhoto",
  "sendAudio",
  "sendDocument",
  "sendVideo",
  "sendAnimation",
  "sendVoice",
  "sendVideoNote",
  "sendMediaGroup",
  "sendLocation",
  "sendVenue",
  "sendContact",
  "sendPoll",
  "sendDice",
  "sendSticker",
  "sendInvoice",
  "sendPaidMedia",
  "copyMessage",
  "copyMessages",
  "forwardMessage",
  "forwardMessages",
]);

/** Options of {@link FloodControl}. */
export interface FloodControlOptions {
  /** Where the logs live; shared by every instance. */
  store: KeyValueStore;
  limits: FloodLimits;
  metrics: Pick<
    BackgroundMetrics,
    | "outboundMessages"
    | "outboundWaits"
    | "outboundWaitSeconds"
    | "outboundTurnsAhead"
    | "outbound429"
    | "floodFallback"
  >;
  log: Logger;
  /** The clock of the in-memory fallback. @default Date.now */
  now?: () => number;
  /** Waits between tries. @default abortable setTimeout */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * The rules of a message by its priority, to a private chat `[0]` or a group `[1]`, one per key
 * of its plan (the bot's log, the chat's, and for bulk the broadcast pace). Never changed.
 */
function rulesOf(limits: FloodLimits): Record<Priority, [LogRule[], LogRule[]]> {
  const { global, bulk } = limits;
  const rules = (priority: Priority, perChat: WindowLimit): LogRule[] => [
    {
      limit: priority === "bulk" ? global.count - limits.reserve : global.count,
      keep: global.count,
      windowMs: global.windowMs,
    },
    { limit: perChat.count, keep: perChat.count, windowMs: perChat.windowMs },
    ...(priority === "bulk"
      ? [{ limit: bulk.count, keep: bulk.count, windowMs: bulk.windowMs }]
      : []),
  ];
  return {
    interactive: [rules("interactive", limits.privateChat), rules("interactive", limits.group)],
    bulk: [rules("bulk", limits.privateChat), rules("bulk", limits.group)],
  };
}

/** The labels of the outbound metrics by priority, made once. */
const PRIORITY_LABELS = {
  interactive: { priority: "interactive" },
  bulk: { priority: "bulk" },
} as const;

/** After the store failed, how long the fallback decides alone before the store is tried again. */
const STORE_RETRY_MS = 1000;
/** Most logs the fallback keeps; the oldest are forgotten first. */
const LOCAL_LIMIT = 10_000;
/** The shared limiter; see the module documentation. */
export class FloodControl {
  readonly #o: FloodControlOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #local = new Map<string, FloodLog>();
  readonly #takes: TakeBatch;
  readonly #ahead: TurnsAhead;
  readonly #rules: Record<Priority, [LogRule[], LogRule[]]>;
  #storeDownUntil = 0;

  constructor(options: FloodControlOptions) {
    this.#o = options;
    this.#rules = rulesOf(options.limits);
    this.#takes = new TakeBatch(options.store);
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? delay;
    this.#ahead = new TurnsAhead({
      store: options.store,
      takes: this.#takes,
      limits: options.limits,
      metrics: options.metrics,
      now: this.#now,
      storeUp: () => this.#now() >= this.#storeDownUntil,
      storeFailed: (error) => this.#storeFailed(error),
      plan: (chat) => this.#plan(chat, "interactive"),
    });
  }

  /**
   * A grammY API transformer that makes each message-posting call wait for its turn. Install it
   * before the retry transformer, so that it sits next to the network: every attempt waits, and
   * every 429 is seen. An admitted bulk message is sent without the caller's signal: a stop
   * cancels waits, never a send whose fate would then be unknown.
   */
  transformer(priority: Priority): Transformer {
    return async (prev, method, payload, signal) => {
      const chat = (payload as { chat_id?: unknown } | undefined)?.chat_id;
      if (!LIMITED_METHODS.has(method) || (typeof chat !== "number" && typeof chat !== "string")) {
        return await prev(method, payload, signal);
      }
      await this.acquire(chat, priority, signal as unknown as AbortSignal | undefined);
      const result = await prev(method, payload, priority === "bulk" ? undefined : signal);
      const retryAfter = result.ok ? null : retryAfterSeconds(result);
      if (retryAfter !== null) await this.pause(chat, retryAfter);
      return result;
    };
  }

  /**
   * Takes the turn of a reply to the private chat `chat` ahead, with the update's gate (see
   * `turns_ahead.ts`): the next reply there goes on it without a round trip of its own.
   */
  prefetch(chat: number): void {
    this.#ahead.take(chat);
  }

  /**
   * Gives back the turn taken ahead for `chat` if no reply used it (the update is done): the
   * logs then count only what was sent. Call it in the same tick as the update's commit, so
   * that both travel to the store together.
   */
  forgo(chat: number): void {
    this.#ahead.done(chat);
  }

  /** Waits until a message to `chat` may go and records it; rejects only when `signal` aborts. */
  async acquire(chat: number | string, priority: Priority, signal?: AbortSignal): Promise<void> {
    // The send time of a stale turn taken ahead, given back by the first take.
    let back = 0;
    if (priority === "interactive" && typeof chat === "number") {
      const ahead = await this.#ahead.use(chat);
      if (ahead === true) {
        this.#o.metrics.outboundMessages.inc(PRIORITY_LABELS[priority]);
        return;
      }
      back = ahead;
    }
    const { rules, keys } = this.#plan(chat, priority);
    const started = performance.now();
    let waited = false;
    for (;;) {
      const waitMs = await this.#take(keys, rules, back);
      back = 0;
      if (waitMs <= 0) break;
      waited = true;
      await this.#sleep(waitMs, signal);
    }
    const { metrics } = this.#o;
    const labels = PRIORITY_LABELS[priority];
    metrics.outboundMessages.inc(labels);
    if (waited) {
      metrics.outboundWaits.inc(labels);
      metrics.outboundWaitSeconds.observe(labels, (performance.now() - started) / 1000);
    }
  }

  /**
   * Records Telegram's 429 for a message to `chat`: a group waits alone (its per-minute limit
   * is the likely cause), anything else pauses the whole bot. Never rejects.
   */
  async pause(chat: number | string, retryAfterSeconds: number): Promise<void> {
    const { limits, metrics } = this.#o;
    const group = typeof chat === "string" || chat < 0;
    const keys = floodKeys(chat);
    const [key, windowMs] = group
      ? [keys.chat, limits.group.windowMs]
      : [keys.global, limits.global.windowMs];
    metrics.outbound429.inc({ scope: group ? "chat" : "bot" });
    const pauseMs = Math.max(1, retryAfterSeconds) * 1000;
    this.#o.log.warning("Telegram asked to wait {retry_after} s: {scope} paused", {
      retry_after: retryAfterSeconds,
      scope: group ? `chat ${chat}` : "the bot",
    });
    this.#pauseLocal(key, pauseMs, windowMs);
    if (!this.#o.store.shared || this.#now() < this.#storeDownUntil) return;
    try {
      await this.#o.store.run(pauseScript, [key], [pauseMs, windowMs]);
    } catch (error) {
      this.#storeFailed(error);
    }
  }

  #plan(chat: number | string, priority: Priority): { rules: LogRule[]; keys: StoreKey[] } {
    const keys = floodKeys(chat);
    const rules = this.#rules[priority][typeof chat === "number" && chat > 0 ? 0 : 1];
    if (priority === "interactive") return { rules, keys: [keys.global, keys.chat] };
    return { rules, keys: [keys.global, keys.chat, keys.bulk] };
  }

  /**
   * One try: the shared store's answer, else (unshared, or down) the logs in memory; `back`: a
   * send time to give back from the store's logs first (see `TurnsAhead.use`).
   */
  async #take(keys: StoreKey[], rules: LogRule[], back = 0): Promise<number> {
    if (!this.#o.store.shared) return this.#takeLocal(keys, rules);
    if (this.#now() >= this.#storeDownUntil) {
      try {
        const { waitMs } = await this.#takes.take(keys, rules, 0, back);
        if (this.#storeDownUntil !== 0) {
          this.#storeDownUntil = 0;
          this.#o.log.info("flood control is shared through the store again");
        }
        return waitMs;
      } catch (error) {
        this.#storeFailed(error);
      }
    }
    this.#o.metrics.floodFallback.inc();
    return this.#takeLocal(keys, rules);
  }

  #storeFailed(error: unknown): void {
    if (this.#storeDownUntil === 0) {
      this.#o.log.warning("flood control runs per instance while the store is unreachable", {
        error: errorMessage(error),
      });
    }
    this.#storeDownUntil = this.#now() + STORE_RETRY_MS;
  }

  #takeLocal(keys: StoreKey[], rules: LogRule[]): number {
    const now = this.#now();
    const names = keys.map((key) => key.join("\u0000"));
    const { waitMs, writes } = admit(
      names.map((name) => this.#local.get(name) ?? null),
      rules,
      now,
    );
    for (const [i, write] of (writes ?? []).entries()) this.#remember(names[i]!, write.log);
    return waitMs;
  }

  #pauseLocal(key: StoreKey, pauseMs: number, windowMs: number): void {
    const name = key.join("\u0000");
    const now = this.#now();
    this.#remember(name, pauseLog(this.#local.get(name) ?? null, now + pauseMs, now, windowMs).log);
  }

  #remember(name: string, log: FloodLog): void {
    // Re-inserted, so that the first entry is always the one used longest ago.
    this.#local.delete(name);
    this.#local.set(name, log);
    if (this.#local.size > LOCAL_LIMIT) this.#local.delete(this.#local.keys().next().value!);
  }
}
