import type { Registry } from "../metrics/prometheus.ts";
import { secretMatcher } from "../util/secure_compare.ts";

/** Options of {@link metricsHandler}. */
export interface MetricsHandlerOptions {
  /** The registry to render. */
  registry: Registry;
  /** Bearer token required in `Authorization`; `null` leaves the endpoint open. */
  token: string | null;
}

/** `GET /metrics`: Prometheus text exposition, behind an optional bearer token. */
export function metricsHandler(
  options: MetricsHandlerOptions,
): (req: Request) => Promise<Response> {
  const { registry, token } = options;
  const isToken = token === null ? null : secretMatcher(token);
  return async function metrics(req) {
    if (isToken !== null) {
      const header = req.headers.get("authorization") ?? "";
      const given = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
      if (!isToken(given)) {
        return new Response("unauthorized\n", {
          status: 401,
          headers: { "www-authenticate": 'Bearer realm="metrics"', "content-type": "text/plain" },
        });
      }
    }
    return new Response(await registry.metrics(), {
      headers: { "content-type": registry.contentType, "cache-control": "no-store" },
    });
  };
}
