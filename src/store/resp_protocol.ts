/**
 * The Redis protocol (RESP2) as the client of `resp.ts` speaks it: replies and errors, commands
 * as bytes, replies parsed from bytes that may arrive in any pieces, and `redis://` URLs.
 *
 * @module
 */

/** A decoded reply: simple and bulk strings as strings, integers as numbers, nil as null. */
export type Reply = string | number | null | Reply[];

/** An argument of a command: a string (sent as UTF-8) or bytes. */
export type Arg = string | Uint8Array;

/** An error reply from Redis (`-ERR …`, `-NOSCRIPT …`, `-WRONGPASS …`). */
export class RedisReplyError extends Error {
  override readonly name = "RedisReplyError";
}

/** The connection is down or was lost before the reply arrived. */
export class RedisConnectionError extends Error {
  override readonly name = "RedisConnectionError";
}

/** Where and how to connect, parsed from a `redis://` or `rediss://` URL. */
export interface RedisAddress {
  hostname: string;
  port: number;
  tls: boolean;
  username: string | null;
  password: string | null;
  database: number;
}

/** Parses `redis://[user[:password]@]host[:port][/db]` (and `rediss://`). */
export function parseRedisUrl(url: string): RedisAddress {
  const parsed = new URL(url);
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new TypeError(`not a redis:// or rediss:// URL: ${parsed.protocol}`);
  }
  const database = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  if (!Number.isInteger(database) || database < 0) {
    throw new TypeError(`the database in the URL's path must be a number: ${parsed.pathname}`);
  }
  return {
    // IPv6 literals come bracketed.
    hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: parsed.port ? Number(parsed.port) : 6379,
    tls: parsed.protocol === "rediss:",
    username: parsed.username ? decodeURIComponent(parsed.username) : null,
    password: parsed.password ? decodeURIComponent(parsed.password) : null,
    database,
  };
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const CR = 13;
const LF = 10;
/** Not yet a whole reply in the buffer. */
export const INCOMPLETE = Symbol("incomplete");

/** RESP2 encoding of one command: an array of bulk strings, in one buffer. */
export function encodeCommand(args: readonly Arg[]): Uint8Array {
  const bodies: Uint8Array[] = [];
  const heads: string[] = [];
  let head = `*${args.length}\r\n`;
  let size = 2;
  for (const arg of args) {
    const bytes = typeof arg === "string" ? ENCODER.encode(arg) : arg;
    head += `$${bytes.length}\r\n`;
    bodies.push(bytes);
    heads.push(head);
    size += head.length + bytes.length;
    head = "\r\n";
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < bodies.length; i++) {
    // Heads are ASCII: one byte per character.
    const text = heads[i]!;
    for (let j = 0; j < text.length; j++) out[at++] = text.charCodeAt(j);
    out.set(bodies[i]!, at);
    at += bodies[i]!.length;
  }
  out[at] = CR;
  out[at + 1] = LF;
  return out;
}

/** Where {@link parseReply} reads: `bytes[at..end)`. */
export interface Parser {
  bytes: Uint8Array;
  at: number;
  end: number;
}

/** Parses one reply at `parser.at`, advancing it; {@link INCOMPLETE} leaves it where it was. */
export function parseReply(parser: Parser): Reply | RedisReplyError | typeof INCOMPLETE {
  const from = parser.at;
  const reply = parseAt(parser);
  if (reply === INCOMPLETE) parser.at = from;
  return reply;
}

function parseAt(parser: Parser): Reply | RedisReplyError | typeof INCOMPLETE {
  const { bytes, end } = parser;
  if (parser.at >= end) return INCOMPLETE;
  const type = bytes[parser.at]!;
  const lineEnd = bytes.subarray(0, end).indexOf(CR, parser.at + 1);
  if (lineEnd === -1 || lineEnd + 1 >= end) return INCOMPLETE;
  const line = DECODER.decode(bytes.subarray(parser.at + 1, lineEnd));
  parser.at = lineEnd + 2;
  switch (type) {
    case 0x2b: // '+'
      return line;
    case 0x2d: // '-'
      return new RedisReplyError(line);
    case 0x3a: // ':'
      return Number(line);
    case 0x24: { // '$'
      const length = Number(line);
      if (length < 0) return null;
      if (parser.at + length + 2 > end) return INCOMPLETE;
      const value = DECODER.decode(bytes.subarray(parser.at, parser.at + length));
      parser.at += length + 2;
      return value;
    }
    case 0x2a: { // '*'
      const count = Number(line);
      if (count < 0) return null;
      const items: Reply[] = [];
      for (let i = 0; i < count; i++) {
        const item = parseAt(parser);
        if (item === INCOMPLETE) return INCOMPLETE;
        // An error inside an array (EXEC, scripts' tables) is kept as its message.
        items.push(item instanceof RedisReplyError ? item.message : item);
      }
      return items;
    }
    default:
      throw new RedisConnectionError(`unexpected reply type ${String.fromCharCode(type)}`);
  }
}
