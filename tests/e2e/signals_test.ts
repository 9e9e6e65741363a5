/**
 * Ctrl-C as an operator presses it: in a terminal, SIGINT goes to the whole foreground process
 * group, so both `deno task` and the bot get it, and `deno task` passes it on once more. The
 * bot must treat that as one request to stop gracefully; a second Ctrl-C pressed later on
 * purpose still exits at once.
 */
import assert from "node:assert/strict";
import { PROJECT_ROOT } from "../../scripts/start_command.ts";
import { FAKE_TOKEN, FakeBotApi } from "../fake_bot_api.ts";
import { freePort, type LogLine } from "./program.ts";

/**
 * `deno task start` in its own process group, as a terminal's foreground job. The task runs
 * in the project folder, as the README's quick start does, with its data in a folder of its
 * own under `data/`.
 */
function startTask(api: FakeBotApi) {
  const dataDir = `data/test-ctrl-c-${crypto.randomUUID()}`;
  const env: Record<string, string> = {
    BOT_TOKEN: FAKE_TOKEN,
    BOT_API_ROOT: api.apiRoot,
    HTTP_PORT: String(freePort()),
    SHUTDOWN_TIMEOUT: "20",
    DATA_DIR: dataDir,
  };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const child = new Deno.Command("setsid", {
    args: ["deno", "task", "--config", `${PROJECT_ROOT}/deno.json`, "start"],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: LogLine[] = [];
  const reading = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const part of parts) {
        try {
          lines.push(JSON.parse(part));
        } catch {
          // The task's own "Task start …" line.
        }
      }
    }
  })();
  const waitLog = (pattern: RegExp) =>
    api.waitFor(() => lines.find((l) => pattern.test(l.msg)), 60_000, `a log line ${pattern}`);
  return {
    lines,
    waitLog,
    /** Ctrl-C: SIGINT to the whole group (setsid made the task the group's leader). */
    ctrlC: async () => {
      const { code } = await new Deno.Command("kill", { args: ["-INT", "--", `-${child.pid}`] })
        .output();
      assert.equal(code, 0, "kill -INT the process group");
    },
    async exit() {
      const status = await child.status;
      await reading;
      await Deno.remove(`${PROJECT_ROOT}/${dataDir}`, { recursive: true }).catch(() => {});
      return status.code;
    },
  };
}

Deno.test("signals: Ctrl-C under `deno task start` finishes the update in flight and exits 0", async () => {
  await using api = await FakeBotApi.start();
  const task = startTask(api);
  await task.waitLog(/^ready as /);
  api.delay("sendMessage", 2500);
  api.pushMessage({ chatId: 301, text: "/help" });
  await api.waitFor(() => api.callsOf("sendMessage").length > 0 || undefined, 20_000, "the reply");
  await task.ctrlC();
  assert.equal(await task.exit(), 0);
  const summary = task.lines.find((l) => /^stopped after/.test(l.msg))!;
  assert.equal(summary.finished, 1);
  assert.deepEqual(summary.abandoned, []);
  assert.equal(task.lines.filter((l) => /exiting at once/.test(l.msg)).length, 0);
  // The copy `deno task` passes on is no second press: nothing says "again".
  assert.deepEqual(task.lines.filter((l) => /again/.test(l.msg)).map((l) => l.msg), []);
  assert.equal(api.sentMessages(301).length, 1, "answered once");
});

Deno.test("signals: a second Ctrl-C pressed later on purpose exits at once", async () => {
  await using api = await FakeBotApi.start();
  const task = startTask(api);
  await task.waitLog(/^ready as /);
  api.delay("sendMessage", 15_000);
  api.pushMessage({ chatId: 302, text: "/help" });
  await api.waitFor(() => api.callsOf("sendMessage").length > 0 || undefined, 20_000, "the reply");
  await task.ctrlC();
  await task.waitLog(/^stopping/);
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const pressed = performance.now();
  await task.ctrlC();
  assert.equal(await task.exit(), 1);
  assert.ok(performance.now() - pressed < 5000, "it did not wait for the update");
  assert.ok(task.lines.some((l) => /exiting at once/.test(l.msg)));
  api.delay("sendMessage", 0);
});
