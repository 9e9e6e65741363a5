/**
 * A small Redis client: RESP2 over one `Deno.connect` (or `Deno.connectTls` for `rediss://`)
 * connection, with the commands pipelined (those sent in one tick go out in one write) and the
 * replies matched to them in order.
 *
 * Why not node-redis: it runs on Deno's Node compatibility layer (`node:net` streams), which
 * under the webhook load cost about a sixth of the main thread per update (stream machinery,
 * `writev`, UTF-8 encoding of strings in JavaScript), and it weighed about 9 MiB of the idle
 * process. The store needs a dozen commands, one connection and a reconnect loop; this is that.
 *
 * Behaviour the store relies on:
 * - While disconnected, commands reject at once ({@link RedisConnectionError} "the client is
 *   offline"), never queue for the next connection: callers fall back instead of hanging.
 * - A lost connection rejects every command in flight with {@link RedisConnectionError}, then
 *   reconnects with the delays `reconnect` gives (it returns an Error to give up).
 * - An error reply rejects only its own command, with {@link RedisReplyError}.
 * - `close()` lets the commands in flight finish, then closes; `destroy()` closes at once.
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

/** Options of {@link RespClient.connect}. */
export interface RespClientOptions {
  url: string;
  /** How long one connection attempt (TCP, TLS and the handshake) may take. */
  connectTimeoutMs: number;
  /**
   * The connection counts as lost when commands wait this long without any reply arriving (a
   * hung server, or one cut off without a reset, which TCP would notice only after minutes);
   * omitted: never. Only for commands that answer at once (no blocking commands).
   */
  replyTimeoutMs?: number;
  /**
   * The delay before reconnect attempt `retries` (0 first) after `cause`, or an Error to give
   * up: at the first connection, `connect()` then rejects with it; later, the client stays
   * offline until closed.
   */
  reconnect(retries: number, cause: Error, everReady: boolean): number | Error;
  /** A connection attempt failed or the connection was lost. */
  onError?(error: Error): void;
  /** A connection is ready (after the handshake). */
  onReady?(): void;
}

interface Pending {
  resolve(reply: Reply): void;
  reject(error: Error): void;
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const CR = 13;
const LF = 10;
const READ_SIZE = 64 * 1024;
/** Not yet a whole reply in the buffer. */
const INCOMPLETE = Symbol("incomplete");

/** One Redis connection that reconnects by itself; see the module documentation. */
export class RespClient {
  readonly #options: RespClientOptions;
  readonly #address: RedisAddress;
  #conn: Deno.Conn | null = null;
  #ready = false;
  #everReady = false;
  #closed = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Commands sent and not yet answered, oldest first. */
  #pending: Pending[] = [];
  #pendingHead = 0;
  /** Encoded commands waiting for the next write. */
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #flushScheduled = false;
  #writing = false;
  #drained: PromiseWithResolvers<void> | null = null;
  /** When the oldest command in flight was sent or the last reply arrived. */
  #progressAt = 0;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  /** Why the watchdog closed the connection. */
  #hung: Error | null = null;

  private constructor(options: RespClientOptions) {
    this.#options = options;
    this.#address = parseRedisUrl(options.url);
  }

  /** Connects (retrying as `reconnect` says); rejects with the error `reconnect` gave up with. */
  static async connect(options: RespClientOptions): Promise<RespClient> {
    const client = new RespClient(options);
    for (let retries = 0;; retries++) {
      try {
        await client.#open();
        return client;
      } catch (error) {
        const cause = asError(error);
        options.onError?.(cause);
        const delay = options.reconnect(retries, cause, false);
        if (delay instanceof Error) throw delay;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Whether commands can be sent now. */
  get isReady(): boolean {
    return this.#ready;
  }

  /** Sends one command; resolves with its reply. */
  send(args: readonly Arg[]): Promise<Reply> {
    if (!this.#ready || this.#closed) {
      return Promise.reject(new RedisConnectionError("the client is offline"));
    }
    return this.#command(args);
  }

  /** Sends on the current connection, ready or still in its handshake. */
  #command(args: readonly Arg[]): Promise<Reply> {
    const { promise, resolve, reject } = Promise.withResolvers<Reply>();
    if (this.#pendingHead === this.#pending.length) this.#progressAt = performance.now();
    this.#pending.push({ resolve, reject });
    this.#enqueue(encodeCommand(args));
    return promise;
  }

  /** Waits for the commands in flight, then closes; further commands reject. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    if (this.#ready && this.#pendingHead < this.#pending.length) {
      this.#drained = Promise.withResolvers<void>();
      await this.#drained.promise;
    }
    this.#drop(new RedisConnectionError("the client is closed"));
  }

  /** Closes at once, failing the commands in flight. Idempotent. */
  destroy(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#drop(new RedisConnectionError("the client is closed"));
  }

  /** One connection attempt: connect, handshake, then start reading. */
  async #open(): Promise<void> {
    const { hostname, port, tls, username, password, database } = this.#address;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RedisConnectionError(
              `connecting to ${hostname}:${port} timed out after ${this.#options.connectTimeoutMs} ms`,
            ),
          ),
        this.#options.connectTimeoutMs,
      );
    });
    timeout.catch(() => {});
    const connecting = tls
      ? Deno.connectTls({ hostname, port })
      : Deno.connect({ hostname, port, transport: "tcp" });
    let conn: Deno.Conn;
    try {
      conn = await Promise.race([connecting, timeout]);
      // TLS verifies the certificate here, so that a refused one is the error, not a timeout.
      if (tls) await Promise.race([(conn as Deno.TlsConn).handshake(), timeout]);
    } catch (error) {
      clearTimeout(timer);
      // A connection that arrives after the timeout is closed at once.
      connecting.then((late) => closeQuietly(late), () => {});
      throw describeConnectError(error, hostname, port);
    }
    if (!tls) {
      (conn as Deno.TcpConn).setNoDelay(true);
      (conn as Deno.TcpConn).setKeepAlive(true);
    }
    this.#conn = conn;
    let opened = false;
    const reading = this.#read(conn).then((cause) => {
      // Closed by us (a failed handshake, close()): already dealt with.
      if (this.#conn !== conn) return;
      if (opened) return this.#lost(cause);
      this.#drop(
        new RedisConnectionError(
          `the connection to ${hostname}:${port} closed during the handshake${suffix(cause)}`,
        ),
      );
    });
    try {
      const handshake: Promise<Reply>[] = [];
      if (password !== null) {
        handshake.push(
          this.#command(username ? ["AUTH", username, password] : ["AUTH", password]),
        );
      }
      if (database !== 0) handshake.push(this.#command(["SELECT", String(database)]));
      // Ready only once the server answers: a hung one accepts connections all the same.
      handshake.push(this.#command(["PING"]));
      await Promise.race([Promise.all(handshake), timeout]);
      clearTimeout(timer);
    } catch (error) {
      clearTimeout(timer);
      this.#drop(asError(error));
      await reading;
      throw error;
    }
    opened = true;
    // Commands are taken only from now on: until then they fail at once ("offline").
    this.#ready = true;
    this.#everReady = true;
    this.#watch(conn);
    this.#options.onReady?.();
  }

  /** Closes `conn` when commands wait longer than `replyTimeoutMs` for any reply. */
  #watch(conn: Deno.Conn): void {
    const limit = this.#options.replyTimeoutMs;
    if (limit === undefined) return;
    this.#watchdog = setInterval(() => {
      if (this.#conn !== conn || this.#pendingHead === this.#pending.length) return;
      const waited = performance.now() - this.#progressAt;
      if (waited < limit) return;
      this.#hung = new RedisConnectionError(`no reply from Redis for ${Math.round(waited)} ms`);
      // The read in progress ends, and with it the connection (#lost).
      closeQuietly(conn);
    }, Math.max(10, Math.floor(limit / 4)));
  }

  /** After the connection ended by itself: fail what is in flight and reconnect. */
  #lost(reason: Error | null): void {
    if (this.#closed) return;
    if (this.#hung) reason = this.#hung;
    const cause = new RedisConnectionError(`the connection to Redis was lost${suffix(reason)}`);
    this.#drop(cause);
    this.#options.onError?.(cause);
    this.#scheduleReconnect(0, cause);
  }

  #scheduleReconnect(retries: number, cause: Error): void {
    if (this.#closed) return;
    const delay = this.#options.reconnect(retries, cause, this.#everReady);
    if (delay instanceof Error) return;
    this.#retryTimer = setTimeout(async () => {
      if (this.#closed) return;
      try {
        await this.#open();
      } catch (error) {
        const failure = asError(error);
        this.#options.onError?.(failure);
        this.#scheduleReconnect(retries + 1, failure);
      }
    }, delay);
  }

  /** Closes the connection and rejects every command in flight with `error`. */
  #drop(error: Error): void {
    this.#ready = false;
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#hung = null;
    const conn = this.#conn;
    this.#conn = null;
    if (conn) closeQuietly(conn);
    const pending = this.#pending;
    const head = this.#pendingHead;
    this.#pending = [];
    this.#pendingHead = 0;
    this.#out = [];
    this.#outBytes = 0;
    for (let i = head; i < pending.length; i++) pending[i]!.reject(error);
    this.#drained?.resolve();
  }

  #enqueue(bytes: Uint8Array): void {
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
    if (this.#flushScheduled || this.#writing) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Writes everything queued in one write; what queues meanwhile goes in the next. */
  async #flush(): Promise<void> {
    const conn = this.#conn;
    if (!conn || this.#out.length === 0) return;
    this.#writing = true;
    try {
      while (this.#out.length > 0 && this.#conn === conn) {
        const bytes = concat(this.#out, this.#outBytes);
        this.#out = [];
        this.#outBytes = 0;
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      }
    } catch {
      // The read loop sees the broken connection too and reports it.
      closeQuietly(conn);
    } finally {
      this.#writing = false;
    }
  }

  /**
   * Reads and dispatches replies until the connection ends; never rejects: resolves with what
   * ended it, or null at the end of the stream.
   */
  async #read(conn: Deno.Conn): Promise<Error | null> {
    let buffer = new Uint8Array(READ_SIZE);
    let start = 0;
    let end = 0;
    try {
      for (;;) {
        if (end === buffer.length) {
          // Move the unparsed tail to the front, growing the buffer if it is all unparsed.
          const size = end - start;
          const target = size > buffer.length / 2 ? new Uint8Array(buffer.length * 2) : buffer;
          target.set(buffer.subarray(start, end), 0);
          buffer = target;
          start = 0;
          end = size;
        }
        const n = await conn.read(buffer.subarray(end));
        if (n === null) return null;
        end += n;
        const parser = { bytes: buffer, at: start, end };
        for (;;) {
          const reply = parseReply(parser);
          if (reply === INCOMPLETE) break;
          start = parser.at;
          this.#dispatch(reply);
        }
        if (start === end) start = end = 0;
      }
    } catch (error) {
      // Closed by us, reset, or a reply that is not RESP: either way the connection is over.
      return asError(error);
    }
  }

  #dispatch(reply: Reply | RedisReplyError): void {
    const pending = this.#pending[this.#pendingHead];
    if (!pending) return;
    this.#progressAt = performance.now();
    this.#pending[this.#pendingHead++] = undefined as never;
    if (this.#pendingHead === this.#pending.length) {
      this.#pending = [];
      this.#pendingHead = 0;
      this.#drained?.resolve();
    } else if (this.#pendingHead > 1024) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
    if (reply instanceof RedisReplyError) pending.reject(reply);
    else pending.resolve(reply);
  }
}

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

interface Parser {
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

function concat(parts: readonly Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** `: message` of what ended a connection, or nothing. */
function suffix(cause: Error | null): string {
  return cause === null ? "" : `: ${cause.message}`;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A connect failure in words an operator reads: what was refused or not found, and where. */
function describeConnectError(error: unknown, hostname: string, port: number): Error {
  if (error instanceof RedisConnectionError) return error;
  const where = `${hostname}:${port}`;
  if (error instanceof Deno.errors.ConnectionRefused) {
    return new RedisConnectionError(`connection refused by ${where}`, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new RedisConnectionError(`cannot connect to ${where}: ${message}`, { cause: error });
}
