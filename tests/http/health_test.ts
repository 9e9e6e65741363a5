import assert from "node:assert/strict";
import {
  type Check,
  type CheckEntry,
  Health,
  type HealthReport,
  type HealthStatus,
} from "../../src/health.ts";
import { HEALTH_CONTENT_TYPE, healthHandler } from "../../src/http/health.ts";
import { VERSION } from "../../src/version.ts";

const pass: Check = () => Promise.resolve({ status: "pass" });
const warn: Check = () => Promise.resolve({ status: "warn", output: "slow" });
const failing: Check = () => Promise.resolve({ status: "fail", output: "down" });
/** A check that never answers by itself; it ends when the probe gives up and aborts it. */
const hanging: Check = (signal) =>
  new Promise((resolve) => {
    signal.addEventListener("abort", () => resolve({ status: "pass" }), { once: true });
  });

async function get(health: Health): Promise<{ status: number; report: HealthReport }> {
  const res = await healthHandler(health)(new Request("http://127.0.0.1/health"));
  assert.equal(res.headers.get("content-type"), HEALTH_CONTENT_TYPE);
  assert.equal(HEALTH_CONTENT_TYPE, "application/health+json");
  return { status: res.status, report: await res.json() };
}

function entryOf(report: HealthReport, name: string): CheckEntry {
  const entries = report.checks[name];
  assert.ok(entries, `no check ${name} in ${JSON.stringify(report)}`);
  assert.equal(entries.length, 1);
  return entries[0]!;
}

Deno.test("healthHandler() fails while the process is not ready", async (t) => {
  await t.step("starting", async () => {
    const health = new Health();
    health.register("telegram:responseTime", pass);
    const { status, report } = await get(health);
    assert.equal(status, 503);
    assert.equal(report.status, "fail");
    assert.equal(report.output, "starting up");
  });

  await t.step("stopping, with the reason as output", async () => {
    const health = new Health();
    health.register("telegram:responseTime", pass);
    health.setPhase("ready");
    health.setPhase("stopping", "received SIGTERM");
    assert.equal(health.phase, "stopping");
    const { status, report } = await get(health);
    assert.equal(status, 503);
    assert.equal(report.status, "fail");
    assert.equal(report.output, "received SIGTERM");
    // The checks themselves are still reported.
    assert.equal(entryOf(report, "telegram:responseTime").status, "pass");
  });

  await t.step("stopping without a reason names the phase", async () => {
    const health = new Health();
    health.setPhase("stopping");
    const { status, report } = await get(health);
    assert.equal(status, 503);
    assert.equal(report.output, "stopping");
  });
});

Deno.test("healthHandler() combines the checks when ready", async (t) => {
  const cases: Array<{ name: string; checks: Check[]; status: HealthStatus; http: number }> = [
    { name: "no checks", checks: [], status: "pass", http: 200 },
    { name: "all pass", checks: [pass, pass], status: "pass", http: 200 },
    { name: "one warns", checks: [pass, warn], status: "warn", http: 200 },
    { name: "one fails", checks: [pass, failing], status: "fail", http: 503 },
    { name: "one warns, one fails", checks: [warn, failing, pass], status: "fail", http: 503 },
  ];
  for (const { name, checks, status, http } of cases) {
    await t.step(name, async () => {
      const health = new Health();
      checks.forEach((check, i) => health.register(`c${i}:responseTime`, check));
      health.setPhase("ready");
      const res = await get(health);
      assert.equal(res.status, http);
      assert.equal(res.report.status, status);
      assert.equal(res.report.output, undefined);
      assert.equal(res.report.releaseId, VERSION);
      assert.equal(Object.keys(res.report.checks).length, checks.length);
    });
  }
});

Deno.test("healthHandler() reports each check's details", async () => {
  const health = new Health();
  health.register(
    "telegram:responseTime",
    () =>
      Promise.resolve({ status: "warn", output: "Telegram unreachable", observedValue: 123.456 }),
  );
  health.register("store:responseTime", pass, { componentType: "datastore" });
  health.setPhase("ready");
  const { report } = await get(health);
  const telegram = entryOf(report, "telegram:responseTime");
  assert.equal(telegram.status, "warn");
  assert.equal(telegram.output, "Telegram unreachable");
  assert.equal(telegram.observedValue, 123.5);
  assert.equal(telegram.componentType, "component");
  const store = entryOf(report, "store:responseTime");
  assert.equal(store.componentType, "datastore");
  assert.equal(store.output, undefined);
  for (const entry of [telegram, store]) {
    assert.equal(typeof entry.observedValue, "number");
    assert.ok(Number.isFinite(entry.observedValue) && entry.observedValue >= 0);
    assert.equal(entry.observedUnit, "ms");
    assert.equal(new Date(entry.time).toISOString(), entry.time);
  }
});

Deno.test("Health: a check that measures no time names its unit; a time is in ms", async () => {
  const health = new Health();
  health.register(
    "disk:free",
    () => Promise.resolve({ status: "pass", observedValue: 2048, observedUnit: "MiB" }),
  );
  health.register("store:responseTime", () => Promise.resolve({ status: "pass" }));
  health.setPhase("ready");
  const { report } = await get(health);
  const disk = entryOf(report, "disk:free");
  assert.deepEqual([disk.observedValue, disk.observedUnit], [2048, "MiB"]);
  assert.equal(entryOf(report, "store:responseTime").observedUnit, "ms");
});

Deno.test("healthHandler() leaves output out of a passing check, keeps it for warn and fail", async () => {
  const health = new Health();
  const saying = (status: HealthStatus): Check => () =>
    Promise.resolve({ status, output: `${status} note` });
  health.register("a:responseTime", saying("pass"));
  health.register("b:responseTime", saying("warn"));
  health.register("c:responseTime", saying("fail"));
  health.setPhase("ready");
  const { report } = await get(health);
  assert.equal("output" in entryOf(report, "a:responseTime"), false);
  assert.equal(entryOf(report, "b:responseTime").output, "warn note");
  assert.equal(entryOf(report, "c:responseTime").output, "fail note");
});

Deno.test("healthHandler() fails a check that throws, with its message", async () => {
  const health = new Health();
  health.register("db:responseTime", () => Promise.reject(new Error("connection refused")));
  health.register("telegram:responseTime", pass);
  health.setPhase("ready");
  const { status, report } = await get(health);
  assert.equal(status, 503);
  assert.equal(report.status, "fail");
  const db = entryOf(report, "db:responseTime");
  assert.equal(db.status, "fail");
  assert.equal(db.output, "connection refused");
  assert.equal(entryOf(report, "telegram:responseTime").status, "pass");
});

Deno.test("healthHandler() gives a check that takes too long its onTimeout status", async (t) => {
  const cases: Array<{ onTimeout?: HealthStatus; status: HealthStatus; http: number }> = [
    { status: "fail", http: 503 },
    { onTimeout: "warn", status: "warn", http: 200 },
    { onTimeout: "fail", status: "fail", http: 503 },
  ];
  for (const { onTimeout, status, http } of cases) {
    await t.step(`onTimeout ${onTimeout ?? "(default)"}`, async () => {
      const health = new Health();
      let aborted = false;
      health.register("slow:responseTime", (signal) => {
        signal.addEventListener("abort", () => aborted = true);
        return hanging(signal);
      }, { timeoutMs: 20, ...(onTimeout ? { onTimeout } : {}) });
      health.setPhase("ready");
      const res = await get(health);
      assert.equal(res.status, http);
      const entry = entryOf(res.report, "slow:responseTime");
      assert.equal(entry.status, status);
      assert.match(entry.output ?? "", /timed out after 20 ms/);
      assert.ok(aborted, "the timed-out check was not told to give up");
    });
  }
});

Deno.test("healthHandler() fails a check that throws before returning a promise", async () => {
  const health = new Health();
  // A plain (non-async) check with a bug: it throws instead of returning a rejected promise.
  health.register("polling:lastSuccess", () => {
    throw new Error("poller state unreadable");
  });
  health.register("telegram:responseTime", pass);
  health.setPhase("ready");
  const { status, report } = await get(health);
  assert.equal(status, 503);
  const entry = entryOf(report, "polling:lastSuccess");
  assert.equal(entry.status, "fail");
  assert.equal(entry.output, "poller state unreadable");
});

Deno.test("healthHandler() shows no secret: every output has its secrets replaced", async () => {
  const health = new Health({ secrets: ["123456:SECRET-token_abcdef"] });
  health.register(
    "telegram:responseTime",
    () =>
      Promise.reject(
        new Error(
          "error sending request for url (https://api.telegram.org/bot123456:SECRET-token_abcdef/getMe)",
        ),
      ),
  );
  health.setPhase(
    "starting",
    "getMe failed at https://api.telegram.org/bot123456:SECRET-token_abcdef/",
  );
  const { report } = await get(health);
  assert.doesNotMatch(JSON.stringify(report), /SECRET/);
  assert.match(entryOf(report, "telegram:responseTime").output!, /bot\[redacted\]\/getMe/);
  assert.match(report.output!, /bot\[redacted\]/);
});
