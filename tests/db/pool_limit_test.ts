import assert from "node:assert/strict";
import { type Database, openDatabase } from "../../src/db/database.ts";
import { DatabaseError } from "../../src/errors.ts";
import { testDatabaseConfig } from "../support/databases.ts";
import { startPostgres } from "../support/postgres_server.ts";

/** Asserts that `promise` fails because no connection became free in time. */
async function rejectsPoolTimeout(promise: Promise<unknown>, waitMs: number): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DatabaseError, `expected a DatabaseError, got ${error}`);
    assert.match(
      error.message,
      new RegExp(`no database connection became free within ${waitMs} ms \\(all 1 in use, `),
    );
    assert.match(error.message, /DB_POOL_TIMEOUT/);
    return true;
  });
}

/** Resolves with how long `promise` took to settle, in ms. */
async function settleTime(promise: Promise<unknown>): Promise<number> {
  const started = performance.now();
  await promise.catch(() => {});
  return performance.now() - started;
}

Deno.test("openDatabase() on Postgres: a bounded wait for a connection, and a statement timeout", async (t) => {
  await using server = await startPostgres();
  const url = await server.createDatabase("pool");
  const open = (overrides: Partial<ReturnType<typeof testDatabaseConfig>>) =>
    openDatabase({ config: { ...testDatabaseConfig(url), ...overrides }, dataDir: "" });

  await t.step(
    "a query waiting behind a slow one on a pool of 1 fails after DB_POOL_TIMEOUT",
    async () => {
      const db = await open({ poolSize: 1, poolTimeoutMs: 300, statementTimeoutMs: 0 });
      try {
        // A query is sent when awaited (or executed), not when written.
        const slow = db.sql`select pg_sleep(1.5)`.execute();
        const waited = db.sql`select 1 as n`;
        await rejectsPoolTimeout(waited, 300);
        // The slow query itself was not disturbed, and the pool serves again afterwards.
        await slow;
        assert.deepEqual([...await db.sql`select 2 as n`], [{ n: 2 }]);
      } finally {
        await db.close();
      }
    },
  );

  await t.step("it fails when the wait runs out, not when the slow query ends", async () => {
    const db = await open({ poolSize: 1, poolTimeoutMs: 200, statementTimeoutMs: 0 });
    try {
      const slow = db.sql`select pg_sleep(2)`.execute();
      const ms = await settleTime(db.sql`select 1`);
      assert.ok(ms < 1500, `the waiting query failed after ${Math.round(ms)} ms`);
      await slow;
    } finally {
      await db.close();
    }
  });

  await t.step(
    "a transaction holds its connection until it ends; others wait, then run",
    async () => {
      const db = await open({ poolSize: 1, poolTimeoutMs: 300, statementTimeoutMs: 0 });
      try {
        await db.sql`create table t (id int primary key, doc jsonb)`;
        let inside!: () => void;
        const entered = new Promise<void>((resolve) => inside = resolve);
        const tx = db.sql.begin(async (tx) => {
          await tx`insert into t values (1, ${tx.json({ a: 1 })})`;
          inside();
          await tx`select pg_sleep(0.8)`;
          return "committed";
        });
        await entered;
        await rejectsPoolTimeout(db.sql`select count(*)::int as n from t`, 300);
        assert.equal(await tx, "committed");
        // Fragments, sql.json and unsafe go through the same wrapped client.
        const where = db.sql`where id = ${1}`;
        const [row] = await db.sql`select doc->>'a' as a from t ${where}`;
        assert.equal(row!.a, "1");
        await db.sql`insert into t values (2, ${db.sql.json({ b: [1, 2] })})`;
        const [count] = await db.sql.unsafe<{ n: number }[]>("select count(*)::int as n from t");
        assert.equal(count!.n, 2);
        // A failed transaction gives its place back too.
        await assert.rejects(
          db.sql.begin(async (tx) => {
            await tx`insert into t values (3, null)`;
            throw new Error("changed my mind");
          }),
          /changed my mind/,
        );
        assert.deepEqual([...await db.sql`select id from t order by id`], [{ id: 1 }, { id: 2 }]);
      } finally {
        await db.close();
      }
    },
  );

  await t.step("a cursor gives its place back when it is done", async () => {
    const db = await open({ poolSize: 1, poolTimeoutMs: 300, statementTimeoutMs: 0 });
    try {
      let rows = 0;
      for await (
        const batch of db.sql`select * from generate_series(1, 250) as n`.cursor(100)
      ) rows += batch.length;
      assert.equal(rows, 250);
      assert.deepEqual([...await db.sql`select 1 as n`], [{ n: 1 }]);
    } finally {
      await db.close();
    }
  });

  await t.step("queries within the pool size run side by side without waiting", async () => {
    const db = await open({ poolSize: 3, poolTimeoutMs: 300, statementTimeoutMs: 0 });
    try {
      const all = Promise.all([1, 2, 3].map(() => db.sql`select pg_sleep(0.6)`));
      await all;
    } finally {
      await db.close();
    }
  });

  await t.step("DB_STATEMENT_TIMEOUT cancels a statement that runs longer", async () => {
    const db = await open({ statementTimeoutMs: 400 });
    try {
      const [setting] = await db.sql`show statement_timeout`;
      assert.equal(setting!.statement_timeout, "400ms");
      await assert.rejects(db.sql`select pg_sleep(3)`, (error: unknown) => {
        assert.equal((error as { code?: string }).code, "57014");
        assert.match(String(error), /statement timeout/);
        return true;
      });
      // The connection is fine afterwards.
      assert.deepEqual([...await db.sql`select 1 as n`], [{ n: 1 }]);
    } finally {
      await db.close();
    }
  });

  await t.step("0 leaves statements unlimited", async () => {
    const db = await open({ statementTimeoutMs: 0 });
    try {
      const [setting] = await db.sql`show statement_timeout`;
      assert.equal(setting!.statement_timeout, "0");
    } finally {
      await db.close();
    }
  });
});

Deno.test("openDatabase() on Postgres: a hung server (SIGSTOP) fails queries instead of hanging them, and is used again once it answers", async () => {
  await using server = await startPostgres();
  const url = await server.createDatabase("hung");
  // A query sent gets DB_STATEMENT_TIMEOUT + DB_CONNECT_TIMEOUT = 1 s to be answered.
  const db = await openDatabase({
    config: {
      ...testDatabaseConfig(url),
      poolSize: 2,
      poolTimeoutMs: 500,
      statementTimeoutMs: 300,
      connectTimeoutMs: 700,
    },
    dataDir: "",
  });
  try {
    await db.ping();
    await server.signal("SIGSTOP");
    const started = performance.now();
    // One is sent on the open connection; the other opens a second one, which times out.
    const [sent, opening] = await Promise.allSettled([db.sql`select 1 as n`, db.sql`select 2`]);
    assert.equal(sent.status, "rejected");
    assert.ok(sent.reason instanceof DatabaseError, `expected a DatabaseError: ${sent.reason}`);
    assert.match(sent.reason.message, /did not answer within 1000 ms/);
    assert.equal(opening.status, "rejected");
    assert.match(String(opening.reason), /CONNECT_TIMEOUT|did not answer/);
    const waited = performance.now() - started;
    assert.ok(waited >= 950 && waited < 3_000, `failed after ${Math.round(waited)} ms`);
    // A new connection to the hung server is not answered either: the connect timeout.
    const next = performance.now();
    await assert.rejects(db.ping(), /timed out|did not answer/);
    assert.ok(performance.now() - next < 3_000, `ping failed after ${performance.now() - next} ms`);

    await server.signal("SIGCONT");
    const recovered = Date.now() + 10_000;
    for (;;) {
      try {
        assert.deepEqual([...await db.sql`select 3 as n`], [{ n: 3 }]);
        break;
      } catch (error) {
        if (Date.now() > recovered) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await server.signal("SIGCONT");
    const closing = performance.now();
    await db.close();
    assert.ok(performance.now() - closing < 6_000);
  }
});

Deno.test("openDatabase() on PGlite: a bounded wait for its one connection", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pool-limit-" });
  let db: Database | null = null;
  try {
    db = await openDatabase({
      config: { ...testDatabaseConfig(null), poolTimeoutMs: 200 },
      dataDir,
    });
    const slow = db.sql`select pg_sleep(1)`.execute();
    await rejectsPoolTimeout(db.sql`select 1`, 200);
    await slow;
    assert.deepEqual([...await db.sql`select 1 as n`], [{ n: 1 }]);
  } finally {
    await db?.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
