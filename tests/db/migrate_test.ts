import assert from "node:assert/strict";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import postgres from "postgres";
import { APPLICATION_NAME, openDatabase } from "../../src/db/database.ts";
import { describeWait, type LockWait } from "../../src/db/lock_wait.ts";
import { Migrator, parseMigrations } from "../../src/db/migrate.ts";
import { DatabaseError } from "../../src/errors.ts";
import { testDatabaseConfig, testOnBothBackends } from "../support/databases.ts";
import { startPostgres } from "../support/postgres_server.ts";

const FILES = {
  "0001_a.sql": "-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n",
  "0002_b.sql":
    "-- migrate:up\ncreate table b (id int);\ninsert into b values (1), (2);\n-- migrate:down\ndrop table b;\n",
};

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DatabaseError, `expected DatabaseError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("parseMigrations() sorts files and splits up and down parts", async () => {
  const migrations = await parseMigrations({
    "0002_b.sql": FILES["0002_b.sql"],
    "0001_a.sql": FILES["0001_a.sql"],
  });
  assert.deepEqual(migrations.map((m) => [m.version, m.name]), [[1, "0001_a.sql"], [
    2,
    "0002_b.sql",
  ]]);
  assert.equal(migrations[0]!.up, "create table a (id int);");
  assert.equal(migrations[0]!.down, "drop table a;");
  assert.match(migrations[0]!.checksum, /^[0-9a-f]{64}$/);
  // Line endings do not change the checksum: a checkout on Windows is the same migration.
  const crlf = await parseMigrations({
    "0001_a.sql": FILES["0001_a.sql"].replaceAll("\n", "\r\n"),
  });
  assert.equal(crlf[0]!.checksum, migrations[0]!.checksum);
});

Deno.test("parseMigrations() rejects bad sets of files", async (t) => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ["a gap", { "0001_a.sql": FILES["0001_a.sql"], "0003_c.sql": FILES["0002_b.sql"] }, /gap/],
    ["not starting at 1", { "0002_b.sql": FILES["0002_b.sql"] }, /gap/],
    ["duplicate versions", { ...FILES, "0002_c.sql": FILES["0002_b.sql"] }, /two migrations/],
    ["a bad name", { "1_a.sql": FILES["0001_a.sql"] }, /must look like/],
    ["no up marker", { "0001_a.sql": "create table a (id int);" }, /no "-- migrate:up"/],
    [
      "an empty up part",
      { "0001_a.sql": "-- migrate:up\n-- migrate:down\ndrop table a;" },
      /empty/,
    ],
  ];
  for (const [name, files, pattern] of cases) {
    await t.step(name, () => rejects(parseMigrations(files), pattern));
  }
});

Deno.test("the shipped migrations parse and every file in migrations/ is embedded", async () => {
  const onDisk: string[] = [];
  for await (const entry of Deno.readDir(new URL("../../migrations/", import.meta.url))) {
    if (entry.name.endsWith(".sql")) onDisk.push(entry.name);
  }
  assert.deepEqual(Object.keys(MIGRATION_FILES).sort(), onDisk.sort());
  const migrations = await parseMigrations(MIGRATION_FILES);
  for (const m of migrations) assert.notEqual(m.down, "", `${m.name} must be revertible`);
});

testOnBothBackends("Migrator", async (t, { fresh }) => {
  const migrations = await parseMigrations(FILES);

  await t.step("up() applies every migration once and records it", async () => {
    const db = await fresh();
    const migrator = new Migrator(db.sql, migrations);
    assert.deepEqual((await migrator.status()).map((s) => s.state), ["pending", "pending"]);
    assert.deepEqual((await migrator.up()).map((m) => m.version), [1, 2]);
    assert.deepEqual(await migrator.up(), []);
    assert.equal(await migrator.current(), 2);
    const status = await migrator.status();
    assert.deepEqual(status.map((s) => s.state), ["applied", "applied"]);
    assert.ok(status.every((s) => s.appliedAt instanceof Date));
    assert.deepEqual([...await db.sql`select id from b order by id`], [{ id: 1 }, { id: 2 }]);
  });

  await t.step("up() on a current schema only reads it: no transaction, no lock", async () => {
    const db = await fresh();
    await new Migrator(db.sql, migrations).up();
    let transactions = 0;
    const counted = new Proxy(db.sql, {
      get(target, name, receiver) {
        if (name === "begin") transactions++;
        return Reflect.get(target, name, receiver);
      },
    });
    const migrator = new Migrator(counted, migrations);
    assert.deepEqual(await migrator.up(), []);
    assert.deepEqual(await migrator.up(1), []);
    assert.equal(transactions, 0);
    // Something pending still goes through the transactions under the lock.
    await migrator.down(1);
    assert.deepEqual((await migrator.up()).map((m) => m.version), [2]);
    assert.ok(transactions > 0);
  });

  await t.step("up(target) stops at the target; down(n) reverts the newest n", async () => {
    const db = await fresh();
    const migrator = new Migrator(db.sql, migrations);
    assert.deepEqual((await migrator.up(1)).map((m) => m.version), [1]);
    assert.equal(await migrator.current(), 1);
    await migrator.up();
    assert.deepEqual((await migrator.down(1)).map((m) => m.version), [2]);
    const [b] = await db.sql`select to_regclass('b') as b`;
    assert.equal(b!.b, null);
    assert.deepEqual((await migrator.down(5)).map((m) => m.version), [1]);
    assert.equal(await migrator.current(), 0);
    assert.deepEqual((await migrator.up()).map((m) => m.version), [1, 2]);
  });

  await t.step("a failing migration leaves nothing behind", async () => {
    const db = await fresh();
    const broken = await parseMigrations({
      "0001_a.sql": FILES["0001_a.sql"],
      "0002_b.sql": "-- migrate:up\ncreate table b (id int);\nselect no_such_function();\n",
    });
    const migrator = new Migrator(db.sql, broken);
    await assert.rejects(migrator.up());
    assert.equal(await migrator.current(), 1);
    const [b] = await db.sql`select to_regclass('b') as b`;
    assert.equal(b!.b, null, "the half-applied migration's table must be rolled back");
  });

  await t.step("a changed applied file is refused and reported", async () => {
    const db = await fresh();
    await new Migrator(db.sql, migrations).up();
    const changed = await parseMigrations({
      ...FILES,
      "0001_a.sql": FILES["0001_a.sql"].replace("id int", "id bigint"),
    });
    const migrator = new Migrator(db.sql, changed);
    await rejects(migrator.up(), /0001_a\.sql was changed after it was applied/);
    assert.deepEqual((await migrator.status()).map((s) => s.state), ["changed", "applied"]);
  });

  await t.step("a database newer than the program is refused", async () => {
    const db = await fresh();
    await new Migrator(db.sql, migrations).up();
    const older = new Migrator(db.sql, migrations.slice(0, 1));
    await rejects(older.up(), /at version 2, newer than this program knows \(1\)/);
    assert.deepEqual((await older.status()).map((s) => s.state), ["applied", "unknown"]);
  });

  await t.step("instances starting at once apply each migration exactly once", async () => {
    const db = await fresh();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => new Migrator(db.sql, migrations).up()),
    );
    assert.deepEqual(results.flat().map((m) => m.version).sort(), [1, 2]);
    assert.deepEqual([...await db.sql`select count(*) as n from b`], [{ n: 2 }]);
  });

  await t.step("the shipped schema applies, reverts and applies again", async () => {
    const db = await fresh();
    const migrator = new Migrator(db.sql, await parseMigrations(MIGRATION_FILES));
    await migrator.up();
    await migrator.down(migrator.latest);
    assert.equal(await migrator.current(), 0);
    await migrator.up();
    assert.equal(await migrator.current(), migrator.latest);
  });
});

Deno.test("Migrator.up() says who holds up a migration that waits for a lock", async (t) => {
  await using server = await startPostgres();
  const url = await server.createDatabase("waits");
  const db = await openDatabase({ config: testDatabaseConfig(url), dataDir: "" });
  const migrations = await parseMigrations({
    ...FILES,
    "0003_c.sql":
      "-- migrate:up\nalter table a add column x int;\n-- migrate:down\nalter table a drop column x;\n",
  });
  await new Migrator(db.sql, migrations.slice(0, 2)).up();
  /** A session of `application` holding `lock` in an open transaction until released. */
  async function holding(application: string, lock: string) {
    const sql = postgres(url, { max: 1, connection: { application_name: application } });
    const session = await sql.reserve();
    await session`begin`;
    await session.unsafe(lock);
    const [{ pid }] = await session<[{ pid: number }]>`select pg_backend_pid() as pid`;
    return {
      pid,
      async release() {
        await session`commit`;
        session.release();
        await sql.end();
      },
    };
  }
  /** Runs 0003 while `holder` holds it up; the waits told until the holder lets go. */
  async function waitsFor(holder: { release(): Promise<void> }) {
    const waits: LockWait[] = [];
    const up = new Migrator(db.sql, migrations).up(undefined, {
      onWait: (wait) => {
        waits.push(wait);
        if (waits.length === 2) holder.release();
      },
      waitNoticeMs: 300,
      waitRepeatMs: 200,
    });
    assert.deepEqual((await up).map((m) => m.name), ["0003_c.sql"]);
    return waits;
  }
  try {
    await t.step("an operator's transaction holding the table", async () => {
      const psql = await holding("psql", "lock table a in access exclusive mode");
      const waits = await waitsFor(psql);
      assert.equal(waits.length, 2, "told after 300 ms, again every 200 ms, then no more");
      assert.equal(waits[0]!.migration, "0003_c.sql");
      assert.ok(waits[0]!.waitedMs >= 300 && waits[1]!.waitedMs > waits[0]!.waitedMs);
      assert.deepEqual(waits[0]!.holders.map((h) => [h.pid, h.application, h.state]), [
        [psql.pid, "psql", "idle in transaction"],
      ]);
      assert.match(
        describeWait(waits[0]!),
        new RegExp(
          `^migration 0003_c\\.sql has waited \\d+ s for a lock held by a session of psql ` +
            `\\(pid ${psql.pid}, idle in transaction for \\d+ s\\); pg_stat_activity shows what it does$`,
        ),
      );
      await new Migrator(db.sql, migrations).down(1);
    });

    await t.step("another instance migrating (the advisory lock)", async () => {
      const other = await holding(
        APPLICATION_NAME,
        "select pg_advisory_xact_lock(x'7364622d6d696772'::bigint)",
      );
      const waits = await waitsFor(other);
      assert.match(
        describeWait(waits[0]!),
        new RegExp(
          `held by another instance of this program \\(pid ${other.pid}, idle in transaction`,
        ),
      );
    });

    await t.step("a migration that takes no time tells nothing", async () => {
      const waits: LockWait[] = [];
      await new Migrator(db.sql, migrations).down(1);
      await new Migrator(db.sql, migrations).up(undefined, {
        onWait: (wait) => waits.push(wait),
        waitNoticeMs: 300,
      });
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.deepEqual(waits, []);
    });
  } finally {
    await db.close();
  }
});
