/**
 * The key-value store behind dialog state, the rate limiter, dedup, the user cache and leases.
 * Two implementations pass one contract suite (`tests/store/contract.ts`): Redis
 * (`redis_store.ts`, for several instances) and Deno KV in `DATA_DIR` (`kv_store.ts`, the
 * embedded default). Values are JSON.
 */

/**
 * A key: a namespace, the entity it belongs to, then any further parts. The entity becomes
 * the Redis hash tag, so every key of one entity (one chat, one user) lives in one Redis
 * Cluster slot and one script may touch them all.
 */
export type StoreKey = readonly [
  namespace: string,
  entity: string | number,
  ...rest: (string | number)[],
];

/** A JSON value as stored. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Options of {@link KeyValueStore.set}. */
export interface SetOptions {
  /** Time to live in milliseconds; omitted or `null` keeps the value until deleted. */
  ttlMs?: number | null;
}

/** One stored entry, as {@link KeyValueStore.scan} yields it. */
export interface StoreEntry {
  key: StoreKey;
  value: Json;
  /** Milliseconds left to live, or `null` for no expiry. */
  ttlMs: number | null;
}

/** What an atomic script asks to write to one of its keys. */
export type ScriptWrite =
  | { value: Json; ttlMs: number | null }
  /** Delete the key. */
  | null
  /** Leave the key as it is. */
  | undefined;

/**
 * An atomic read-modify-write over a few keys of one entity, written twice: as Lua for Redis
 * and as a pure function for Deno KV. Both receive the keys' current values (decoded JSON,
 * `null` when missing), the caller's arguments and the current time, and both must answer
 * the same; the contract suite runs each script against both stores.
 */
export interface AtomicScript<Args extends Json[], Result extends Json> {
  /** Name for logs and metrics. */
  name: string;
  /**
   * Lua source. `KEYS` are the full Redis keys; `ARGV[1]` is the current time in
   * milliseconds and `ARGV[2..]` the JSON-encoded arguments. The script returns its result
   * JSON-encoded (`cjson.encode`).
   */
  lua: string;
  /** The same logic for stores without Lua. Must be pure: it may run more than once. */
  apply(
    current: Json[],
    args: Args,
    nowMs: number,
  ): { writes: ScriptWrite[]; result: Result };
}

/** One finding of {@link KeyValueStore.durability}. */
export interface DurabilityNote {
  verdict: "ok" | "warn";
  text: string;
}

/** The store interface every feature uses. */
export interface KeyValueStore {
  /** `redis` or `kv`, for the start-up line and `/health` (never for decisions: see `shared`). */
  readonly backend: "redis" | "kv";
  /**
   * Whether other instances may use the same store at the same time (Redis), so that leases
   * are needed to share work; false for a store that belongs to this process (Deno KV).
   */
  readonly shared: boolean;
  /** The value at `key`, or `null` when missing or expired. */
  get(key: StoreKey): Promise<Json>;
  /** The values at `keys`, in one round trip. */
  getMany(keys: readonly StoreKey[]): Promise<Json[]>;
  /** Stores `value` at `key`, replacing what was there. */
  set(key: StoreKey, value: Json, options?: SetOptions): Promise<void>;
  /** Removes `key`; a missing key is not an error. */
  delete(key: StoreKey): Promise<void>;
  /** Every live entry in `namespace`, in no particular order. */
  scan(namespace: string): AsyncIterable<StoreEntry>;
  /** Runs `script` atomically over `keys` (all of one entity) in one round trip. */
  run<Args extends Json[], Result extends Json>(
    script: AtomicScript<Args, Result>,
    keys: readonly StoreKey[],
    args: Args,
  ): Promise<Result>;
  /**
   * Round trip time in milliseconds of a call that shows the store works (Redis: a small write,
   * which a full Redis refuses); rejects when unreachable or refusing.
   */
  ping(): Promise<number>;
  /**
   * How the store treats the bot's keys when full and across its own restart, where that can
   * be lost (Redis: eviction and persistence settings); absent for a store that keeps
   * everything it acknowledged (Deno KV, a file of its own). Rejects when unreachable.
   */
  durability?(): Promise<DurabilityNote[]>;
  /** Closes connections; further calls reject. Idempotent. */
  close(): Promise<void>;
}
