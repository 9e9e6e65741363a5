// deno-lint-ignore-file no-console -- a profiler prints its findings
/**
 * Where the real program spends its main thread and what it allocates, under the webhook
 * comparison's load (`/help` from 400 users, 64 POSTs in flight, Redis and Postgres on
 * throwaway servers): the program runs under `--inspect`, and V8's sampling CPU profiler
 * (then its sampling heap profiler, collected objects included) is driven over the inspector's
 * WebSocket. Prints the main thread's time by area and by function, the bytes allocated per
 * update by the innermost frame of our code or an npm package, and Redis's own time per update
 * by command (`INFO commandstats`).
 *
 *     deno run -A bench/profile.ts [--root=DIR] [--v8-flags=LIST] [--cpu-profile=FILE]
 *
 * `--root` profiles another checkout (its `start` task and `main.ts`, e.g. a `git worktree` of an
 * older commit; the flood limits are then Telegram's, which only matters from flood control on);
 * `--v8-flags` replaces the start task's V8 flags (`--v8-flags=` runs without any);
 * `--cpu-profile` also writes the profile for Chrome DevTools. The inspector adds work of its own
 * (about a tenth of the main thread, shown as `op_inspector_emit_protocol_event` and the network
 * bridge): compare runs with each other, not with `deno task bench`'s figures.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseStartTask, PROJECT_ROOT } from "../scripts/start_command.ts";
import { FAKE_TOKEN, FakeBotApi } from "../tests/fake_bot_api.ts";
import { freePort, startArgs, WEBHOOK_PATH, webhookEnv } from "../tests/e2e/program.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";
import { startRedis } from "../tests/support/redis_server.ts";
import { textMessage } from "../tests/updates.ts";
import { BENCH_PROGRAM } from "./bench_program.ts";

const SECRET = "profile-Secret_0123456789abcdef";
const USERS = 400;
const IN_FLIGHT = 64;
const BURST = 3000;
const ROUNDS = 3;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

/**
 * The command line of the program to profile, with the inspector on `inspectPort`, and the
 * environment its start task sets before `deno run` (the C library's memory settings).
 */
async function programCommand(
  inspectPort: number,
  root: string | undefined,
  v8Flags: string | undefined,
): Promise<{ args: string[]; env: Record<string, string> }> {
  const inspect = `--inspect=127.0.0.1:${inspectPort}`;
  const start = parseStartTask(await Deno.readTextFile(`${root ?? PROJECT_ROOT}/deno.json`));
  let args: string[];
  if (root) {
    // The permission set as flags: a set's paths are its deno.json's, the program's cwd is not.
    args = [
      "run",
      inspect,
      "--config",
      `${root}/deno.json`,
      ...start.runFlags,
      `${root}/${start.entry}`,
    ];
  } else {
    args = startArgs(BENCH_PROGRAM, start);
    args.splice(1, 0, inspect);
  }
  if (v8Flags !== undefined) {
    args = args.filter((arg) => !arg.startsWith("--v8-flags="));
    if (v8Flags !== "") args.splice(1, 0, `--v8-flags=${v8Flags}`);
  }
  return { args, env: start.env };
}

/** A minimal client of the inspector protocol. */
class Inspector {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, (result: unknown) => void>();
  #id = 0;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.#pending.get(message.id)?.(message.result);
      this.#pending.delete(message.id);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const socket = new WebSocket(targets[0].webSocketDebuggerUrl);
    await new Promise((resolve) => socket.onopen = resolve);
    return new Inspector(socket);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve as (result: unknown) => void);
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.#socket.close();
  }
}

/** A frame's place, short: `npm:pkg@v/…`, `src/…`, or Deno's `ext:…`. */
function where(frame: CallFrame): string {
  return frame.url
    .replace(/.*node_modules\/\.deno\//, "npm:")
    .replace(/^file:\/\/.*?\/(src|bench|main\.ts)/, "$1");
}

function area(frame: CallFrame): string {
  if (frame.url === "") return frame.functionName || "(native)";
  const place = where(frame);
  if (place.startsWith("npm:")) return place.split("/")[0]!;
  if (place.startsWith("src/")) return place.split("/").slice(0, 2).join("/");
  return place.split("/")[0]!;
}

function label(frame: CallFrame): string {
  return `${frame.functionName || "(anonymous)"} ${where(frame)}:${frame.lineNumber + 1}`;
}

function top(map: Map<string, number>, count: number): [string, number][] {
  return [...map].sort((a, b) => b[1] - a[1]).slice(0, count);
}

function add(map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value);
}

function printCpu(profile: CpuProfile, updates: number): void {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i] ?? 0;
    const frame = frames.get(id)!;
    total += micros;
    add(byArea, area(frame), micros);
    add(byFunction, label(frame), micros);
  });
  const share = (micros: number) => `${(100 * micros / total).toFixed(1)} %`.padStart(7);
  const perUpdate = (micros: number) => `${(micros / updates).toFixed(0)} µs`.padStart(7);
  console.log(`\nMain thread, ${(total / 1000).toFixed(0)} ms over ${updates} updates:\n`);
  for (const [name, micros] of top(byArea, 25)) {
    console.log(`${share(micros)} ${perUpdate(micros)}/update  ${name}`);
  }
  console.log("\nFunctions by self time:\n");
  for (const [name, micros] of top(byFunction, 30)) console.log(`${share(micros)}  ${name}`);
}

function printAllocations(head: HeapNode, updates: number): void {
  const byOwner = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode, owner: string) => {
    const place = where(node.callFrame);
    const own = place.startsWith("src/") || place.startsWith("npm:")
      ? label(node.callFrame)
      : owner;
    if (node.selfSize > 0) {
      total += node.selfSize;
      add(byOwner, own, node.selfSize);
    }
    for (const child of node.children) walk(child, own);
  };
  walk(head, "(the runtime, outside any package)");
  const kib = (bytes: number) => `${(bytes / updates / 1024).toFixed(2)} KiB`.padStart(10);
  console.log(`\nAllocated per update (sampled, collected objects included): ${kib(total)}\n`);
  for (const [name, bytes] of top(byOwner, 30)) console.log(`${kib(bytes)}  ${name}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      root: { type: "string" },
      "v8-flags": { type: "string" },
      "cpu-profile": { type: "string" },
    },
  });
  await using postgres = await startPostgres();
  await using redis = await startRedis();
  await using api = await FakeBotApi.start();
  const port = freePort();
  const inspectPort = freePort();
  const { args, env } = await programCommand(inspectPort, values.root, values["v8-flags"]);
  console.error(`[profile] deno ${args.join(" ")}`);
  // The program's working directory (its data/, backups/ and logs/), removed at the end.
  const cwd = await Deno.makeTempDir({ prefix: "bot-profile-" });
  const child = new Deno.Command("deno", {
    args,
    cwd,
    env: {
      BOT_TOKEN: FAKE_TOKEN,
      BOT_API_ROOT: api.apiRoot,
      ...webhookEnv(port, SECRET),
      REDIS_URL: redis.url,
      DATABASE_URL: await postgres.createDatabase("profile"),
      RATE_LIMIT_ENABLED: "true",
      RATE_LIMIT_MAX_REQUESTS: "10000",
      LOG_LEVEL: "warning",
      ...env,
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: IN_FLIGHT });
  try {
    await ready(base);
    let nextUpdateId = 1_000_000;
    const burst = async (count: number) => {
      const bodies = Array.from({ length: count }, (_, i) =>
        JSON.stringify(textMessage({
          updateId: nextUpdateId++,
          chatId: 50_000 + (i % USERS),
          text: "/help",
          firstName: "User",
          languageCode: "en",
        })));
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
        while (next < bodies.length) {
          const res = await fetch(`${base}${WEBHOOK_PATH}`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "x-telegram-bot-api-secret-token": SECRET,
            },
            body: bodies[next++],
            client,
          });
          await res.text();
          if (res.status !== 200) throw new Error(`the webhook answered ${res.status}`);
        }
      }));
      const rate = Math.round(count / ((performance.now() - started) / 1000));
      console.error(`[profile] ${count} updates: ${rate} /s`);
    };
    console.error("[profile] warm-up …");
    await burst(BURST);
    await redisCli(redis.port, "CONFIG", "RESETSTAT");
    const inspector = await Inspector.connect(inspectPort);
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
    await inspector.send("Profiler.start");
    for (let round = 0; round < ROUNDS; round++) await burst(BURST);
    // The event log's batches and the commits' tail.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const { profile } = await inspector.send<{ profile: CpuProfile }>("Profiler.stop");
    const commandStats = await redisCli(redis.port, "INFO", "commandstats");
    if (values["cpu-profile"]) {
      await Deno.writeTextFile(values["cpu-profile"], JSON.stringify(profile));
    }
    await inspector.send("HeapProfiler.enable");
    await inspector.send("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await burst(BURST);
    const heap = await inspector.send<{ profile: { head: HeapNode } }>(
      "HeapProfiler.stopSampling",
    );
    inspector.close();
    printCpu(profile, BURST * ROUNDS);
    printAllocations(heap.profile.head, BURST);
    printRedisTime(commandStats, BURST * ROUNDS);
  } finally {
    client.close();
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(cwd, { recursive: true });
  }
}

/** What `redis-cli` prints for one command to the Redis on `port`. */
async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...args],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(stdout);
}

/**
 * Redis's own time per update by command, from `INFO commandstats` (reset after the warm-up):
 * a script's time counts under `evalsha` and again under each command it calls.
 */
function printRedisTime(commandStats: string, updates: number): void {
  const rows = [...commandStats.matchAll(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/gm)]
    .map(([, name, calls, usec]) => ({ name: name!, calls: Number(calls), usec: Number(usec) }))
    .sort((a, b) => b.usec - a.usec);
  console.log("\nRedis's time per update by command (scripts' commands inside evalsha):\n");
  for (const { name, calls, usec } of rows) {
    const micros = `${(usec / updates).toFixed(1)} µs`.padStart(9);
    console.log(`${micros}  ${(calls / updates).toFixed(2).padStart(6)} calls  ${name}`);
  }
}

/** Waits until the program's `/health` answers 200. */
async function ready(base: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const res = await fetch(`${base}/health`);
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("the program never got ready");
}

if (import.meta.main) await main();
