import assert from "node:assert/strict";
import { readRecord } from "../../../src/bot/dialog/session.ts";
import type { BucketConfig } from "../../../src/bot/gate/bucket.ts";
import { rateLimitArgs } from "../../../src/bot/gate/bucket_script.ts";
import {
  type DialogWrite,
  type FinishResult,
  finishScript,
  finishScriptKeys,
  type GateArgs,
  gateKeys,
  gateScript,
  gateScriptKeys,
  type GateVerdict,
  renewLeaseScript,
  SEEN_TTL_MS,
} from "../../../src/bot/gate/scripts.ts";
import { type DialogRecord } from "../../../src/bot/dialog/record.ts";
import type { KeyValueStore } from "../../../src/store/store.ts";
import { delay } from "../../../src/util/delay.ts";
import { testOnBothStores } from "../../support/stores.ts";

const LIMIT: BucketConfig = { capacity: 3, windowMs: 3_600_000, banAfter: 0, banMs: 60_000 };
const HOUR = 3_600_000;

interface Call {
  chat: number;
  sender?: number;
  updateId: number;
  limit?: boolean;
  token?: string;
  leaseMs?: number;
}

function keysOf(call: Call) {
  return gateKeys(call.chat, call.sender ?? call.chat, call.updateId);
}

async function gate(store: KeyValueStore, call: Call): Promise<GateVerdict> {
  const keys = keysOf(call);
  const args: GateArgs = [
    call.limit ?? true,
    ...rateLimitArgs(LIMIT),
    call.token ?? "",
    call.leaseMs ?? 0,
    HOUR,
    HOUR,
  ];
  return await store.run(gateScript, gateScriptKeys(keys), args) as GateVerdict;
}

async function finish(
  store: KeyValueStore,
  call: Call,
  write: DialogWrite | null = null,
): Promise<FinishResult> {
  const keys = keysOf(call);
  return await store.run(finishScript, finishScriptKeys(keys), [
    call.token ?? "",
    write,
  ]);
}

function record(version: number, state: string | null, data: unknown, now = Date.now()) {
  return {
    v: version,
    s: state,
    d: state === null ? null : JSON.stringify(data),
    sAt: now + HOUR,
    dAt: now + HOUR,
  } satisfies DialogRecord;
}

function write(expect: number, state: string | null, data: unknown, now?: number): DialogWrite {
  return { expect, record: record(expect + 1, state, data, now), ttlMs: 2 * HOUR };
}

function passed(verdict: GateVerdict) {
  assert.equal(verdict.kind, "pass", JSON.stringify(verdict));
  return verdict as Extract<GateVerdict, { kind: "pass" }>;
}

testOnBothStores("gate and finish scripts", async (t, store) => {
  await t.step("an update handled once is a duplicate afterwards and takes no token", async () => {
    passed(await gate(store, { chat: 1, updateId: 100 }));
    await finish(store, { chat: 1, updateId: 100 });
    assert.deepEqual(await gate(store, { chat: 1, updateId: 100 }), { kind: "duplicate" });
    passed(await gate(store, { chat: 1, updateId: 101 }));
    passed(await gate(store, { chat: 1, updateId: 102 }));
    // The bucket (3) is spent by 100, 101 and 102, not by the duplicate.
    assert.equal((await gate(store, { chat: 1, updateId: 103 })).kind, "limited");
  });

  await t.step("an update never finished (abandoned, crashed) passes again", async () => {
    passed(await gate(store, { chat: 5, updateId: 500 }));
    passed(await gate(store, { chat: 5, updateId: 500 }));
  });

  await t.step("a handled update id is remembered for a day", async () => {
    await finish(store, { chat: 2, updateId: 200 });
    const seen = [];
    for await (const entry of store.scan("seen")) if (entry.key[1] === "2") seen.push(entry);
    assert.equal(seen.length, 1);
    assert.ok(seen[0]!.ttlMs! > SEEN_TTL_MS - 60_000 && seen[0]!.ttlMs! <= SEEN_TTL_MS);
  });

  await t.step("an exempt sender is never limited but still deduplicated", async () => {
    const verdicts = [];
    for (let id = 300; id < 310; id++) {
      verdicts.push((await gate(store, { chat: 3, updateId: id, limit: false })).kind);
    }
    assert.deepEqual(verdicts, Array(10).fill("pass"));
    await finish(store, { chat: 3, updateId: 300 });
    assert.equal((await gate(store, { chat: 3, updateId: 300, limit: false })).kind, "duplicate");
  });

  await t.step("a chat held by one instance is busy for another until released", async () => {
    const a = { chat: 10, updateId: 1000, token: "a:1000", leaseMs: 10_000, limit: false };
    const b = { chat: 10, updateId: 1001, token: "b:1001", leaseMs: 10_000, limit: false };
    passed(await gate(store, a));
    const busy = await gate(store, b);
    assert.equal(busy.kind, "busy");
    assert.ok((busy as { waitMs: number }).waitMs > 0);
    // Another chat is not affected.
    passed(await gate(store, { ...b, chat: 11 }));
    await finish(store, a);
    passed(await gate(store, b));
  });

  await t.step("a busy answer takes no token", async () => {
    const a = { chat: 12, updateId: 1, token: "a:1", leaseMs: 10_000 };
    passed(await gate(store, a));
    for (let i = 0; i < 5; i++) {
      assert.equal((await gate(store, { ...a, updateId: 2, token: "b:2" })).kind, "busy");
    }
    await finish(store, a);
    passed(await gate(store, { ...a, updateId: 2, token: "b:2" }));
    passed(await gate(store, { ...a, updateId: 3, token: "", leaseMs: 0 }));
    assert.equal((await gate(store, { ...a, updateId: 4, token: "", leaseMs: 0 })).kind, "limited");
  });

  await t.step("the lease can be renewed only by its holder", async () => {
    const a = { chat: 13, updateId: 1, token: "a:1", leaseMs: 10_000, limit: false };
    passed(await gate(store, a));
    const [lease] = [keysOf(a).lease];
    assert.deepEqual(await store.run(renewLeaseScript, [lease], ["a:1", 10_000]), { held: true });
    assert.deepEqual(await store.run(renewLeaseScript, [lease], ["b:2", 10_000]), { held: false });
  });

  await t.step(
    "dialog state: loaded by the gate, written by finish as a versioned CAS",
    async () => {
      const call = { chat: 20, updateId: 1, limit: false };
      const first = passed(await gate(store, call));
      assert.equal(first.dialog, undefined);
      assert.deepEqual(await finish(store, call, write(0, "form:name", { items: [] })), {
        written: true,
      });
      const second = passed(await gate(store, { ...call, updateId: 2 }));
      const loaded = readRecord(second.dialog, second.at);
      assert.deepEqual(loaded, {
        version: 1,
        state: "form:name",
        data: { items: [] },
        expired: null,
      });
      // A writer that loaded version 0 lost the race.
      assert.deepEqual(await finish(store, { ...call, updateId: 2 }, write(0, "form:x", {})), {
        written: false,
        conflict: "version",
        version: 1,
      });
      // Leaving keeps the record (and its version) with no state.
      assert.deepEqual(await finish(store, { ...call, updateId: 3 }, write(1, null, null)), {
        written: true,
      });
      const third = passed(await gate(store, { ...call, updateId: 4 }));
      assert.deepEqual(readRecord(third.dialog, third.at), {
        version: 2,
        state: null,
        data: null,
        expired: null,
      });
    },
  );

  await t.step("each update renews a live dialog's TTLs, exactly", async () => {
    const call = { chat: 21, updateId: 1, limit: false };
    const old = Date.now() - 10 * 60_000;
    await finish(store, call, write(0, "form:age", { name: "Ada 🚀" }, old));
    const verdict = passed(await gate(store, { ...call, updateId: 2 }));
    const renewed = verdict.dialog!;
    assert.equal(renewed.sAt, verdict.at + HOUR);
    assert.equal(renewed.dAt, verdict.at + HOUR);
    assert.equal(renewed.d, JSON.stringify({ name: "Ada 🚀" }));
  });

  await t.step("a dialog renewed in the last minute is not rewritten", async () => {
    const call = { chat: 24, updateId: 1, limit: false };
    const recent = Date.now() - 30_000;
    await finish(store, call, write(0, "form:age", { name: "Ada" }, recent));
    const verdict = passed(await gate(store, { ...call, updateId: 2 }));
    assert.equal(verdict.dialog!.sAt, recent + HOUR);
    assert.equal((await store.get(["fsm", 24, 24]) as DialogRecord).sAt, recent + HOUR);
  });

  await t.step("an expired dialog is reported, not renewed", async () => {
    const call = { chat: 22, updateId: 1, limit: false };
    const stale = { ...record(1, "form:age", { name: "x" }), sAt: Date.now() - 1 };
    await finish(store, call, { expect: 0, record: stale, ttlMs: HOUR });
    const verdict = passed(await gate(store, { ...call, updateId: 2 }));
    assert.deepEqual(readRecord(verdict.dialog, verdict.at), {
      version: 1,
      state: null,
      data: null,
      expired: "form:age",
    });
  });

  await t.step("a write is fenced by the lease: a holder whose lease lapsed loses", async () => {
    const a = { chat: 23, updateId: 1, token: "a:1", leaseMs: 50, limit: false };
    passed(await gate(store, a));
    await delay(120);
    const b = { chat: 23, updateId: 2, token: "b:2", leaseMs: 10_000, limit: false };
    passed(await gate(store, b));
    assert.deepEqual(await finish(store, a, write(0, "form:name", {})), {
      written: false,
      conflict: "lease",
    });
    // A's finish did not release B's lease.
    assert.equal((await gate(store, { ...b, updateId: 3, token: "c:3" })).kind, "busy");
    assert.deepEqual(await finish(store, b, write(0, "form:name", {})), { written: true });
  });

  await t.step("the cached profile is read in a private chat only", async () => {
    await store.set(["user", 30], { id: 30, firstName: "Ada" });
    const own = passed(await gate(store, { chat: 30, updateId: 1, limit: false }));
    assert.equal(own.profileRead, true);
    assert.deepEqual(own.profile, { id: 30, firstName: "Ada" });
    const group = passed(await gate(store, { chat: -100, sender: 30, updateId: 2, limit: false }));
    assert.equal(group.profileRead, false);
    assert.equal(group.profile, undefined);
    const unknown = passed(await gate(store, { chat: 31, updateId: 3, limit: false }));
    assert.equal(unknown.profileRead, true);
    assert.equal(unknown.profile, undefined);
  });
});
