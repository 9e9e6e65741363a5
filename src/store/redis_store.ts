/**
 * {@link KeyValueStore} on Redis (node-redis), for running several instances against one
 * Redis. Keys are spelled by `keys.ts`; atomic scripts run as Lua via EVALSHA, the calls made
 * while one is on its way sent together as one (`script_batch.ts`).
 */

import { Buffer } from "node:buffer";
import { createClient, ErrorReply, type RedisClientType } from "redis";
import { errorMessage, StoreUnavailableError } from "../errors.ts";
import { type Logger, logger } from "../log.ts";
import { backoffDelay } from "../util/backoff.ts";
import { fromRedisKey, namespacePattern, toRedisKey } from "./keys.ts";
import { type BatchSender, CALL_FAILED, ScriptBatcher } from "./script_batch.ts";
import type {
  AtomicScript,
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

type Client = RedisClientType;

const RECONNECT_BACKOFF = { baseMs: 100, maxMs: 2_000 };
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
  const deadline = performance.now() + connectTimeoutMs;
  let everReady = false;
  const client = createClient({
    url: options.url,
    // Without this, commands issued while disconnected wait for the reconnect: callers
    // would hang instead of failing over to their degraded path.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: connectTimeoutMs,
      reconnectStrategy(retries, cause) {
        if (everReady) return backoffDelay(retries, RECONNECT_BACKOFF);
        // A refused password stays refused: say so at once instead of at the deadline.
        if (cause instanceof Error && CREDENTIALS_REFUSED.test(cause.message)) return cause;
        // node-redis retries the first connect forever too; returning an Error ends it.
        const left = deadline - performance.now();
        if (left <= 0) return cause instanceof Error ? cause : new Error(String(cause));
        return Math.min(left, backoffDelay(retries, RECONNECT_BACKOFF));
      },
    },
  });
  // An EventEmitter 'error' without a listener would crash the process.
  client.on("error", (error: unknown) => {
    if (!shouldLog(String(error))) return;
    const message = everReady ? "redis connection lost: {error}" : "redis connect failed: {error}";
    log.warn(message, { error: String(error) });
  });
  client.on("ready", () => {
    if (everReady) log.info("redis connection restored");
    everReady = true;
  });
  try {
    await client.connect();
  } catch (error) {
    // Stops any retry still scheduled, so nothing outlives the failed open.
    client.destroy();
    const message = errorMessage(error);
    if (CREDENTIALS_REFUSED.test(message)) {
      throw new StoreUnavailableError(
        `Redis at ${describeUrl(options.url)} refused the credentials: ${message}: check ` +
          `the password in REDIS_URL`,
        { cause: error, permanent: true },
      );
    }
    throw new StoreUnavailableError(
      `Redis is unreachable at ${describeUrl(options.url)}: ${message}`,
      { cause: error },
    );
  }
  return new RedisStore(client, options.keyPrefix, log);
}

/** The Redis {@link KeyValueStore}; create it with {@link openRedisStore}. */
export class RedisStore implements KeyValueStore {
  readonly backend = "redis" as const;
  readonly shared = true;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #shas = new Map<string, Promise<string>>();
  readonly #batcher = new ScriptBatcher(this.#sender());
  #closing: Promise<void> | null = null;

  /** Wraps a connected client; use {@link openRedisStore}. */
  constructor(client: Client, keyPrefix: string, log: Logger) {
    this.#client = client;
    this.#prefix = keyPrefix;
    this.#log = log;
  }

  async get(key: StoreKey): Promise<Json> {
    const reply = await this.#call("GET", () => this.#client.get(this.#key(key)));
    return decode(reply);
  }

  async getMany(keys: readonly StoreKey[]): Promise<Json[]> {
    if (keys.length === 0) return [];
    const replies = await this.#call(
      "MGET",
      () => this.#client.mGet(keys.map((k) => this.#key(k))),
    );
    return replies.map(decode);
  }

  async set(key: StoreKey, value: Json, options: SetOptions = {}): Promise<void> {
    const ttlMs = options.ttlMs ?? null;
    const expiration = ttlMs === null
      ? undefined
      : { expiration: { type: "PX" as const, value: Math.max(1, Math.ceil(ttlMs)) } };
    await this.#call(
      "SET",
      () => this.#client.set(this.#key(key), JSON.stringify(value), expiration),
    );
  }

  async delete(key: StoreKey): Promise<void> {
    await this.#call("DEL", () => this.#client.del(this.#key(key)));
  }

  async *scan(namespace: string): AsyncIterable<StoreEntry> {
    const MATCH = namespacePattern(this.#prefix, namespace);
    let cursor = "0";
    do {
      const page = await this.#call("SCAN", () => this.#client.scan(cursor, { MATCH, COUNT: 500 }));
      cursor = String(page.cursor);
      const keys = page.keys.map(String);
      if (keys.length === 0) continue;
      const replies = await this.#call("SCAN", () => {
        // Pipelines skip node-redis' offline check and would wait for the next reconnect try.
        if (!this.#client.isReady) throw new Error("The client is offline");
        const batch = this.#client.multi();
        for (const key of keys) batch.get(key).pTTL(key);
        return batch.execAsPipeline();
      });
      for (const [i, redisKey] of keys.entries()) {
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
    for (const arg of args) encoded.push(JSON.stringify(arg));
    return new Promise<Result>((resolve, reject) => {
      this.#batcher.add({
        script: script as unknown as AtomicScript<Json[], Json>,
        keys: keys.map((key) => this.#key(key)),
        args: encoded,
        resolve(reply) {
          if (reply.startsWith(CALL_FAILED)) {
            reject(scriptError(script.name, new ErrorReply(reply.slice(CALL_FAILED.length))));
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
        const reply = await this.#eval(script.name, script.lua, { keys, arguments: args });
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
          { keys: [], arguments: [utf8(batch)] },
        ),
    };
  }

  /** EVALSHA, or EVAL when Redis no longer has the script (a restart, SCRIPT FLUSH). */
  async #eval(
    name: string,
    lua: string,
    options: { keys: string[]; arguments: (string | Buffer)[] },
  ): Promise<unknown> {
    const sha = await this.#sha(lua);
    try {
      return await this.#call(null, () => this.#client.evalSha(sha, options));
    } catch (error) {
      if (!(error instanceof ErrorReply && error.message.startsWith("NOSCRIPT"))) {
        throw scriptError(name, error);
      }
      try {
        return await this.#call(null, () => this.#client.eval(lua, options));
      } catch (error) {
        throw scriptError(name, error);
      }
    }
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.#call("PING", () => this.#client.ping());
    return performance.now() - started;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const client = this.#client;
    if (client.isReady) {
      try {
        // Lets commands in flight finish; `quit` is the name before node-redis 5.
        await ("close" in client ? client.close() : (client as Client).quit());
        return;
      } catch (error) {
        this.#log.debug("redis close failed, destroying: {error}", { error: String(error) });
      }
    }
    // Not connected: drop the socket and stop reconnecting.
    client.destroy();
  }

  #key(key: StoreKey): string {
    return toRedisKey(this.#prefix, key);
  }

  #sha(lua: string): Promise<string> {
    let sha = this.#shas.get(lua);
    if (!sha) {
      sha = crypto.subtle.digest("SHA-1", new TextEncoder().encode(lua)).then((digest) =>
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
  async #call<T>(command: string | null, fn: () => Promise<T>): Promise<T> {
    if (this.#closing) throw new StoreUnavailableError("the Redis store is closed");
    try {
      return await fn();
    } catch (error) {
      if (error instanceof ErrorReply) {
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
  if (!(error instanceof ErrorReply)) return error;
  if (TRANSIENT_REPLY.test(error.message)) {
    return new StoreUnavailableError(`Redis refused script ${name}: ${error.message}`, {
      cause: error,
    });
  }
  return new Error(`script ${name} failed: ${error.message}`, { cause: error });
}

/**
 * A long argument as bytes: node-redis writes a string argument to the socket as a string, and
 * Deno's Node socket encodes strings to UTF-8 slowly (writing the batches as strings cost about
 * a tenth of the program's main thread under load); `TextEncoder` is native and fast.
 */
function utf8(text: string): Buffer {
  const bytes = ENCODER.encode(text);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
