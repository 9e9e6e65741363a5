import assert from "node:assert/strict";
import { parse } from "yaml";
import { BotProcess } from "../e2e/program.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { baseName, exposedNames, selectedNames } from "./promql.ts";

const DEPLOY = new URL("../../deploy/", import.meta.url);

/**
 * Metrics that the dashboard and the alert rules already use but the program does not export
 * yet: they are to be added by the conversation/background issues. Remove a name once the
 * program exports it (this test fails until you do), so the list only ever shrinks.
 */
const NOT_YET_EXPORTED = new Set<string>([]);

/** Series Prometheus itself records for every scrape target. */
const SCRAPE_SERIES = new Set(["up"]);

interface Target {
  expr?: string;
  datasource?: { uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid?: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(
  await Deno.readTextFile(new URL("grafana/dashboard.json", DEPLOY)),
) as Dashboard;
const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const queryPanels = panels.filter((panel) => panel.type !== "row");

const alertRules = (parse(
  await Deno.readTextFile(new URL("prometheus/alerts.yml", DEPLOY)),
) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);

/** Each metric name used by `exprs` (histogram series mapped to the histogram), with where. */
function usedMetrics(exprs: [where: string, expr: string][], known: ReadonlySet<string>) {
  const used = new Map<string, string[]>();
  for (const [where, expr] of exprs) {
    for (const name of selectedNames(expr)) {
      const base = baseName(name, known);
      used.set(base, [...(used.get(base) ?? []), where]);
    }
  }
  return used;
}

const dashboardExprs: [string, string][] = [
  ...queryPanels.flatMap((panel) =>
    (panel.targets ?? []).map((t): [string, string] => [`panel "${panel.title}"`, t.expr ?? ""])
  ),
  // A variable's `label_values(metric, label)` names a metric too.
  ...dashboard.templating.list.flatMap((v): [string, string][] => {
    const query = typeof v.query === "string" ? v.query : v.query?.query ?? "";
    const metric = query.match(/^label_values\((.+),\s*\w+\)$/)?.[1];
    return metric ? [[`variable $${v.name}`, metric]] : [];
  }),
];
const alertExprs: [string, string][] = alertRules.map((r) => [`alert ${r.alert}`, r.expr]);

Deno.test("dashboard.json and alerts.yml use only metrics the running program exports", async (t) => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  const metrics = await bot.get("/metrics");
  assert.equal(metrics.status, 200);
  const exported = exposedNames(metrics.body);
  const known = new Set([...exported, ...NOT_YET_EXPORTED, ...SCRAPE_SERIES]);

  const unknown = (used: Map<string, string[]>) =>
    [...used].filter(([name]) => !known.has(name)).map(([name, where]) =>
      `${name} (${[...new Set(where)].join(", ")})`
    );

  await t.step("every metric in the dashboard's queries", () => {
    assert.deepEqual(unknown(usedMetrics(dashboardExprs, known)), []);
  });

  await t.step("every metric in the alert rules", () => {
    assert.deepEqual(unknown(usedMetrics(alertExprs, known)), []);
  });

  await t.step("the not-yet-exported list names only metrics that are still missing", () => {
    const landed = [...NOT_YET_EXPORTED].filter((name) => exported.has(name));
    assert.deepEqual(landed, [], "now exported: remove them from NOT_YET_EXPORTED");
    const all = new Set([
      ...usedMetrics(dashboardExprs, known).keys(),
      ...usedMetrics(alertExprs, known).keys(),
    ]);
    const unused = [...NOT_YET_EXPORTED].filter((name) => !all.has(name));
    assert.deepEqual(unused, [], "used by neither the dashboard nor the alerts");
  });

  assert.equal((await bot.stop()).code, 0);
});

Deno.test("dashboard.json shows what an operator needs, per instance, from any Prometheus", async (t) => {
  await t.step("a schema Grafana 10/11 reads, with a fixed uid", () => {
    assert.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41);
    assert.equal(dashboard.uid, "service-desk-bot");
  });

  await t.step("a Prometheus data source variable DS_PROMETHEUS used by every query", () => {
    const ds = dashboard.templating.list.find((v) => v.name === "DS_PROMETHEUS");
    assert.equal(ds?.type, "datasource");
    assert.equal(ds?.query, "prometheus");
    for (const panel of queryPanels) {
      assert.equal(panel.datasource?.uid, "${DS_PROMETHEUS}", panel.title);
      for (const target of panel.targets ?? []) {
        assert.equal(target.datasource?.uid, "${DS_PROMETHEUS}", panel.title);
      }
    }
  });

  await t.step("an instance variable that every query filters on", () => {
    const instance = dashboard.templating.list.find((v) => v.name === "instance");
    assert.equal(instance?.type, "query");
    for (const panel of queryPanels) {
      assert.ok((panel.targets ?? []).length > 0, `panel "${panel.title}" has no query`);
      for (const target of panel.targets ?? []) {
        assert.match(target.expr ?? "", /instance=~"\$instance"/, `panel "${panel.title}"`);
      }
    }
  });

  await t.step("the panels the operator kit promises", () => {
    const used = new Set(usedMetrics(dashboardExprs, NOT_YET_EXPORTED).keys());
    const promised = [
      "bot_updates_total", // updates/s by outcome
      "bot_update_duration_seconds_bucket", // latency percentiles
      "bot_gate_total",
      "bot_store_round_trip_seconds_bucket",
      "bot_db_queries_total",
      "bot_api_calls_total",
      "bot_api_retries_total",
      "process_resident_memory_bytes",
      "process_heap_bytes",
      "bot_event_queue_size",
      "bot_events_dropped_total",
      "bot_requests_open",
    ];
    assert.deepEqual(promised.filter((name) => !used.has(name)), []);
    const latency = queryPanels.find((p) =>
      (p.targets ?? []).some((t) => t.expr?.includes("bot_update_duration_seconds_bucket"))
    );
    const quantiles = (latency?.targets ?? []).map((t) => t.expr?.match(/quantile\(([\d.]+)/)?.[1]);
    assert.deepEqual(quantiles, ["0.5", "0.95", "0.99"]);
  });

  await t.step("unique panel ids and a layout inside the 24-column grid", () => {
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const { title, gridPos } of panels) {
      assert.ok(gridPos.x >= 0 && gridPos.w > 0 && gridPos.x + gridPos.w <= 24, title);
    }
  });
});
