/**
 * The flood control's takes, sent to the store together: the messages that ask for their turn
 * while a take is on its way (replies to many chats at once, under load) go in the next call,
 * ONE run of the take script for all of them, in the order they asked. The script then reads
 * and writes the bot-wide log once for the lot instead of once per message, and the store gets
 * one call instead of many. A message that finds nothing on its way goes at once (in a
 * microtask, so that those asking in the same tick go together): no added wait at low load.
 *
 * Each message's answer is exactly what it would have got asking alone at that point, so the
 * limits hold as before, across instances too; if the call fails, every message in it gets the
 * error and falls back as before.
 */
import type { KeyValueStore, StoreKey } from "../../store/store.ts";
import type { LogRule } from "./limits.ts";
import { type TakeArgs, takeScript, type TakeSpec, takeSpec } from "./script.ts";

/** The store's answer to one message: 0 or how long to wait, and the time it recorded sends at. */
export interface Turn {
  waitMs: number;
  at: number;
}

/** One message waiting for the next call. */
interface Pending {
  keys: readonly StoreKey[];
  rules: readonly LogRule[];
  /** How much later than the store's time the send is recorded (see `admitTakes`). */
  aheadMs: number;
  /** The send time given back from the logs first (0: none; see `admitTakes`). */
  back: number;
  resolve(turn: Turn): void;
  reject(error: unknown): void;
}

/** Most messages decided in one call. */
const MAX_TAKES = 64;

/** Batches concurrent takes into one script call; see the module documentation. */
export class TakeBatch {
  readonly #store: KeyValueStore;
  #pending: Pending[] = [];
  #inFlight = false;
  #scheduled = false;

  constructor(store: KeyValueStore) {
    this.#store = store;
  }

  /**
   * The wait for one message over `keys` with `rules` (0: it may go now, and is recorded),
   * after giving back the send recorded at `back` (0: none) from the same logs.
   */
  take(
    keys: readonly StoreKey[],
    rules: readonly LogRule[],
    aheadMs = 0,
    back = 0,
  ): Promise<Turn> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ keys, rules, aheadMs, back, resolve, reject });
      if (this.#scheduled || this.#inFlight) return;
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#send();
      });
    });
  }

  #send(): void {
    if (this.#inFlight || this.#pending.length === 0) return;
    const batch = this.#pending.splice(0, MAX_TAKES);
    this.#inFlight = true;
    const { keys, takes } = merge(batch);
    const ahead = batch.map((take) => take.aheadMs);
    // The give-backs travel only when there is one: most calls have none.
    const args: TakeArgs = batch.some((take) => take.back > 0)
      ? [takes, ahead, batch.map((take) => take.back)]
      : [takes, ahead];
    this.#store.run(takeScript, keys, args)
      .then(({ waits, at }) => batch.forEach((take, i) => take.resolve({ waitMs: waits[i]!, at })))
      .catch((error) => batch.forEach((take) => take.reject(error)))
      .finally(() => {
        this.#inFlight = false;
        this.#send();
      });
  }
}

/** The distinct keys of `batch` and each take over them. */
function merge(batch: readonly Pending[]): { keys: StoreKey[]; takes: TakeSpec[] } {
  const keys: StoreKey[] = [];
  const index = new Map<string, number>();
  const takes = batch.map(({ keys: own, rules }) =>
    takeSpec(
      rules,
      own.map((key) => {
        const name = key.join("\u0000");
        let i = index.get(name);
        if (i === undefined) {
          i = keys.push(key) - 1;
          index.set(name, i);
        }
        return i;
      }),
    )
  );
  return { keys, takes };
}
