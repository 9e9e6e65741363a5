import assert from "node:assert/strict";
import { Health } from "../../src/health.ts";
import { healthHandler } from "../../src/http/health.ts";
import { metricsHandler } from "../../src/http/metrics.ts";
import { type Handler, router } from "../../src/http/router.ts";
import { Metrics } from "../../src/metrics/metrics.ts";

const BASE = "http://127.0.0.1:8080";
const METRICS_TOKEN = "metrics_token-42";

/** The router as main.ts wires it, with a recording webhook handler. */
function app(metrics: Metrics, token: string | null, webhook?: Handler) {
  const health = new Health();
  health.setPhase("ready");
  return router({
    health: healthHandler(health),
    metrics: metricsHandler({ registry: metrics.registry, token }),
    ...(webhook ? { webhook: { path: "/tg/hook", handler: webhook } } : {}),
  });
}

/** The value of an unlabelled sample in Prometheus text. */
function valueOf(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

Deno.test("router() serves liveness and readiness", async (t) => {
  using metrics = new Metrics();
  const route = app(metrics, null);

  await t.step("GET /health/live answers 200 pass", async () => {
    const res = await route(new Request(`${BASE}/health/live`));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/health+json");
    assert.deepEqual(await res.json(), { status: "pass" });
  });

  await t.step("GET /health answers the readiness report", async () => {
    const res = await route(new Request(`${BASE}/health`));
    assert.equal(res.status, 200);
    assert.equal((await res.json()).status, "pass");
  });

  await t.step("HEAD /health/live is allowed", async () => {
    const res = await route(new Request(`${BASE}/health/live`, { method: "HEAD" }));
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});

Deno.test("router() refuses unknown paths and wrong methods", async (t) => {
  using metrics = new Metrics();
  const route = app(metrics, null);
  const cases = [
    { method: "GET", path: "/", status: 404 },
    { method: "GET", path: "/nope", status: 404 },
    { method: "GET", path: "/health/", status: 404 },
    { method: "GET", path: "/tg/hook", status: 404 }, // no webhook in polling mode
    { method: "POST", path: "/health", status: 405 },
    { method: "DELETE", path: "/health/live", status: 405 },
    { method: "POST", path: "/metrics", status: 405 },
  ];
  for (const { method, path, status } of cases) {
    await t.step(`${method} ${path} → ${status}`, async () => {
      const res = await route(new Request(`${BASE}${path}`, { method }));
      assert.equal(res.status, status);
      if (status === 405) assert.equal(res.headers.get("allow"), "GET");
      await res.body?.cancel();
    });
  }
});

Deno.test("router() passes every method on the webhook path to its handler", async () => {
  using metrics = new Metrics();
  const seen: string[] = [];
  const route = app(metrics, null, (req) => {
    seen.push(req.method);
    return Promise.resolve(new Response(null, { status: 204 }));
  });
  for (const method of ["POST", "GET"]) {
    const res = await route(new Request(`${BASE}/tg/hook`, { method }));
    assert.equal(res.status, 204);
  }
  assert.deepEqual(seen, ["POST", "GET"]);
});

Deno.test("router() serves /metrics openly without a token", async () => {
  using metrics = new Metrics();
  metrics.updates.inc({ type: "message", outcome: "handled" });
  const route = app(metrics, null);
  const res = await route(new Request(`${BASE}/metrics`));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  const text = await res.text();
  assert.match(text, /^bot_updates_total\{type="message",outcome="handled"\} 1$/m);
  const rss = valueOf(text, "process_resident_memory_bytes");
  assert.ok(rss !== undefined && rss > 0, `process_resident_memory_bytes is ${rss}`);
  assert.match(text, /^bot_info\{.*version="/m);
});

Deno.test("router() guards /metrics with a bearer token when one is set", async (t) => {
  using metrics = new Metrics();
  const route = app(metrics, METRICS_TOKEN);
  const refused: Array<{ name: string; authorization?: string }> = [
    { name: "missing" },
    { name: "wrong", authorization: "Bearer nope" },
    { name: "a prefix", authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` },
    { name: "not a bearer", authorization: `Basic ${METRICS_TOKEN}` },
    { name: "without scheme", authorization: METRICS_TOKEN },
  ];
  for (const { name, authorization } of refused) {
    await t.step(`${name} token → 401`, async () => {
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const res = await route(new Request(`${BASE}/metrics`, { headers }));
      assert.equal(res.status, 401);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
      const body = await res.text();
      assert.ok(!body.includes("bot_updates_total"), "metrics leaked to an unauthorized caller");
    });
  }

  await t.step("the right token → 200", async () => {
    const res = await route(
      new Request(`${BASE}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } }),
    );
    assert.equal(res.status, 200);
    assert.match(await res.text(), /bot_updates_total/);
  });

  await t.step("health endpoints stay open", async () => {
    const res = await route(new Request(`${BASE}/health/live`));
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});
