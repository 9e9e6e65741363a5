/**
 * The polling inbox's store scripts, one round trip each, written twice (Lua for Redis, a pure
 * function for Deno KV) like the gate's. Every key has the entity `polling`, so one script may
 * touch them all, also on Redis Cluster:
 *
 * - `index` (`inbox:{polling}:index`): the open batches, `{ [batch]: { o, at, ids, n } }`:
 *   the instance that owns it, when it was recorded, its update ids and its number of chunks;
 * - `chunk` (`inbox:{polling}:chunk:<batch>:<k>`): the updates of one batch, a JSON array of at
 *   most {@link CHUNK_CHARS} characters (Deno KV keeps values under 64 KiB);
 * - `claim` (`inbox:{polling}:claim:<instance>`): present while that instance may still be
 *   handling its batches, so that nobody else replays them meanwhile: `1` while it runs, `2`
 *   after a stop that abandoned updates (see `inbox.ts`).
 *
 * The updates are stored as they came (Lua writes the argument's JSON text untouched: decoding
 * and encoding again in Lua would round large ids).
 */
import { NAMESPACES } from "../store/namespaces.ts";
import type { AtomicScript, Json, ScriptWrite, StoreKey } from "../store/store.ts";

/** The entity of every inbox key. */
const ENTITY = "polling";

/** Most characters of JSON in one chunk: under Deno KV's 64 KiB per value even as UTF-16. */
export const CHUNK_CHARS = 30_000;

/** One open batch as the index holds it. */
export type IndexEntry = {
  /** The instance that owns it: the one handling its updates. */
  o: string;
  /** When it was recorded (ms since epoch). */
  at: number;
  /** Its update ids, ascending. */
  ids: number[];
  /** How many chunks hold its updates. */
  n: number;
};

/** The open batches by batch id. */
export type InboxIndex = Record<string, IndexEntry>;

/** The inbox's keys. */
export const inboxKeys = {
  index: [NAMESPACES.inbox, ENTITY, "index"] as StoreKey,
  chunk: (batch: string, k: number): StoreKey => [NAMESPACES.inbox, ENTITY, "chunk", batch, k],
  chunks: (batch: string, n: number): StoreKey[] =>
    Array.from({ length: n }, (_, k) => inboxKeys.chunk(batch, k)),
  claim: (owner: string): StoreKey => [NAMESPACES.inbox, ENTITY, "claim", owner],
};

/** Splits `items` into chunks of at most {@link CHUNK_CHARS} characters of JSON each. */
export function chunked<T>(items: readonly T[], maxChars = CHUNK_CHARS): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 2;
  for (const item of items) {
    const length = JSON.stringify(item).length + 1;
    if (current.length > 0 && size + length > maxChars) {
      chunks.push(current);
      current = [];
      size = 2;
    }
    current.push(item);
    size += length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Arguments of {@link recordScript}; the chunks follow. */
export type RecordArgs = [
  owner: string,
  batch: string,
  ids: number[],
  /** The claim's TTL; 0 writes no claim (a store nobody else shares). */
  claimTtlMs: number,
  chunkTtlMs: number,
  ...chunks: Json[][],
];

const DECODE_INDEX = `
  local raw = redis.call('GET', KEYS[1])
  local index = raw and cjson.decode(raw) or {}
`;
const SAVE_INDEX = `
  if next(index) == nil then redis.call('DEL', KEYS[1])
  else redis.call('SET', KEYS[1], cjson.encode(index)) end
`;

/**
 * Records a batch: its chunks, its index entry and the owner's claim.
 * Keys: `[index, claim, ...chunks]`.
 */
export const recordScript: AtomicScript<RecordArgs, boolean> = {
  name: "inbox-record",
  lua: `${DECODE_INDEX}
    local owner = cjson.decode(ARGV[2])
    local batch = cjson.decode(ARGV[3])
    local claim_ttl = tonumber(ARGV[5])
    local chunk_ttl = tonumber(ARGV[6])
    index[batch] = {o = owner, at = tonumber(ARGV[1]), ids = cjson.decode(ARGV[4]), n = #KEYS - 2}
    redis.call('SET', KEYS[1], cjson.encode(index))
    if claim_ttl > 0 then redis.call('SET', KEYS[2], '1', 'PX', claim_ttl) end
    for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[4 + i], 'PX', chunk_ttl) end
    return 'true'`,
  apply(current, [owner, batch, ids, claimTtlMs, chunkTtlMs, ...chunks], nowMs) {
    const index = { ...(current[0] as InboxIndex | null) };
    index[batch] = { o: owner, at: nowMs, ids, n: chunks.length };
    const writes: ScriptWrite[] = [
      { value: index as unknown as Json, ttlMs: null },
      claimTtlMs > 0 ? { value: 1, ttlMs: claimTtlMs } : undefined,
      ...chunks.map((chunk) => ({ value: chunk, ttlMs: chunkTtlMs })),
    ];
    return { writes, result: true };
  },
};

/** Forgets a finished batch: its index entry and its chunks. Keys: `[index, ...chunks]`. */
export const trimScript: AtomicScript<[batch: string], boolean> = {
  name: "inbox-trim",
  lua: `${DECODE_INDEX}
    index[cjson.decode(ARGV[2])] = nil
    ${SAVE_INDEX}
    for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
    return 'true'`,
  apply(current, [batch]) {
    const index = { ...(current[0] as InboxIndex | null) };
    delete index[batch];
    const writes: ScriptWrite[] = [
      Object.keys(index).length === 0 ? null : { value: index as unknown as Json, ttlMs: null },
      ...current.slice(1).map(() => null),
    ];
    return { writes, result: true };
  },
};

/** Arguments of {@link adoptScript}. */
export type AdoptArgs = [batch: string, from: string, to: string, respectClaim: boolean];

/** What {@link adoptScript} answers: the batch's chunks when it is ours now. */
export type AdoptResult = { adopted: false } | { adopted: true; chunks: Json[][] };

/**
 * Takes over a batch from an instance that no longer handles it: only while the batch is still
 * `from`'s and, with `respectClaim`, `from`'s claim has lapsed. Answers the batch's chunks.
 * Keys: `[index, claim of from, ...chunks]`.
 */
export const adoptScript: AtomicScript<AdoptArgs, AdoptResult> = {
  name: "inbox-adopt",
  lua: `${DECODE_INDEX}
    local batch = cjson.decode(ARGV[2])
    local entry = index[batch]
    if not entry or entry.o ~= cjson.decode(ARGV[3]) then return '{"adopted":false}' end
    if ARGV[5] == 'true' and redis.call('EXISTS', KEYS[2]) == 1 then
      return '{"adopted":false}'
    end
    entry.o = cjson.decode(ARGV[4])
    redis.call('SET', KEYS[1], cjson.encode(index))
    local chunks = {}
    for i = 3, #KEYS do
      local chunk = redis.call('GET', KEYS[i])
      if chunk then chunks[#chunks + 1] = chunk end
    end
    return '{"adopted":true,"chunks":[' .. table.concat(chunks, ',') .. ']}'`,
  apply(current, [batch, from, to, respectClaim]) {
    const [stored, claim, ...chunks] = current;
    const index = { ...(stored as InboxIndex | null) };
    const entry = index[batch];
    const alive = claim !== null && claim !== undefined;
    if (entry === undefined || entry.o !== from || (respectClaim && alive)) {
      return { writes: [], result: { adopted: false } };
    }
    index[batch] = { ...entry, o: to };
    return {
      writes: [{ value: index as unknown as Json, ttlMs: null }],
      result: { adopted: true, chunks: chunks.filter((c): c is Json[] => Array.isArray(c)) },
    };
  },
};

/**
 * Renews the caller's claim (unless `claimTtlMs` is 0) and answers the index (null when
 * empty). Keys: `[index, claim]`.
 */
export const heartbeatScript: AtomicScript<[claimTtlMs: number], InboxIndex | null> = {
  name: "inbox-heartbeat",
  lua: `
    local ttl = tonumber(ARGV[2])
    if ttl > 0 then redis.call('SET', KEYS[2], '1', 'PX', ttl) end
    return redis.call('GET', KEYS[1]) or 'null'`,
  apply([index], [claimTtlMs]) {
    const writes: ScriptWrite[] = [
      undefined,
      claimTtlMs > 0 ? { value: 1, ttlMs: claimTtlMs } : undefined,
    ];
    return { writes, result: (index ?? null) as InboxIndex | null };
  },
};
