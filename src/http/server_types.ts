/**
 * The types of the HTTP server's public API: its options and what they plug in (handler,
 * log, listener, clock), its counters, and the running server. `server.ts` re-exports them;
 * import them from there.
 *
 * @module
 */

/** What the handler learns about the connection, like `Deno.ServeHandlerInfo`. */
export interface ServeInfo {
  /** The client's address. */
  remoteAddr: Deno.NetAddr;
}

/** A request handler that also gets its connection's information. */
export type ServeHandler = (req: Request, info: ServeInfo) => Promise<Response>;

/** The part of a @logtape/logtape `Logger` the server writes to. */
export interface ServerLog {
  /** Something an operator should look at, e.g. accept errors or the cap being reached. */
  warning(message: string, properties?: Record<string, unknown>): void;
  /** Routine events. */
  info(message: string, properties?: Record<string, unknown>): void;
}

/** What connections are accepted from: a `Deno.Listener`, or a wrapper in tests. */
export interface AcceptSource {
  /** The address listened on. */
  readonly addr: Deno.Addr;
  /** The next connection. */
  accept(): Promise<Deno.Conn>;
  /** Stops listening; a pending `accept` rejects. */
  close(): void;
}

/** Time as the server sees it; tests pass a fake one so that timeouts fire without waiting. */
export interface ServerClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `fn` once after `ms`; the returned function cancels the call. */
  schedule(fn: () => void, ms: number): () => void;
}

/** A request as a {@link DirectRoute} receives it. */
export interface DirectRequest {
  method: string;
  /** The first value of the field `name` (lower case), or null. */
  header(name: string): string | null;
  /**
   * The whole body, already read within the server's size limit and time: a view of the
   * connection's read buffer, valid until the handler's promise settles (copy what outlives it).
   */
  body: Uint8Array;
}

/** What a {@link DirectRoute} answers. */
export interface DirectResponse {
  status: number;
  /** Fields besides those the server writes itself (Content-Length, Connection, …). */
  headers: readonly (readonly [string, string])[];
  body: string;
}

/**
 * One path served without WHATWG `Request` and `Response` objects: the webhook, which every
 * update passes, where building them (and reading their bodies back through streams) cost
 * more than the rest of the request's parsing. Matched when the request-target is exactly
 * `path` (anything else, a query string included, goes to the handler as usual).
 */
export interface DirectRoute {
  path: string;
  handler(request: DirectRequest): Promise<DirectResponse>;
}

/** Options of `serveHttp()`. */
export interface ServeHttpOptions {
  /** The address to listen on. @default "0.0.0.0" */
  hostname?: string;
  /** The port to listen on; 0 picks a free one. @default 8000 */
  port?: number;
  /** Answers each request. */
  handler: ServeHandler;
  /** A path answered by its own handler, before `handler`; see {@link DirectRoute}. */
  direct?: DirectRoute;
  /** The response when the handler throws. @default a logged 500 "internal error" */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Connections open at once; beyond it idle ones are evicted, else 503. @default 256 */
  maxConnections?: number;
  /**
   * The whole head must arrive this soon after the accept, or after the first byte of a
   * kept-alive connection's next request. @default 10_000
   */
  headerTimeoutMs?: number;
  /** A kept-alive connection without a new request is closed after this. @default 30_000 */
  idleTimeoutMs?: number;
  /** The whole body must arrive this soon after the head. @default 30_000 */
  bodyTimeoutMs?: number;
  /** A response must be written (the client must read it) this soon. @default 30_000 */
  writeTimeoutMs?: number;
  /** A connection without a complete head is safe from eviction this long. @default 500 */
  evictGraceMs?: number;
  /** Largest request head (request line and fields); beyond it 431. @default 16_384 */
  maxHeaderBytes?: number;
  /** Largest request body; beyond it 413. @default 1_048_576 */
  maxBodyBytes?: number;
  /** Where accept errors and the cap being reached are reported. @default no logging */
  log?: ServerLog;
  /** Opens the listener. @default Deno.listen */
  listen?: (options: { hostname: string; port: number }) => AcceptSource;
  /** The clock of every timeout, back-off and sweep. @default performance.now and setTimeout */
  clock?: ServerClock;
}

/** Counters for metrics; the server updates them in place. */
export interface HttpServerStats {
  /** Connections open now, lingering ones included. */
  open: number;
  /** Connections accepted since the start. */
  accepted: number;
  /** Idle connections closed to make room for a new one or free descriptors. */
  evicted: number;
  /** Connections turned away with 503 because the cap was reached and none was idle. */
  refused: number;
  /** Connections closed for being too slow, by phase. */
  timeouts: { header: number; idle: number; body: number; write: number };
  /** Failed `accept` calls (EMFILE, ECONNABORTED…). */
  acceptErrors: number;
  /** Requests passed to the handler. */
  requests: number;
  /** Requests refused by the server itself (400, 413, 417, 431, 501, 505). */
  rejected: number;
  /** Bytes read from clients. */
  bytesReceived: number;
  /** Bytes of read and body buffers the server holds now. */
  bufferedBytes: number;
}

/** A running server from `serveHttp()`; `await using` shuts it down at once. */
export interface HttpServer extends AsyncDisposable {
  /** The address listened on, with the port chosen when 0 was asked for. */
  readonly addr: Deno.NetAddr;
  /** Resolves after {@link shutdown}; rejects if the listener stopped for another reason. */
  readonly finished: Promise<void>;
  /** Connections open now. */
  readonly connections: number;
  /** Live counters. */
  readonly stats: Readonly<HttpServerStats>;
  /**
   * Stops accepting, closes idle connections at once, lets requests in progress finish for
   * `timeoutMs` (default 10 s), then closes the rest. Calling it again returns the same
   * promise, which never rejects.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}
