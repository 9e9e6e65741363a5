import assert from "node:assert/strict";
import { type EventRecord, insertEvents } from "../../src/db/events.ts";
import { Migrator, parseMigrations } from "../../src/db/migrate.ts";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import { testOnBothBackends } from "../support/databases.ts";

/** Event `i` of a varied batch: some without user, chat or command; group chats negative. */
function event(i: number): EventRecord {
  return {
    updateId: 900_000_000 + i,
    userId: i % 3 === 0 ? null : 7_000_000_000 + i,
    chatId: i % 5 === 0 ? null : i % 2 ? -1_001_234_567_890 - i : 7_000_000_000 + i,
    type: i % 4 === 0 ? "callback_query" : "message",
    command: i % 7 === 0
      ? null
      : i % 7 === 1
      ? "/start"
      : i % 7 === 2
      ? `/say "{a,b}" \\ 'c' \t ✉️ ${i}`
      : `/stätus_${i}`,
    outcome: ["handled", "error", "dropped"][i % 3]!,
    // Multiples of 1/8 are exact in the column's `real`.
    durationMs: i / 8,
    at: new Date(Date.UTC(2025, 0, 1) + i * 1_001),
  };
}

testOnBothBackends("insertEvents()", async (t, { fresh }) => {
  let sent = 0;
  const db = await fresh({ onQuery: () => sent++ });
  await new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)).up();

  await t.step("writes a batch of 1000 in one query with every field intact", async () => {
    const batch = Array.from({ length: 1000 }, (_, i) => event(i));
    const before = sent;
    await insertEvents(db.sql, batch);
    assert.equal(sent - before, 1);

    const rows = await db.sql<EventRecord[]>`
      select update_id as "updateId", user_id as "userId", chat_id as "chatId", type, command,
        outcome, duration_ms as "durationMs", at
      from events order by update_id`;
    assert.equal(rows.length, 1000);
    for (const [i, row] of rows.entries()) assert.deepEqual({ ...row }, batch[i], `event ${i}`);
  });

  await t.step("writes nothing and sends no query for an empty batch", async () => {
    await db.sql`truncate events`;
    const before = sent;
    await insertEvents(db.sql, []);
    assert.equal(sent - before, 0);
    const [{ n }] = await db.sql<[{ n: number }]>`select count(*)::int as n from events`;
    assert.equal(n, 0);
  });
});
