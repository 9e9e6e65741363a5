import assert from "node:assert/strict";
import { baseName, exposedNames, selectedNames } from "./promql.ts";

Deno.test("selectedNames() finds the metrics an expression selects and nothing else", async (t) => {
  const cases: [string, string[]][] = [
    ['up{job="service-desk-bot"} == 0', ["up"]],
    [
      'sum by (outcome) (rate(bot_updates_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))',
      ["bot_updates_total"],
    ],
    [
      "histogram_quantile(0.99, sum by (job, le) (rate(bot_update_duration_seconds_bucket[5m]))) > 2",
      ["bot_update_duration_seconds_bucket"],
    ],
    [
      "time() - max by (job) (bot_backup_last_success_timestamp_seconds) > 26 * 3600",
      ["bot_backup_last_success_timestamp_seconds"],
    ],
    [
      'max by (job) (a_seconds) > 3600 and on (job) max(b_total{status="new", x="sum(c)"}) > 1e3',
      ["a_seconds", "b_total"],
    ],
    ["sum(rate(x_total[5m] offset 1h)) by (instance) / ignoring(le) y", ["x_total", "y"]],
    ["max_over_time(bot_polling_leader[6h:1m])", ["bot_polling_leader"]],
  ];
  for (const [expr, expected] of cases) {
    await t.step(expr, () => assert.deepEqual([...selectedNames(expr)].sort(), expected.sort()));
  }
});

Deno.test("baseName() maps a histogram's series to the histogram, other names to themselves", () => {
  const known = new Set(["bot_update_duration_seconds"]);
  assert.equal(
    baseName("bot_update_duration_seconds_bucket", known),
    "bot_update_duration_seconds",
  );
  assert.equal(baseName("bot_update_duration_seconds_count", known), "bot_update_duration_seconds");
  assert.equal(baseName("bot_user_cache_count", known), "bot_user_cache_count");
});

Deno.test("exposedNames() lists typed metrics without samples and every sample's name", () => {
  const text = [
    "# HELP bot_gate_total Gate verdicts",
    "# TYPE bot_gate_total counter",
    "# HELP bot_store_round_trip_seconds Store round trips",
    "# TYPE bot_store_round_trip_seconds histogram",
    'bot_store_round_trip_seconds_bucket{le="0.001",script="gate"} 3',
    "bot_polling_leader 1",
    "",
  ].join("\n");
  assert.deepEqual([...exposedNames(text)].sort(), [
    "bot_gate_total",
    "bot_polling_leader",
    "bot_store_round_trip_seconds",
    "bot_store_round_trip_seconds_bucket",
  ]);
});
