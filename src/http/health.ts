import type { Health } from "../health.ts";

/** Content type of the readiness answer. */
export const HEALTH_CONTENT_TYPE = "application/health+json";

/** `GET /health`: 200 for pass and warn, 503 for fail, starting and stopping. */
export function healthHandler(health: Health): (req: Request) => Promise<Response> {
  return async function readiness(_req) {
    const report = await health.report();
    return new Response(JSON.stringify(report, null, 2), {
      status: report.status === "fail" ? 503 : 200,
      headers: { "content-type": HEALTH_CONTENT_TYPE, "cache-control": "no-store" },
    });
  };
}
