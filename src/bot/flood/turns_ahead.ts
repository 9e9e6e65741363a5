/**
 * Replies' turns taken ahead: the gate asks for the turn of the reply to a message in a private
 * chat while it checks the update ({@link TurnsAhead.take}), so that the take travels to the
 * store with the gate's call and the reply makes no round trip of its own.
 *
 * The turn is recorded `limits.aheadMs` after the store's time, and the next reply to that chat
 * uses it if it goes no later than that (so the logs never hold a send earlier than it went, and
 * the limits stay exact; see `admitTakes`); a later reply gives it back in the call that takes
 * its own (one store call, as without a turn taken ahead, not a give-back and a take). A
 * turn no reply used is given back when the update is done ({@link TurnsAhead.done}, in the
 * same tick as its commit, so that both travel to the store together); until then it counts as
 * a message: one too many, never one too few. Only with a shared store that answers: elsewhere
 * a turn costs no round trip anyway.
 */
import type { BackgroundMetrics } from "../../metrics/background.ts";
import type { KeyValueStore, StoreKey } from "../../store/store.ts";
import type { FloodLimits, LogRule } from "./limits.ts";
import { releaseScript } from "./script.ts";
import type { TakeBatch, Turn } from "./take_batch.ts";

/** What {@link TurnsAhead} needs from the flood control. */
export interface TurnsAheadOptions {
  store: KeyValueStore;
  takes: TakeBatch;
  limits: FloodLimits;
  metrics: Pick<BackgroundMetrics, "outboundTurnsAhead">;
  now: () => number;
  /** Whether the store may be asked now (not while the flood control found it down). */
  storeUp: () => boolean;
  /** The store failed a call: the flood control falls back to its logs in memory. */
  storeFailed: (error: unknown) => void;
  /** The keys and rules of a reply to `chat`. */
  plan: (chat: number) => { rules: LogRule[]; keys: StoreKey[] };
}

/** A reply's turn taken ahead: when it was asked for, and the store's answer (null: failed). */
interface Taken {
  askedAt: number;
  keys: StoreKey[];
  rules: LogRule[];
  turn: Promise<Turn | null>;
}

/** The labels of `bot_outbound_turns_ahead_total`, made once. */
const TURN_USED = { result: "used" } as const;
const TURN_GIVEN_BACK = { result: "given_back" } as const;
const TURN_REFUSED = { result: "refused" } as const;
/** Turns kept before the stale ones are dropped (about one per update in flight). */
const TAKEN_LIMIT = 256;

/** The turns taken ahead of one instance; see the module documentation. */
export class TurnsAhead {
  readonly #o: TurnsAheadOptions;
  /** Turns taken ahead, by private chat; each used (or dropped) by the next reply there. */
  readonly #taken = new Map<number, Taken>();

  constructor(options: TurnsAheadOptions) {
    this.#o = options;
  }

  /** Takes the turn of a reply to the private chat `chat` (only with a shared store that answers). */
  take(chat: number): void {
    const { aheadMs } = this.#o.limits;
    if (aheadMs <= 0 || !this.#o.store.shared || !this.#o.storeUp()) return;
    const { rules, keys } = this.#o.plan(chat);
    const askedAt = this.#o.now();
    const turn = this.#o.takes.take(keys, rules, aheadMs).catch((error) => {
      this.#o.storeFailed(error);
      return null;
    });
    if (this.#taken.size >= TAKEN_LIMIT) this.#forgetOldest(askedAt);
    this.done(chat);
    this.#taken.set(chat, { askedAt, keys, rules, turn });
  }

  /**
   * `true` when a turn taken ahead for `chat` was granted and is still fresh: the reply may go
   * on it. Otherwise the reply takes its own turn, and the number is the send time that take
   * must give back first (`TakeBatch.take`'s `back`: a stale turn's, else 0), so that its own
   * finds the room.
   */
  async use(chat: number): Promise<true | number> {
    const taken = this.#taken.get(chat);
    if (taken === undefined) return 0;
    this.#taken.delete(chat);
    // Usually answered long ago (with the gate).
    const turn = await taken.turn;
    const { outboundTurnsAhead } = this.#o.metrics;
    if (turn === null || turn.waitMs > 0) {
      outboundTurnsAhead.inc(TURN_REFUSED);
      return 0;
    }
    // A send no later than the time the turn was recorded at may use it.
    const recorded = this.#recordedAt(turn);
    if (this.#o.now() <= recorded) {
      outboundTurnsAhead.inc(TURN_USED);
      return true;
    }
    outboundTurnsAhead.inc(TURN_GIVEN_BACK);
    return recorded;
  }

  /**
   * Gives back the turn taken ahead for `chat` if no reply used it (the update is done): the
   * logs then count only what was sent. Call it in the same tick as the update's commit, so
   * that both travel to the store together.
   */
  done(chat: number): void {
    const taken = this.#taken.get(chat);
    if (taken === undefined) return;
    this.#taken.delete(chat);
    // Answered by now unless the update was quick; given back in the tick it is.
    void taken.turn.then((turn) => {
      if (turn !== null && turn.waitMs <= 0) this.#release(taken, turn);
      else this.#o.metrics.outboundTurnsAhead.inc(TURN_REFUSED);
    });
  }

  /**
   * The send time a granted turn recorded in the logs: aheadMs after the store's time (this
   * process's clock is compared with it).
   */
  #recordedAt({ at }: Turn): number {
    return at + this.#o.limits.aheadMs;
  }

  /** Takes back the sends a turn taken ahead recorded. Never rejects. */
  #release({ keys, rules }: Taken, turn: Turn): void {
    this.#o.metrics.outboundTurnsAhead.inc(TURN_GIVEN_BACK);
    const windows = rules.map((rule) => rule.windowMs);
    this.#o.store.run(releaseScript, keys, [this.#recordedAt(turn), windows]).catch((error) =>
      this.#o.storeFailed(error)
    );
  }

  /** Gives back the turns no reply may use any more, and the oldest beyond the limit. */
  #forgetOldest(now: number): void {
    for (const [chat, taken] of this.#taken) {
      const stale = now - taken.askedAt > this.#o.limits.aheadMs;
      if (!stale && this.#taken.size < TAKEN_LIMIT) return;
      this.done(chat);
    }
  }
}
