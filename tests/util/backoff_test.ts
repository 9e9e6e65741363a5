import assert from "node:assert/strict";
import { backoffDelay } from "../../src/util/backoff.ts";

Deno.test("backoffDelay() grows exponentially with full jitter and a cap", async (t) => {
  const cases: Array<{ attempt: number; random: number; options?: object; ms: number }> = [
    // Defaults: base 500 ms, cap 30 s. random 0 gives a tenth of the ceiling, 1 the ceiling.
    { attempt: 0, random: 0, ms: 50 },
    { attempt: 0, random: 1, ms: 500 },
    { attempt: 1, random: 0, ms: 100 },
    { attempt: 1, random: 1, ms: 1_000 },
    { attempt: 2, random: 1, ms: 2_000 },
    { attempt: 3, random: 0.5, ms: 2_200 },
    { attempt: 5, random: 1, ms: 16_000 },
    { attempt: 6, random: 1, ms: 30_000 },
    { attempt: 6, random: 0, ms: 3_000 },
    { attempt: 50, random: 1, ms: 30_000 },
    { attempt: 5000, random: 1, ms: 30_000 },
    // A negative attempt is treated as the first retry.
    { attempt: -3, random: 1, ms: 500 },
    { attempt: 0, random: 1, options: { baseMs: 100 }, ms: 100 },
    { attempt: 3, random: 1, options: { baseMs: 100, maxMs: 500 }, ms: 500 },
    { attempt: 3, random: 0, options: { baseMs: 100, maxMs: 500 }, ms: 50 },
    { attempt: 2, random: 1, options: { maxMs: 1_500 }, ms: 1_500 },
  ];
  for (const { attempt, random, options, ms } of cases) {
    await t.step(`attempt ${attempt}, random ${random}, ${JSON.stringify(options ?? {})}`, () => {
      assert.equal(backoffDelay(attempt, options, () => random), ms);
    });
  }
});

Deno.test("backoffDelay() never returns zero nor more than maxMs", () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    for (const random of [0, 0.001, 0.25, 0.999, 1]) {
      const ms = backoffDelay(attempt, { baseMs: 500, maxMs: 10_000 }, () => random);
      assert.ok(ms > 0, `attempt ${attempt} random ${random} gave ${ms}`);
      assert.ok(ms <= 10_000, `attempt ${attempt} random ${random} gave ${ms}`);
    }
  }
});
