/**
 * {@link KeyValueStore} on Redis (through the small RESP client of `resp.ts`), for running
 * several instances against one Redis. Keys are spelled by `keys.ts`; atomic scripts run as Lua
 * via EVALSHA, the calls made while one is on its way sent together as one (`script_batch.ts`).
 */

import { errorMessage, StoreUnavailableError } from "../errors.ts";
import { logger } from "../log.ts";
import { backoffDelay } from "../util/backoff.ts";
import { fromRedisKey, namespacePattern, toRedisKey } from "./keys.ts";
import { NAMESPACES } from "./namespaces.ts";
import { type Arg, RedisReplyError, type Reply, RespClient } from "./resp.ts";
import { type BatchSender, CALL_FAILED, encodeArg, ScriptBatcher } from "./script_batch.ts";
import { configValue, durabilityNotes, parseInfo } from "./redis_durability.ts";
import type {
  AtomicScript,
  DurabilityNote,
  Json,
  KeyValueStore,
  SetOptions,
  StoreEntry,
  StoreKey,
} from "./store.ts";

/** Options of {@link openRedisStore}. */
export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL, credentials included. */
  url: string;
  /** Prepended to every key, so that several programs can share one Redis. */
  keyPrefix: string;
  /** How long the first connection may take before giving up. @default 5000 */
  connectTimeoutMs?: number;
}

const RECONNECT_BACKOFF = { baseMs: 100, maxMs: 2_000 };
/** What {@link RedisStore.ping} writes. */
const PROBE_KEY: StoreKey = [NAMESPACES.probe, "health"];
const LOG_INTERVAL_MS = 10_000;
// Redis' answers to a wrong or missing password.
const CREDENTIALS_REFUSED = /WRONGPASS|NOAUTH|invalid password|invalid username-password/i;
// Error replies that say "try again later" rather than "your script is wrong".
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|OOM)\b/;

/**
 * Connects to Redis; rejects with {@link StoreUnavailableError} when no connection could be
 * made within `connectTimeoutMs`. Once connected, the client reconnects on its own forever.
 */
export async function openRedisStore(options: RedisStoreOptions): Promise<RedisStore> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const log = logger("store");
  const shouldLog = throttle(LOG_INTERVAL_MS);
  let everReady = false;
  const deadline = performance.now() + connectTimeoutMs;
  let client: RespClient;
  try {
    client = await RespClient.connect({
      url: options.url,
      connectTimeoutMs,
      // Every command the store sends answers at once: a reply that takes this long will not
      // come (a hung Redis, a connection cut off without a reset); callers fall back instead.
      replyTimeoutMs: connectTimeoutMs,
      reconnect(retries, cause, wasReady) {
        if (wasReady) return backoffDelay(retries, RECONNECT_BACKOFF);
        // A refused password stays refused: say so at once instead of at the deadline.
        if (CREDENTIALS_REFUSED.test(cause.message)) return cause;
        const left = deadline - performance.now();
        if (left <= 0) return cause;
        return Math.min(left, backoffDelay(retries, RECONNECT_BACKOFF));
      },
      onError(error) {
        if (!shouldLog(error.message)) return;
        const message = everReady
          ? "redis connection lost: {error}"
          : "redis connect failed: {error}";
        log.warn(message, { error: error.message });
      },
      onReady() {
        if (everReady) log.info("redis connection restored");
        everReady = true;
      },
    });
  } catch (error) {
    const message = errorMessage(error);
    if (CREDENTIALS_REFUSED.test(message)) {
      throw new StoreUnavailableError(
        `Redis at ${describeUrl(options.url)} refused the credentials ` +
          `(${message.replace(/\.$/, "")}): check the password in REDIS_URL`,
        { cause: error, permanent: true },
      );
    }
    throw new StoreUnavailableError(
      `Redis is unreachable at ${describeUrl(options.url)}: ${message}`,
      { cause: error },
    );
  }
  return new RedisStore(client, options.keyPrefix);
}

/** The Redis {@link KeyValueStore}; create it with {@link openRedisStore}. */
export class RedisStore implements KeyValueStore {
  readonly backend = "redis" as const;
  readonly shared = true;
  readonly #client: RespClient;
  readonly #prefix: string;
  readonly #shas = new Map<string, Promise<string>>();
  readonly #batcher = new ScriptBatcher(this.#sender());
  /** The key {@link ping} writes, spelled once. */
  readonly #probeKey: string;
  #closing: Promise<void> | null = null;

  /** Wraps a connected client; use {@link openRedisStore}. */
  constructor(client: RespClient, keyPrefix: string) {
    this.#client = client;
    this.#prefix = keyPrefix;
    this.#probeKey = this.#key(PROBE_KEY);
  }

  async get(key: StoreKey): Promise<Json> {
    return decode(await this.#call("GET", ["GET", this.#key(key)]));
  }

  async getMany(keys: readonly StoreKey[]): Promise<Json[]> {
    if (keys.length === 0) return [];
    const replies = await this.#call("MGET", ["MGET", ...keys.map((k) => this.#key(k))]);
    return (replies as Reply[]).map(decode);
  }

  async set(key: StoreKey, value: Json, options: SetOptions = {}): Promise<void> {
    const ttlMs = options.ttlMs ?? null;
    const command = ["SET", this.#key(key), JSON.stringify(value)];
    if (ttlMs !== null) command.push("PX", String(Math.max(1, Math.ceil(ttlMs))));
    await this.#call("SET", command);
  }

  async delete(key: StoreKey): Promise<void> {
    await this.#call("DEL", ["DEL", this.#key(key)]);
  }

  async *scan(namespace: string): AsyncIterable<StoreEntry> {
    const MATCH = namespacePattern(this.#prefix, namespace);
    let cursor = "0";
    do {
      const page = await this.#call("SCAN", ["SCAN", cursor, "MATCH", MATCH, "COUNT", "500"]);
      const [next, found] = page as [string, string[]];
      cursor = next;
      if (found.length === 0) continue;
      // Sent in one tick, so they travel pipelined: one write, one round trip.
      const pairs = found.map((key) => [
        this.#call("SCAN", ["GET", key]),
        this.#call("SCAN", ["PTTL", key]),
      ]);
      const replies = await Promise.all(pairs.flat());
      for (const [i, redisKey] of found.entries()) {
        const value = replies[2 * i];
        const pttl = Number(replies[2 * i + 1]);
        const key = fromRedisKey(this.#prefix, redisKey);
        // Deleted or expired between SCAN and GET.
        if (key === null || value === null || value === undefined || pttl === -2) continue;
        yield { key, value: decode(value), ttlMs: pttl < 0 ? null : pttl };
      }
    } while (cursor !== "0");
  }

  run<Args extends Json[], Result extends Json>(
    script: AtomicScript<Args, Result>,
    keys: readonly StoreKey[],
    args: Args,
  ): Promise<Result> {
    if (this.#closing) {
      return Promise.reject(new StoreUnavailableError("the Redis store is closed"));
    }
    const encoded = [String(Date.now())];
    for (const arg of args) encoded.push(encodeArg(arg));
    return new Promise<Result>((resolve, reject) => {
      this.#batcher.add({
        script: script as unknown as AtomicScript<Json[], Json>,
        keys: keys.map((key) => this.#key(key)),
        args: encoded,
        resolve(reply) {
          if (reply.startsWith(CALL_FAILED)) {
            reject(scriptError(script.name, new RedisReplyError(reply.slice(CALL_FAILED.length))));
            return;
          }
          try {
            resolve(JSON.parse(reply) as Result);
          } catch (error) {
            reject(error);
          }
        },
        reject,
      });
    });
  }

  /** How the batcher reaches Redis: one script as it is, or a composed batch. */
  #sender(): BatchSender {
    return {
      single: async ({ script, keys, args }) => {
        const reply = await this.#eval(script.name, script.lua, keys, args);
        if (typeof reply !== "string") {
          throw new Error(
            `script ${script.name} returned ${typeof reply} instead of cjson.encode(...)`,
          );
        }
        return reply;
      },
      many: (lua, batch, calls) =>
        this.#eval(
          `batch of ${[...new Set(calls.map((call) => call.script.name))].join(", ")}`,
          lua,
          [],
          [ENCODER.encode(batch)],
        ),
    };
  }

  /** EVALSHA, or EVAL when Redis no longer has the script (a restart, SCRIPT FLUSH). */
  async #eval(name: string, lua: string, keys: string[], args: Arg[]): Promise<unknown> {
    const sha = await this.#sha(lua);
    const rest = [String(keys.length), ...keys, ...args];
    try {
      return await this.#call(null, ["EVALSHA", sha, ...rest]);
    } catch (error) {
      if (!(error instanceof RedisReplyError && error.message.startsWith("NOSCRIPT"))) {
        throw scriptError(name, error);
      }
      try {
        return await this.#call(null, ["EVAL", lua, ...rest]);
      } catch (error) {
        throw scriptError(name, error);
      }
    }
  }

  /**
   * A small write rather than a PING: a full Redis (`maxmemory` with `noeviction`) still answers
   * PING and reads, but refuses every write the gate and the commit make, and the health check,
   * the store alert and `doctor` should say so.
   */
  async ping(): Promise<number> {
    const started = performance.now();
    await this.#call("a write", ["SET", this.#probeKey, "1", "PX", "10000"]);
    return performance.now() - started;
  }

  /** What Redis does with the bot's keys when full and when it restarts (`redis_durability.ts`). */
  async durability(): Promise<DurabilityNote[]> {
    const [persistence, memory, fsync, save] = await Promise.all([
      this.#call("INFO", ["INFO", "persistence"]),
      this.#call("INFO", ["INFO", "memory"]),
      // Managed services often refuse CONFIG: the schedule is then unknown.
      this.#call("CONFIG GET", ["CONFIG", "GET", "appendfsync"]).then(configValue, () => null),
      this.#call("CONFIG GET", ["CONFIG", "GET", "save"]).then(configValue, () => null),
    ]);
    const info = new Map([...parseInfo(String(persistence)), ...parseInfo(String(memory))]);
    return durabilityNotes({
      maxmemoryBytes: Number(info.get("maxmemory") ?? 0) || 0,
      policy: info.get("maxmemory_policy") ?? "noeviction",
      aof: info.get("aof_enabled") === "1",
      fsync,
      save,
    });
  }

  close(): Promise<void> {
    // Lets commands in flight finish, and stops reconnecting.
    this.#closing ??= this.#client.close();
    return this.#closing;
  }

  #key(key: StoreKey): string {
    return toRedisKey(this.#prefix, key);
  }

  #sha(lua: string): Promise<string> {
    let sha = this.#shas.get(lua);
    if (!sha) {
      sha = crypto.subtle.digest("SHA-1", ENCODER.encode(lua)).then((digest) =>
        Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("")
      );
      this.#shas.set(lua, sha);
    }
    return sha;
  }

  /**
   * Runs one client call, turning connection failures into StoreUnavailableError. With
   * `command` null, error replies pass through untouched for the caller to judge.
   */
  async #call(command: string | null, args: readonly Arg[]): Promise<Reply> {
    if (this.#closing) throw new StoreUnavailableError("the Redis store is closed");
    try {
      return await this.#client.send(args);
    } catch (error) {
      if (error instanceof RedisReplyError) {
        if (command === null) throw error;
        throw new StoreUnavailableError(`Redis refused ${command}: ${error.message}`, {
          cause: error,
        });
      }
      throw new StoreUnavailableError(`Redis is unreachable: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }
}

function scriptError(name: string, error: unknown): unknown {
  if (!(error instanceof RedisReplyError)) return error;
  if (TRANSIENT_REPLY.test(error.message)) {
    return new StoreUnavailableError(`Redis refused script ${name}: ${error.message}`, {
      cause: error,
    });
  }
  return new Error(`script ${name} failed: ${error.message}`, { cause: error });
}

const ENCODER = new TextEncoder();

function decode(reply: unknown): Json {
  return reply === null || reply === undefined ? null : JSON.parse(String(reply)) as Json;
}

/** Host and port only: the URL may carry a password. */
function describeUrl(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "the configured URL";
  }
}

/** A predicate that says yes to a message at most once per `intervalMs`. */
function throttle(intervalMs: number): (message: string) => boolean {
  const last = new Map<string, number>();
  return (message) => {
    const now = performance.now();
    const previous = last.get(message);
    if (previous !== undefined && now - previous < intervalMs) return false;
    // Distinct messages are few (one per error kind), but never let the map grow unbounded.
    if (last.size > 100) last.clear();
    last.set(message, now);
    return true;
  };
}
