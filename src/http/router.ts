/** A request handler, as `Deno.serve` takes it and tests call it. */
export type Handler = (req: Request) => Promise<Response>;

/** Routes of the built-in HTTP server. */
export interface Routes {
  /** `GET /health`. */
  health: Handler;
  /** `GET /metrics`. */
  metrics: Handler;
  /** The webhook path and its handler, in webhook mode. */
  webhook?: { path: string; handler: Handler };
}

/** The HTTP server's one handler: health, liveness, metrics and the webhook path. */
export function router(routes: Routes): Handler {
  const table = new Map<string, { method: string; handler: Handler }>([
    ["/health/live", { method: "GET", handler: () => Promise.resolve(live()) }],
    ["/health", { method: "GET", handler: routes.health }],
    ["/metrics", { method: "GET", handler: routes.metrics }],
  ]);
  // The webhook handler checks the method itself, so that a wrong secret still gets 401.
  if (routes.webhook) {
    table.set(routes.webhook.path, { method: "*", handler: routes.webhook.handler });
  }
  return async function route(req) {
    const path = new URL(req.url).pathname;
    const entry = table.get(path);
    if (!entry) return plain(404, "not found");
    const method = req.method === "HEAD" ? "GET" : req.method;
    if (entry.method !== "*" && entry.method !== method) {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { allow: entry.method },
      });
    }
    return await entry.handler(req);
  };
}

function live(): Response {
  return new Response(JSON.stringify({ status: "pass" }), {
    headers: { "content-type": "application/health+json", "cache-control": "no-store" },
  });
}

function plain(status: number, text: string): Response {
  return new Response(`${text}\n`, { status, headers: { "content-type": "text/plain" } });
}
