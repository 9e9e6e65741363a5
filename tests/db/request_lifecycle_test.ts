import assert from "node:assert/strict";
import { RequestLifecycle } from "../../src/db/request_lifecycle.ts";
import { RequestMessages } from "../../src/db/request_messages.ts";
import { RequestRepository } from "../../src/db/requests.ts";
import { UserRepository } from "../../src/db/users.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

const USER = 2_000_000_001;
const STAFF = 910;

testOnBothBackends("RequestLifecycle and RequestMessages", async (t, { fresh }) => {
  const { db, reset } = await migrated(fresh);
  const users = new UserRepository(db.sql);
  const requests = new RequestRepository(db.sql);
  const lifecycle = new RequestLifecycle(db.sql);
  const messages = new RequestMessages(db.sql);
  const owed = async (kind: string) =>
    (await db.sql<{ ref: string; payload: Record<string, unknown> }[]>`
      select ref, payload from outbox where kind = ${kind} order by id`).map((r) => ({ ...r }));

  async function start(): Promise<number> {
    await reset();
    await users.upsert({
      id: USER,
      username: "Olya_K",
      firstName: "Olya",
      lastName: null,
      languageCode: "ru",
    });
    const { number } = await requests.create({
      userId: USER,
      category: "Network",
      description: "The Wi-Fi on the third floor drops every hour",
      contact: "+7 900 000 00 00",
    });
    return number;
  }

  await t.step(
    "each action starts only where it makes sense, records history and owes a notification",
    async () => {
      const n = await start();
      assert.equal(
        await lifecycle.act(n, "release", STAFF),
        null,
        "a new request cannot be released",
      );
      assert.equal(await lifecycle.act(n, "reopen", STAFF), null, "nor reopened");
      const taken = await lifecycle.act(n, "take", STAFF);
      assert.equal(taken?.request.status, "in_progress");
      assert.equal(taken?.request.assigneeId, STAFF);
      assert.ok(taken?.request.takenAt instanceof Date);
      assert.equal(taken?.wasTakenAt, null);
      assert.equal(
        await lifecycle.act(n, "take", STAFF + 1),
        null,
        "a second take changes nothing",
      );
      assert.equal((await lifecycle.act(n, "release", STAFF))?.request.status, "new");
      assert.equal((await lifecycle.act(n, "take", STAFF + 1))?.wasTakenAt instanceof Date, true);
      assert.equal((await lifecycle.act(n, "done", STAFF + 1))?.request.status, "done");
      assert.equal(await lifecycle.act(n, "done", STAFF), null);
      assert.equal((await lifecycle.act(n, "reopen", STAFF))?.request.status, "in_progress");
      const rejected = await lifecycle.act(n, "reject", STAFF, "Not our department <b>");
      assert.equal(rejected?.request.status, "rejected");
      assert.equal(rejected?.request.rejectReason, "Not our department <b>");
      assert.ok(rejected?.request.closedAt instanceof Date);
      const history = (await requests.history(n)).map((h) => h.action);
      assert.deepEqual(history, [
        "created",
        "taken",
        "released",
        "taken",
        "closed",
        "reopened",
        "rejected",
      ]);
      const notes = await owed("notify_user");
      assert.deepEqual(notes.map((o) => o.payload.action), [
        "take",
        "release",
        "take",
        "done",
        "reopen",
        "reject",
      ]);
      assert.equal(new Set(notes.map((o) => o.ref)).size, 6, "one item per change");
    },
  );

  await t.step(
    "a rating is stored only for the author's done request; a comment only after it",
    async () => {
      const n = await start();
      assert.equal(await lifecycle.rate(n, USER, 5), false, "not done yet");
      await lifecycle.act(n, "done", STAFF);
      assert.equal(await lifecycle.rate(n, USER + 1, 5), false, "not theirs");
      assert.equal(await lifecycle.comment(n, USER, "quick"), false, "no rating yet");
      assert.equal(await lifecycle.rate(n, USER, 4), true);
      assert.equal(await lifecycle.comment(n, USER, "quick & kind"), true);
      const row = await requests.get(n);
      assert.equal(row?.rating, 4);
      assert.equal(row?.ratingComment, "quick & kind");
      const figures = await lifecycle.figures();
      assert.equal(figures.averageRating, 4);
      assert.equal(figures.ratings, 1);
      assert.ok(figures.medianCloseSeconds !== null && figures.medianCloseSeconds >= 0);
    },
  );

  await t.step(
    "the queue lists new requests first, then those in progress, oldest first; find finds",
    async () => {
      const a = await start();
      const b = (await requests.create({
        userId: USER,
        category: "Access",
        description: "Badge reader broken",
        contact: "1234567",
      })).number;
      const c = (await requests.create({
        userId: USER,
        category: "Hardware",
        description: "Mouse squeaks",
        contact: "1234567",
      })).number;
      await lifecycle.act(a, "take", STAFF);
      await lifecycle.act(c, "done", STAFF);
      const queue = await lifecycle.queue(10, 0);
      assert.deepEqual(queue.items.map((r) => r.number), [b, a]);
      assert.equal(queue.total, 2);
      assert.deepEqual((await lifecycle.find(`#${b}`, 10)).map((r) => r.number), [b]);
      assert.deepEqual((await lifecycle.find(String(USER), 10)).map((r) => r.number), [c, b, a]);
      assert.deepEqual((await lifecycle.find("@olya_k", 10)).map((r) => r.number), [c, b, a]);
      assert.deepEqual((await lifecycle.find("badge READER", 10)).map((r) => r.number), [b]);
      assert.deepEqual(await lifecycle.find("100%_", 10), [], "wildcards are taken literally");
      const counts = await lifecycle.openCounts();
      assert.deepEqual([counts.new, counts.inProgress], [1, 1]);
    },
  );

  await t.step(
    "remindDue() reminds each untaken request once per period, and the admins at the third",
    async () => {
      const n = await start();
      assert.deepEqual(await lifecycle.remindDue(60, [1, 2]), []);
      await db
        .sql`update requests set created_at = now() - interval '61 minutes' where number = ${n}`;
      assert.deepEqual(await lifecycle.remindDue(60, [1, 2]), [{ number: n, reminders: 1 }]);
      assert.deepEqual(await lifecycle.remindDue(60, [1, 2]), [], "not again in the same period");
      await db
        .sql`update requests set created_at = now() - interval '181 minutes' where number = ${n}`;
      await lifecycle.remindDue(60, [1, 2]);
      assert.deepEqual(await lifecycle.remindDue(60, [1, 2]), [{ number: n, reminders: 3 }]);
      assert.equal((await owed("staff_notice")).length, 3);
      assert.deepEqual((await owed("admin_notice")).map((o) => o.payload.admin), [1, 2]);
      await lifecycle.act(n, "take", STAFF);
      await db
        .sql`update requests set created_at = now() - interval '600 minutes' where number = ${n}`;
      assert.deepEqual(
        await lifecycle.remindDue(60, [1, 2]),
        [],
        "a taken request is no longer reminded",
      );
    },
  );

  await t.step(
    "a relayed message is stored once with its delivery owed; replies find their request",
    async () => {
      const n = await start();
      const message = { requestNumber: n, authorId: USER, text: "hello?", messageId: 77 };
      const first = await messages.relay(message, "user");
      const again = await messages.relay(message, "user");
      assert.equal(again.id, first.id, "the same update handled again stores nothing new");
      assert.equal((await owed("relay_to_staff")).length, 1);
      await messages.delivered(first.id, { staffMessageId: 501 });
      assert.equal(await messages.requestOfStaffMessage(501), n);
      assert.equal(await messages.requestOfUserMessage(USER, 77), n);
      assert.equal(
        await messages.requestOfUserMessage(USER + 1, 77),
        null,
        "another user's message",
      );
      const out = await messages.relay({
        requestNumber: n,
        authorId: STAFF,
        text: "on my way",
        messageId: 502,
      }, "staff");
      await messages.delivered(out.id, { userMessageId: 78 });
      assert.equal(await messages.requestOfUserMessage(USER, 78), n);
      await messages.note({
        requestNumber: n,
        authorId: STAFF,
        text: "// ask facilities",
        messageId: 503,
      });
      assert.equal((await owed("relay_to_user")).length, 1, "a note is never sent");
      const page = await messages.page(n, 10, 0, false);
      assert.deepEqual(page.items.map((m) => m.text), ["on my way", "hello?"]);
      assert.equal((await messages.page(n, 10, 0, true)).total, 3);
      await requests.setStaffThread(n, 42);
      assert.equal(await messages.requestOfThread(42), n);
    },
  );

  await t.step(
    "createOnce() stores a draft's files as the first messages of its conversation",
    async () => {
      await start();
      const { request } = await requests.createOnce({
        draftId: crypto.randomUUID(),
        userId: USER,
        category: "Hardware",
        description: "The printer jams, see the photos",
        contact: "1234567",
        attachments: [
          {
            kind: "photo",
            fileId: "AgAC-1",
            mediaGroupId: "album-1",
            messageId: 10,
            caption: null,
          },
          {
            kind: "photo",
            fileId: "AgAC-2",
            mediaGroupId: "album-1",
            messageId: 11,
            caption: null,
          },
        ],
      });
      const files = await messages.attachments(request.number);
      assert.deepEqual(files.map((f) => [f.fileKind, f.fileId, f.userMessageId]), [
        ["photo", "AgAC-1", 10],
        ["photo", "AgAC-2", 11],
      ]);
      assert.equal((await owed("relay_to_staff")).length, 0, "they travel with the staff post");
    },
  );
});
