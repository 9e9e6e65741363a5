/**
 * One client connection of the HTTP server: reads requests one at a time (pipelined ones
 * wait their turn), passes them to the handler, writes the answers in order, keeps the
 * connection alive or lingers before closing it. Every phase has a deadline that the
 * server's sweep enforces by closing the socket, which ends the read or write in progress:
 * no timer promise is raced against the reads.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { closeQuietly } from "../util/close_quietly.ts";
import { type Bytes, type Head, Refusal } from "./http1.ts";
import { type Answer, respond, respondDirect } from "./answer.ts";
import { CONTINUE, serializeResponse } from "./http1_response.ts";
import { CLOSED, RequestReader } from "./request_reader.ts";
import type { ServerLimits } from "./server_options.ts";
import type {
  DirectRoute,
  HttpServerStats,
  ServeHandler,
  ServeInfo,
  ServerClock,
  ServerLog,
} from "./server_types.ts";

/** How long a closing connection drains what the client still sends. */
const LINGER_MS = 1000;
const LINGER_BYTES = 64 * 1024;

/** What a {@link Connection} needs from its server; the server passes itself. */
export interface ConnectionContext {
  readonly limits: ServerLimits;
  readonly clock: ServerClock;
  readonly handler: ServeHandler;
  readonly direct: DirectRoute | undefined;
  readonly onError: (error: unknown) => Response | Promise<Response>;
  readonly log: ServerLog | undefined;
  readonly stats: HttpServerStats;
  /** Used as the URL's authority when a request has no Host (HTTP/1.0). */
  readonly authority: string;
  /** The Keep-Alive field of every kept-alive response. */
  readonly keepAliveHeader: string;
  /** Set when no new request may start: shutting down or the listener died. */
  readonly closing: boolean;
  /** Connections admitted and not closed; a connection takes itself off once, on closing. */
  live: number;
}

/** Where a connection is in its cycle; each phase but "handling" has a deadline. */
export type Phase = "head" | "body" | "handling" | "writing" | "idle" | "closing";

/** One client connection: reads requests one at a time and answers them in order. */
export class Connection {
  readonly #server: ConnectionContext;
  readonly #conn: Deno.Conn;
  readonly #info: ServeInfo;
  readonly #reader: RequestReader;
  /** Stops waiting for the handler when the connection closes; set while it runs. */
  #stopWaiting: (() => void) | null = null;
  /** Settles when {@link run} has ended; set by the server. */
  done: Promise<void> = Promise.resolve();
  /** The phase the connection is in. */
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

  /** A connection on `conn`, in its head phase from now. */
  constructor(server: ConnectionContext, conn: Deno.Conn) {
    this.#server = server;
    this.#conn = conn;
    this.#info = { remoteAddr: conn.remoteAddr as Deno.NetAddr };
    this.since = server.clock.now();
    this.deadline = this.since + server.limits.headerTimeoutMs;
    this.#reader = new RequestReader((target) => this.#read(target), server);
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

  /** Closes the socket, which ends the read or write in progress; idempotent. */
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
    const { keepAliveHeader } = this.#server;
    const bytes = serializeResponse(408, "", [], "request timeout\n", false, keepAliveHeader);
    this.#conn.write(bytes).then(() => this.close(), () => this.close());
  }

  /** Serves requests until the connection ends; never rejects. */
  async run(): Promise<void> {
    try {
      await this.#serve();
    } catch (error) {
      if (!isConnectionError(error)) {
        this.#server.log?.warning("HTTP connection failed: {message}", {
          message: errorMessage(error),
          error,
        });
      }
    } finally {
      this.close();
      this.#reader.release();
    }
  }

  async #serve(): Promise<void> {
    const server = this.#server;
    while (!this.#isClosed) {
      let head: Head | null;
      let body: Bytes;
      try {
        head = await this.#reader.readHead(this.#onHeadBytes);
        if (head === null) return;
        this.#enter("body", server.limits.bodyTimeoutMs);
        if (head.expectContinue && (head.chunked || head.contentLength > 0)) {
          await this.#write(CONTINUE);
        }
        body = await this.#reader.readBody(head);
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        return await this.#refuse(error);
      }
      this.#enter("handling", Infinity);
      const direct = server.direct;
      let answering: Promise<Answer>;
      if (direct !== undefined && head.target === direct.path) {
        server.stats.requests++;
        answering = respondDirect(server, direct, head, body);
      } else {
        // The Request copies the body now, so a view of the read buffer is safe to pass.
        let request: Request;
        try {
          request = new Request(head.url, {
            method: head.method,
            body: head.method === "GET" || head.method === "HEAD" ? null : body,
          });
        } catch {
          return await this.#refuse(new Refusal(400, "invalid request target"));
        }
        // Appending is faster than passing the pairs (a WebIDL sequence conversion), and a
        // byte body adds no Content-Type of its own.
        for (const [name, value] of head.headers) request.headers.append(name, value);
        server.stats.requests++;
        answering = respond(server, request, this.#info);
      }
      // A fresh promise per request: racing one long-lived promise would pile up reactions.
      const closed = Promise.withResolvers<null>();
      this.#stopWaiting = () => closed.resolve(null);
      const answer = await Promise.race([answering, closed.promise]);
      this.#stopWaiting = null;
      if (answer === null) return;
      const keepAlive = head.keepAlive && !server.closing && !answer.close;
      this.#enter("writing", server.limits.writeTimeoutMs);
      const sendBody = head.method !== "HEAD";
      await this.#write(
        serializeResponse(
          answer.status,
          answer.statusText,
          answer.headers,
          answer.bytes,
          keepAlive,
          server.keepAliveHeader,
          { sendBody, http10: head.minor === 0 },
        ),
      );
      if (!keepAlive) return await this.#linger();
      if (this.#reader.buffered) {
        // A pipelined request is already here: its header time starts now.
        this.#enter("head", server.limits.headerTimeoutMs);
        this.#started = true;
      } else {
        this.#enter("idle", server.limits.idleTimeoutMs);
        this.#started = false;
      }
    }
  }

  /** A byte of the next head arrived: a kept-alive connection's header time runs from it. */
  readonly #onHeadBytes = (): void => {
    if (this.#started) return;
    this.#started = true;
    if (this.phase === "idle") this.#enter("head", this.#server.limits.headerTimeoutMs);
  };

  /** Answers a request the server refuses itself, then closes: its body may be unread. */
  async #refuse(refusal: Refusal): Promise<void> {
    const server = this.#server;
    server.stats.rejected++;
    this.#enter("writing", server.limits.writeTimeoutMs);
    const body = `${refusal.reason}\n`;
    await this.#write(
      serializeResponse(refusal.status, "", [], body, false, server.keepAliveHeader),
    );
    await this.#linger();
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
      while (drained < LINGER_BYTES) drained += await this.#reader.discard();
    } catch {
      // The client closed, or the linger time ran out: either way, done.
    }
  }
}

/** Errors that only mean the connection is gone. */
function isConnectionError(error: unknown): boolean {
  return error === CLOSED || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.TimedOut;
}
