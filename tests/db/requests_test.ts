import assert from "node:assert/strict";
import type { Sql } from "../../src/db/database.ts";
import {
  type NewRequest,
  RequestRepository,
  type RequestRow,
  type RequestStatus,
} from "../../src/db/requests.ts";
import { UserRepository } from "../../src/db/users.ts";
import { migrated, testOnBothBackends } from "../support/databases.ts";

/** Resolves once a query of this database waits for a lock (or `done()` says to stop). */
async function waitForLockWait(sql: Sql, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!done()) {
    const [{ waiting }] = await sql<[{ waiting: number }]>`
      select count(*)::int as waiting from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    if (waiting > 0) return;
    assert.ok(Date.now() < deadline, "the second take never waited for the first");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const CUSTOMER = 1_000_000_001;
const OTHER_CUSTOMER = 1_000_000_002;
const STAFF = 900;
const OTHER_STAFF = 901;

function request(userId = CUSTOMER, description = "The printer is on fire"): NewRequest {
  return { userId, category: "hardware", description, contact: "+49 30 1234567" };
}

testOnBothBackends("RequestRepository", async (t, { fresh, backend }) => {
  const { db, reset, counted } = await migrated(fresh);
  const users = new UserRepository(db.sql);
  const requests = new RequestRepository(db.sql);

  /** Empties the database and registers the two customers. */
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

  /** Files `count` requests for `userId` and returns their numbers, oldest first. */
  async function file(count: number, userId = CUSTOMER): Promise<number[]> {
    const numbers: number[] = [];
    for (let i = 0; i < count; i++) {
      numbers.push((await requests.create(request(userId, `request ${i + 1}`))).number);
    }
    return numbers;
  }

  /** Files a request and moves it through `path` (each step by STAFF); returns its number. */
  async function fileIn(path: RequestStatus[]): Promise<number> {
    const { number } = await requests.create(request());
    for (const status of path) {
      assert.ok(await requests.changeStatus(number, status, STAFF, status), `to ${status}`);
    }
    return number;
  }

  await t.step("create() numbers requests 1, 2, … and records their creation", async () => {
    await start();
    const [first, queries] = await counted(() => requests.create(request()));
    assert.equal(queries, 1);
    assert.equal(first.number, 1);
    assert.equal(first.status, "new");
    assert.equal(first.userId, CUSTOMER);
    assert.equal(first.description, "The printer is on fire");
    assert.equal(first.assigneeId, null);
    assert.equal(first.closedAt, null);
    assert.ok(first.createdAt instanceof Date);
    assert.deepEqual(await requests.get(1), first);
    assert.deepEqual((await requests.history(1)).map(({ at: _, ...entry }) => entry), [
      { actorId: CUSTOMER, action: "created", fromStatus: null, toStatus: "new" },
    ]);

    assert.equal((await requests.create(request(OTHER_CUSTOMER))).number, 2);
    assert.equal((await requests.create(request())).number, 3);
  });

  await t.step("create() refuses a request of an unknown user", async () => {
    await start();
    await assert.rejects(requests.create(request(404)));
    assert.equal(await requests.get(1), null);
  });

  await t.step("listByUser() pages the user's requests newest first with their total", async () => {
    await start();
    const mine = await file(5);
    await file(2, OTHER_CUSTOMER);
    const [first, queries] = await counted(() => requests.listByUser(CUSTOMER, 2));
    assert.equal(queries, 1, "a page is one query");
    assert.deepEqual(first.items.map((r) => r.number), [mine[4], mine[3]]);
    assert.equal(first.total, 5);
    assert.ok(first.items.every((r) => r.userId === CUSTOMER && !("total" in r)));

    const cases: Array<[offset: number, numbers: (number | undefined)[]]> = [
      [2, [mine[2], mine[1]]],
      [4, [mine[0]]],
      [5, []],
      [50, []],
    ];
    for (const [offset, numbers] of cases) {
      const page = await requests.listByUser(CUSTOMER, 2, offset);
      assert.deepEqual(page.items.map((r) => r.number), numbers, `offset ${offset}`);
      assert.equal(page.total, 5, `total at offset ${offset}`);
    }
    assert.deepEqual(await requests.listByUser(404, 2), { items: [], total: 0 });
  });

  await t.step("openByUser() lists only new and in-progress requests, newest first", async () => {
    await start();
    const fresh = await fileIn([]);
    const taken = await fileIn(["in_progress"]);
    await fileIn(["in_progress", "done"]);
    await fileIn(["cancelled"]);
    const later = await fileIn([]);
    await file(1, OTHER_CUSTOMER);
    const open = await requests.openByUser(CUSTOMER);
    assert.deepEqual(open.map((r) => [r.number, r.status]), [
      [later, "new"],
      [taken, "in_progress"],
      [fresh, "new"],
    ]);
  });

  await t.step("listOpen() lists one status oldest first, up to the limit", async () => {
    await start();
    const a = await fileIn([]);
    const b = await fileIn(["in_progress"]);
    const c = await file(1, OTHER_CUSTOMER);
    const d = await fileIn(["in_progress"]);
    await fileIn(["done"]);
    const e = await fileIn([]);
    assert.deepEqual((await requests.listOpen("new", 10)).map((r) => r.number), [a, ...c, e]);
    assert.deepEqual((await requests.listOpen("new", 2)).map((r) => r.number), [a, ...c]);
    assert.deepEqual((await requests.listOpen("in_progress", 10)).map((r) => r.number), [b, d]);
  });

  await t.step("changeStatus() to in_progress assigns the request to whoever took it", async () => {
    await start();
    const created = await requests.create(request());
    const [taken, queries] = await counted(() =>
      requests.changeStatus(created.number, "in_progress", STAFF, "take")
    );
    assert.equal(queries, 1);
    assert.equal(taken!.status, "in_progress");
    assert.equal(taken!.assigneeId, STAFF);
    assert.equal(taken!.closedAt, null);
    assert.ok(taken!.updatedAt >= created.updatedAt);
    assert.deepEqual(await requests.get(created.number), taken);
    assert.deepEqual(
      (await requests.history(created.number)).map(({ at: _, ...entry }) => entry),
      [
        { actorId: CUSTOMER, action: "created", fromStatus: null, toStatus: "new" },
        { actorId: STAFF, action: "take", fromStatus: "new", toStatus: "in_progress" },
      ],
    );
  });

  await t.step("changeStatus() to done closes the request and keeps the assignee", async () => {
    await start();
    const number = await fileIn(["in_progress"]);
    const done = await requests.changeStatus(number, "done", OTHER_STAFF, "close");
    assert.equal(done!.status, "done");
    assert.equal(done!.assigneeId, STAFF);
    assert.ok(done!.closedAt instanceof Date);
    assert.ok(done!.closedAt >= done!.createdAt);
    assert.deepEqual(await requests.get(number), done);
    assert.equal((await requests.openByUser(CUSTOMER)).length, 0);
  });

  await t.step("history() lists every change oldest first", async () => {
    await start();
    const number = await fileIn([]);
    await requests.changeStatus(number, "in_progress", STAFF, "take");
    await requests.changeStatus(number, "done", OTHER_STAFF, "close");
    await requests.changeStatus(number, "in_progress", STAFF, "take");
    const history = await requests.history(number);
    assert.deepEqual(history.map(({ at: _, ...entry }) => entry), [
      { actorId: CUSTOMER, action: "created", fromStatus: null, toStatus: "new" },
      { actorId: STAFF, action: "take", fromStatus: "new", toStatus: "in_progress" },
      { actorId: OTHER_STAFF, action: "close", fromStatus: "in_progress", toStatus: "done" },
    ]);
    const times = history.map((entry) => entry.at.getTime());
    assert.deepEqual(times, times.toSorted((x, y) => x - y));
    assert.equal((await requests.history(404)).length, 0);
  });

  await t.step("changeStatus() refuses a change not allowed from where it stands", async (t) => {
    const cases: Array<[name: string, path: RequestStatus[], to: RequestStatus]> = [
      ["done → in_progress", ["in_progress", "done"], "in_progress"],
      ["done → cancelled", ["done"], "cancelled"],
      ["cancelled → done", ["cancelled"], "done"],
      ["cancelled → in_progress", ["cancelled"], "in_progress"],
      ["in_progress → in_progress (a second take)", ["in_progress"], "in_progress"],
      ["in_progress → new", ["in_progress"], "new"],
      ["new → new", [], "new"],
    ];
    for (const [name, path, to] of cases) {
      await t.step(name, async () => {
        await start();
        const number = await fileIn(path);
        const before = await requests.get(number);
        const history = await requests.history(number);
        assert.equal(await requests.changeStatus(number, to, OTHER_STAFF, "late press"), null);
        assert.deepEqual(await requests.get(number), before, "the request is unchanged");
        assert.deepEqual(await requests.history(number), history, "no history entry");
      });
    }
  });

  await t.step("changeStatus() of an unknown number returns null and records nothing", async () => {
    await start();
    assert.equal(await requests.changeStatus(404, "in_progress", STAFF, "take"), null);
    const [{ n }] = await db.sql<[{ n: number }]>`select count(*)::int as n from request_history`;
    assert.equal(n, 0);
  });

  await t.step("changeStatus() lets exactly one of simultaneous takes win", async () => {
    await start();
    const numbers = await file(10);
    const takers = [STAFF, OTHER_STAFF, 902, 903];
    // On Postgres the takes run on separate pooled connections at once; PGlite runs them
    // one after the other, which must give the same answer.
    const results = await Promise.all(
      numbers.flatMap((number) =>
        takers.map(async (actor) => ({
          number,
          actor,
          row: await requests.changeStatus(number, "in_progress", actor, "take"),
        }))
      ),
    );
    for (const number of numbers) {
      const winners = results.filter((r) => r.number === number && r.row !== null);
      assert.equal(winners.length, 1, `request ${number} (${backend}): ${winners.length} winners`);
      const stored = await requests.get(number);
      assert.equal(stored!.assigneeId, winners[0]!.actor);
      const takes = (await requests.history(number)).filter((h) => h.action === "take");
      assert.deepEqual(takes.map((h) => h.actorId), [winners[0]!.actor]);
    }
  });

  // A take that commits while another waits for the row: the widest window for a double
  // take. PGlite has one connection, so a second query cannot run inside the first's window.
  if (backend === "postgres") {
    await t.step(
      "changeStatus() refuses a take that waited for another take to commit",
      async () => {
        await start();
        const { number } = await requests.create(request());
        let second: Promise<RequestRow | null> | undefined;
        let settled = false;
        await db.sql.begin(async (tx) => {
          const first = await new RequestRepository(tx as unknown as Sql)
            .changeStatus(number, "in_progress", STAFF, "take");
          assert.equal(first!.assigneeId, STAFF);
          second = requests.changeStatus(number, "in_progress", OTHER_STAFF, "take");
          second.finally(() => settled = true).catch(() => {});
          await waitForLockWait(db.sql, () => settled);
        });
        assert.equal(await second, null, "the second take must see the first one");
        assert.equal((await requests.get(number))!.assigneeId, STAFF);
        const takes = (await requests.history(number)).filter((h) => h.action === "take");
        assert.deepEqual(takes.map((h) => h.actorId), [STAFF]);
      },
    );
  }

  await t.step("the database enforces the 4096-character description limit", async (t) => {
    const cases: Array<[name: string, description: string, accepted: boolean]> = [
      ["4096 characters are accepted", "x".repeat(4096), true],
      ["4096 emoji are accepted: the limit counts characters", "😀".repeat(4096), true],
      ["4097 characters are rejected", "x".repeat(4097), false],
      ["an empty description is rejected", "", false],
    ];
    for (const [name, description, accepted] of cases) {
      await t.step(name, async () => {
        await start();
        const filing = requests.create(request(CUSTOMER, description));
        if (accepted) {
          assert.equal((await filing).description, description);
        } else {
          await assert.rejects(filing, (error: unknown) => {
            // 23514: check_violation.
            assert.equal((error as { code?: string }).code, "23514", String(error));
            return true;
          });
          assert.deepEqual(await requests.listByUser(CUSTOMER, 10), { items: [], total: 0 });
        }
      });
    }
  });
});
