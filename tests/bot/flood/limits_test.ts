import assert from "node:assert/strict";
import {
  admit,
  admitTakes,
  floodLimits,
  type FloodLog,
  JITTER_GUARD_MS,
  type LogRule,
  pauseLog,
  PREFETCH_VALID_MS,
  toFloodLog,
} from "../../../src/bot/flood/limits.ts";

const rule = (limit: number, windowMs: number, keep = limit): LogRule => ({
  limit,
  keep,
  windowMs,
});

/** Sends as many messages as `rules` admit, asking at `times`, and keeping the logs. */
function simulate(rules: LogRule[], times: number[]): number[] {
  let logs: (FloodLog | null)[] = rules.map(() => null);
  const sent: number[] = [];
  for (const now of times) {
    const { waitMs, writes } = admit(logs, rules, now);
    if (waitMs > 0) continue;
    logs = writes!.map((w) => w.log);
    sent.push(now);
  }
  return sent;
}

/** The most entries of sorted `times` in any window `[t, t + windowMs)`. */
function busiest(times: number[], windowMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while (times[j]! - times[i]! >= windowMs) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

Deno.test("admit() lets messages through up to the limit, then says how long until the oldest leaves", () => {
  const rules = [rule(3, 1000)];
  let logs: (FloodLog | null)[] = [null];
  for (const now of [0, 10, 20]) {
    const { waitMs, writes } = admit(logs, rules, now);
    assert.equal(waitMs, 0);
    logs = writes!.map((w) => w.log);
  }
  assert.deepEqual(logs[0], { t: [0, 10, 20], p: 0 });
  assert.deepEqual(admit(logs, rules, 500), { waitMs: 500, writes: null });
  // At 1000 the first send has left the window.
  assert.equal(admit(logs, rules, 1000).waitMs, 0);
});

Deno.test("admit() keeps every limit: the longest wait of all rules counts", () => {
  const logs: FloodLog[] = [{ t: [0], p: 0 }, { t: [100, 200], p: 0 }];
  const rules = [rule(1, 300), rule(2, 1000)];
  assert.equal(admit(logs, rules, 250).waitMs, 850);
});

Deno.test("admit() with a reserve: bulk stops below the limit, replies still pass", async (t) => {
  const full: FloodLog = { t: [1, 2, 3, 4, 5, 6, 7, 8], p: 0 };
  await t.step("bulk (limit 8 of 10) waits", () => {
    assert.ok(admit([full], [rule(8, 1000, 10)], 50).waitMs > 0);
  });
  await t.step("interactive (limit 10) passes and the log keeps 10", () => {
    const { waitMs, writes } = admit([full], [rule(10, 1000)], 50);
    assert.equal(waitMs, 0);
    assert.deepEqual(writes![0]!.log.t, [1, 2, 3, 4, 5, 6, 7, 8, 50]);
  });
});

Deno.test("admit() waits out a pause; pauseLog() keeps the later of two pauses", () => {
  const paused = pauseLog({ t: [5], p: 0 }, 3000, 1000, 1050);
  assert.deepEqual(paused, { log: { t: [5], p: 3000 }, ttlMs: 2000 });
  assert.equal(pauseLog(paused.log, 2000, 1000, 1050).log.p, 3000);
  assert.equal(admit([paused.log], [rule(30, 1050)], 1200).waitMs, 1800);
  assert.equal(admit([paused.log], [rule(30, 1050)], 3000).waitMs, 0);
});

Deno.test("admit() never lets more than `limit` into any window, whoever asks when", () => {
  // Bursts and gaps: asked at irregular moments, in time order.
  const times = Array.from({ length: 5000 }, (_, i) => Math.floor(i * 1.7 + (i % 13) * 3))
    .sort((a, b) => a - b);
  for (const [limit, windowMs] of [[30, 1050], [3, 3050], [1, 42]] as const) {
    const sent = simulate([rule(limit, windowMs)], times);
    assert.ok(busiest(sent, windowMs) <= limit, `${limit} per ${windowMs} ms`);
    assert.ok(sent.length > 0);
  }
});

Deno.test("admit() counts a log written by an instance whose clock is ahead", () => {
  // Another instance wrote 100 ms "in the future"; this one's clock is behind.
  const log: FloodLog = { t: [1000, 1100, 950], p: 0 };
  assert.equal(admit([log], [rule(3, 1000)], 1000).waitMs, 950);
  assert.equal(admit([log], [rule(4, 1000)], 1000).waitMs, 0);
});

Deno.test("floodLimits() keeps Telegram's limits with a guard and paces bulk evenly", async (t) => {
  await t.step("BROADCAST_RATE 25: one bulk message per 42 ms, 24 in any second", () => {
    const limits = floodLimits(25);
    assert.deepEqual(limits.global, { count: 30, windowMs: 1000 + JITTER_GUARD_MS });
    assert.equal(limits.bulk.count, 1);
    assert.equal(limits.bulk.windowMs, 42);
    const sent = simulate(
      [rule(1, limits.bulk.windowMs)],
      Array.from({ length: 3000 }, (_, i) => i),
    );
    assert.equal(busiest(sent, 1000), 24);
    // Even 40 ms of jitter between sender and Telegram cannot push a second over 25.
    const jittered = sent.map((at, i) => at + (i % 2 === 0 ? 40 : 0)).sort((a, b) => a - b);
    assert.ok(busiest(jittered, 1000) <= 25);
  });
  await t.step("a rate above what the reserve leaves is capped", () => {
    assert.equal(floodLimits(30).bulk.windowMs, Math.ceil(1050 / 25));
  });
});

Deno.test("toFloodLog() reads what Lua wrote, also an empty list encoded as {}", () => {
  assert.deepEqual(toFloodLog({ t: {}, p: 7 }), { t: [], p: 7 });
  assert.deepEqual(toFloodLog({ t: [1, "x", 2] }), { t: [1, 2], p: 0 });
  assert.equal(toFloodLog("garbage"), null);
  assert.equal(toFloodLog(null), null);
});

Deno.test("admitTakes() decides several messages as admit() would one after another", () => {
  // Three logs: the bot-wide one (5 per 1000 ms) and two chats (2 per 3000 ms each).
  const windows = [1000, 3000, 3000];
  const counts = [5, 2, 2];
  const need = (i: number) => [i, counts[i]!, counts[i]!, windows[i]!] as const;
  const random = (() => {
    let seed = 7;
    return () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  })();
  for (let round = 0; round < 200; round++) {
    const now = 10_000;
    const logs = counts.map(() =>
      random() < 0.3 ? null : {
        t: Array.from(
          { length: Math.floor(random() * 6) },
          () => now - Math.floor(random() * 4000),
        ),
        p: random() < 0.1 ? now + 500 : 0,
      }
    );
    const takes = Array.from(
      { length: 1 + Math.floor(random() * 6) },
      () => random() < 0.5 ? [need(0), need(1)] : [need(0), need(2)],
    );
    // One after another with admit(), each on what the ones before left.
    const current = [...logs];
    const expected = takes.map((take) => {
      const { waitMs, writes } = admit(
        take.map(([i]) => current[i] ?? null),
        take.map(([, limit, keep, windowMs]) => ({ limit, keep, windowMs })),
        now,
      );
      writes?.forEach((write, j) => current[take[j]![0]] = write.log);
      return waitMs;
    });
    const { waits, writes } = admitTakes(logs, takes, now);
    assert.deepEqual(waits, expected, `round ${round}`);
    for (const [i, write] of writes.entries()) {
      if (write === undefined) assert.equal(current[i], logs[i], `round ${round}: log ${i}`);
      else assert.deepEqual(write.log, current[i], `round ${round}: log ${i}`);
    }
  }
});

Deno.test("admitTakes() with sends recorded ahead: whenever each really goes, no window holds more than the limit", () => {
  // A seeded generator, so that a failure can be replayed.
  let seed = 20261202;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const windowMs = 1000;
  const limit = 30;
  for (let run = 0; run < 20; run++) {
    let log: FloodLog | null = null;
    const sent: number[] = [];
    let released = 0;
    // Messages ask at random times, busy enough that the limit binds; about half are replies
    // whose turn was taken ahead: recorded PREFETCH_VALID_MS late, sent any time up to then,
    // or never (given back).
    for (let now = 0; now < 20_000; now += Math.floor(random() * 40)) {
      const ahead = random() < 0.5 ? PREFETCH_VALID_MS : 0;
      const { waits: [wait], writes: [write] } = admitTakes(
        [log],
        [[[0, limit, limit, windowMs]]],
        now,
        [ahead],
      );
      if (wait! > 0) continue;
      log = write!.log;
      assert.ok(write!.ttlMs >= windowMs + ahead, "kept until the newest send leaves the window");
      if (ahead > 0 && random() < 0.2) {
        // Not used: taken back.
        const at = log.t.indexOf(now + ahead);
        log = { ...log, t: log.t.filter((_, i) => i !== at) };
        released++;
        continue;
      }
      sent.push(now + Math.floor(random() * (ahead + 1)));
    }
    assert.ok(released > 0 && sent.length > 300, `${sent.length} sent, ${released} released`);
    const busiestWindow = busiest(sent.sort((a, b) => a - b), windowMs);
    assert.ok(busiestWindow <= limit, `run ${run}: ${busiestWindow} in one window`);
    assert.ok(busiestWindow >= limit - 2, `run ${run}: the limit binds (${busiestWindow})`);
  }
});
