import assert from "node:assert/strict";
import { BROADCAST_SUMMARY, BroadcastRepository } from "../../src/db/broadcasts.ts";
import { OutboxRepository } from "../../src/db/outbox.ts";
import type { Database } from "../../src/db/database.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

const ADMIN = 900;

async function empty(db: Database): Promise<void> {
  await db.sql`truncate broadcasts, broadcast_recipients, users, outbox restart identity cascade`;
}

/** A broadcast that started, with `users` as its recipients. */
async function running(repo: BroadcastRepository, users: number[]) {
  const draft = await repo.create({
    adminId: ADMIN,
    chatId: ADMIN,
    locale: "en",
    sourceMessageId: 5,
  });
  const started = await repo.start(draft.id, 6);
  assert.ok(started);
  await repo.enqueue(draft.id, users, true);
  return started;
}

testOnBothBackends("BroadcastRepository", async (t, { fresh }) => {
  const { db, counted } = await migrated(fresh);
  const repo = new BroadcastRepository(db.sql);
  const outbox = new OutboxRepository(db.sql);

  await t.step("audience() counts subscribed users who have not blocked the bot", async () => {
    await empty(db);
    await db.sql`insert into users (id, notifications, blocked_at) values
      (1, true, null), (2, false, null), (3, true, now()), (4, true, null)`;
    assert.equal(await repo.audience(), 2);
  });

  await t.step(
    "start() starts a draft once; cancel() of a draft leaves nothing to send",
    async () => {
      await empty(db);
      const draft = await repo.create({
        adminId: ADMIN,
        chatId: ADMIN,
        locale: "ru",
        sourceMessageId: 9,
      });
      assert.equal(draft.status, "draft");
      assert.equal((await repo.start(draft.id, 10))?.status, "sending");
      assert.equal(await repo.start(draft.id, 10), null, "a second Send does nothing");
      const other = await repo.create({
        adminId: ADMIN,
        chatId: ADMIN,
        locale: "en",
        sourceMessageId: 11,
      });
      assert.deepEqual((await repo.cancel(ADMIN, other.id)).map((b) => b.status), ["cancelled"]);
      assert.equal(await repo.start(other.id, 12), null);
      assert.deepEqual((await repo.running()).map((b) => b.id), [draft.id]);
    },
  );

  await t.step("enqueue() adds a page once, also when repeated after a crash", async () => {
    await empty(db);
    const b = await running(repo, [5, 6, 7]);
    await repo.enqueue(b.id, [6, 7, 8], false);
    assert.deepEqual(await repo.counts(b.id), {
      total: 4,
      sent: 0,
      failed: 0,
      blocked: 0,
      remaining: 4,
    });
    assert.equal((await repo.get(b.id))?.queuedThrough, 8);
  });

  await t.step("claim() hands each recipient to one claimer, in one statement each", async () => {
    await empty(db);
    const b = await running(repo, Array.from({ length: 30 }, (_, i) => i + 1));
    const [first, queries] = await counted(() => repo.claim(b.id, "a", 10_000));
    assert.equal(queries, 1);
    assert.deepEqual(first, { userId: 1, attempts: 1 });
    const claims = await Promise.all(
      Array.from({ length: 40 }, (_, i) => repo.claim(b.id, i % 2 ? "a" : "b", 10_000)),
    );
    const ids = claims.flatMap((c) => c ? [c.userId] : []);
    assert.equal(ids.length, 29);
    assert.equal(new Set(ids).size, 29, "nobody claimed twice");
  });

  await t.step("a claim that ran out is taken again; a marked recipient never is", async () => {
    await empty(db);
    const b = await running(repo, [1, 2]);
    await repo.claim(b.id, "dead", 1);
    assert.equal(await repo.mark(b.id, 1, "other", { status: "sent" }), false, "not its claim");
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = await repo.claim(b.id, "alive", 10_000);
    assert.deepEqual(again, { userId: 1, attempts: 2 });
    assert.equal(await repo.mark(b.id, 1, "alive", { status: "sent", messageId: 77 }), true);
    assert.deepEqual(await repo.claim(b.id, "alive", 10_000), { userId: 2, attempts: 1 });
    await repo.mark(b.id, 2, "alive", { status: "blocked", error: "403" });
    assert.equal(await repo.claim(b.id, "alive", 10_000), null);
  });

  await t.step("release() gives a recipient back; cancel() stops the claims", async () => {
    await empty(db);
    const b = await running(repo, [1, 2]);
    await repo.claim(b.id, "a", 10_000);
    await repo.release(b.id, 1, "a", "429");
    assert.equal((await repo.claim(b.id, "a", 10_000))?.userId, 1);
    await repo.cancel(ADMIN);
    assert.equal(await repo.claim(b.id, "a", 10_000), null);
  });

  await t.step(
    "finish() waits for live claims, then ends once, with counts and one summary owed",
    async () => {
      await empty(db);
      const b = await running(repo, [1, 2, 3]);
      for (const [user, status] of [[1, "sent"], [2, "failed"]] as const) {
        await repo.claim(b.id, "a", 10_000);
        await repo.mark(b.id, user, "a", { status });
      }
      assert.equal(await repo.finish(b.id), null, "one is still pending");
      await repo.claim(b.id, "a", 10_000);
      assert.equal(await repo.finish(b.id), null, "one is claimed");
      await repo.mark(b.id, 3, "a", { status: "blocked" });
      const ended = await repo.finish(b.id);
      assert.equal(ended?.status, "done");
      assert.equal(await repo.finish(b.id), null, "it ends once");
      assert.deepEqual(await outbox.undelivered(BROADCAST_SUMMARY, 10), [String(b.id)]);
      const [listed] = await repo.list(10);
      assert.deepEqual(
        {
          status: listed!.status,
          total: listed!.total,
          sent: listed!.sent,
          failed: listed!.failed,
          blocked: listed!.blocked,
        },
        { status: "done", total: 3, sent: 1, failed: 1, blocked: 1 },
      );
    },
  );

  await t.step("a cancelled broadcast ends with what it sent", async () => {
    await empty(db);
    const b = await running(repo, [1, 2, 3]);
    await repo.claim(b.id, "a", 10_000);
    await repo.mark(b.id, 1, "a", { status: "sent" });
    await repo.cancel(ADMIN);
    assert.equal((await repo.finish(b.id))?.status, "cancelled");
    assert.deepEqual(await repo.counts(b.id), {
      total: 3,
      sent: 1,
      failed: 0,
      blocked: 0,
      remaining: 2,
    });
  });

  await t.step(
    "purgeRecipients() deletes the user ids of old broadcasts; their counts stay",
    async () => {
      await empty(db);
      const b = await running(repo, [1, 2, 3]);
      await repo.cancel(ADMIN);
      await repo.finish(b.id);
      assert.equal(await repo.purgeRecipients(new Date(Date.now() - 86_400_000), 10), 0);
      assert.equal(await repo.purgeRecipients(new Date(Date.now() + 1000), 2), 2);
      assert.equal(await repo.purgeRecipients(new Date(Date.now() + 1000), 2), 1);
      const [listed] = await repo.list(10);
      assert.equal(listed!.total, 3);
    },
  );
});
