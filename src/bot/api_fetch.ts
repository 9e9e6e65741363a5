/**
 * The Bot API's HTTP client: a `fetch` for grammY that sends its JSON calls over kept-alive
 * HTTP/1.1 connections of its own (`Deno.connect`, `Deno.connectTls`), one call at a time per
 * connection, and reads each answer into one buffer. Deno's `fetch` does the same work through
 * WHATWG streams, which cost more of the main thread per call than the rest of an update's
 * handling (see "Outbound calls to Telegram" in the README).
 *
 * Anything else goes to the global `fetch`: file uploads (grammY sends them as streams), calls
 * other than POST with a text body, and every call while a proxy is configured (`HTTPS_PROXY`,
 * `HTTP_PROXY` or `ALL_PROXY`), since Deno's `fetch` is what honours those.
 *
 * A connection found closed (or sending bytes nobody asked for) while idle is dropped, never
 * reused; an abort (grammY's timeout, a shutdown) closes the connection of the call it ends.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { makeRoom } from "../util/bytes.ts";
import { closeQuietly } from "../util/close_quietly.ts";
import { connectUntil } from "../util/connect.ts";
import { type ParsedResponse, parseResponse, type ResponseBuffer } from "./http_response.ts";

/** Options of {@link apiFetch}. */
export interface ApiFetchOptions {
  /** Whether calls must go through `fetch` (a proxy is configured). @default false */
  viaFetch?: boolean;
}

/** A `fetch` for grammY's API client, and a way to close its idle connections. */
export interface ApiFetch {
  fetch: typeof fetch;
  /** Closes the idle connections; calls in flight finish on theirs, which then close. */
  close(): void;
}

const READ_SIZE = 16 * 1024;
/** How long an idle connection is kept for the next call. */
const IDLE_MS = 30_000;
/** Idle connections kept per server; more are closed. */
const MAX_IDLE = 128;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const encoder = new TextEncoder();
/** Header values that can be written as they are (and are as long in bytes as in characters). */
const PLAIN_VALUE = /^[\x20-\x7e]*$/;
const SKIPPED = new Set(["host", "content-length", "connection", "transfer-encoding"]);

/** A new client; see the module documentation. */
export function apiFetch(options: ApiFetchOptions = {}): ApiFetch {
  const idle = new Map<string, Connection[]>();
  let closed = false;

  const release = (origin: string, connection: Connection) => {
    const list = idle.get(origin) ?? [];
    if (closed || list.length >= MAX_IDLE) return connection.close();
    list.push(connection);
    idle.set(origin, list);
    connection.idle(IDLE_MS, () => {
      const at = list.indexOf(connection);
      if (at >= 0) list.splice(at, 1);
    });
  };

  const send = async (
    url: URL,
    request: Uint8Array,
    signal: AbortSignal | null,
  ): Promise<Response> => {
    signal?.throwIfAborted();
    const origin = `${url.protocol}//${url.host}`;
    let connection = idle.get(origin)?.pop();
    connection ??= await Connection.open(url, signal);
    const response = await connection.exchange(request, signal);
    if (response.keepAlive) release(origin, connection);
    else connection.close();
    return new Response(response.body.length > 0 ? response.body : null, {
      status: response.status,
      headers: response.contentType ? { "content-type": response.contentType } : {},
    });
  };

  const fetchFn = (input: string | URL | Request, init: RequestInit = {}) => {
    const body = init.body;
    if (
      options.viaFetch || input instanceof Request || typeof body !== "string" ||
      (init.method ?? "GET").toUpperCase() !== "POST"
    ) {
      return fetch(input, init);
    }
    const url = new URL(input);
    const request = url.protocol === "https:" || url.protocol === "http:"
      ? requestBytes(url, init.headers, body)
      : null;
    if (request === null) return fetch(input, init);
    return send(url, request, init.signal ?? null);
  };

  return {
    fetch: fetchFn as typeof fetch,
    close() {
      closed = true;
      for (const list of idle.values()) for (const connection of list.splice(0)) connection.close();
    },
  };
}

/**
 * The request, head and body, as one buffer; null when a header cannot be written as it is
 * (then `fetch` gets the call).
 */
function requestBytes(url: URL, headers: HeadersInit | undefined, text: string): Uint8Array | null {
  let head = `POST ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (const [name, value] of headerEntries(headers)) {
    if (!HEADER_NAME.test(name) || !PLAIN_VALUE.test(value)) return null;
    if (!SKIPPED.has(name.toLowerCase())) head += `${name}: ${value}\r\n`;
  }
  const body = encoder.encode(text);
  head += `content-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n`;
  const bytes = new Uint8Array(head.length + body.length);
  encoder.encodeInto(head, bytes);
  bytes.set(body, head.length);
  return bytes;
}

function headerEntries(headers: HeadersInit | undefined): Iterable<[string, string]> {
  if (headers === undefined) return [];
  if (headers instanceof Headers || Array.isArray(headers)) {
    return headers as Iterable<[string, string]>;
  }
  return Object.entries(headers);
}

/** One kept-alive connection: a read loop, and at most one call at a time. */
class Connection {
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
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #onGone: (() => void) | null = null;

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

  /** Sends `request` and resolves with the response; an abort closes the connection. */
  async exchange(request: Uint8Array, signal: AbortSignal | null): Promise<ParsedResponse> {
    clearTimeout(this.#idleTimer);
    this.#onGone = null;
    if (this.#failure) throw this.#failure;
    this.#conn.ref();
    const answered = new Promise<ParsedResponse>((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
    const aborted = abortPromise(signal);
    try {
      await Promise.race([this.#write(request), aborted.promise]);
      return await Promise.race([answered, aborted.promise]);
    } catch (error) {
      this.close();
      answered.catch(() => {});
      throw error;
    } finally {
      aborted.dispose();
      this.#waiter = null;
    }
  }

  /** Waits as an idle connection for `ms`, then closes; `onGone` when it ends while idle. */
  idle(ms: number, onGone: () => void): void {
    this.#onGone = onGone;
    this.#conn.unref();
    this.#idleTimer = setTimeout(() => this.close(), ms);
    Deno.unrefTimer(this.#idleTimer);
  }

  close(): void {
    clearTimeout(this.#idleTimer);
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
    clearTimeout(this.#idleTimer);
    closeQuietly(this.#conn);
    this.#waiter?.reject(error);
    this.#waiter = null;
    this.#onGone?.();
    this.#onGone = null;
  }
}

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
