import assert from "node:assert/strict";
import {
  type BucketConfig,
  type BucketState,
  consume,
  fullBucket,
  type Verdict,
} from "../../../src/bot/gate/bucket.ts";

/** 20 per 60 s, banned for an hour after 5 limited updates: the documented defaults. */
const CONFIG: BucketConfig = { capacity: 20, windowMs: 60_000, banAfter: 5, banMs: 3_600_000 };

/** Feeds updates at the given times through `consume` and returns the verdicts. */
function run(times: number[], config = CONFIG, start: BucketState | null = null): Verdict[] {
  let state = start;
  return times.map((now) => {
    const result = consume(state, now, config);
    state = result.state;
    return result.verdict;
  });
}

const kinds = (verdicts: Verdict[]) => verdicts.map((v) => v.kind);
const burst = (n: number, at = 0) => Array.from({ length: n }, () => at);

Deno.test("consume() passes a burst up to the capacity, then limits with one notice", () => {
  const verdicts = run(burst(25));
  assert.deepEqual(kinds(verdicts), [...Array(20).fill("pass"), ...Array(5).fill("limited")]);
  const limited = verdicts.slice(20) as Extract<Verdict, { kind: "limited" }>[];
  assert.deepEqual(limited.map((v) => v.notify), [true, false, false, false, false]);
  // One token comes back every 3 s (20 per 60 s).
  assert.equal(limited[0]!.retryAfterMs, 3_000);
});

Deno.test("consume() follows the table", async (t) => {
  const cases: Array<{ name: string; times: number[]; config?: BucketConfig; expect: string[] }> = [
    {
      name: "a token refills after windowMs / capacity",
      times: [...burst(20), 0, 2_999, 3_000],
      expect: [...Array(20).fill("pass"), "limited", "limited", "pass"],
    },
    {
      name: "the sixth limited update in a row bans (banAfter 5)",
      times: burst(26),
      expect: [...Array(20).fill("pass"), ...Array(5).fill("limited"), "banned"],
    },
    {
      name: "slow steady spam that passes now and then is still banned",
      // One update a second: every third passes, the others are violations.
      times: [...burst(20), ...Array.from({ length: 12 }, (_, i) => 1_000 * (i + 1))],
      expect: [
        ...Array(20).fill("pass"),
        ...["limited", "limited", "pass", "limited", "limited", "pass", "limited", "banned"],
        ...Array(4).fill("banned"),
      ],
    },
    {
      name: "banAfter 0 never bans",
      times: burst(40),
      config: { ...CONFIG, banAfter: 0 },
      expect: [...Array(20).fill("pass"), ...Array(20).fill("limited")],
    },
    {
      name: "a ban ends after banMs with a full bucket",
      times: [...burst(26), 3_600_000 - 1, 3_600_000, 3_600_000],
      expect: [
        ...Array(20).fill("pass"),
        ...Array(5).fill("limited"),
        "banned",
        "banned",
        "pass",
        "pass",
      ],
    },
    {
      name: "a clock that goes back adds no tokens",
      times: [...burst(20, 10_000), 0],
      expect: [...Array(20).fill("pass"), "limited"],
    },
  ];
  for (const { name, times, config, expect } of cases) {
    await t.step(name, () => assert.deepEqual(kinds(run(times, config)), expect));
  }
});

Deno.test("consume() tells a banned user once per ban", () => {
  const verdicts = run(burst(30)).filter((v) => v.kind === "banned");
  assert.deepEqual(verdicts.map((v) => v.kind === "banned" && v.notify), [
    true,
    false,
    false,
    false,
    false,
  ]);
  assert.deepEqual(verdicts.map((v) => v.kind === "banned" && v.untilMs), Array(5).fill(3_600_000));
});

Deno.test("consume() forgives violations and notices once the bucket is full again", () => {
  let state: BucketState | null = null;
  for (const now of burst(24)) state = consume(state, now, CONFIG).state;
  assert.equal(state!.violations, 4);
  // A whole window of calm refills the bucket: the next spam episode starts from scratch.
  const verdicts = run([...burst(20, 60_000), 60_000], CONFIG, state);
  assert.deepEqual(verdicts.at(-1), { kind: "limited", retryAfterMs: 3_000, notify: true });
});

Deno.test("consume() says how long its state matters", () => {
  const first = consume(null, 0, CONFIG);
  assert.equal(first.keepMs, 3_000);
  assert.deepEqual(fullBucket(CONFIG, 5), {
    tokens: 20,
    at: 5,
    violations: 0,
    told: false,
    bannedUntil: 0,
  });
  const banned = run(burst(26));
  assert.equal(banned.at(-1)!.kind, "banned");
  let state: BucketState | null = null;
  let keep = 0;
  for (const now of burst(26)) ({ state, keepMs: keep } = consume(state, now, CONFIG));
  assert.equal(keep, CONFIG.banMs);
});
