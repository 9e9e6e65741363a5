/**
 * Cron slots: which scheduled time (slot) of a leader cron job ran last, and whether that round
 * ran to its end, kept in the store. With it a new leader does not repeat a slot the previous
 * one finished (a daily backup stays daily across a lease change), and an instance that starts
 * after a slot was missed (the program was down at 03:00) or cut off (killed mid-backup) runs
 * it at once instead of waiting for the next one.
 */
import { NAMESPACES } from "../store/namespaces.ts";
import type { Json, KeyValueStore, StoreKey } from "../store/store.ts";
import { nextCronTime, parseCron, previousCronTime } from "../util/cron.ts";

/** When a cron job runs next: at `at`, for the scheduled time `slot`. */
export interface SlotRun {
  at: number;
  slot: number;
}

/** A slot missed longer ago than this is not caught up: the next one comes soon enough. */
const CATCH_UP_MS = 7 * 86_400_000;

/** How the store remembers a job's last slot. */
interface SlotRecord {
  slot: number;
  /** False while its round runs, and when it was cut off. */
  done: boolean;
}

function isRecord(value: Json): value is SlotRecord & { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    typeof value.slot === "number" && typeof value.done === "boolean";
}

/** The slots of leader cron jobs in `store`; see the module documentation. */
export class CronSlots {
  readonly #store: KeyValueStore;

  constructor(store: KeyValueStore) {
    this.#store = store;
  }

  /**
   * The first run of job `name` on `cron` seen at `now`: the latest slot at once when it was
   * missed or cut off since the job last ran (only a job that ran before catches up), else the
   * next slot. A store that cannot be read means no catch-up.
   */
  async first(name: string, cron: string, now: number): Promise<SlotRun> {
    const spec = parseCron(cron);
    const next = nextCronTime(spec, now);
    const previous = previousCronTime(spec, now, CATCH_UP_MS);
    if (previous === null) return { at: next, slot: next };
    const record = await this.#store.get(this.#key(name)).catch(() => null);
    if (!isRecord(record)) return { at: next, slot: next };
    const missed = record.slot < previous || (record.slot === previous && !record.done);
    return missed ? { at: now, slot: previous } : { at: next, slot: next };
  }

  /** The run after the one for `slot`, seen at `now` (a round may have run past later slots). */
  after(cron: string, slot: number, now: number): SlotRun {
    const at = nextCronTime(parseCron(cron), Math.max(slot, now));
    return { at, slot: at };
  }

  /** Whether `slot` of job `name` already ran to its end (on this or another instance). */
  async done(name: string, slot: number): Promise<boolean> {
    const record = await this.#store.get(this.#key(name)).catch(() => null);
    return isRecord(record) && (record.slot > slot || (record.slot === slot && record.done));
  }

  /** Records that `slot` of job `name` started (`done` false) or ran to its end. */
  async mark(name: string, slot: number, done: boolean): Promise<void> {
    await this.#store.set(this.#key(name), { slot, done });
  }

  #key(name: string): StoreKey {
    return [NAMESPACES.job, name, "slot"];
  }
}
