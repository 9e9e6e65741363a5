/**
 * A small Redis client: RESP2 over one `Deno.connect` (or `Deno.connectTls` for `rediss://`)
 * connection, with the commands pipelined (those sent in one tick go out in one write) and the
 * replies matched to them in order.
 *
 * Why not node-redis: it runs on Deno's Node compatibility layer (`node:net` streams), which
 * under the webhook load cost about a tenth of the main thread per update (stream machinery,
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
import {
  type Arg,
  encodeCommand,
  parseRedisUrl,
  type RedisAddress,
  RedisConnectionError,
  RedisReplyError,
  type Reply,
} from "./resp_protocol.ts";
import { asError } from "../errors.ts";
import { concat } from "../util/bytes.ts";
import { closeQuietly } from "../util/close_quietly.ts";
import { connectDeadline, openSocket, readReplies } from "./resp_socket.ts";

export { type Arg, RedisConnectionError, RedisReplyError, type Reply } from "./resp_protocol.ts";

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

/** One Redis connection that reconnects by itself; see the module documentation. */
export class RespClient {
  readonly #options: RespClientOptions;
  readonly #address: RedisAddress;
  #conn: Deno.Conn | null = null;
  #ready = false;
  #everReady = false;
  #closed = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** A reconnect attempt in progress. */
  #reopening: Promise<void> | null = null;
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
    // A reconnect on its way fails once it sees the client closed; nothing of it may outlive us.
    await this.#reopening?.catch(() => {});
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
    const { hostname, port, username, password, database } = this.#address;
    const deadline = connectDeadline(hostname, port, this.#options.connectTimeoutMs);
    let conn: Deno.Conn;
    try {
      conn = await openSocket(this.#address, deadline.expired);
    } catch (error) {
      deadline.cancel();
      throw error;
    }
    if (this.#closed) {
      // Closed while connecting: this connection must not outlive the client.
      deadline.cancel();
      closeQuietly(conn);
      throw new RedisConnectionError("the client is closed");
    }
    this.#conn = conn;
    let opened = false;
    const reading = readReplies(conn, (reply) => this.#dispatch(reply)).then((cause) => {
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
      await Promise.race([Promise.all(handshake), deadline.expired]);
      deadline.cancel();
    } catch (error) {
      deadline.cancel();
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
    if (this.#hung) reason = this.#hung;
    const cause = new RedisConnectionError(`the connection to Redis was lost${suffix(reason)}`);
    // Also while closing: a close() waiting for commands in flight learns they are over.
    this.#drop(cause);
    if (this.#closed) return;
    this.#options.onError?.(cause);
    this.#scheduleReconnect(0, cause);
  }

  #scheduleReconnect(retries: number, cause: Error): void {
    if (this.#closed) return;
    const delay = this.#options.reconnect(retries, cause, this.#everReady);
    if (delay instanceof Error) return;
    this.#retryTimer = setTimeout(async () => {
      if (this.#closed) return;
      this.#reopening = this.#open();
      try {
        await this.#reopening;
      } catch (error) {
        if (this.#closed) return;
        const failure = asError(error);
        this.#options.onError?.(failure);
        this.#scheduleReconnect(retries + 1, failure);
      } finally {
        this.#reopening = null;
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

/** `: message` of what ended a connection, or nothing. */
function suffix(cause: Error | null): string {
  return cause === null ? "" : `: ${cause.message}`;
}
