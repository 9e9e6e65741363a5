/**
 * A tiny HTTP reverse proxy for tests: a load balancer in front of several instances of the
 * program. Each request (method, path, query, headers, body) goes to the next upstream in
 * turn, and the upstream's answer goes back unchanged.
 */

/** A running proxy; `await using` shuts it down. */
export interface RoundRobinProxy extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`, without a trailing slash. */
  readonly url: string;
  /** The upstream base URLs, in the order requests go to them. */
  readonly upstreams: readonly string[];
  /** How many requests each upstream got (same order as {@link RoundRobinProxy.upstreams}). */
  readonly counts: readonly number[];
  /** The upstream index each request went to, in arrival order. */
  readonly routed: readonly number[];
  /** Stops accepting requests and waits for the ones in flight. Idempotent. */
  close(): Promise<void>;
}

// Hop-by-hop headers belong to one connection; a proxy does not pass them on.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "content-length",
]);

/** Starts a proxy on a free port of 127.0.0.1 in front of `upstreams` (base URLs). */
export function startRoundRobinProxy(upstreams: readonly string[]): RoundRobinProxy {
  if (upstreams.length === 0) throw new Error("a proxy needs at least one upstream");
  const bases = upstreams.map((url) => url.replace(/\/+$/, ""));
  const counts = bases.map(() => 0);
  const routed: number[] = [];
  let next = 0;

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const index = next;
      next = (next + 1) % bases.length;
      counts[index]!++;
      routed.push(index);
      const url = new URL(request.url);
      const headers = new Headers();
      for (const [name, value] of request.headers) {
        if (!HOP_BY_HOP.has(name)) headers.set(name, value);
      }
      const hasBody = request.method !== "GET" && request.method !== "HEAD";
      try {
        const response = await fetch(`${bases[index]}${url.pathname}${url.search}`, {
          method: request.method,
          headers,
          body: hasBody ? await request.arrayBuffer() : null,
          redirect: "manual",
        });
        const answer = new Headers();
        for (const [name, value] of response.headers) {
          if (!HOP_BY_HOP.has(name)) answer.set(name, value);
        }
        return new Response(await response.arrayBuffer(), {
          status: response.status,
          statusText: response.statusText,
          headers: answer,
        });
      } catch (error) {
        // What a load balancer says when the instance behind it is gone.
        return new Response(`upstream ${bases[index]} failed: ${error}`, { status: 502 });
      }
    },
  );

  let closing: Promise<void> | null = null;
  const close = () => closing ??= server.shutdown();
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    upstreams: bases,
    counts,
    routed,
    close,
    [Symbol.asyncDispose]: close,
  };
}
