/**
 * What an operator's probes and scrapers see: `/health` answers within a second even when
 * Telegram hangs, and `/metrics` passes `promtool check metrics` with every counter's known
 * series present (at 0) before anything happened.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess, metricSample } from "./program.ts";

Deno.test("observability: /health answers within a second while Telegram hangs", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  api.delay("getMe", 8000);
  for (let i = 0; i < 4; i++) {
    const started = performance.now();
    const { status, body } = await bot.get("/health");
    const ms = performance.now() - started;
    assert.ok(ms < 1200, `/health took ${Math.round(ms)} ms`);
    assert.equal(status, 200, body);
    const telegram = JSON.parse(body).checks["telegram:responseTime"][0];
    assert.equal(telegram.status, "warn");
  }
  api.delay("getMe", 0);
  assert.equal((await bot.stop()).code, 0);
});

Deno.test("observability: /metrics passes promtool check metrics, counters start at 0", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api });
  await bot.waitReady();
  const reported = JSON.parse((await bot.get("/health")).body).status;
  const { body } = await bot.get("/metrics");
  const promtool = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = promtool.stdin.getWriter();
  await writer.write(new TextEncoder().encode(body));
  await writer.close();
  const { code, stdout, stderr } = await promtool.output();
  const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, said);
  assert.equal(said.trim(), "", said);
  assert.match(body, /# TYPE process_cpu_user_seconds_total counter/);
  for (
    const series of [
      'bot_api_retries_total{method="sendMessage",reason="429"}',
      'bot_polling_errors_total{reason="conflict"}',
      'bot_webhook_rejected_total{status="401"}',
      'bot_events_dropped_total{reason="queue_full"}',
      'bot_lease_changes_total{lease="polling",change="acquired"}',
    ]
  ) {
    assert.ok(body.split("\n").includes(`${series} 0`), `${series} is not exported at 0`);
  }
  assert.equal(metricSample(body, `bot_health_status{status="${reported}"}`), 1);

  // Every family an operator can scrape is explained in the README's metrics table.
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const table = readme.slice(readme.indexOf("### Metrics"), readme.indexOf("### Logs"));
  const families = [...body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  assert.ok(families.length > 30, `only ${families.length} families`);
  const undocumented = families.filter((name) =>
    !name.startsWith("nodejs_") && !table.includes(`\`${name}\``)
  );
  assert.deepEqual(undocumented, [], "metrics missing from the README's table");
  assert.equal((await bot.stop()).code, 0);
});
