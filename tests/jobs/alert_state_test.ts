/**
 * The shared state of an infrastructure problem: the pure rules with a fake clock, and the
 * store script (Lua and TypeScript twins) on both stores.
 */
import assert from "node:assert/strict";
import {
  type ProblemArgs,
  problemKey,
  problemScript,
  type ProblemState,
  reportProblem,
} from "../../src/jobs/alert_state.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { testOnBothStores } from "../support/stores.ts";

const report = (instance: string, failing: boolean, detail = "") => ({
  instance,
  failing,
  detail,
  alertAfterMs: 60_000,
  staleMs: 30_000,
});

/** Runs the reports in order at the given times; returns the actions. */
function play(steps: [at: number, instance: string, failing: boolean][]): string[] {
  let state: ProblemState | null = null;
  return steps.map(([at, instance, failing]) => {
    const next = reportProblem(state, report(instance, failing, `down (${instance})`), at);
    state = next.state;
    return next.answer.action;
  });
}

Deno.test("reportProblem() raises once a problem lasted alertAfterMs and clears once nobody sees it", () => {
  assert.deepEqual(
    play([[0, "a", true], [30_000, "a", true], [60_000, "a", true], [90_000, "a", true], [
      100_000,
      "a",
      false,
    ], [110_000, "a", false]]),
    ["none", "none", "raise", "none", "clear", "none"],
  );
});

Deno.test("reportProblem() counts from the first instance that saw it and clears when the last one recovers", () => {
  assert.deepEqual(
    play([
      [0, "a", true],
      [20_000, "b", true],
      [40_000, "a", false],
      // b has seen it since 20 s: at 80 s it is raised, once, whoever reports.
      [70_000, "b", true],
      [80_000, "b", true],
      [85_000, "a", true],
      [90_000, "b", false],
      [95_000, "a", false],
    ]),
    ["none", "none", "none", "none", "raise", "none", "none", "clear"],
  );
});

Deno.test("reportProblem() forgets an instance that stopped reporting", () => {
  // a saw it and died; b never saw it: after staleMs the problem is over.
  assert.deepEqual(
    play([[0, "a", true], [60_000, "a", true], [70_000, "b", false], [95_000, "b", false]]),
    ["none", "raise", "none", "clear"],
  );
});

Deno.test("reportProblem() with alertAfterMs 0 raises at once", () => {
  const { answer } = reportProblem(null, { ...report("a", true, "disk full"), alertAfterMs: 0 }, 5);
  assert.deepEqual(answer, { action: "raise", detail: "disk full", since: 5 });
});

function send(store: KeyValueStore, name: string, args: ProblemArgs) {
  return store.run(problemScript, [problemKey(name)], args);
}

testOnBothStores("problemScript", async (t, store) => {
  await t.step("two instances seeing a problem: one raise, then one clear", async () => {
    const args = (instance: string, failing: boolean): ProblemArgs => [
      instance,
      failing,
      `db down (${instance})`,
      0,
      60_000,
    ];
    const actions = [];
    for (
      const [instance, failing] of [["a", true], ["b", true], ["a", true], ["a", false]] as const
    ) {
      actions.push((await send(store, "database", args(instance, failing))).action);
    }
    assert.deepEqual(actions, ["raise", "none", "none", "none"]);
    const state = await store.get(problemKey("database")) as unknown as ProblemState;
    assert.equal(state.raised, true);
    assert.deepEqual(Object.keys(state.by), ["b"]);
    const cleared = await send(store, "database", args("b", false));
    assert.equal(cleared.action, "clear");
    assert.equal(cleared.detail, "db down (a)", "the latest detail");
    assert.equal(await store.get(problemKey("database")), null, "nothing kept once cleared");
  });

  await t.step("not raised before alertAfterMs; the detail is the latest", async () => {
    const first = await send(store, "disk", ["a", true, "900 MiB free", 60_000, 60_000]);
    const second = await send(store, "disk", ["a", true, "800 MiB free", 60_000, 60_000]);
    assert.deepEqual([first.action, second.action], ["none", "none"]);
    assert.equal(second.detail, "800 MiB free");
    assert.ok(Math.abs(second.since - Date.now()) < 5000);
    assert.equal((await send(store, "disk", ["a", false, "", 60_000, 60_000])).action, "none");
  });

  await t.step("under 50 concurrent reports one raise only", async () => {
    const answers = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) => send(store, "polling", [`i${i % 5}`, true, "409", 0, 60_000]),
      ),
    );
    assert.equal(answers.filter((a) => a.action === "raise").length, 1);
  });
});
