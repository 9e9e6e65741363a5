import assert from "node:assert/strict";
import { join } from "node:path";
import { openKvStore } from "../../src/store/kv_store.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { counterWithCap, storeContract, type StoreHarness } from "./contract.ts";

/** Stores in files of one temp dir, removed on dispose. */
async function kvHarness(): Promise<StoreHarness & { dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "kv-store-test-" });
  const stores: KeyValueStore[] = [];
  return {
    dir,
    async open() {
      const store = await openKvStore(join(dir, `store-${stores.length}.sqlite`));
      stores.push(store);
      return store;
    },
    async [Symbol.asyncDispose]() {
      for (const store of stores) await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

storeContract("KvStore", kvHarness);

Deno.test("KvStore keeps its data when the same file is closed and reopened", async () => {
  await using harness = await kvHarness();
  const path = join(harness.dir, "persist.sqlite");
  const first = await openKvStore(path);
  await first.set(["user", 1], { name: "Ada" });
  await first.set(["lease", "l"], "held", { ttlMs: 60_000 });
  await first.run(counterWithCap, [["counter", "c"]], [10]);
  await first.close();

  const second = await openKvStore(path);
  try {
    assert.deepEqual(await second.get(["user", "1"]), { name: "Ada" });
    assert.equal(await second.get(["lease", "l"]), "held");
    assert.deepEqual(await second.run(counterWithCap, [["counter", "c"]], [10]), [true, 2]);
  } finally {
    await second.close();
  }
});

Deno.test("KvStore run() stays atomic across two handles on one file", async () => {
  await using harness = await kvHarness();
  const path = join(harness.dir, "shared.sqlite");
  const [a, b] = [await openKvStore(path), await openKvStore(path)];
  try {
    const key = [["counter", "shared"]] as const;
    // Each handle queues its own callers, so only the versionstamp checks keep them apart.
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) => (i % 2 ? a : b).run(counterWithCap, key, [100])),
    );
    assert.equal(results.filter(([ok]) => ok).length, 100);
    assert.equal(await a.get(key[0]), 100);
  } finally {
    await a.close();
    await b.close();
  }
});
