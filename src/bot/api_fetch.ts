/**
 * The Bot API's HTTP client: a `fetch` for grammY that sends its JSON calls over kept-alive
 * HTTP/1.1 connections of its own (`Deno.connect`, `Deno.connectTls`), one call at a time per
 * connection, and reads each answer into one buffer. Deno's `fetch` does the same work through
 * WHATWG streams, which cost more of the main thread per call than the rest of an update's
 * handling (see "Outbound calls to Telegram" in the README).
 *
 * Anything else goes to the global `fetch`: file uploads (grammY sends them as streams), calls
 * other than POST with a text body, and every call while a proxy is configured (`HTTPS_PROXY`,
 * `HTTP_PROXY` or `ALL_PROXY`, in either case), since Deno's `fetch` is what honours those.
 *
 * A connection found closed (or sending bytes nobody asked for) while idle is dropped, never
 * reused; an abort (grammY's timeout, a shutdown) closes the connection of the call it ends.
 *
 * `direct()` goes one step further for the calls an update makes: a grammY transformer, the
 * innermost, that sends a JSON call itself instead of handing it to grammY's client, which
 * gives every call an `AbortController`, a timer, a `Request`'s worth of options, a `URL` and a
 * `Response` to read back through streams. What a caller sees is grammY's: the same body (nulls
 * left out), the parsed answer, network failures and timeouts as `HttpError`. Calls that may go
 * as a webhook reply, uploads, calls with an abort signal and proxied calls take grammY's path.
 *
 * @module
 */
import { HttpError, InputFile, type Transformer } from "grammy";
import { Connection, Timeout } from "./api_connection.ts";
import type { ParsedResponse } from "./http_response.ts";

/** Options of {@link apiFetch}. */
export interface ApiFetchOptions {
  /** Whether calls must go through `fetch` (a proxy is configured). @default false */
  viaFetch?: boolean;
  /** How long an idle connection is kept for the next call. @default 30_000 */
  idleMs?: number;
}

/** What {@link ApiFetch.direct} needs to know of the bot. */
export interface DirectOptions {
  /** The Bot API's root, as grammY's `apiRoot` (no trailing `/`). */
  apiRoot: string;
  token: string;
  /** How long a call may take, as grammY's `timeoutSeconds`. */
  timeoutSeconds: number;
  /** Methods grammY may send as a webhook reply: those take grammY's path. */
  webhookReply(method: string): boolean;
}

/** A `fetch` for grammY's API client, and a way to close its idle connections. */
export interface ApiFetch {
  fetch: typeof fetch;
  /** The innermost transformer of the bot's API clients; see the module documentation. */
  direct(options: DirectOptions): Transformer;
  /** Closes the idle connections; calls in flight finish on theirs, which then close. */
  close(): void;
}

/** How often idle connections are looked at (at most; a shorter idle time, as often). */
const SWEEP_MS = 5_000;
/** Idle connections kept per server; more are closed. */
const MAX_IDLE = 128;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Header values that can be written as they are (and are as long in bytes as in characters). */
const PLAIN_VALUE = /^[\x20-\x7e]*$/;
const SKIPPED = new Set(["host", "content-length", "connection", "transfer-encoding"]);

/** A new client; see the module documentation. */
export function apiFetch(options: ApiFetchOptions = {}): ApiFetch {
  /** Idle connections by origin, the longest idle first (a call takes the last). */
  const idle = new Map<string, Connection[]>();
  let closed = false;
  const idleMs = options.idleMs ?? 30_000;
  /** Closes connections idle for `idleMs`; runs only while some are idle. */
  let sweeper: ReturnType<typeof setInterval> | undefined;

  const forget = (connection: Connection) => {
    for (const list of idle.values()) {
      const at = list.indexOf(connection);
      if (at >= 0) return void list.splice(at, 1);
    }
  };

  const sweep = () => {
    const oldest = performance.now() - idleMs;
    let left = 0;
    for (const list of idle.values()) {
      while (list.length > 0 && list[0]!.idleSince <= oldest) list.shift()!.close();
      left += list.length;
    }
    if (left > 0) return;
    clearInterval(sweeper);
    sweeper = undefined;
  };

  const release = (origin: string, connection: Connection) => {
    const list = idle.get(origin) ?? [];
    if (closed || list.length >= MAX_IDLE) return connection.close();
    list.push(connection);
    idle.set(origin, list);
    // One timer for the pool, not one per call.
    connection.idle(forget);
    if (sweeper !== undefined) return;
    sweeper = setInterval(sweep, Math.min(SWEEP_MS, idleMs));
    Deno.unrefTimer(sweeper);
  };

  /** A new connection to `url`'s server, within `timeoutMs` if above 0 (a {@link Timeout}). */
  const open = async (url: URL, signal: AbortSignal | null, timeoutMs: number) => {
    if (timeoutMs <= 0) return await Connection.open(url, signal);
    // Only when connecting: a server that never completes the handshake counts against the call.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Timeout("the call timed out")), timeoutMs);
    try {
      return await Connection.open(
        url,
        signal ? AbortSignal.any([signal, controller.signal]) : controller.signal,
      );
    } finally {
      clearTimeout(timer);
    }
  };

  /**
   * One exchange on an idle connection to `url`'s server, or a new one; `timeoutMs` (when above
   * 0) covers both the connecting and the exchange.
   */
  const exchange = async (
    url: URL,
    origin: string,
    request: Uint8Array,
    signal: AbortSignal | null,
    timeoutMs: number,
  ): Promise<ParsedResponse> => {
    signal?.throwIfAborted();
    const started = performance.now();
    let connection = idle.get(origin)?.pop();
    connection ??= await open(url, signal, timeoutMs);
    const left = timeoutMs > 0 ? Math.max(1, timeoutMs - (performance.now() - started)) : 0;
    const response = await connection.exchange(request, signal, left);
    if (response.keepAlive) release(origin, connection);
    else connection.close();
    return response;
  };

  const send = async (
    url: URL,
    request: Uint8Array,
    signal: AbortSignal | null,
  ): Promise<Response> => {
    // grammY times the call itself, through `signal`.
    const response = await exchange(url, `${url.protocol}//${url.host}`, request, signal, 0);
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

  const direct = (bot: DirectOptions): Transformer => {
    const root = new URL(bot.apiRoot);
    // Proxied, or a root this client cannot speak to: every call takes grammY's path.
    if (options.viaFetch || (root.protocol !== "https:" && root.protocol !== "http:")) {
      return (prev, method, payload, signal) => prev(method, payload, signal);
    }
    const origin = `${root.protocol}//${root.host}`;
    const path = `${root.pathname.replace(/\/$/, "")}/bot${bot.token}/`;
    const headers = `\r\nhost: ${root.host}\r\ncontent-type: application/json\r\ncontent-length: `;
    const timeoutMs = bot.timeoutSeconds * 1000;
    const call = async (method: string, payload: unknown) => {
      const body = encoder.encode(JSON.stringify(payload ?? {}, withoutNulls));
      const request = joined(
        `POST ${path}${method} HTTP/1.1${headers}${body.length}\r\nconnection: keep-alive\r\n\r\n`,
        body,
      );
      try {
        const response = await exchange(root, origin, request, null, timeoutMs);
        return JSON.parse(decoder.decode(response.body));
      } catch (error) {
        if (error instanceof Timeout) {
          throw new HttpError(
            `Network request for '${method}' failed!`,
            new Error(`Request to '${method}' timed out after ${bot.timeoutSeconds} seconds`),
          );
        }
        throw new HttpError(`Network request for '${method}' failed!`, error);
      }
    };
    return (prev, method, payload, signal) => {
      if (signal !== undefined || bot.webhookReply(method) || hasFile(payload)) {
        return prev(method, payload, signal);
      }
      return call(method, payload) as ReturnType<typeof prev>;
    };
  };

  return {
    fetch: fetchFn as typeof fetch,
    direct,
    close() {
      closed = true;
      clearInterval(sweeper);
      sweeper = undefined;
      for (const list of idle.values()) for (const connection of list.splice(0)) connection.close();
    },
  };
}

/** grammY's JSON body leaves out what is null or undefined. */
function withoutNulls(_key: string, value: unknown): unknown {
  return value ?? undefined;
}

/** grammY's test for a call that must go as a multipart upload. */
function hasFile(payload: unknown): boolean {
  if (payload instanceof InputFile) return true;
  if (typeof payload !== "object" || payload === null) return false;
  for (const value of Object.values(payload)) {
    if (Array.isArray(value) ? value.some(hasFile) : value instanceof InputFile || hasFile(value)) {
      return true;
    }
  }
  return false;
}

/** `head` (ASCII) and `body` as one buffer. */
function joined(head: string, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(head.length + body.length);
  encoder.encodeInto(head, bytes);
  bytes.set(body, head.length);
  return bytes;
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
  return joined(`${head}content-length: ${body.length}\r\nconnection: keep-alive\r\n\r\n`, body);
}

function headerEntries(headers: HeadersInit | undefined): Iterable<[string, string]> {
  if (headers === undefined) return [];
  if (headers instanceof Headers || Array.isArray(headers)) {
    return headers as Iterable<[string, string]>;
  }
  return Object.entries(headers);
}
