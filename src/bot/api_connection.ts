/**
 * The Bot API client's connections (`api_fetch.ts`): one kept-alive HTTP/1.1 connection, its read
 * loop, one call at a time on it, aborts and deadlines.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { makeRoom } from "../util/bytes.ts";
import { closeQuietly } from "../util/close_quietly.ts";
import { connectUntil } from "../util/connect.ts";
import { type ParsedResponse, parseResponse, type ResponseBuffer } from "./http_response.ts";

const READ_SIZE = 16 * 1024;

/** One kept-alive connection: a read loop, and at most one call at a time. */
export class Connection {
  readonly #conn: Deno.Conn;
  readonly #where: string;
  readonly #buffer: ResponseBuffer = {
    bytes: new Uint8Array(READ_SIZE),
    at: 0,
    end: 0,
    ended: false,
  };
  #waiter: { resolve(r: ParsedResponse): void; reject(e: Error): void } | null = null;
  #failure: Error | null = null;
  /** When the connection last became idle (`performance.now()`); see {@link idle}. */
  idleSince = 0;
  #onGone: ((connection: Connection) => void) | null = null;

  private constructor(conn: Deno.Conn, where: string) {
    this.#conn = conn;
    this.#where = where;
    this.#readLoop();
  }

  /** Connects to `url`'s server; an abort of `signal` ends the attempt. */
  static async open(url: URL, signal: AbortSignal | null): Promise<Connection> {
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const tls = url.protocol === "https:";
    const port = Number(url.port || (tls ? 443 : 80));
    const aborted = abortPromise(signal);
    try {
      const conn = await connectUntil({ hostname, port, tls }, aborted.promise);
      return new Connection(conn, `${hostname}:${port}`);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new TypeError(`cannot connect to ${hostname}:${port}: ${errorMessage(error)}`, {
        cause: error,
      });
    } finally {
      aborted.dispose();
    }
  }

  /**
   * Sends `request` and resolves with the response; an abort closes the connection, and so
   * does `timeoutMs` (when above 0) running out, failing the call with a {@link Timeout}.
   */
  async exchange(
    request: Uint8Array,
    signal: AbortSignal | null,
    timeoutMs: number,
  ): Promise<ParsedResponse> {
    this.#onGone = null;
    if (this.#failure) throw this.#failure;
    this.#conn.ref();
    const answered = new Promise<ParsedResponse>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
    if (timeoutMs > 0) deadlines.watch(this, timeoutMs);
    try {
      if (signal === null) {
        await this.#write(request);
        return await answered;
      }
      const aborted = abortPromise(signal);
      try {
        await Promise.race([this.#write(request), aborted.promise]);
        return await Promise.race([answered, aborted.promise]);
      } finally {
        aborted.dispose();
      }
    } catch (error) {
      this.close();
      answered.catch(() => {});
      // A write cut short by the timeout fails as the timeout.
      const failure = this.#failure as Error | null;
      throw failure instanceof Timeout ? failure : error;
    } finally {
      if (timeoutMs > 0) deadlines.forget(this);
      this.#waiter = null;
    }
  }

  /** Ends the call in progress with `error`, and the connection with it. */
  fail(error: Error): void {
    this.#fail(error);
  }

  /**
   * Waits as an idle connection, keeping no process alive, from now (`idleSince`); `onGone` when
   * it ends while idle. Its pool closes it when it has been idle too long.
   */
  idle(onGone: (connection: Connection) => void): void {
    this.#onGone = onGone;
    this.#conn.unref();
    this.idleSince = performance.now();
  }

  close(): void {
    this.#fail(new TypeError(`connection to ${this.#where} closed`));
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
  }

  async #readLoop(): Promise<void> {
    const buffer = this.#buffer;
    try {
      for (;;) {
        if (buffer.end === buffer.bytes.length) this.#makeRoom();
        const n = await this.#conn.read(buffer.bytes.subarray(buffer.end));
        if (n === null) {
          buffer.ended = true;
          this.#deliver();
          return this.#fail(new TypeError(`${this.#where} closed the connection`));
        }
        buffer.end += n;
        this.#deliver();
      }
    } catch (error) {
      this.#fail(
        new TypeError(`connection to ${this.#where} failed: ${errorMessage(error)}`, {
          cause: error,
        }),
      );
    }
  }

  /** Hands a complete response to the call waiting for it; bytes nobody waits for end it. */
  #deliver(): void {
    const buffer = this.#buffer;
    if (this.#waiter === null) {
      if (buffer.end > buffer.at) {
        this.#fail(new TypeError(`${this.#where} sent an unasked response`));
      }
      return;
    }
    try {
      const response = parseResponse(buffer);
      if (response === null) return;
      // Bytes after the response answer nothing asked: the connection is not used again.
      if (buffer.at === buffer.end) buffer.at = buffer.end = 0;
      else response.keepAlive = false;
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter.resolve(response);
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #makeRoom(): void {
    const buffer = this.#buffer;
    buffer.bytes = makeRoom(buffer.bytes, buffer.at, buffer.end);
    buffer.end -= buffer.at;
    buffer.at = 0;
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    closeQuietly(this.#conn);
    this.#waiter?.reject(error);
    this.#waiter = null;
    this.#onGone?.(this);
    this.#onGone = null;
  }
}

/** A call that ran out of time: its connection is closed. */
export class Timeout extends Error {
  override name = "Timeout";
}

/**
 * The deadlines of the calls in progress, checked by one timer every second while there are
 * any: a timer of its own per call would cost more than the call's other work.
 */
class Deadlines {
  readonly #due = new Map<Connection, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  watch(connection: Connection, timeoutMs: number): void {
    this.#due.set(connection, performance.now() + timeoutMs);
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#check(), 1000);
    // The calls themselves keep the process alive; this timer need not.
    Deno.unrefTimer(this.#timer);
  }

  forget(connection: Connection): void {
    this.#due.delete(connection);
    if (this.#due.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    const now = performance.now();
    for (const [connection, due] of this.#due) {
      if (due <= now) connection.fail(new Timeout("the call timed out"));
    }
  }
}

const deadlines = new Deadlines();

/** A promise that rejects with `signal`'s reason when it aborts; `dispose` stops listening. */
function abortPromise(signal: AbortSignal | null): { promise: Promise<never>; dispose(): void } {
  if (signal === null) return { promise: new Promise<never>(() => {}), dispose: () => {} };
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener("abort", onAbort) };
}
