import assert from "node:assert/strict";
import { type DraftRequest, RequestRepository } from "../../src/db/requests.ts";
import { UserRepository } from "../../src/db/users.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

const CUSTOMER = 1_000_000_001;
const OTHER_CUSTOMER = 1_000_000_002;

function draft(draftId: string, userId = CUSTOMER): DraftRequest {
  return {
    draftId,
    userId,
    category: "Network",
    description: "The Wi-Fi drops every ten minutes",
    contact: "+380501234567",
  };
}

testOnBothBackends("RequestRepository.createOnce", async (t, { fresh }) => {
  const { db, reset, counted } = await migrated(fresh);
  const users = new UserRepository(db.sql);
  const requests = new RequestRepository(db.sql);

  async function start(): Promise<void> {
    await reset();
    for (const id of [CUSTOMER, OTHER_CUSTOMER]) {
      await users.upsert({
        id,
        username: null,
        firstName: "C",
        lastName: null,
        languageCode: null,
      });
    }
  }

  await t.step(
    "createOnce() files a new draft and records its creation, in one query",
    async () => {
      await start();
      const [first, queries] = await counted(() => requests.createOnce(draft(crypto.randomUUID())));
      assert.equal(queries, 1);
      assert.equal(first.created, true);
      assert.equal(first.request.number, 1);
      assert.equal(first.request.status, "new");
      assert.equal(first.request.description, "The Wi-Fi drops every ten minutes");
      assert.ok(!("created" in first.request));
      assert.deepEqual(await requests.get(1), first.request);
      assert.deepEqual((await requests.history(1)).map(({ at: _, ...entry }) => entry), [
        { actorId: CUSTOMER, action: "created", fromStatus: null, toStatus: "new" },
      ]);
    },
  );

  await t.step(
    "createOnce() returns the earlier request when the draft is filed again",
    async () => {
      await start();
      const id = crypto.randomUUID();
      const first = await requests.createOnce(draft(id));
      const again = await requests.createOnce({ ...draft(id), description: "changed meanwhile" });
      assert.equal(again.created, false);
      assert.deepEqual(again.request, first.request);
      assert.equal((await requests.listByUser(CUSTOMER, 10)).total, 1);
      assert.equal((await requests.history(first.request.number)).length, 1, "one history entry");
    },
  );

  await t.step("createOnce() files different drafts as different requests", async () => {
    await start();
    const a = await requests.createOnce(draft(crypto.randomUUID()));
    const b = await requests.createOnce(draft(crypto.randomUUID()));
    const c = await requests.createOnce(draft(crypto.randomUUID(), OTHER_CUSTOMER));
    assert.deepEqual([a, b, c].map((r) => [r.request.number, r.created]), [
      [1, true],
      [2, true],
      [3, true],
    ]);
  });

  await t.step("createOnce() files one request when the same draft arrives at once", async () => {
    await start();
    const id = crypto.randomUUID();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => requests.createOnce(draft(id))),
    );
    assert.equal(results.filter((r) => r.created).length, 1);
    assert.deepEqual(new Set(results.map((r) => r.request.number)).size, 1);
    assert.equal((await requests.listByUser(CUSTOMER, 10)).total, 1);
    assert.equal((await requests.history(results[0]!.request.number)).length, 1);
  });

  await t.step("create() without a draft still works next to drafts", async () => {
    await start();
    await requests.createOnce(draft(crypto.randomUUID()));
    const plain = await requests.create(draft(crypto.randomUUID()));
    const plain2 = await requests.create(draft(crypto.randomUUID()));
    assert.deepEqual([plain.number, plain2.number], [2, 3]);
  });

  await t.step("createOnce() refuses a malformed draft id", async () => {
    await start();
    await assert.rejects(requests.createOnce(draft("not-a-uuid")));
    assert.equal((await requests.listByUser(CUSTOMER, 10)).total, 0);
  });
});
