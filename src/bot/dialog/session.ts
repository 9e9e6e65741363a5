/**
 * `ctx.dialog`: the sender's dialog state in this chat, as the gate loaded it, and the change a
 * feature asks for. Nothing is written here: the commit stage stores the change (only if there
 * is one) once the features are done, as a compare-and-set on the loaded version.
 */
import type { Json } from "../../store/store.ts";
import type { DialogRecord } from "./record.ts";

/** Thrown when a feature changes dialog state while the store is unreachable. */
export class DialogUnavailableError extends Error {
  constructor() {
    super("dialog state is unavailable: the store is unreachable");
    this.name = "DialogUnavailableError";
  }
}

/** What the gate loaded. */
export interface LoadedDialog {
  /** The stored version; 0 when nothing was stored. */
  version: number;
  /** The current state, or null outside any dialog. */
  state: string | null;
  /** The dialog's data, or null (none, or expired). */
  data: Json;
  /** The state that expired since the user's last update, if any. */
  expired: string | null;
}

/** What a user who never was in a dialog has. */
export const NO_DIALOG: Readonly<LoadedDialog> = {
  version: 0,
  state: null,
  data: null,
  expired: null,
};

/** Reads a stored record (as the gate loaded it) at time `nowMs` into what features see. */
export function readRecord(record: DialogRecord | undefined, nowMs: number): LoadedDialog {
  if (record === undefined) return NO_DIALOG;
  if (record.s === null) return { version: record.v, state: null, data: null, expired: null };
  if (record.sAt <= nowMs) return { version: record.v, state: null, data: null, expired: record.s };
  const data = record.d !== null && record.dAt > nowMs ? JSON.parse(record.d) as Json : null;
  return { version: record.v, state: record.s, data, expired: null };
}

/** The sender's dialog state for one update. */
export class DialogSession {
  readonly #loaded: LoadedDialog | null;
  #next: { state: string | null; data: Json } | null = null;

  /** `loaded` null: the store is unreachable, the state is unknown. */
  constructor(loaded: LoadedDialog | null) {
    this.#loaded = loaded;
  }

  /** Whether the state could be loaded; when false, reads see no dialog and changes throw. */
  get available(): boolean {
    return this.#loaded !== null;
  }

  /** The version the change will be compared against. */
  get version(): number {
    return this.#loaded?.version ?? 0;
  }

  /** The current state name (`dialog:step`), including this update's change. */
  get state(): string | null {
    return this.#next ? this.#next.state : this.#loaded?.state ?? null;
  }

  /** The current data, including this update's change. */
  get data(): Json {
    return this.#next ? this.#next.data : this.#loaded?.data ?? null;
  }

  /** The state that expired since the user's last update, or null. */
  get expired(): string | null {
    return this.#loaded?.expired ?? null;
  }

  /** Moves to `state` with `data`; `state` null leaves the dialog. */
  set(state: string | null, data: Json): void {
    if (this.#loaded === null) throw new DialogUnavailableError();
    this.#next = state === null ? { state: null, data: null } : { state, data };
  }

  /** Leaves any dialog. */
  clear(): void {
    this.set(null, null);
  }

  /**
   * The change to store, or null when the state is as loaded. Forgetting an expired state
   * counts as a change, so that the user is told about it once.
   */
  change(): { state: string | null; data: Json } | null {
    const loaded = this.#loaded;
    if (loaded === null) return null;
    if (this.#next === null) return loaded.expired === null ? null : { state: null, data: null };
    if (this.#next.state === loaded.state && sameJson(this.#next.data, loaded.data)) {
      return loaded.expired === null ? null : this.#next;
    }
    return this.#next;
  }
}

function sameJson(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
