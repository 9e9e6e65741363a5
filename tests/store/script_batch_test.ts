import assert from "node:assert/strict";
import { StoreUnavailableError } from "../../src/errors.ts";
import { openRedisStore, type RedisStore } from "../../src/store/redis_store.ts";
import { encodeArg } from "../../src/store/script_batch.ts";
import type { AtomicScript } from "../../src/store/store.ts";
import { startRedis } from "../support/redis_server.ts";
import { counterWithCap } from "./contract.ts";

/** Appends `args[0]` to the list at `KEYS[1]` (a JSON array); answers the list. */
const append: AtomicScript<[item: string], string[]> = {
  name: "test_append",
  lua: `
    local raw = redis.call('GET', KEYS[1])
    local list = raw and cjson.decode(raw) or {}
    list[#list + 1] = cjson.decode(ARGV[2])
    local encoded = cjson.encode(list)
    redis.call('SET', KEYS[1], encoded)
    return encoded`,
  apply([current], [item]) {
    const list = [...(Array.isArray(current) ? current as string[] : []), item];
    return { writes: [{ value: list, ttlMs: null }], result: list };
  },
};

/** Answers its keys and arguments as it received them, and the time it ran at. */
const echo: AtomicScript<[text: string, n: number], { keys: string[]; args: string[] }> = {
  name: "test_echo",
  lua: `
    local args = {}
    for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
    return cjson.encode({keys = KEYS, args = args, now = tonumber(ARGV[1]) > 0})`,
  apply: () => ({ writes: [], result: { keys: [], args: [] } }),
};

const failing: AtomicScript<[], null> = {
  name: "test_failing",
  lua: "return redis.call('NO_SUCH_COMMAND')",
  apply: () => ({ writes: [], result: null }),
};

/** Round trips so far: EVALSHA and EVAL calls, as Redis counts them. */
async function scriptCalls(url: string): Promise<number> {
  const port = new URL(url).port;
  const { stdout } = await new Deno.Command("redis-cli", {
    args: ["-p", port, "INFO", "commandstats"],
  }).output();
  const text = new TextDecoder().decode(stdout);
  let calls = 0;
  for (const match of text.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) {
    calls += Number(match[2]);
  }
  return calls;
}

async function withStore(
  fn: (store: RedisStore, url: string) => Promise<void>,
): Promise<void> {
  await using redis = await startRedis();
  const store = await openRedisStore({ url: redis.url, keyPrefix: "batch:" });
  try {
    await fn(store, redis.url);
  } finally {
    await store.close();
  }
}

Deno.test("script calls made together travel as one round trip, each with its own answer", async () => {
  await withStore(async (store, url) => {
    // Loads the scripts, so that the count below sees no NOSCRIPT retry.
    await Promise.all([
      store.run(counterWithCap, [["c", 0]], [100]),
      store.run(append, [["l", 0]], ["warm"]),
    ]);
    const before = await scriptCalls(url);
    const answers = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => store.run(counterWithCap, [["c", i + 1]], [100])),
      store.run(append, [["l", 1]], ["x"]),
    ]);
    assert.equal(await scriptCalls(url) - before, 1, "one EVALSHA for 21 calls");
    assert.deepEqual(answers.slice(0, 20), Array.from({ length: 20 }, () => [true, 1]));
    assert.deepEqual(answers[20], ["x"]);
  });
});

Deno.test("calls in one batch run in the order they were made, each seeing the last's writes", async () => {
  await withStore(async (store) => {
    const answers = await Promise.all(
      ["a", "b", "c", "d"].map((item) => store.run(append, [["l", 1]], [item])),
    );
    assert.deepEqual(answers, [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]]);
  });
});

Deno.test("a call in a batch gets its own keys and arguments, whatever they hold", async () => {
  await withStore(async (store) => {
    const odd = 'quote " backslash \\ newline \n separator \u001e nul \u0000 é 🙂';
    const [first, second] = await Promise.all([
      store.run(echo, [["e", 1], ["e", 1, "x"]], [odd, 1]),
      store.run(echo, [["e", 2]], ["", 2]),
    ]);
    assert.deepEqual(first, {
      keys: ["batch:e:{1}", "batch:e:{1}:x"],
      args: [JSON.stringify(odd), "1"],
      now: true,
    });
    assert.deepEqual(second, { keys: ["batch:e:{2}"], args: ['""', "2"], now: true });
  });
});

Deno.test("keys holding any character travel in a batch; one with a lone surrogate makes its batch go one call at a time", async () => {
  await withStore(async (store, url) => {
    const odd = 'odd " \\ \n \u001e \u0000 é 🙂';
    // Loads the script alone and that of a batch of appends, so that the counts below see no
    // NOSCRIPT retry.
    await store.run(append, [["l", 0]], ["warm"]);
    await Promise.all([
      store.run(append, [["l", 0]], ["warm"]),
      store.run(append, [["l", 0]], ["warm"]),
    ]);
    let before = await scriptCalls(url);
    const together = await Promise.all([
      store.run(append, [["l", odd]], ["a"]),
      store.run(append, [["l", odd]], ["b"]),
    ]);
    assert.equal(await scriptCalls(url) - before, 1, "one EVALSHA for both");
    assert.deepEqual(together, [["a"], ["a", "b"]]);
    assert.deepEqual(await store.get(["l", odd]), ["a", "b"]);

    // JSON carries a lone surrogate as an escape that Redis's cjson refuses: were it in the
    // batch, every call of it would fail.
    before = await scriptCalls(url);
    const alone = await Promise.all([
      store.run(append, [["l", "lone\ud800"]], ["c"]),
      store.run(append, [["l", "plain"]], ["d"]),
    ]);
    assert.equal(await scriptCalls(url) - before, 2, "one EVALSHA each");
    assert.deepEqual(alone, [["c"], ["d"]]);
    assert.deepEqual(await store.get(["l", "lone\ud800"]), ["c"]);
  });
});

Deno.test("a failing script fails only its own call in a batch", async () => {
  await withStore(async (store) => {
    const [ok, failed, after] = await Promise.allSettled([
      store.run(counterWithCap, [["c", 1]], [5]),
      store.run(failing, [["f", 1]], []),
      store.run(counterWithCap, [["c", 1]], [5]),
    ]);
    assert.deepEqual(ok, { status: "fulfilled", value: [true, 1] });
    assert.equal(failed.status, "rejected");
    const error = (failed as PromiseRejectedResult).reason;
    assert.ok(error instanceof Error && !(error instanceof StoreUnavailableError));
    assert.match(error.message, /test_failing/);
    assert.deepEqual(after, { status: "fulfilled", value: [true, 2] });
  });
});

Deno.test("a batch runs again after SCRIPT FLUSH", async () => {
  await withStore(async (store, url) => {
    const together = () =>
      Promise.all([1, 2, 3].map((i) => store.run(counterWithCap, [["c", i]], [5])));
    assert.deepEqual(await together(), [[true, 1], [true, 1], [true, 1]]);
    await new Deno.Command("redis-cli", { args: ["-p", new URL(url).port, "SCRIPT", "FLUSH"] })
      .output();
    assert.deepEqual(await together(), [[true, 2], [true, 2], [true, 2]]);
  });
});

Deno.test("calls queued behind a batch in flight go in the next one", async () => {
  await withStore(async (store, url) => {
    // Loads the script and the batch of it.
    await store.run(counterWithCap, [["c", 0]], [1000]);
    await Promise.all([1, 2].map(() => store.run(counterWithCap, [["c", 0]], [1000])));
    const before = await scriptCalls(url);
    // The first goes alone; the 50 made while it is on its way follow as one batch.
    const first = store.run(counterWithCap, [["c", 0]], [1000]);
    await Promise.resolve();
    const rest = Array.from({ length: 50 }, () => store.run(counterWithCap, [["c", 0]], [1000]));
    const answers = await Promise.all([first, ...rest]);
    assert.deepEqual(
      answers.map((answer) => answer[1]),
      Array.from({ length: 51 }, (_, i) => i + 4),
    );
    assert.equal(await scriptCalls(url) - before, 2);
  });
});

Deno.test("encodeArg() encodes a script argument exactly as JSON.stringify does", () => {
  const values = [
    0,
    -0,
    7,
    -12.5,
    1e21,
    5e-324,
    Number.MAX_SAFE_INTEGER,
    NaN,
    Infinity,
    -Infinity,
    true,
    false,
    null,
    "",
    'a "quoted" \\ line\n\u0000🔑',
    [1, "two", null, [true]],
    { a: 1, b: [false], c: { d: "e" } },
  ];
  for (const value of values) {
    assert.equal(encodeArg(value), JSON.stringify(value), String(value));
  }
});
