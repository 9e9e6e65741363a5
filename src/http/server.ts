/**
 * A small, strict HTTP/1.1 server over `Deno.listen` for the health, metrics and webhook
 * endpoints. `Deno.serve` has no read or idle timeouts and no connection cap: idle sockets
 * exhaust the descriptors and its listener dies for good. This one bounds every phase of a
 * connection in time and memory, caps connections (evicting idle ones first) and keeps
 * accepting through EMFILE. It is an origin server only: no proxying, no upgrades, bodies
 * read whole (they are small here).
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

/** Options of {@link serveHttp}. */
export interface ServeHttpOptions {
  /** The address to listen on. @default "0.0.0.0" */
  hostname?: string;
  /** The port to listen on; 0 picks a free one. @default 8000 */
  port?: number;
  /** Answers each request. */
  handler: ServeHandler;
  /** The response when the handler throws. @default a logged 500 "internal error" */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Connections open at once; beyond it idle ones are evicted, else 503. @default 256 */
  maxConnections?: number;
  /** The whole head must arrive this soon after the accept or a kept-alive request's first byte. @default 10_000 */
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

/** A running server from {@link serveHttp}. */
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
   * `timeoutMs`, then closes the rest. Calling it again returns the same promise.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** The listener stopped while the server was not shutting down. */
export class ListenerStoppedError extends Error {
  constructor(options?: ErrorOptions) {
    super("the HTTP listener stopped", options);
    this.name = "ListenerStoppedError";
  }
}

/** Default limits: generous for the bot's clients (Telegram, probes, Prometheus). */
const DEFAULTS = {
  hostname: "0.0.0.0",
  port: 8000,
  maxConnections: 256,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
  writeTimeoutMs: 30_000,
  evictGraceMs: 500,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 1024 * 1024,
};

type Limits = typeof DEFAULTS;

const realClock: ServerClock = {
  now: () => performance.now(),
  schedule(fn, ms) {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
};

/** Starts a server; throws like `Deno.listen` if the address cannot be listened on. */
export function serveHttp(options: ServeHttpOptions): HttpServer {
  return new Server(options);
}

type Bytes = Uint8Array<ArrayBuffer>;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
const EMPTY = new Uint8Array(0);
/** The read buffer starts this small and grows up to the head limit when a head needs it. */
const INITIAL_READ_BYTES = 4096;
/** A body buffer starts at most this big, whatever the declared length: memory follows bytes received. */
const INITIAL_BODY_BYTES = 16 * 1024;
/** Longest chunk-size line, extensions included. */
const MAX_CHUNK_LINE = 1024;
/** How long a closing connection drains what the client still sends. */
const LINGER_MS = 1000;
const LINGER_BYTES = 64 * 1024;
/** Idle connections closed per failed accept when descriptors or memory ran out. */
const EVICT_ON_ERROR = 8;
const MIN_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;
/** A repeated warning (accept errors, the cap) is written at most once per kind this often. */
const WARN_INTERVAL_MS = 10_000;

/** tchar of RFC 9110 §5.6.2: what a method or a field name is made of. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?$/;

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  417: "Expectation Failed",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** Set by the server, so never copied from the handler's response. */
const OWN_HEADERS = new Set(["connection", "keep-alive", "content-length", "transfer-encoding"]);

/** A request the server refuses itself; the connection closes after the answer. */
class Refusal {
  constructor(readonly status: number, readonly reason: string) {}
}

/** The connection ended (closed by the client, timed out, evicted): nothing more to say. */
class Closed {}
const CLOSED = new Closed();

function refuse(status: number, reason: string): never {
  throw new Refusal(status, reason);
}

type Phase = "head" | "body" | "handling" | "writing" | "idle" | "closing";

/** The parsed request head. */
interface Head {
  method: string;
  url: string;
  minor: number;
  headers: [string, string][];
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
  expectContinue: boolean;
}

class Server implements HttpServer {
  readonly addr: Deno.NetAddr;
  readonly finished: Promise<void>;
  readonly stats: HttpServerStats = {
    open: 0,
    accepted: 0,
    evicted: 0,
    refused: 0,
    timeouts: { header: 0, idle: 0, body: 0, write: 0 },
    acceptErrors: 0,
    requests: 0,
    rejected: 0,
    bytesReceived: 0,
    bufferedBytes: 0,
  };
  readonly limits: Limits;
  readonly clock: ServerClock;
  readonly handler: ServeHandler;
  readonly onError: (error: unknown) => Response | Promise<Response>;
  readonly log: ServerLog | undefined;
  /** Used as the URL's authority when a request has no Host (HTTP/1.0). */
  readonly authority: string;
  readonly keepAliveHeader: string;
  /** Capacity of a connection's read buffer, at least what a chunk-size line needs. */
  readonly maxReadBytes: number;
  readonly sweepMs: number;
  /** Set when no new request may start: shutting down or the listener died. */
  closing = false;
  /** Connections admitted and not closed; closed ones linger in the set until their loop ends. */
  live = 0;
  readonly #listener: AcceptSource;
  readonly #connections = new Set<Connection>();
  readonly #refusals = new Set<Promise<void>>();
  readonly #warned = new Map<string, { at: number; suppressed: number }>();
  readonly #finished = Promise.withResolvers<void>();
  #stopped: Promise<void> | null = null;
  #cancelSweep: () => void = () => {};
  #cancelSleep: (() => void) | null = null;
  #accepting: Promise<void>;

  constructor(options: ServeHttpOptions) {
    this.limits = {
      hostname: options.hostname ?? DEFAULTS.hostname,
      port: options.port ?? DEFAULTS.port,
      maxConnections: Math.max(1, options.maxConnections ?? DEFAULTS.maxConnections),
      headerTimeoutMs: options.headerTimeoutMs ?? DEFAULTS.headerTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      bodyTimeoutMs: options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs ?? DEFAULTS.writeTimeoutMs,
      evictGraceMs: options.evictGraceMs ?? DEFAULTS.evictGraceMs,
      maxHeaderBytes: options.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    };
    this.clock = options.clock ?? realClock;
    this.handler = options.handler;
    this.log = options.log;
    this.onError = options.onError ?? ((error) => {
      this.log?.warning("HTTP handler failed: {message}", { message: messageOf(error), error });
      return new Response("internal error\n", {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    });
    this.maxReadBytes = Math.max(this.limits.maxHeaderBytes, MAX_CHUNK_LINE);
    this.keepAliveHeader = `keep-alive: timeout=${
      Math.floor(this.limits.idleTimeoutMs / 1000)
    }\r\n`;
    const { headerTimeoutMs, idleTimeoutMs, bodyTimeoutMs, writeTimeoutMs } = this.limits;
    const shortest = Math.min(headerTimeoutMs, idleTimeoutMs, bodyTimeoutMs, writeTimeoutMs);
    // A deadline is enforced at most a quarter late; one sweep costs a pass over ≤ the cap.
    this.sweepMs = Math.min(1000, Math.max(5, Math.floor(shortest / 4)));
    const listen = options.listen ?? ((o) => Deno.listen({ ...o, transport: "tcp" }));
    this.#listener = listen({ hostname: this.limits.hostname, port: this.limits.port });
    this.addr = this.#listener.addr as Deno.NetAddr;
    this.authority = this.addr.hostname.includes(":")
      ? `[${this.addr.hostname}]:${this.addr.port}`
      : `${this.addr.hostname}:${this.addr.port}`;
    this.finished = this.#finished.promise;
    // Whoever does not await `finished` must not get an unhandled rejection from it.
    this.finished.catch(() => {});
    this.#scheduleSweep();
    this.#accepting = this.#acceptLoop();
  }

  get connections(): number {
    return this.#connections.size;
  }

  shutdown(timeoutMs = 10_000): Promise<void> {
    return this.#stop(timeoutMs, null);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown(0);
  }

  /** Rate-limited warning: once per key per {@link WARN_INTERVAL_MS}, with a count of the rest. */
  warnOnce(key: string, message: string, properties: Record<string, unknown>): void {
    const now = this.clock.now();
    const seen = this.#warned.get(key);
    if (seen && now - seen.at < WARN_INTERVAL_MS) {
      seen.suppressed++;
      return;
    }
    this.#warned.set(key, { at: now, suppressed: 0 });
    this.log?.warning(message, { ...properties, suppressed: seen?.suppressed ?? 0 });
  }

  #stop(timeoutMs: number, failure: Error | null): Promise<void> {
    this.#stopped ??= (async () => {
      this.closing = true;
      try {
        this.#listener.close();
      } catch {
        // Already closed: that is how a dead listener is noticed.
      }
      this.#cancelSleep?.();
      const closeAll = () => {
        for (const connection of this.#connections) connection.close();
      };
      const cancelForce = timeoutMs > 0 ? this.clock.schedule(closeAll, timeoutMs) : closeAll;
      if (timeoutMs <= 0) closeAll();
      for (const connection of this.#connections) {
        if (connection.idle) connection.close();
      }
      // Connections are only added by the accept loop; once it has ended, the set only shrinks.
      await this.#accepting;
      await Promise.all([...this.#connections].map((connection) => connection.done));
      await Promise.all(this.#refusals);
      cancelForce();
      this.#cancelSweep();
      if (failure) this.#finished.reject(failure);
      else this.#finished.resolve();
    })();
    return this.#stopped;
  }

  #scheduleSweep(): void {
    this.#cancelSweep = this.clock.schedule(() => {
      const now = this.clock.now();
      for (const connection of this.#connections) {
        if (now >= connection.deadline) connection.expire();
      }
      this.#scheduleSweep();
    }, this.sweepMs);
  }

  async #acceptLoop(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!this.closing) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.closing) return;
        if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
          // Someone closed the listener: the program must learn that it serves nothing now.
          void this.#stop(0, new ListenerStoppedError({ cause: error }));
          return;
        }
        this.stats.acceptErrors++;
        const kind = errorKind(error);
        this.warnOnce(`accept ${kind}`, "HTTP accept failed ({kind}): {message}", {
          kind,
          message: messageOf(error),
          open: this.#connections.size,
        });
        // The peer gave up before the accept: nothing is short, try the next one.
        if (error instanceof Deno.errors.ConnectionAborted || kind === "ECONNABORTED") continue;
        if (error instanceof Deno.errors.ConnectionReset || kind === "ECONNRESET") continue;
        // Out of descriptors or memory. Verified on Deno 2.9.6 (prlimit --nofile=64): the
        // listener accepts again once descriptors are free, so it is kept, not re-created.
        // Idle connections are closed to free some, a few at a time so that a backlog of
        // newcomers drains quickly; the closes complete on the next turn of the event loop,
        // hence the short pause rather than an immediate retry.
        let freed = false;
        for (let i = 0; i < EVICT_ON_ERROR; i++) freed = this.evictOne() || freed;
        // Otherwise wait, but no longer than until a connection leaves its grace period.
        await this.#sleep(freed ? 1 : Math.min(backoff, this.#untilEvictable()));
        if (!freed) backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      backoff = MIN_BACKOFF_MS;
      if (this.closing) {
        closeQuietly(conn);
        return;
      }
      this.#admit(conn);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const cancel = this.clock.schedule(resolve, ms);
      this.#cancelSleep = () => {
        cancel();
        resolve();
      };
    }).finally(() => this.#cancelSleep = null);
  }

  #admit(conn: Deno.Conn): void {
    this.stats.accepted++;
    if (this.live >= this.limits.maxConnections && !this.evictOne()) {
      this.stats.refused++;
      this.warnOnce("cap", "HTTP connection cap of {cap} reached, none idle: refusing with 503", {
        cap: this.limits.maxConnections,
      });
      const bytes = serializeResponse(503, "", [], "server busy\n", false, this);
      const refusal = conn.write(bytes).then(() => closeQuietly(conn), () => closeQuietly(conn))
        .finally(() => this.#refusals.delete(refusal));
      this.#refusals.add(refusal);
      return;
    }
    try {
      (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    } catch {
      // Only latency is at stake.
    }
    const connection = new Connection(this, conn);
    this.live++;
    this.#connections.add(connection);
    this.stats.open = this.#connections.size;
    connection.done = connection.run().finally(() => {
      this.#connections.delete(connection);
      this.stats.open = this.#connections.size;
    });
  }

  /** Milliseconds until a connection now in its grace period may be evicted. */
  #untilEvictable(): number {
    const now = this.clock.now();
    let soonest = Infinity;
    for (const connection of this.#connections) {
      if (connection.phase === "head") {
        soonest = Math.min(soonest, connection.since + this.limits.evictGraceMs - now);
      }
    }
    return Math.max(1, soonest);
  }

  /** Closes the oldest idle connection; false when none may be evicted. */
  evictOne(): boolean {
    const now = this.clock.now();
    let victim: Connection | null = null;
    let oldest = Infinity;
    for (const connection of this.#connections) {
      const since = connection.evictableSince(now, this.limits.evictGraceMs);
      if (since !== null && since < oldest) {
        oldest = since;
        victim = connection;
      }
    }
    if (!victim) return false;
    this.stats.evicted++;
    victim.close();
    return true;
  }
}

/** One client connection: reads requests one at a time and answers them in order. */
class Connection {
  readonly #server: Server;
  readonly #conn: Deno.Conn;
  readonly #info: ServeInfo;
  /** Stops waiting for the handler when the connection closes; set while it runs. */
  #stopWaiting: (() => void) | null = null;
  done: Promise<void> = Promise.resolve();
  phase: Phase = "head";
  /** When the current phase began (for a first head: the accept). */
  since: number;
  /** When the sweep closes the connection; Infinity while the handler runs. */
  deadline: number;
  /** Whether a byte of the current head has arrived; a head phase without one is idle. */
  #started = false;
  #isClosed = false;
  /** Timed out with a 408 on its way: whatever the client sends now is ignored. */
  #expired = false;
  #buf: Bytes;
  #start = 0;
  #end = 0;

  constructor(server: Server, conn: Deno.Conn) {
    this.#server = server;
    this.#conn = conn;
    this.#info = { remoteAddr: conn.remoteAddr as Deno.NetAddr };
    this.since = server.clock.now();
    this.deadline = this.since + server.limits.headerTimeoutMs;
    this.#buf = new Uint8Array(Math.min(INITIAL_READ_BYTES, server.maxReadBytes));
    server.stats.bufferedBytes += this.#buf.length;
  }

  /** Waiting for a request without having received any of it: safe to close at shutdown. */
  get idle(): boolean {
    return this.phase === "idle" || this.phase === "closing" ||
      (this.phase === "head" && !this.#started);
  }

  /** Where this connection ranks for eviction (older first), or null if it may not be evicted. */
  evictableSince(now: number, graceMs: number): number | null {
    if (this.#isClosed) return null;
    if (this.phase === "closing") return -Infinity;
    if (this.phase === "idle") return this.since;
    if (this.phase === "head" && now - this.since >= graceMs) return this.since;
    return null;
  }

  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#server.live--;
    closeQuietly(this.#conn);
    this.#stopWaiting?.();
  }

  /** Called by the sweep once the deadline has passed. */
  expire(): void {
    if (this.#isClosed) return;
    const stats = this.#server.stats;
    switch (this.phase) {
      case "idle":
        stats.timeouts.idle++;
        return this.close();
      case "writing":
        stats.timeouts.write++;
        return this.close();
      case "closing":
        return this.close();
      case "handling":
        return;
      case "head":
        stats.timeouts.header++;
        // A client that never sent a byte is not waiting for an answer.
        if (!this.#started) return this.close();
        break;
      case "body":
        stats.timeouts.body++;
    }
    // Tell a slow client why; the read in progress ends when the write closes the socket.
    this.#expired = true;
    this.phase = "closing";
    this.deadline = this.#server.clock.now() + LINGER_MS;
    const bytes = serializeResponse(408, "", [], "request timeout\n", false, this.#server);
    this.#conn.write(bytes).then(() => this.close(), () => this.close());
  }

  async run(): Promise<void> {
    try {
      await this.#serve();
    } catch (error) {
      if (!isConnectionError(error)) {
        this.#server.log?.warning("HTTP connection failed: {message}", {
          message: messageOf(error),
          error,
        });
      }
    } finally {
      this.close();
      this.#server.stats.bufferedBytes -= this.#buf.length;
    }
  }

  async #serve(): Promise<void> {
    const server = this.#server;
    while (!this.#isClosed) {
      let head: Head | null;
      let body: Bytes;
      try {
        head = await this.#readHead();
        if (head === null) return;
        this.#enter("body", server.limits.bodyTimeoutMs);
        if (head.expectContinue && (head.chunked || head.contentLength > 0)) {
          await this.#write(CONTINUE);
        }
        body = head.chunked ? await this.#readChunked() : await this.#readFixed(head.contentLength);
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        return await this.#refuse(error);
      }
      this.#enter("handling", Infinity);
      // The Request copies the body now, so a view of the read buffer is safe to pass.
      let request: Request;
      try {
        request = new Request(head.url, {
          method: head.method,
          headers: head.headers,
          body: head.method === "GET" || head.method === "HEAD" ? null : body,
        });
      } catch {
        return await this.#refuse(new Refusal(400, "invalid request target"));
      }
      server.stats.requests++;
      // A fresh promise per request: racing one long-lived promise would pile up reactions.
      const closed = Promise.withResolvers<null>();
      this.#stopWaiting = () => closed.resolve(null);
      const answer = await Promise.race([this.#respond(request), closed.promise]);
      this.#stopWaiting = null;
      if (answer === null) return;
      const { response, bytes } = answer;
      const keepAlive = head.keepAlive && !server.closing &&
        !hasToken(response.headers.get("connection"), "close");
      this.#enter("writing", server.limits.writeTimeoutMs);
      const headers = [...response.headers].filter(([name]) => !OWN_HEADERS.has(name));
      const sendBody = head.method !== "HEAD";
      await this.#write(
        serializeResponse(response.status, response.statusText, headers, bytes, keepAlive, server, {
          sendBody,
          http10: head.minor === 0,
        }),
      );
      if (!keepAlive) return await this.#linger();
      if (this.#start < this.#end) {
        // A pipelined request is already here: its header time starts now.
        this.#enter("head", server.limits.headerTimeoutMs);
        this.#started = true;
      } else {
        this.#enter("idle", server.limits.idleTimeoutMs);
        this.#started = false;
      }
    }
  }

  /** Answers a request the server refuses itself, then closes: its body may be unread. */
  async #refuse(refusal: Refusal): Promise<void> {
    this.#server.stats.rejected++;
    this.#enter("writing", this.#server.limits.writeTimeoutMs);
    const body = `${refusal.reason}\n`;
    await this.#write(serializeResponse(refusal.status, "", [], body, false, this.#server));
    await this.#linger();
  }

  async #respond(request: Request): Promise<{ response: Response; bytes: Bytes }> {
    try {
      const response = await this.#server.handler(request, this.#info);
      if (!(response instanceof Response)) {
        throw new TypeError(`the handler returned ${typeof response}, not a Response`);
      }
      return { response, bytes: await bodyOf(response) };
    } catch (error) {
      try {
        const response = await this.#server.onError(error);
        if (response instanceof Response) return { response, bytes: await bodyOf(response) };
      } catch (failure) {
        this.#server.log?.warning("HTTP onError failed: {message}", {
          message: messageOf(failure),
          error: failure,
        });
      }
      return { response: new Response(null, { status: 500 }), bytes: INTERNAL_ERROR };
    }
  }

  #enter(phase: Phase, timeoutMs: number): void {
    this.phase = phase;
    this.since = this.#server.clock.now();
    this.deadline = this.since + timeoutMs;
  }

  /** Reads into `target`; throws {@link CLOSED} at the end of the stream or once closed. */
  async #read(target: Bytes): Promise<number> {
    const n = await this.#conn.read(target);
    if (n === null || this.#isClosed || this.#expired) throw CLOSED;
    this.#server.stats.bytesReceived += n;
    return n;
  }

  /** Reads more into the read buffer, making room first; throws {@link CLOSED} at the end. */
  async #fill(): Promise<void> {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        // Callers check their limits first, so the buffer is below maxReadBytes here.
        if (this.#buf.length >= this.#server.maxReadBytes) throw new Error("read buffer full");
        const grown = new Uint8Array(Math.min(this.#buf.length * 2, this.#server.maxReadBytes));
        grown.set(this.#buf.subarray(0, this.#end));
        this.#server.stats.bufferedBytes += grown.length - this.#buf.length;
        this.#buf = grown;
      }
    }
    this.#end += await this.#read(this.#buf.subarray(this.#end));
  }

  /** The next request head, or null when the client closed between requests. */
  async #readHead(): Promise<Head | null> {
    const server = this.#server;
    const buf = () => this.#buf;
    let scanned = 0;
    for (;;) {
      // RFC 9112 §2.2: ignore empty lines before a request line (some clients add one after a body).
      while (
        this.#end - this.#start >= 2 && buf()[this.#start] === CR && buf()[this.#start + 1] === LF
      ) {
        this.#start += 2;
        scanned = Math.max(0, scanned - 2);
      }
      const end = scanHead(buf(), this.#start, this.#start + scanned, this.#end);
      if (end >= 0) {
        if (end - this.#start > server.limits.maxHeaderBytes) {
          refuse(431, "request head too large");
        }
        const head = parseHead(buf(), this.#start, end, server);
        this.#start = end;
        return head;
      }
      if (this.#end - this.#start >= server.limits.maxHeaderBytes) {
        refuse(431, "request head too large");
      }
      scanned = this.#end - this.#start;
      try {
        await this.#fill();
      } catch (error) {
        // The client closed, or was closed, between requests or before finishing a head.
        if (error === CLOSED) return null;
        throw error;
      }
      if (!this.#started) {
        this.#started = true;
        // A kept-alive connection's header time runs from the first byte of its request.
        if (this.phase === "idle") this.#enter("head", server.limits.headerTimeoutMs);
      }
    }
  }

  async #readFixed(length: number): Promise<Bytes> {
    if (length === 0) return EMPTY;
    const available = this.#end - this.#start;
    if (available >= length) {
      const body = this.#buf.subarray(this.#start, this.#start + length);
      this.#start += length;
      return body;
    }
    const body = new BodyBuffer(
      this.#server.stats,
      Math.min(length, Math.max(INITIAL_BODY_BYTES, available)),
      length,
    );
    try {
      await this.#readInto(body, length);
      return body.bytes();
    } finally {
      body.release();
    }
  }

  /** Moves `length` body bytes into `body`: the buffered ones, then straight from the socket. */
  async #readInto(body: BodyBuffer, length: number): Promise<void> {
    const buffered = Math.min(length, this.#end - this.#start);
    body.append(this.#buf.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let missing = length - buffered;
    while (missing > 0) {
      // Reading no further than the body keeps the next pipelined request in the socket.
      const n = await this.#read(body.spare(missing));
      body.commit(n);
      missing -= n;
    }
  }

  async #readChunked(): Promise<Bytes> {
    const { maxBodyBytes, maxHeaderBytes } = this.#server.limits;
    const body = new BodyBuffer(
      this.#server.stats,
      Math.min(INITIAL_BODY_BYTES, maxBodyBytes),
      maxBodyBytes,
    );
    try {
      for (;;) {
        const [start, end] = await this.#readLine(MAX_CHUNK_LINE);
        const size = parseChunkSize(this.#buf, start, end);
        if (size === 0) break;
        if (body.length + size > maxBodyBytes) refuse(413, "request body too large");
        await this.#readInto(body, size);
        const [crlfStart, crlfEnd] = await this.#readLine(2);
        if (crlfStart !== crlfEnd) refuse(400, "chunk data longer than its size");
      }
      // Trailer fields are read and dropped: nothing here uses them.
      let trailerBytes = 0;
      for (;;) {
        const [start, end] = await this.#readLine(maxHeaderBytes - trailerBytes);
        if (start === end) break;
        if (this.#buf[start] === SP || this.#buf[start] === HTAB) {
          refuse(400, "obsolete line folding");
        }
        trailerBytes += end - start + 2;
        if (trailerBytes > maxHeaderBytes) refuse(431, "trailer fields too large");
      }
      return body.bytes();
    } finally {
      body.release();
    }
  }

  /** The next CRLF-terminated line as [start, end) in the read buffer, valid until the next read. */
  async #readLine(max: number): Promise<[number, number]> {
    let from = 0;
    for (;;) {
      const lf = indexOf(this.#buf, LF, this.#start + from, this.#end);
      if (lf >= 0) {
        const start = this.#start;
        if (lf === start || this.#buf[lf - 1] !== CR) refuse(400, "bare LF");
        if (indexOf(this.#buf, CR, start, lf - 1) >= 0) refuse(400, "bare CR");
        this.#start = lf + 1;
        return [start, lf - 1];
      }
      from = this.#end - this.#start;
      if (from >= max) refuse(400, "line too long");
      await this.#fill();
    }
  }

  async #write(bytes: Bytes): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  /**
   * Ends the connection after its last response. Closing at once would reset the connection
   * if request bytes were still unread, and a reset can destroy the response in flight
   * (RFC 9112 §9.6); so the server half-closes, drains a little, then closes.
   */
  async #linger(): Promise<void> {
    this.#enter("closing", LINGER_MS);
    try {
      await this.#conn.closeWrite();
      let drained = 0;
      while (drained < LINGER_BYTES) drained += await this.#read(this.#buf);
    } catch {
      // The client closed, or the linger time ran out: either way, done.
    }
  }
}

/** A body buffer that grows with the bytes received, never past `limit`. */
class BodyBuffer {
  #bytes: Bytes;
  length = 0;

  constructor(readonly stats: HttpServerStats, initial: number, readonly limit: number) {
    this.#bytes = new Uint8Array(initial);
    stats.bufferedBytes += initial;
  }

  append(bytes: Bytes): void {
    this.#reserve(this.length + bytes.length);
    this.#bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Free space to read up to `wanted` bytes into, grown by doubling when full. */
  spare(wanted: number): Bytes {
    this.#reserve(this.length + 1);
    return this.#bytes.subarray(this.length, Math.min(this.#bytes.length, this.length + wanted));
  }

  commit(n: number): void {
    this.length += n;
  }

  /** The bytes so far: a view, which the Request constructor copies. */
  bytes(): Bytes {
    return this.#bytes.subarray(0, this.length);
  }

  release(): void {
    this.stats.bufferedBytes -= this.#bytes.length;
    this.#bytes = EMPTY;
  }

  #reserve(needed: number): void {
    let capacity = this.#bytes.length;
    if (capacity >= needed) return;
    // Doubling keeps memory below twice what was received; the limit caps the last step.
    while (capacity < needed) capacity = Math.min(this.limit, Math.max(1, capacity * 2));
    const grown = new Uint8Array(capacity);
    grown.set(this.#bytes.subarray(0, this.length));
    this.stats.bufferedBytes += capacity - this.#bytes.length;
    this.#bytes = grown;
  }
}

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const INTERNAL_ERROR = new TextEncoder().encode("internal error\n");

/**
 * Where the head that starts at `start` ends (after its blank line), or -1 if it has not
 * arrived yet. Only CRLF line endings are accepted: a bare LF or CR is how requests get
 * smuggled past a proxy that reads lines differently.
 */
function scanHead(buf: Bytes, start: number, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const byte = buf[i];
    if (byte === LF) {
      if (i === start || buf[i - 1] !== CR) refuse(400, "bare LF in the request head");
      if (i - 3 >= start && buf[i - 2] === LF) return i + 1;
    } else if (i > start && buf[i - 1] === CR) {
      refuse(400, "bare CR in the request head");
    }
  }
  return -1;
}

/** Parses a complete head; every line already ends in CRLF. */
function parseHead(buf: Bytes, start: number, end: number, server: Server): Head {
  const lineEnd = buf.indexOf(CR, start);
  // METHOD SP request-target SP HTTP/1.x, with single spaces.
  let i = start;
  while (i < lineEnd && TCHAR[buf[i]!]) i++;
  if (i === start || buf[i] !== SP) refuse(400, "malformed request line");
  const method = latin1(buf, start, i);
  const targetStart = ++i;
  while (i < lineEnd && buf[i]! > SP && buf[i]! < 0x7f) i++;
  if (i === targetStart || buf[i] !== SP) refuse(400, "malformed request line");
  const target = latin1(buf, targetStart, i);
  const version = latin1(buf, i + 1, lineEnd);
  if (!/^HTTP\/1\.[0-9]$/.test(version)) {
    if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) refuse(505, "HTTP version not supported");
    refuse(400, "malformed request line");
  }
  const minor = version === "HTTP/1.0" ? 0 : 1;
  if (/^(?:CONNECT|TRACE|TRACK)$/i.test(method)) refuse(501, "method not implemented");

  const headers: [string, string][] = [];
  const contentLengths: string[] = [];
  const transferEncodings: string[] = [];
  const hosts: string[] = [];
  const connection: string[] = [];
  const expect: string[] = [];
  for (let line = lineEnd + 2; line < end - 2;) {
    const eol = buf.indexOf(CR, line);
    if (buf[line] === SP || buf[line] === HTAB) refuse(400, "obsolete line folding");
    let colon = line;
    while (colon < eol && TCHAR[buf[colon]!]) colon++;
    if (colon === line || buf[colon] !== COLON) refuse(400, "invalid header field name");
    let valueStart = colon + 1;
    while (valueStart < eol && (buf[valueStart] === SP || buf[valueStart] === HTAB)) valueStart++;
    let valueEnd = eol;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) {
      valueEnd--;
    }
    for (let k = valueStart; k < valueEnd; k++) {
      const byte = buf[k]!;
      if ((byte < SP && byte !== HTAB) || byte === 0x7f) refuse(400, "invalid header field value");
    }
    const name = latin1(buf, line, colon).toLowerCase();
    const value = latin1(buf, valueStart, valueEnd);
    headers.push([name, value]);
    switch (name) {
      case "content-length":
        contentLengths.push(value);
        break;
      case "transfer-encoding":
        transferEncodings.push(value);
        break;
      case "host":
        hosts.push(value);
        break;
      case "connection":
        connection.push(value);
        break;
      case "expect":
        expect.push(value);
    }
    line = eol + 2;
  }

  // Framing (RFC 9112 §6.3), strictly: anything a proxy in front could read differently is refused.
  let contentLength = 0;
  let chunked = false;
  if (transferEncodings.length > 0) {
    if (contentLengths.length > 0) refuse(400, "both Content-Length and Transfer-Encoding");
    if (minor === 0) refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (transferEncodings.length > 1 || transferEncodings[0]!.toLowerCase() !== "chunked") {
      refuse(400, "unsupported Transfer-Encoding");
    }
    chunked = true;
  } else if (contentLengths.length > 0) {
    // Even identical repeats are refused: no legitimate client sends two.
    if (contentLengths.length > 1) refuse(400, "more than one Content-Length");
    const value = contentLengths[0]!;
    if (!/^[0-9]{1,15}$/.test(value)) refuse(400, "invalid Content-Length");
    contentLength = Number(value);
    if (contentLength > server.limits.maxBodyBytes) refuse(413, "request body too large");
  }

  if (hosts.length > 1 || (minor === 1 && hosts.length === 0)) {
    refuse(400, "missing or repeated Host");
  }
  const host = hosts[0];
  if (host !== undefined && !HOST.test(host)) refuse(400, "invalid Host");
  let url: string;
  if (target.startsWith("/")) url = `http://${host ?? server.authority}${target}`;
  else if (/^https?:\/\//i.test(target)) url = target;
  else refuse(400, "unsupported request target");

  let expectContinue = false;
  // RFC 9110 §10.1.1: an HTTP/1.0 expectation is ignored.
  if (expect.length > 0 && minor === 1) {
    if (expect.length > 1 || expect[0]!.toLowerCase() !== "100-continue") {
      refuse(417, "expectation failed");
    }
    expectContinue = true;
  }
  const tokens = connection.join(",");
  const keepAlive = minor === 1
    ? !hasToken(tokens, "close")
    : hasToken(tokens, "keep-alive") && !hasToken(tokens, "close");
  return {
    method,
    url,
    minor,
    headers,
    contentLength,
    chunked,
    keepAlive,
    expectContinue,
  };
}

/** The size of a chunk-size line, its extensions ignored (RFC 9112 §7.1). */
function parseChunkSize(buf: Bytes, start: number, end: number): number {
  let size = 0;
  let i = start;
  for (; i < end; i++) {
    const digit = hexValue(buf[i]!);
    if (digit < 0) break;
    size = size * 16 + digit;
    // Far beyond any body limit; stop before the number loses precision.
    if (size > 2 ** 40) refuse(413, "request body too large");
  }
  if (i === start) refuse(400, "invalid chunk size");
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  if (i < end && buf[i] !== 0x3b) refuse(400, "invalid chunk size");
  for (; i < end; i++) {
    const byte = buf[i]!;
    if ((byte < SP && byte !== HTAB) || byte === 0x7f) refuse(400, "invalid chunk extension");
  }
  return size;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** The first `byte` in `buf[from, end)`, or -1. */
function indexOf(buf: Bytes, byte: number, from: number, end: number): number {
  return buf.subarray(0, end).indexOf(byte, from);
}

/** Bytes as a string, one char per byte: header values may carry obs-text. */
function latin1(buf: Bytes, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i += 4096) {
    text += String.fromCharCode(...buf.subarray(i, Math.min(end, i + 4096)));
  }
  return text;
}

function hasToken(list: string | null, token: string): boolean {
  if (!list) return false;
  return list.split(",").some((item) => item.trim().toLowerCase() === token);
}

async function bodyOf(response: Response): Promise<Bytes> {
  if (response.body === null) return EMPTY;
  return new Uint8Array(await response.arrayBuffer());
}

let dateSecond = -1;
let dateText = "";

/** The Date header's value, formatted at most once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

const encoder = new TextEncoder();

/** One response as bytes: status line, the server's fields, the handler's fields, the body. */
function serializeResponse(
  status: number,
  statusText: string,
  headers: [string, string][],
  body: Bytes | string,
  keepAlive: boolean,
  server: Server,
  options: { sendBody?: boolean; http10?: boolean } = {},
): Bytes {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? statusText}\r\n`;
  if (!headers.some(([name]) => name === "date")) head += `date: ${httpDate()}\r\n`;
  if (typeof body === "string") head += "content-type: text/plain; charset=utf-8\r\n";
  // RFC 9110 §8.6: no Content-Length on 204; on 304 it would have to be the 200's.
  const bodyless = status === 204 || status === 304;
  if (!bodyless) head += `content-length: ${bytes.length}\r\n`;
  if (!keepAlive) head += "connection: close\r\n";
  else {
    if (options.http10) head += "connection: keep-alive\r\n";
    head += server.keepAliveHeader;
  }
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  head += "\r\n";
  const sendBody = (options.sendBody ?? true) && !bodyless;
  const out = new Uint8Array(head.length + (sendBody ? bytes.length : 0));
  // Header values are byte strings: one char, one byte. TextEncoder writes UTF-8, which is
  // the same for ASCII; anything else is written char by char (the body is set after).
  const { read, written } = encoder.encodeInto(head, out);
  if (read !== head.length || written !== head.length) {
    for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
  }
  if (sendBody) out.set(bytes, head.length);
  return out;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** A short name for an error's kind, e.g. `EMFILE`, for counting and rate-limiting. */
function errorKind(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.name : typeof error;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Errors that only mean the connection is gone. */
function isConnectionError(error: unknown): boolean {
  return error === CLOSED || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.TimedOut;
}
