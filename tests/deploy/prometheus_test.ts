import assert from "node:assert/strict";
import { parse } from "yaml";

const PROMETHEUS_DIR = new URL("../../deploy/prometheus/", import.meta.url).pathname;

/** The absolute path of `command` on PATH, or null. */
function onPath(command: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter(Boolean)) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return `${dir}/${command}`;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

const promtool = onPath("promtool");
/** Explains a skip in the test's name; `.ci/run` installs promtool, so CI never skips. */
const skipped = promtool === null
  ? " (SKIPPED: promtool is not installed; `apt-get install prometheus` provides it)"
  : "";

async function runPromtool(args: string[], cwd = PROMETHEUS_DIR) {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("promtool", { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new Error("run the tests with promtool in --allow-run (deno.json's test task)", {
        cause: error,
      });
    }
    throw error;
  }
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, text: decode(output.stdout) + decode(output.stderr) };
}

/** A temporary directory that is removed when disposed. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "prometheus-config-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

Deno.test({
  name: `promtool accepts alerts.yml and its unit tests pass${skipped}`,
  ignore: promtool === null,
  async fn(t) {
    await t.step("promtool check rules alerts.yml", async () => {
      const { code, text } = await runPromtool(["check", "rules", "alerts.yml"]);
      assert.equal(code, 0, text);
    });
    await t.step("promtool test rules alerts_test.yml", async () => {
      const { code, text } = await runPromtool(["test", "rules", "alerts_test.yml"]);
      assert.equal(code, 0, text);
    });
  },
});

Deno.test({
  name: `promtool accepts prometheus.yml once the metrics token file exists${skipped}`,
  ignore: promtool === null,
  async fn(t) {
    // The example as an operator installs it: the config, its rules, and the token file next
    // to them (relative paths resolve against the config's directory).
    await using dir = await tempDir();
    for (const file of ["prometheus.yml", "alerts.yml"]) {
      await Deno.copyFile(`${PROMETHEUS_DIR}/${file}`, `${dir.path}/${file}`);
    }

    await t.step("refused without the token file: the token is read from it", async () => {
      const { code, text } = await runPromtool(["check", "config", "prometheus.yml"], dir.path);
      assert.equal(code, 1, text);
      assert.match(text, /service-desk-bot\.metrics-token/);
    });

    await t.step("accepted with it, rules included", async () => {
      await Deno.writeTextFile(
        `${dir.path}/service-desk-bot.metrics-token`,
        "scrape-token-1234567",
      );
      const { code, text } = await runPromtool(["check", "config", "prometheus.yml"], dir.path);
      assert.equal(code, 0, text);
      assert.match(text, /SUCCESS: \d+ rules found/);
    });
  },
});

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

Deno.test("every alert waits (for:), has a severity, a summary, a description and a runbook hint", async () => {
  const { groups } = parse(await Deno.readTextFile(`${PROMETHEUS_DIR}/alerts.yml`)) as {
    groups: { rules: Rule[] }[];
  };
  const rules = groups.flatMap((group) => group.rules);
  assert.ok(rules.length > 0);
  const problems = rules.flatMap((rule) => {
    const found: string[] = [];
    if (!/^\d+[smh]$/.test(rule.for ?? "")) found.push("for");
    if (!["critical", "warning"].includes(rule.labels?.severity ?? "")) found.push("severity");
    for (const key of ["summary", "description", "runbook"]) {
      if (!rule.annotations?.[key]?.trim()) found.push(key);
    }
    if (!/^docs\/operations\.md#\w+/.test(rule.annotations?.runbook ?? "")) found.push("runbook");
    if (!/job="service-desk-bot"/.test(rule.expr)) found.push("job selector");
    return found.length > 0 ? [`${rule.alert}: ${found.join(", ")}`] : [];
  });
  assert.deepEqual(problems, []);
});

Deno.test("alerts_test.yml makes the key alerts fire", async () => {
  const { tests } = parse(await Deno.readTextFile(`${PROMETHEUS_DIR}/alerts_test.yml`)) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const fired = new Set(
    tests.flatMap((test) => test.alert_rule_test ?? [])
      .filter((check) => check.exp_alerts.length > 0)
      .map((check) => check.alertname),
  );
  const required = [
    "BotInstanceDown",
    "BotHighErrorRate",
    "BotEventsDropped",
    "BotBackupMissing",
    "BotRequestsWaiting",
  ];
  assert.deepEqual(required.filter((name) => !fired.has(name)), []);
});
