/**
 * The options of `serveHttp()` resolved once into what the server runs with: every default
 * filled in, and the values that follow from them (the Keep-Alive field, the sweep period).
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type {
  AcceptSource,
  DirectRoute,
  ServeHandler,
  ServeHttpOptions,
  ServerClock,
  ServerLog,
} from "./server_types.ts";

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

/** The address, the connection cap, the timeouts and the sizes a server runs with. */
export type ServerLimits = typeof DEFAULTS;

/** {@link ServeHttpOptions} with every default filled in. */
export interface ResolvedServeOptions {
  /** The address, cap, timeouts and sizes. */
  limits: ServerLimits;
  /** Answers each request. */
  handler: ServeHandler;
  /** The path answered without WHATWG objects, if any. */
  direct: DirectRoute | undefined;
  /** The response when the handler throws. */
  onError: (error: unknown) => Response | Promise<Response>;
  /** Where accept errors and the cap being reached are reported, if anywhere. */
  log: ServerLog | undefined;
  /** Opens the listener. */
  listen: (options: { hostname: string; port: number }) => AcceptSource;
  /** The clock of every timeout, back-off and sweep. */
  clock: ServerClock;
  /** The Keep-Alive field of every kept-alive response, CRLF included. */
  keepAliveHeader: string;
  /** How often the deadlines of the connections are checked. */
  sweepMs: number;
}

const realClock: ServerClock = {
  now: () => performance.now(),
  schedule(fn, ms) {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
};

/** Fills in the defaults of `options` and works out what follows from them. */
export function resolveServeOptions(options: ServeHttpOptions): ResolvedServeOptions {
  const limits: ServerLimits = {
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
  const log = options.log;
  const onError = options.onError ?? ((error: unknown) => {
    log?.warning("HTTP handler failed: {message}", { message: errorMessage(error), error });
    return new Response("internal error\n", {
      status: 500,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  });
  const { headerTimeoutMs, idleTimeoutMs, bodyTimeoutMs, writeTimeoutMs } = limits;
  const shortest = Math.min(headerTimeoutMs, idleTimeoutMs, bodyTimeoutMs, writeTimeoutMs);
  return {
    limits,
    handler: options.handler,
    direct: options.direct,
    onError,
    log,
    listen: options.listen ?? ((o) => Deno.listen({ ...o, transport: "tcp" })),
    clock: options.clock ?? realClock,
    keepAliveHeader: `keep-alive: timeout=${Math.floor(idleTimeoutMs / 1000)}\r\n`,
    // A deadline is enforced at most a quarter late; one sweep costs a pass over ≤ the cap.
    sweepMs: Math.min(1000, Math.max(5, Math.floor(shortest / 4))),
  };
}
