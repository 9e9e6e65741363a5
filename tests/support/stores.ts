/**
 * Runs a store test on both backends: a throwaway Redis server started for the test (with a
 * fresh key prefix) and Deno KV in a temp dir.
 */
import { openKvStore } from "../../src/store/kv_store.ts";
import { openRedisStore } from "../../src/store/redis_store.ts";
import type { KeyValueStore } from "../../src/store/store.ts";
import { startRedis } from "./redis_server.ts";

/** A Deno KV store in a fresh temp dir, closed and removed when disposed. */
export async function tempKvStore(
  prefix = "store-test-",
): Promise<KeyValueStore & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix });
  const store = await openKvStore(`${dir}/kv.sqlite3`);
  return Object.assign(store, {
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  });
}

/** Registers `Deno.test("<name> (redis)")` and `Deno.test("<name> (kv)")`. */
export function testOnBothStores(
  name: string,
  body: (t: Deno.TestContext, store: KeyValueStore) => Promise<void>,
): void {
  Deno.test(`${name} (redis)`, async (t) => {
    await using redis = await startRedis();
    const store = await openRedisStore({ url: redis.url, keyPrefix: `t${crypto.randomUUID()}:` });
    try {
      await body(t, store);
    } finally {
      await store.close();
    }
  });
  Deno.test(`${name} (kv)`, async (t) => {
    await using store = await tempKvStore();
    await body(t, store);
  });
}
