import assert from "node:assert/strict";
import { type TelegramProfile, UserRepository } from "../../src/db/users.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

function profile(id: number, overrides: Partial<TelegramProfile> = {}): TelegramProfile {
  return {
    id,
    username: `user${id}`,
    firstName: "Ada",
    lastName: null,
    languageCode: "en",
    ...overrides,
  };
}

/** The profile fields of a stored row, to compare with what Telegram sent. */
function profileOf(row: TelegramProfile): TelegramProfile {
  const { id, username, firstName, lastName, languageCode } = row;
  return { id, username, firstName, lastName, languageCode };
}

const HOUR = 3_600_000;

testOnBothBackends("UserRepository", async (t, { fresh }) => {
  const { db, reset, counted } = await migrated(fresh);
  const users = new UserRepository(db.sql);

  await t.step("upsert() creates a user with notifications on and not blocked", async () => {
    await reset();
    const [row, queries] = await counted(() => users.upsert(profile(1)));
    assert.equal(queries, 1);
    assert.deepEqual(profileOf(row), profile(1));
    assert.equal(row.notifications, true);
    assert.equal(row.blockedAt, null);
    assert.equal(row.locale, null);
    assert.ok(row.createdAt instanceof Date && row.lastSeenAt instanceof Date);
    assert.deepEqual(await users.get(1), row);
  });

  await t.step("upsert() of a changed profile updates it and keeps createdAt", async () => {
    await reset();
    const first = await users.upsert(profile(1));
    const changed = profile(1, {
      username: "ada_l",
      firstName: "Augusta Ada",
      lastName: "King",
      languageCode: "de",
    });
    const second = await users.upsert(changed);
    assert.deepEqual(profileOf(second), changed);
    assert.deepEqual(second.createdAt, first.createdAt);
    assert.ok(second.lastSeenAt >= first.lastSeenAt);
    assert.deepEqual(profileOf((await users.get(1))!), changed);
    assert.equal((await db.sql`select count(*)::int as n from users`)[0]!.n, 1);
  });

  await t.step("upsert() after markBlocked() makes the user reachable again", async () => {
    await reset();
    await users.upsert(profile(1));
    const blockedAt = new Date("2025-01-02T03:04:05.678Z");
    await users.markBlocked(1, blockedAt);
    assert.deepEqual((await users.get(1))!.blockedAt, blockedAt);
    assert.deepEqual(await users.notifiable(0, 10), []);

    const row = await users.upsert(profile(1));
    assert.equal(row.blockedAt, null);
    assert.deepEqual(await users.notifiable(0, 10), [1]);
  });

  await t.step("touch() records many sightings in one query", async () => {
    await reset();
    const ids = Array.from({ length: 50 }, (_, i) => 7_000_000_000 + i);
    for (const id of ids) await users.upsert(profile(id));
    const base = Date.now() + HOUR;
    const sightings = ids.map((id, i) => ({ id, at: new Date(base + i * 1000) }));

    const [, queries] = await counted(() => users.touch(sightings));
    assert.equal(queries, 1);
    for (const { id, at } of sightings) {
      assert.deepEqual((await users.get(id))!.lastSeenAt, at, `user ${id}`);
    }
  });

  await t.step("touch() never moves last seen back", async () => {
    await reset();
    const upserted = await users.upsert(profile(1));
    await users.touch([{ id: 1, at: new Date(upserted.lastSeenAt.getTime() - 24 * HOUR) }]);
    assert.deepEqual((await users.get(1))!.lastSeenAt, upserted.lastSeenAt);

    const later = new Date(Date.now() + 2 * HOUR);
    await users.touch([{ id: 1, at: later }]);
    await users.touch([{ id: 1, at: new Date(later.getTime() - HOUR) }]);
    assert.deepEqual((await users.get(1))!.lastSeenAt, later);
  });

  await t.step("touch() keeps the latest sighting of an id seen twice in one batch", async () => {
    await reset();
    await users.upsert(profile(1));
    await users.upsert(profile(2));
    const earlier = new Date(Date.now() + HOUR);
    const latest = new Date(Date.now() + 2 * HOUR);
    const [, queries] = await counted(() =>
      users.touch([
        { id: 1, at: latest },
        { id: 2, at: earlier },
        { id: 1, at: earlier },
        { id: 2, at: latest },
      ])
    );
    assert.equal(queries, 1);
    assert.deepEqual((await users.get(1))!.lastSeenAt, latest);
    assert.deepEqual((await users.get(2))!.lastSeenAt, latest);
  });

  await t.step("touch() sends nothing for no sightings and creates no unknown user", async () => {
    await reset();
    const [, none] = await counted(() => users.touch([]));
    assert.equal(none, 0);
    await users.touch([{ id: 404, at: new Date() }]);
    assert.equal(await users.get(404), null);
  });

  await t.step("setLocale() and setNotifications() return the updated row", async () => {
    await reset();
    await users.upsert(profile(1));

    const german = await users.setLocale(1, "de");
    assert.equal(german!.locale, "de");
    assert.equal(german!.languageCode, "en", "Telegram's language stays as reported");
    assert.equal((await users.get(1))!.locale, "de");
    assert.equal((await users.setLocale(1, null))!.locale, null);

    const off = await users.setNotifications(1, false);
    assert.equal(off!.notifications, false);
    assert.equal((await users.get(1))!.notifications, false);
    assert.equal((await users.setNotifications(1, true))!.notifications, true);
  });

  await t.step("setLocale() and setNotifications() return null for an unknown id", async () => {
    await reset();
    assert.equal(await users.setLocale(404, "de"), null);
    assert.equal(await users.setNotifications(404, false), null);
    assert.equal(await users.get(404), null);
  });

  await t.step("notifiable() skips unsubscribed and blocked users and pages by id", async () => {
    await reset();
    // Ids out of order and beyond 2^31, so that paging must compare them as numbers.
    for (const id of [10, 2, 5_000_000_000, 9, 1, 3, 11]) await users.upsert(profile(id));
    await users.setNotifications(3, false);
    await users.markBlocked(10);

    const pages: number[][] = [];
    let after = 0;
    for (;;) {
      const page = await users.notifiable(after, 2);
      pages.push(page);
      if (page.length === 0) break;
      after = page.at(-1)!;
    }
    assert.deepEqual(pages, [[1, 2], [9, 11], [5_000_000_000], []]);
  });

  await t.step("profiles round-trip whatever characters they hold", async (t) => {
    await reset();
    const cases: Array<[string, Partial<TelegramProfile>]> = [
      ["quotes and SQL", { firstName: `O'Brien "Bob"`, lastName: "'); drop table users; --" }],
      ["backslashes and percent signs", { firstName: "100% \\ back\\slash \\x00", lastName: "_%" }],
      ["emoji with joiners and flags", { firstName: "👩🏽‍💻 Ana", lastName: "🇺🇦🏳️‍🌈" }],
      ["right-to-left text", { firstName: "مريم", lastName: "\u200fשלום עולם" }],
      ["combining marks", { firstName: "Zoe\u0308", lastName: "Ångström" }],
      ["a very long name", { firstName: "ä😀x".repeat(10_000), lastName: "y".repeat(65_536) }],
      ["nulls where Telegram may send nothing", { username: null, languageCode: null }],
      ["an empty first name", { firstName: "" }],
    ];
    for (const [index, [name, fields]] of cases.entries()) {
      await t.step(name, async () => {
        const sent = profile(8_000_000_000_000 + index, fields);
        assert.deepEqual(profileOf(await users.upsert(sent)), sent);
        assert.deepEqual(profileOf((await users.get(sent.id))!), sent);
      });
    }
  });
});
