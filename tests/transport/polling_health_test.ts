import assert from "node:assert/strict";
import { type PollerStatus, pollingHealth } from "../../src/transport/polling.ts";

const NOW = 1_800_000_000_000;

const status = (fields: Partial<PollerStatus>): PollerStatus => ({
  startedAt: NOW - 10_000,
  lastSuccessAt: null,
  pollSentAt: null,
  lastError: null,
  ...fields,
});

Deno.test("pollingHealth() judges polling by Telegram's answers", async (t) => {
  const cases: Array<{
    name: string;
    status: PollerStatus | null;
    expected: { status: string; observedValue?: number; output?: RegExp };
  }> = [
    {
      name: "not started: warn",
      status: null,
      expected: { status: "warn", output: /polling has not started/ },
    },
    {
      name: "answered 800 ms ago, a poll waiting: pass, observedValue the answer's age",
      status: status({ lastSuccessAt: NOW - 800, pollSentAt: NOW - 800 }),
      expected: { status: "pass", observedValue: 800 },
    },
    {
      name: "never answered, the first poll waiting: the time since polling started",
      status: status({ pollSentAt: NOW - 9_000 }),
      expected: { status: "pass", observedValue: 10_000 },
    },
    {
      name: "never answered, failing: warn, and observedValue is not 0",
      status: status({ startedAt: NOW - 45_000, lastError: "Network request failed" }),
      expected: { status: "warn", observedValue: 45_000, output: /Network request failed/ },
    },
    {
      name: "a poll unanswered for over 75 s: warn",
      status: status({ lastSuccessAt: NOW - 90_000, pollSentAt: NOW - 80_000 }),
      expected: { status: "warn", observedValue: 90_000, output: /unanswered for 80 s/ },
    },
  ];
  for (const { name, status, expected } of cases) {
    await t.step(name, () => {
      const result = pollingHealth(status, NOW);
      assert.equal(result.status, expected.status);
      if (expected.observedValue !== undefined) {
        assert.equal(result.observedValue, expected.observedValue);
      }
      if (expected.output) assert.match(result.output ?? "", expected.output);
      else assert.equal(result.output, undefined);
    });
  }

  await t.step("while Telegram never answers, observedValue grows", () => {
    const failing = status({ lastError: "409: Conflict" });
    const first = pollingHealth(failing, NOW).observedValue!;
    const later = pollingHealth(failing, NOW + 5_000).observedValue!;
    assert.ok(first > 0);
    assert.equal(later - first, 5_000);
  });
});
