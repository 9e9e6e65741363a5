/**
 * {@link KeyValueStore} on Deno KV (SQLite in `DATA_DIR`), the embedded default for a single
 * instance. Needs `--unstable-kv`. Atomic scripts run their `apply` function inside a
 * versionstamp-checked `kv.atomic()`.
 */

import { StoreUnavailableError } from "../errors.ts";
import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";
import { keyParts } from "./keys.ts";
import type {
  AtomicScript,
  Json,
  KeyValueStore,
  SetOptions,
  StoreEntry,
  StoreKey,
} from "./store.ts";

/** What one KV entry holds: the value and its expiry (epoch ms), since KV expiry lags. */
interface Stored {
  v: Json;
  e: number | null;
}

const MAX_ATTEMPTS = 100;
// Deno KV reads at most 10 keys per getMany.
const GET_MANY_LIMIT = 10;
const PING_KEY: Deno.KvKey = ["_ping"];

/** Opens (creating if needed) the Deno KV database at `path`. */
export async function openKvStore(path: string): Promise<KvStore> {
  try {
    return new KvStore(await Deno.openKv(path));
  } catch (error) {
    throw new StoreUnavailableError(`cannot open Deno KV at ${path}: ${String(error)}`, {
      cause: error,
    });
  }
}

/** The Deno KV {@link KeyValueStore}; create it with {@link openKvStore}. */
export class KvStore implements KeyValueStore {
  readonly backend = "kv" as const;
  readonly shared = false;
  readonly #kv: Deno.Kv;
  // Scripts on one entity run one after the other within this process, so that concurrent
  // callers do not spin on failed checks; the checks still guard against other processes.
  readonly #queues = new Map<string, Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | null = null;

  /** Wraps an open database; use {@link openKvStore}. */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  async get(key: StoreKey): Promise<Json> {
    const entry = await this.#call("get", () => this.#kv.get<Stored>(keyParts(key)));
    return live(entry, Date.now())?.v ?? null;
  }

  async getMany(keys: readonly StoreKey[]): Promise<Json[]> {
    const entries = await this.#call("getMany", () => this.#getMany(keys));
    const now = Date.now();
    return entries.map((entry) => live(entry, now)?.v ?? null);
  }

  async set(key: StoreKey, value: Json, options: SetOptions = {}): Promise<void> {
    const now = Date.now();
    const stored = toStored(value, options.ttlMs ?? null, now);
    await this.#call("set", () => this.#kv.set(keyParts(key), stored, expiry(stored, now)));
  }

  async delete(key: StoreKey): Promise<void> {
    await this.#call("delete", () => this.#kv.delete(keyParts(key)));
  }

  async *scan(namespace: string): AsyncIterable<StoreEntry> {
    this.#assertOpen();
    for await (const entry of this.#kv.list<Stored>({ prefix: [namespace] }, { batchSize: 500 })) {
      const now = Date.now();
      const stored = live(entry, now);
      if (!stored) continue;
      const [ns, entity, ...rest] = entry.key.map(String);
      yield {
        key: [ns!, entity!, ...rest],
        value: stored.v,
        ttlMs: stored.e === null ? null : stored.e - now,
      };
    }
  }

  async run<Args extends Json[], Result extends Json>(
    script: AtomicScript<Args, Result>,
    keys: readonly StoreKey[],
    args: Args,
  ): Promise<Result> {
    this.#assertOpen();
    // A script's keys all belong to one entity (see KeyValueStore.run).
    const entity = keys[0] === undefined ? "" : keyParts(keys[0])[1];
    return await this.#serialize(entity, () => this.#runOnce(script, keys, args));
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.#call("ping", () => this.#kv.get(PING_KEY));
    return performance.now() - started;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= Promise.resolve().then(() => this.#kv.close());
    return this.#closing;
  }

  async #runOnce<Args extends Json[], Result extends Json>(
    script: AtomicScript<Args, Result>,
    keys: readonly StoreKey[],
    args: Args,
  ): Promise<Result> {
    const kvKeys = keys.map(keyParts);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entries = await this.#call("run", () => this.#getMany(keys));
      const now = Date.now();
      const current = entries.map((entry) => live(entry, now)?.v ?? null);
      const { writes, result } = script.apply(current, args, now);
      const atomic = this.#kv.atomic();
      for (const entry of entries) atomic.check(entry);
      for (const [i, write] of writes.entries()) {
        const key = kvKeys[i];
        if (write === undefined || key === undefined) continue;
        if (write === null) atomic.delete(key);
        else {
          const stored = toStored(write.value, write.ttlMs, now);
          atomic.set(key, stored, expiry(stored, now));
        }
      }
      if (await this.#call("run", () => commit(atomic))) return result;
      // Another handle wrote one of the keys; back off a little so that we don't collide again.
      await delay(backoffDelay(attempt, { baseMs: 2, maxMs: 50 }));
    }
    throw new StoreUnavailableError(
      `script ${script.name} lost ${MAX_ATTEMPTS} races for its keys in Deno KV`,
    );
  }

  async #getMany(keys: readonly StoreKey[]): Promise<Deno.KvEntryMaybe<Stored>[]> {
    const result: Deno.KvEntryMaybe<Stored>[] = [];
    for (let i = 0; i < keys.length; i += GET_MANY_LIMIT) {
      const chunk = keys.slice(i, i + GET_MANY_LIMIT).map(keyParts);
      result.push(...await this.#kv.getMany<Stored[]>(chunk));
    }
    return result;
  }

  #serialize<T>(queue: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(queue) ?? Promise.resolve();
    const current = previous.then(fn, fn);
    const tail = current.then(() => {}, () => {});
    this.#queues.set(queue, tail);
    tail.then(() => {
      if (this.#queues.get(queue) === tail) this.#queues.delete(queue);
    });
    return current;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError("the Deno KV store is closed");
  }

  /** Runs one KV operation on the open store, turning its failures into StoreUnavailableError. */
  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    this.#assertOpen();
    try {
      return await fn();
    } catch (error) {
      throw new StoreUnavailableError(`Deno KV ${operation} failed: ${String(error)}`, {
        cause: error,
      });
    }
  }
}

/** Commits `atomic`; false when a check failed or another handle held the write lock. */
async function commit(atomic: Deno.AtomicOperation): Promise<boolean> {
  try {
    return (await atomic.commit()).ok;
  } catch (error) {
    // SQLite's lock, held by another handle on the same file, is as good as a lost race.
    if (error instanceof Error && /database is locked/i.test(error.message)) return false;
    throw error;
  }
}

/** The stored value, or null when missing or past its expiry. */
function live(entry: Deno.KvEntryMaybe<Stored>, now: number): Stored | null {
  const stored = entry.value;
  if (stored === null || (stored.e !== null && stored.e <= now)) return null;
  return stored;
}

/** KV's own expiry, only so that expired entries are eventually removed from disk. */
function expiry(stored: Stored, now: number): { expireIn: number } | undefined {
  return stored.e === null ? undefined : { expireIn: Math.max(1, stored.e - now) };
}

function toStored(value: Json, ttlMs: number | null, now: number): Stored {
  return { v: value, e: ttlMs === null ? null : now + Math.max(1, Math.ceil(ttlMs)) };
}
