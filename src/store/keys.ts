/**
 * How a {@link StoreKey} is spelled in Redis: `${prefix}${namespace}:{${entity}}:${part}…`.
 *
 * Every part is turned into a string first, so `["chat", 123]` and `["chat", "123"]` are the
 * same key in both stores (Deno KV keys are built from the same strings, see
 * {@link keyParts}); keys read back from a scan always carry string parts. Inside a part,
 * `%`, `:`, `{` and `}` are percent-encoded so that no part can forge a separator or end
 * the hash tag early.
 */

import type { StoreKey } from "./store.ts";

/** The parts of `key` as strings: `[namespace, entity, ...rest]`. Numbers become decimal. */
export function keyParts(key: StoreKey): [string, string, ...string[]] {
  const [namespace, entity, ...rest] = key;
  return [namespace, String(entity), ...rest.map(String)];
}

/**
 * The Redis key of `key`; the entity in braces is the Redis Cluster hash tag. (Built part by
 * part without intermediate arrays: every store call of every update spells its keys here.)
 */
export function toRedisKey(prefix: string, key: StoreKey): string {
  let text = `${prefix}${escapePart(key[0])}:{${escapePart(key[1])}}`;
  for (let i = 2; i < key.length; i++) text += `:${escapePart(key[i]!)}`;
  return text;
}

/** The {@link StoreKey} spelled by `redisKey`, or `null` when it is not one of ours. */
export function fromRedisKey(prefix: string, redisKey: string): StoreKey | null {
  if (!redisKey.startsWith(prefix)) return null;
  const [namespace, tag, ...rest] = redisKey.slice(prefix.length).split(":");
  if (namespace === undefined || tag === undefined) return null;
  if (!tag.startsWith("{") || !tag.endsWith("}") || tag.length < 2) return null;
  return [
    unescapePart(namespace),
    unescapePart(tag.slice(1, -1)),
    ...rest.map(unescapePart),
  ];
}

/** The SCAN `MATCH` pattern of every key in `namespace` under `prefix`. */
export function namespacePattern(prefix: string, namespace: string): string {
  // `{` is no glob character, so the hash tag's brace needs no escaping.
  return `${escapeGlob(prefix + escapePart(namespace))}:{*`;
}

const SPECIAL = /[%:{}]/g;
const HAS_SPECIAL = /[%:{}]/;
const ENCODED = /%(25|3A|7B|7D)/gi;

/** A part as it appears in a Redis key: decimal for a number, escaped for a string. */
function escapePart(part: string | number): string {
  // A number's decimal digits (and sign, dot, exponent) need no escaping.
  if (typeof part === "number") return String(part);
  if (!HAS_SPECIAL.test(part)) return part;
  return part.replace(
    SPECIAL,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function unescapePart(part: string): string {
  return part.replace(ENCODED, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}
