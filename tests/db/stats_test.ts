import assert from "node:assert/strict";
import { readStats } from "../../src/db/stats.ts";
import { UserRepository } from "../../src/db/users.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

testOnBothBackends("readStats()", async (t, { fresh }) => {
  const { db, reset } = await migrated(fresh);
  const users = new UserRepository(db.sql);
  const profile = (id: number) => ({
    id,
    username: null,
    firstName: "Ada",
    lastName: null,
    languageCode: "en",
  });

  await t.step("an empty database has zeros and no median", async () => {
    await reset();
    assert.deepEqual(await readStats(db.sql), {
      users: { total: 0, today: 0, blocked: 0, banned: 0 },
      requests: [],
      medianCloseSeconds: null,
      done: 0,
      medianTakeSeconds: null,
      averageRating: null,
      ratings: 0,
    });
  });

  await t.step("counts users (new today, blocked, banned) and requests by status", async () => {
    await reset();
    for (const id of [1, 2, 3, 4]) await users.upsert(profile(id));
    await db.sql`update users set created_at = now() - interval '3 days' where id = 4`;
    await users.markBlocked(2);
    await users.ban(3);
    // Done requests that took 1 h, 2 h and 10 h to close: the median is 2 h; taken after
    // 10, 20 and 60 minutes: the median is 20 min; rated 5 and 2.
    await db.sql`
      insert into requests (user_id, category, description, contact, status, created_at,
        taken_at, closed_at, rating)
      values
        (1, 'it', 'a', 'c', 'done', now() - interval '20 hours',
          now() - interval '1190 minutes', now() - interval '19 hours', 5),
        (1, 'it', 'b', 'c', 'done', now() - interval '20 hours',
          now() - interval '1180 minutes', now() - interval '18 hours', 2),
        (1, 'it', 'c', 'c', 'done', now() - interval '20 hours',
          now() - interval '1140 minutes', now() - interval '10 hours', null),
        (1, 'it', 'd', 'c', 'new', now(), null, null, null),
        (1, 'it', 'e', 'c', 'cancelled', now(), null, now(), null)`;
    assert.deepEqual(await readStats(db.sql), {
      users: { total: 4, today: 3, blocked: 1, banned: 1 },
      requests: [
        { status: "cancelled", count: 1 },
        { status: "done", count: 3 },
        { status: "new", count: 1 },
      ],
      medianCloseSeconds: 7200,
      done: 3,
      medianTakeSeconds: 1200,
      averageRating: 3.5,
      ratings: 2,
    });
  });
});
