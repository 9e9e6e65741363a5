/**
 * Group commit of the Redis store's atomic scripts: while one script call is on its way to
 * Redis, the calls that arrive meanwhile (other updates' gates and commits, flood takes, lease
 * renewals) wait, and then go together as ONE `EVALSHA` of a script composed of theirs, which
 * runs each call in turn with its own keys and arguments and answers each its own result.
 *
 * Why: under load every update's gate, commit and flood take were a round trip of their own,
 * and each cost the client an encoded command, a promise, a socket write and a parsed reply,
 * and Redis a command dispatch. Batched, they cost that once per batch. Nothing waits for a
 * batch to fill: a call that finds nothing in flight goes at once (in a microtask, so that calls
 * made in the same tick travel together), so at low load this adds no latency.
 *
 * What stays the same for each call: it runs atomically (a whole batch does, so each of its
 * calls does), in the order the calls were made, with the clock it was made at, and it answers
 * or fails on its own (a script error fails only its call). A caller is answered only once the
 * batch has run in Redis: a process killed before that has had no answer, as before.
 *
 * The price: a batch's keys belong to different chats, so different Redis Cluster slots. Only a
 * single Redis (one connection, `resp.ts`) is supported; on a cluster a batch would be refused
 * with CROSSSLOT.
 */
import type { AtomicScript, Json } from "./store.ts";

/** One script call waiting for its batch. */
export interface ScriptCall {
  script: AtomicScript<Json[], Json>;
  /** The full Redis keys. */
  keys: string[];
  /** `ARGV`: the time first, then the JSON-encoded arguments. */
  args: string[];
  resolve(reply: string): void;
  reject(error: unknown): void;
}

/** The reply of a call whose script raised an error, inside a batch's answer (`\0failed:` in Lua). */
export const CALL_FAILED = "\u0000failed:";

/**
 * Lua running the calls of a batch; `scripts` are the distinct scripts it may call, in the order
 * the batch refers to them (1-based). The batch is ONE argument, `ARGV[1]`: a JSON array with,
 * per call, `[script, keys, arguments]` (the keys and arguments as strings). One string instead
 * of a Redis argument per key and value: each argument costs the client a length header and a
 * copy, and Redis an argument object of its own. JSON because `cjson.decode` builds every call's
 * `KEYS` and `ARGV` in C: splitting a separated list in Lua (`string.find` and `string.sub` per
 * field, `tonumber` per count) cost Redis twice as much, 3.2 µs a call against 1.7 µs in a batch
 * of 16 gates, and more than the scripts themselves ran.
 * The keys are not declared in `KEYS`: a batch spans chats, so Redis Cluster could not run it
 * anyway. Answers one string per call: the script's reply, or {@link CALL_FAILED} and the
 * error's message.
 */
export function batchLua(scripts: readonly AtomicScript<Json[], Json>[]): string {
  const functions = scripts.map((script, i) =>
    `scripts[${i + 1}] = function(KEYS, ARGV)\n${script.lua}\nend`
  );
  return `
local scripts = {}
${functions.join("\n")}
local calls = cjson.decode(ARGV[1])
local replies = {}
for call = 1, #calls do
  local each = calls[call]
  local ok, reply = pcall(scripts[each[1]], each[2], each[3])
  if not ok then
    local message = type(reply) == 'table' and reply.err or tostring(reply)
    reply = '\\0failed:' .. tostring(message)
  elseif type(reply) ~= 'string' then
    reply = '\\0failed:script returned ' .. type(reply) .. ' instead of cjson.encode(...)'
  end
  replies[call] = reply
end
return replies`;
}

/** What {@link ScriptBatcher} sends: a single call as it is, several as one composed script. */
export interface BatchSender {
  /** Runs one call's script alone; resolves with its reply. */
  single(call: ScriptCall): Promise<string>;
  /** Runs `lua` (a {@link batchLua}) with its one argument `batch`; resolves with its replies. */
  many(lua: string, batch: string, calls: readonly ScriptCall[]): Promise<unknown>;
}

/** Options of {@link ScriptBatcher}. */
export interface ScriptBatcherOptions {
  /** Batches on their way at once. @default 1 */
  maxInFlight?: number;
  /** Most calls in one batch. @default 128 */
  maxBatch?: number;
}

/** Queues script calls and sends them in batches; see the module documentation. */
export class ScriptBatcher {
  readonly #send: BatchSender;
  readonly #maxInFlight: number;
  readonly #maxBatch: number;
  /** Composed scripts by the ids of the scripts they run. */
  readonly #composed = new Map<string, string>();
  readonly #ids = new Map<AtomicScript<Json[], Json>, number>();
  #queue: ScriptCall[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(send: BatchSender, options: ScriptBatcherOptions = {}) {
    this.#send = send;
    this.#maxInFlight = options.maxInFlight ?? 1;
    this.#maxBatch = options.maxBatch ?? 128;
  }

  /** Queues `call`; it goes with the next batch. */
  add(call: ScriptCall): void {
    this.#queue.push(call);
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.#maxInFlight) {
      const calls = this.#queue.splice(0, this.#maxBatch);
      this.#inFlight++;
      this.#run(calls).finally(() => {
        this.#inFlight--;
        this.#flush();
      });
    }
  }

  async #run(calls: ScriptCall[]): Promise<void> {
    const batch = calls.length > 1 ? this.#pack(calls) : null;
    if (batch === null) {
      await Promise.all(calls.map(async (call) => {
        try {
          call.resolve(await this.#send.single(call));
        } catch (error) {
          call.reject(error);
        }
      }));
      return;
    }
    let replies: unknown;
    try {
      replies = await this.#send.many(this.#lua(batch.scripts), batch.fields, calls);
    } catch (error) {
      for (const call of calls) call.reject(error);
      return;
    }
    if (!Array.isArray(replies) || replies.length !== calls.length) {
      const error = new Error(`a batch of ${calls.length} script calls answered ${replies}`);
      for (const call of calls) call.reject(error);
      return;
    }
    for (const [i, call] of calls.entries()) call.resolve(replies[i] as string);
  }

  /**
   * The distinct scripts of `calls` (in a fixed order, so that the same mix of calls is the
   * same composed script) and their one argument; null when a key is not well-formed UTF-16 (a
   * lone surrogate, which JSON carries as an escape that Redis's cjson refuses, failing every
   * call of the batch): such calls go one by one.
   */
  #pack(calls: readonly ScriptCall[]): {
    scripts: AtomicScript<Json[], Json>[];
    fields: string;
  } | null {
    const index = new Map<AtomicScript<Json[], Json>, number>();
    for (const { script } of calls) index.set(script, this.#id(script));
    const scripts = [...index.keys()].sort((a, b) => index.get(a)! - index.get(b)!);
    for (const [i, script] of scripts.entries()) index.set(script, i + 1);
    const batch: [number, string[], string[]][] = [];
    for (const call of calls) {
      for (const key of call.keys) {
        if (!key.isWellFormed()) return null;
      }
      batch.push([index.get(call.script)!, call.keys, call.args]);
    }
    return { scripts, fields: JSON.stringify(batch) };
  }

  /** The composed Lua of `scripts`, made once per mix. */
  #lua(scripts: readonly AtomicScript<Json[], Json>[]): string {
    const signature = scripts.map((script) => this.#id(script)).join(",");
    let lua = this.#composed.get(signature);
    if (lua === undefined) {
      lua = batchLua(scripts);
      this.#composed.set(signature, lua);
    }
    return lua;
  }

  #id(script: AtomicScript<Json[], Json>): number {
    let id = this.#ids.get(script);
    if (id === undefined) {
      id = this.#ids.size;
      this.#ids.set(script, id);
    }
    return id;
  }
}

/**
 * `JSON.stringify(arg)`, with the arguments most calls carry (numbers and booleans) made
 * directly: half the time and garbage of a script call's arguments (the limits and TTLs every
 * gate passes are the same few numbers, whose strings V8 keeps in its cache).
 */
export function encodeArg(arg: Json): string {
  if (typeof arg === "number") return Number.isFinite(arg) ? String(arg) : "null";
  if (arg === true) return "true";
  if (arg === false) return "false";
  return JSON.stringify(arg);
}
