// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * What our Redis scripts cost Redis, in machine instructions counted by Valgrind's callgrind:
 * a figure that does not move with the load on the machine, unlike the timings of
 * `webhook_compare.ts`, whose rounds differ by a third on a busy 2-core machine. Use it to
 * compare two versions of the scripts (run it in both checkouts).
 *
 * A throwaway `redis-server` runs under callgrind (about 50 times slower); this process drives
 * it through the real Redis store, the real flood control and the real scripts:
 *
 * - the update mix: per update the gate, the reply's flood take and the commit, 64 updates at
 *   once, as the program runs them in webhook mode (the bench's flood limits, see
 *   `bench_program.ts`);
 * - gate + commit alone, and the flood take alone (one message, and eight merged) against a
 *   bot-wide log of 30 send times, as at Telegram's limit; 16 calls at once.
 *
 * Each figure is the whole server's instructions (network and event loop included) divided by
 * the updates or calls, from callgrind's dump after each phase. Under callgrind the server is
 * slow, so more calls wait for each batch than at full speed: per call, the batches' own cost
 * weighs less here than in the program.
 *
 *     apt-get install valgrind
 *     deno run -A bench/redis_instructions.ts [updates per phase, default 3000]
 *
 * @module
 */
import { FloodControl } from "../src/bot/flood/flood_control.ts";
import { floodKeys, takeScript, takeSpec } from "../src/bot/flood/script.ts";
import {
  type FinishArgs,
  finishScript,
  finishScriptKeys,
  type GateArgs,
  gateKeys,
  gateScript,
  gateScriptKeys,
} from "../src/bot/gate/scripts.ts";
import { logger } from "../src/log.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { openRedisStore, type RedisStore } from "../src/store/redis_store.ts";
import { freePort } from "../tests/support/ports.ts";
import { benchFloodLimits } from "./bench_program.ts";
import { markdownTable } from "./stats.ts";

const UPDATES = Number(Deno.args[0] ?? 3000);
/** Chats per worker of the update mix: no two updates of one chat are in flight at once. */
const CHATS_PER_WORKER = 6;

/** A server under callgrind; {@link dump} answers the instructions since the last dump. */
class CallgrindRedis implements AsyncDisposable {
  readonly port = freePort();
  readonly #dir = Deno.makeTempDirSync({ prefix: "redis-callgrind-" });
  readonly #process: Deno.ChildProcess;
  #dumps = 0;

  constructor() {
    this.#process = new Deno.Command("valgrind", {
      args: [
        "--tool=callgrind",
        `--callgrind-out-file=${this.#dir}/callgrind.out`,
        "redis-server",
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        this.#dir,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
  }

  /** The instructions the server ran since the last dump (or its start). */
  dump(): number {
    const { success } = new Deno.Command("callgrind_control", {
      args: ["--dump", String(this.#process.pid)],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    if (!success) throw new Error("callgrind_control --dump failed");
    this.#dumps++;
    const text = Deno.readTextFileSync(`${this.#dir}/callgrind.out.${this.#dumps}`);
    const total = text.match(/^(?:summary|totals): (\d+)/m);
    if (!total) throw new Error(`no totals in callgrind dump ${this.#dumps}`);
    return Number(total[1]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#process.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await this.#process.status;
    await Deno.remove(this.#dir, { recursive: true });
  }
}

/** Runs `call` `count` times, `inFlight` at once; answers thousands of instructions per call. */
async function phase(
  redis: CallgrindRedis,
  count: number,
  inFlight: number,
  call: (i: number, worker: number, turn: number) => Promise<unknown>,
): Promise<number> {
  redis.dump();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async (_, worker) => {
    for (let turn = 0; next < count; turn++) await call(next++, worker, turn);
  }));
  return redis.dump() / count / 1000;
}

/** The gate's arguments with a limit nobody reaches: every update passes. */
function gateArgs(token: string): GateArgs {
  return [true, 1e9, 60_000, 3, 600_000, token, 30_000, 86_400_000, 86_400_000];
}

/** One update's gate and commit in `chat` (a private chat: the profile is read too). */
async function gateAndCommit(
  store: RedisStore,
  chat: number,
  updateId: number,
  between?: () => Promise<void>,
) {
  const keys = gateKeys(chat, chat, updateId);
  const token = `bench:${updateId}`;
  const verdict = await store.run(gateScript, gateScriptKeys(keys), gateArgs(token));
  if (verdict.kind !== "pass") throw new Error(`the gate answered ${verdict.kind}`);
  await between?.();
  const finish: FinishArgs = [token, null];
  await store.run(finishScript, finishScriptKeys(keys), finish);
}

if (import.meta.main) {
  await using redis = new CallgrindRedis();
  const store = await openRedisStore({
    url: `redis://127.0.0.1:${redis.port}`,
    keyPrefix: "bench:",
    connectTimeoutMs: 60_000,
  });
  using metrics = new Metrics();
  const flood = new FloodControl({
    store,
    limits: benchFloodLimits(),
    metrics: metrics.background,
    log: logger("flood"),
  });
  const full = [
    { limit: 1e9, keep: 30, windowMs: 60_000 },
    { limit: 1e9, keep: 3, windowMs: 60_000 },
  ];
  const take = (first: number, messages: number) => {
    const keys = [floodKeys(0).global];
    const takes = [];
    for (let m = 0; m < messages; m++) {
      keys.push(floodKeys(first + m).chat);
      takes.push(takeSpec(full, [0, m + 1]));
    }
    return store.run(takeScript, keys, [takes, takes.map(() => 0)]);
  };
  const rows: string[][] = [];
  try {
    // Round 0 warms the server up (scripts loaded, dictionaries grown); rounds 1 and 2 count.
    for (let round = 0; round < 3; round++) {
      const base = round * 10_000_000;
      console.error(`[redis instructions] round ${round + 1} of 3 …`);
      const mix = await phase(redis, UPDATES, 64, (i, worker, turn) => {
        const chat = 1000 + worker * CHATS_PER_WORKER + (turn % CHATS_PER_WORKER);
        return gateAndCommit(store, chat, base + i, () => flood.acquire(chat, "interactive"));
      });
      const pair = await phase(
        redis,
        UPDATES,
        16,
        (i) => gateAndCommit(store, 1000 + (i % 500), base + 1_000_000 + i),
      );
      const one = await phase(redis, UPDATES, 16, (i) => take(base + i, 1));
      const eight = await phase(redis, UPDATES / 4, 16, (i) => take(base + i * 8, 8));
      if (round === 0) continue;
      rows.push([
        String(round),
        `${mix.toFixed(1)}k`,
        `${pair.toFixed(1)}k`,
        `${one.toFixed(1)}k`,
        `${eight.toFixed(1)}k (${(eight / 8).toFixed(1)}k per message)`,
      ]);
    }
  } finally {
    await store.close();
  }
  console.log([
    "### Redis instructions per call (callgrind, whole server)",
    "",
    markdownTable(
      [
        "round",
        "update mix: gate, flood take, commit (64 at once)",
        "gate + commit",
        "flood take, 1 message",
        "flood take, 8 messages merged",
      ],
      rows,
    ),
  ].join("\n"));
}
