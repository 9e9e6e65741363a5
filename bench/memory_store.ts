/**
 * A {@link KeyValueStore} in a Map, for the in-process benchmarks: scripts run their TypeScript
 * twin (`apply`) at once, so that a benchmark times the pipeline's own work around the store and
 * none of a store's I/O. It says it is shared, so that the gate takes chat leases and the flood
 * control takes its turns through it, as with Redis. TTLs are not kept: nothing here lives long.
 *
 * @module
 */
import type {
  AtomicScript,
  Json,
  KeyValueStore,
  StoreEntry,
  StoreKey,
} from "../src/store/store.ts";

/** See the module documentation. */
export class MemoryStore implements KeyValueStore {
  readonly backend = "redis" as const;
  readonly shared = true;
  #values = new Map<string, Json>();
  #runs = 0;

  get(key: StoreKey): Promise<Json> {
    return Promise.resolve(this.#values.get(name(key)) ?? null);
  }

  getMany(keys: readonly StoreKey[]): Promise<Json[]> {
    return Promise.resolve(keys.map((key) => this.#values.get(name(key)) ?? null));
  }

  set(key: StoreKey, value: Json): Promise<void> {
    this.#values.set(name(key), value);
    return Promise.resolve();
  }

  delete(key: StoreKey): Promise<void> {
    this.#values.delete(name(key));
    return Promise.resolve();
  }

  async *scan(_namespace: string): AsyncIterable<StoreEntry> {}

  run<Args extends Json[], Result extends Json>(
    script: AtomicScript<Args, Result>,
    keys: readonly StoreKey[],
    args: Args,
  ): Promise<Result> {
    // Every update leaves a dedup marker: start afresh now and then, as TTLs would.
    if (++this.#runs % 10_000 === 0) this.#values = new Map();
    const names = keys.map(name);
    const current = names.map((n) => this.#values.get(n) ?? null);
    const { writes, result } = script.apply(current, args, Date.now());
    for (const [i, write] of writes.entries()) {
      if (write === null) this.#values.delete(names[i]!);
      else if (write !== undefined) this.#values.set(names[i]!, write.value);
    }
    // Redis answers JSON text, parsed by the caller: so does this.
    return Promise.resolve(JSON.parse(JSON.stringify(result)) as Result);
  }

  ping(): Promise<number> {
    return Promise.resolve(0);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function name(key: StoreKey): string {
  return key.join(":");
}
