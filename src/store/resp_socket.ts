/**
 * The socket side of the Redis client (`resp.ts`): opening a connection (TCP or TLS, within a
 * deadline, with errors an operator can act on) and reading replies off it.
 *
 * @module
 */
import { asError, errorMessage } from "../errors.ts";
import { makeRoom } from "../util/bytes.ts";
import { connectUntil } from "../util/connect.ts";
import {
  INCOMPLETE,
  parseReply,
  type RedisAddress,
  RedisConnectionError,
  type RedisReplyError,
  type Reply,
} from "./resp_protocol.ts";

const READ_SIZE = 64 * 1024;

/** A connection attempt's deadline: `expired` rejects when it passes, unless cancelled. */
export interface Deadline {
  expired: Promise<never>;
  cancel(): void;
}

/** The deadline of one connection attempt to `hostname:port`. */
export function connectDeadline(hostname: string, port: number, ms: number): Deadline {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new RedisConnectionError(`connecting to ${hostname}:${port} timed out after ${ms} ms`),
        ),
      ms,
    );
  });
  // Raced by its users; never an unhandled rejection of its own.
  expired.catch(() => {});
  return { expired, cancel: () => clearTimeout(timer) };
}

/**
 * Opens a TCP or TLS connection to `address` before `expired` rejects (see `connectUntil`),
 * with TCP keepalive on, its failure told in words an operator reads.
 */
export async function openSocket(
  address: RedisAddress,
  expired: Promise<never>,
): Promise<Deno.Conn> {
  const { hostname, port } = address;
  try {
    const conn = await connectUntil(address, expired);
    if (!address.tls) (conn as Deno.TcpConn).setKeepAlive(true);
    return conn;
  } catch (error) {
    throw describeConnectError(error, hostname, port);
  }
}

/**
 * Reads replies off `conn` and hands each to `dispatch`, in order, until the connection ends;
 * never rejects: resolves with what ended it, or null at the end of the stream.
 */
export async function readReplies(
  conn: Deno.Conn,
  dispatch: (reply: Reply | RedisReplyError) => void,
): Promise<Error | null> {
  let buffer = new Uint8Array(READ_SIZE);
  let start = 0;
  let end = 0;
  try {
    for (;;) {
      if (end === buffer.length) {
        buffer = makeRoom(buffer, start, end);
        end -= start;
        start = 0;
      }
      const n = await conn.read(buffer.subarray(end));
      if (n === null) return null;
      end += n;
      const parser = { bytes: buffer, at: start, end };
      for (;;) {
        const reply = parseReply(parser);
        if (reply === INCOMPLETE) break;
        start = parser.at;
        dispatch(reply);
      }
      if (start === end) start = end = 0;
    }
  } catch (error) {
    // Closed by us, reset, or a reply that is not RESP: either way the connection is over.
    return asError(error);
  }
}

/** A connect failure in words an operator reads: what was refused or not found, and where. */
function describeConnectError(error: unknown, hostname: string, port: number): Error {
  if (error instanceof RedisConnectionError) return error;
  const where = `${hostname}:${port}`;
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new RedisConnectionError(`connection refused by ${where}`, { cause: error });
  }
  return new RedisConnectionError(`cannot connect to ${where}: ${errorMessage(error)}`, {
    cause: error,
  });
}
