/**
 * A small, strict HTTP/1.1 server over `Deno.listen` for the health, metrics and webhook
 * endpoints. `Deno.serve` has no read or idle timeouts and no connection cap: idle sockets
 * exhaust the descriptors and its listener dies for good. This one bounds every phase of a
 * connection in time and memory, caps connections (evicting idle ones first) and keeps
 * accepting through EMFILE. It is an origin server only: no proxying, no upgrades, bodies
 * read whole (they are small here).
 *
 * The parts: `server_types.ts` (the API's types, re-exported here), `server_options.ts`
 * (defaults), `connection.ts` with `request_reader.ts` (one connection's life),
 * `http1.ts` and `http1_response.ts` (the wire format, without I/O). This module holds the
 * listener: the accept loop, the cap with eviction, back-off through EMFILE, the sweep that
 * enforces deadlines, and shutdown.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { closeQuietly } from "../util/close_quietly.ts";
import { Connection, type ConnectionContext } from "./connection.ts";
import { serializeResponse } from "./http1_response.ts";
import { resolveServeOptions, type ServerLimits } from "./server_options.ts";
import type {
  AcceptSource,
  DirectRoute,
  HttpServer,
  HttpServerStats,
  ServeHandler,
  ServeHttpOptions,
  ServerClock,
  ServerLog,
} from "./server_types.ts";

export type {
  AcceptSource,
  HttpServer,
  HttpServerStats,
  ServeHandler,
  ServeHttpOptions,
  ServeInfo,
  ServerClock,
  ServerLog,
} from "./server_types.ts";

/** The listener stopped while the server was not shutting down. */
export class ListenerStoppedError extends Error {
  constructor(options?: ErrorOptions) {
    super("the HTTP listener stopped", options);
    this.name = "ListenerStoppedError";
  }
}

/** Starts a server; throws like `Deno.listen` if the address cannot be listened on. */
export function serveHttp(options: ServeHttpOptions): HttpServer {
  return new Server(options);
}

/** Idle connections closed per failed accept when descriptors or memory ran out. */
const EVICT_ON_ERROR = 8;
const MIN_BACKOFF_MS = 10;
const MAX_BACKOFF_MS = 1000;
/** A repeated warning (accept errors, the cap) is written at most once per kind this often. */
const WARN_INTERVAL_MS = 10_000;

/** The listener's side of {@link serveHttp}; each connection reads its settings and counters. */
class Server implements HttpServer, ConnectionContext {
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
  readonly limits: ServerLimits;
  readonly clock: ServerClock;
  readonly handler: ServeHandler;
  readonly direct: DirectRoute | undefined;
  readonly onError: (error: unknown) => Response | Promise<Response>;
  readonly log: ServerLog | undefined;
  /** Used as the URL's authority when a request has no Host (HTTP/1.0). */
  readonly authority: string;
  readonly keepAliveHeader: string;
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
    const resolved = resolveServeOptions(options);
    this.limits = resolved.limits;
    this.clock = resolved.clock;
    this.handler = resolved.handler;
    this.direct = resolved.direct;
    this.onError = resolved.onError;
    this.log = resolved.log;
    this.keepAliveHeader = resolved.keepAliveHeader;
    this.sweepMs = resolved.sweepMs;
    const listen = resolved.listen;
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
          message: errorMessage(error),
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
      const bytes = serializeResponse(503, "", [], "server busy\n", false, this.keepAliveHeader);
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

/** A short name for an error's kind, e.g. `EMFILE`, for counting and rate-limiting. */
function errorKind(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  return error instanceof Error ? error.name : typeof error;
}
