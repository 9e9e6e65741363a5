import assert from "node:assert/strict";
import { join } from "node:path";
import { type TelegramProfile, UserRepository } from "../../src/db/users.ts";
import { openKvStore } from "../../src/store/kv_store.ts";
import { UserCache } from "../../src/store/user_cache.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

function profile(id: number): TelegramProfile {
  return { id, username: `user${id}`, firstName: "Ada", lastName: null, languageCode: "en" };
}

testOnBothBackends("bans", async (t, { fresh }) => {
  const { db, reset, counted } = await migrated(fresh);
  const users = new UserRepository(db.sql);

  await t.step("a new user is not banned", async () => {
    await reset();
    assert.equal((await users.upsert(profile(1))).bannedAt, null);
  });

  await t.step("ban() records the time; banning again keeps the first time", async () => {
    await reset();
    await users.upsert(profile(1));
    const at = new Date("2026-01-02T03:04:05.678Z");
    const [banned, queries] = await counted(() => users.ban(1, at));
    assert.equal(queries, 1);
    assert.deepEqual(banned?.bannedAt, at);
    assert.deepEqual((await users.ban(1, new Date()))?.bannedAt, at);
    assert.deepEqual((await users.get(1))?.bannedAt, at);
  });

  await t.step(
    "a ban survives the user's next messages (upsert) and unban() lifts it",
    async () => {
      await reset();
      await users.upsert(profile(1));
      await users.ban(1);
      const again = await users.upsert({ ...profile(1), firstName: "Augusta" });
      assert.ok(again.bannedAt instanceof Date);
      assert.equal((await users.unban(1))?.bannedAt, null);
      assert.equal((await users.get(1))?.bannedAt, null);
    },
  );

  await t.step("ban() and unban() of an unknown user return null and create nobody", async () => {
    await reset();
    assert.equal(await users.ban(42), null);
    assert.equal(await users.unban(42), null);
    assert.equal(await users.get(42), null);
  });

  await t.step("UserCache.ban() and unban() rewrite the cached profile", async () => {
    await reset();
    const dir = await Deno.makeTempDir({ prefix: "bans-test-" });
    const store = await openKvStore(join(dir, "kv.sqlite3"));
    try {
      const cache = new UserCache({ store, users, ttlMs: 60_000 });
      await cache.resolve(profile(1));
      assert.ok((await cache.ban(1))?.bannedAt instanceof Date);
      const [cached, queries] = await counted(() => cache.resolve(profile(1)));
      assert.equal(queries, 0, "the ban comes from the cache");
      assert.ok(cached.bannedAt instanceof Date);
      await cache.unban(1);
      const [lifted, afterUnban] = await counted(() => cache.resolve(profile(1)));
      assert.equal(afterUnban, 0);
      assert.equal(lifted.bannedAt, null);
      assert.equal(await cache.ban(42), null);
    } finally {
      await store.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step(
    "a cached profile from before bans existed is read again from the database",
    async () => {
      await reset();
      const dir = await Deno.makeTempDir({ prefix: "bans-test-" });
      const store = await openKvStore(join(dir, "kv.sqlite3"));
      try {
        const cache = new UserCache({ store, users, ttlMs: 60_000 });
        const row = await users.upsert(profile(1));
        await users.ban(1);
        const { bannedAt: _, ...old } = row;
        await store.set(UserCache.key(1), {
          ...old,
          createdAt: row.createdAt.toISOString(),
          lastSeenAt: row.lastSeenAt.toISOString(),
          blockedAt: null,
        });
        const [resolved, queries] = await counted(() => cache.resolve(profile(1)));
        assert.equal(queries, 1);
        assert.ok(resolved.bannedAt instanceof Date);
      } finally {
        await store.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
});
