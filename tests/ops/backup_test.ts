import assert from "node:assert/strict";
import { basename } from "node:path";
import { loadConfig } from "../../src/config.ts";
import type { Database } from "../../src/db/database.ts";
import { type Migration, Migrator, parseMigrations } from "../../src/db/migrate.ts";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import { DatabaseError } from "../../src/errors.ts";
import { createBackup, pruneBackups } from "../../src/ops/backup.ts";
import { restoreBackup, verifyBackup } from "../../src/ops/restore.ts";
import { type KvStore, openKvStore } from "../../src/store/kv_store.ts";
import { testOnBothBackends } from "../support/databases.ts";

const CONFIG = loadConfig({ BOT_TOKEN: `123456:${"A".repeat(35)}` });
/** Each table with its primary key, for dumps in a stable order. */
const TABLES = { users: "id", requests: "number", request_history: "id", events: "id" };
const BACKUP_TIME = new Date("2026-11-22T06:15:00Z");
/** The schema version of the shipped migrations, and one newer migration on top of them. */
const SHIPPED = Object.keys(MIGRATION_FILES).length;
const NEWER = SHIPPED + 1;
const EXTRA_MIGRATION = {
  [`${String(NEWER).padStart(4, "0")}_extra.sql`]:
    "-- migrate:up\ncreate table extra (id int primary key);\n" +
    "-- migrate:down\ndrop table extra;\n",
};

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "backup-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function tempStore(): Promise<{ store: KvStore } & AsyncDisposable> {
  const dir = await tempDir();
  const store = await openKvStore(`${dir.path}/kv.sqlite3`);
  return {
    store,
    async [Symbol.asyncDispose]() {
      await store.close();
      await dir[Symbol.asyncDispose]();
    },
  };
}

async function migrations(extra: Record<string, string> = {}): Promise<Migration[]> {
  return await parseMigrations({ ...MIGRATION_FILES, ...extra });
}

/** Users with awkward text, requests in every status with history, and events. */
async function fill(sql: Database["sql"]): Promise<void> {
  const users: Array<[number, string | null, string, string | null, string | null]> = [
    [1, "ann", "Ann", null, "en"],
    [2, `o'brien "the" \\ back`, "Seán", "Ó Briain", "ga"],
    [3, "emoji_🙂👩‍💻", "Zoë 🎉", null, null],
    [4, null, "مرحبا بالعالم", "שלום", "ar"],
    [5, null, "", "line one\nline two\ttab", null],
    [7_000_000_001, "big_id", "Big", null, "ru"],
  ];
  for (const [id, username, first, last, language] of users) {
    await sql`
      insert into users (id, username, first_name, last_name, language_code, locale,
        notifications, created_at, last_seen_at, blocked_at)
      values (${id}, ${username}, ${first}, ${last}, ${language}, ${id === 1 ? "ru" : null},
        ${id % 2 === 0}, '2026-01-01 10:00:00.123456+00', now(),
        ${id === 5 ? "2026-11-01T12:00:00.5Z" : null})`;
  }
  const statuses = ["new", "in_progress", "done", "cancelled"];
  for (const [i, status] of statuses.entries()) {
    const [request] = await sql<{ number: number }[]>`
      insert into requests (user_id, category, description, contact, status, assignee_id,
        closed_at)
      values (${i + 1}, 'hardware', ${`Printer ${i} is "on fire" 🔥`}, '@ann', ${status},
        ${status === "new" ? null : 7_000_000_001},
        ${status === "done" || status === "cancelled" ? "2026-11-02T00:00:00Z" : null})
      returning number`;
    await sql`
      insert into request_history (request_number, actor_id, action, from_status, to_status)
      values (${request!.number}, 1, 'created', null, 'new'),
        (${request!.number}, 7000000001, 'status', 'new', ${status})`;
  }
  // An explicit number leaves the identity sequence behind: restore must move it past 10.
  await sql`
    insert into requests (number, user_id, category, description, contact)
    values (10, 7000000001, 'other', 'imported', 'phone')`;
  await sql`
    insert into events (update_id, user_id, chat_id, type, command, outcome, duration_ms, at)
    values (100, 1, 1, 'message', '/start', 'ok', 12.345, now()),
      (101, null, null, 'callback_query', null, 'error', 0.1, '2026-11-21T23:59:59.999999Z')`;
}

/** Every table's rows as Postgres prints them, in primary key order. */
async function dump(db: Database): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const [table, key] of Object.entries(TABLES)) {
    const rows = await db.sql.unsafe<{ row: string }[]>(
      `select row_to_json(t)::text as row from ${table} t order by ${key}`,
    );
    result[table] = rows.map((r) => r.row);
  }
  return result;
}

async function counts(db: Database): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const table of Object.keys(TABLES)) {
    const [row] = await db.sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`);
    result[table] = row!.n;
  }
  return result;
}

async function gunzip(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

async function gzip(text: string): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DatabaseError, `expected a DatabaseError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

testOnBothBackends("createBackup() and restoreBackup()", async (t, ctx) => {
  await using dir = await tempDir();
  await using sourceStore = await tempStore();
  const source = await ctx.fresh();
  await new Migrator(source.sql, await migrations()).up();
  await fill(source.sql);
  await sourceStore.store.set(["fsm", 42, 42], {
    step: "description",
    draft: { text: "héllo 🙂" },
  });
  await sourceStore.store.set(["fsm", 43, "43"], "category", { ttlMs: 3_600_000 });
  await sourceStore.store.set(["user", 42], { cached: true });
  const original = await dump(source);
  const backup = await createBackup({
    db: source,
    store: sourceStore.store,
    config: CONFIG,
    dir: `${dir.path}/backups`,
    now: () => BACKUP_TIME,
  });

  await t.step("createBackup() writes one complete file with a manifest", async () => {
    assert.equal(basename(backup.path), "service-desk-bot-20261122T061500Z.backup.gz");
    assert.deepEqual([...Deno.readDirSync(`${dir.path}/backups`)].map((e) => e.name), [
      basename(backup.path),
    ]);
    assert.deepEqual(backup.tables, {
      events: 2,
      users: 6,
      requests: 5,
      request_history: 8,
      outbox: 0,
      request_messages: 0,
      broadcasts: 0,
      broadcast_recipients: 0,
    });
    assert.equal(backup.keys, 2);
    assert.equal(backup.schemaVersion, SHIPPED);
    const manifest = await verifyBackup(backup.path);
    // Each table after those it references (so that restoring in this order keeps the keys).
    assert.deepEqual(Object.keys(manifest.tables), [
      "broadcasts",
      "broadcast_recipients",
      "events",
      "outbox",
      "users",
      "requests",
      "request_history",
      "request_messages",
    ]);
    assert.equal(manifest.database, ctx.backend);
    assert.equal(manifest.store, "kv");
    assert.equal(manifest.createdAt, BACKUP_TIME.toISOString());
    assert.equal((manifest.config as { botToken: string }).botToken, "123456:[redacted]");
  });

  await t.step("restoreBackup() into an empty database brings back rows and keys", async () => {
    const target = await ctx.fresh();
    await using targetStore = await tempStore();
    const migrator = new Migrator(target.sql, await migrations());
    const result = await restoreBackup({
      db: target,
      store: targetStore.store,
      migrator,
      path: backup.path,
    });
    assert.deepEqual(result.tables, backup.tables);
    assert.equal(result.keys, 2);
    assert.equal(await migrator.current(), migrator.latest);
    assert.deepEqual(await dump(target), original);
    const store = targetStore.store;
    assert.deepEqual(await store.get(["fsm", 42, 42]), {
      step: "description",
      draft: { text: "héllo 🙂" },
    });
    const ttls = [];
    for await (const entry of store.scan("fsm")) ttls.push(entry.ttlMs);
    assert.ok(ttls.some((ttl) => ttl !== null && ttl > 3_500_000 && ttl <= 3_600_000));
    // Cached profiles are rebuilt from the database; they are not part of a backup.
    assert.equal(await store.get(["user", 42]), null);
    // Identity sequences continue after the restored values.
    const [request] = await target.sql<{ number: number }[]>`
      insert into requests (user_id, category, description, contact)
      values (1, 'x', 'after restore', 'c') returning number`;
    assert.equal(request!.number, 11);
    const [event] = await target.sql<{ id: number }[]>`
      insert into events (update_id, type, outcome, duration_ms, at)
      values (1, 'message', 'ok', 1, now()) returning id`;
    assert.equal(event!.id, 3);
  });

  await t.step("restoreBackup() refuses a database with data unless forced", async () => {
    const target = await ctx.fresh();
    await using targetStore = await tempStore();
    const migrator = new Migrator(target.sql, await migrations());
    const options = { db: target, store: targetStore.store, migrator, path: backup.path };
    await restoreBackup(options);
    await target.sql`delete from request_history where action = 'created'`;
    await target.sql`update users set username = 'changed' where id = 1`;
    await targetStore.store.set(["fsm", 99, 99], "newer dialog");
    const changed = await dump(target);

    await rejectsWith(restoreBackup(options), /already holds data.*--force/);
    assert.deepEqual(await dump(target), changed);
    assert.equal(await targetStore.store.get(["fsm", 99, 99]), "newer dialog");

    const result = await restoreBackup({ ...options, force: true });
    assert.deepEqual(result.tables, backup.tables);
    assert.deepEqual(await dump(target), original);
    assert.equal(await targetStore.store.get(["fsm", 99, 99]), null);
    assert.notEqual(await targetStore.store.get(["fsm", 42, 42]), null);
  });

  await t.step("restoreBackup() refuses damaged files and changes nothing", async () => {
    const bytes = await Deno.readFile(backup.path);
    const text = await gunzip(bytes);
    const lines = text.split("\n");
    const flipped = bytes.slice();
    flipped[flipped.length >> 1]! ^= 0xff;
    const cases: Array<[string, () => Promise<Uint8Array>, RegExp]> = [
      ["a flipped byte", () => Promise.resolve(flipped), /not a complete backup file|damaged/],
      [
        "a file cut at half",
        () => Promise.resolve(bytes.slice(0, bytes.length >> 1)),
        /not a complete backup file: the compressed data is cut short or damaged/,
      ],
      [
        "a file without its manifest",
        () => gzip(lines.slice(0, -2).join("\n") + "\n"),
        /not a complete backup file: it ends before its manifest/,
      ],
      [
        "a file that is not gzip",
        () => Promise.resolve(new TextEncoder().encode("id,username\n1,ann\n")),
        /not a complete backup file: it is not gzip-compressed/,
      ],
      [
        "an edited row",
        () => gzip(text.replace(`"username":"ann"`, `"username":"bob"`)),
        /damaged: the rows of table users do not match their checksum/,
      ],
      [
        "another program's file",
        () => gzip(text.replace(`"service-desk-bot-backup"`, `"other-backup"`)),
        /not a backup of this program/,
      ],
      [
        "a newer format version",
        () => gzip(text.replace(`"formatVersion":1`, `"formatVersion":2`)),
        /format version 2, but this program reads only version 1/,
      ],
    ];
    const target = await ctx.fresh();
    await using targetStore = await tempStore();
    const migrator = new Migrator(target.sql, await migrations());
    await migrator.up();
    const empty = await counts(target);
    for (const [name, make, pattern] of cases) {
      const path = `${dir.path}/${name.replaceAll(" ", "_")}.backup.gz`;
      await Deno.writeFile(path, await make());
      await rejectsWith(verifyBackup(path), pattern);
      await rejectsWith(
        restoreBackup({ db: target, store: targetStore.store, migrator, path }),
        pattern,
      );
      assert.deepEqual(await counts(target), empty, name);
    }
    assert.ok(Object.values(empty).every((n) => n === 0));
    assert.equal(await targetStore.store.get(["fsm", 42, 42]), null);
  });

  await t.step("restoreBackup() refuses a backup from a newer schema", async () => {
    const newer = await ctx.fresh();
    await new Migrator(newer.sql, await migrations(EXTRA_MIGRATION)).up();
    const made = await createBackup({
      db: newer,
      store: sourceStore.store,
      config: CONFIG,
      dir: dir.path,
    });
    assert.equal(made.schemaVersion, NEWER);
    const target = await ctx.fresh();
    await using targetStore = await tempStore();
    const migrator = new Migrator(target.sql, await migrations());
    await rejectsWith(
      restoreBackup({ db: target, store: targetStore.store, migrator, path: made.path }),
      new RegExp(
        `made by a newer program \\(schema version ${NEWER}, this program knows up to ${SHIPPED}\\)`,
      ),
    );
    assert.equal(await migrator.current(), 0);
  });

  await t.step("restoreBackup() refuses a database newer than the backup", async () => {
    const target = await ctx.fresh();
    await using targetStore = await tempStore();
    const migrator = new Migrator(target.sql, await migrations(EXTRA_MIGRATION));
    await migrator.up();
    await rejectsWith(
      restoreBackup({ db: target, store: targetStore.store, migrator, path: backup.path }),
      new RegExp(
        `at schema version ${NEWER}, newer than the backup's ${SHIPPED}: restore into a fresh`,
      ),
    );
    assert.deepEqual(await counts(target), {
      users: 0,
      requests: 0,
      request_history: 0,
      events: 0,
    });
  });
});

Deno.test("pruneBackups() deletes old backups but keeps the newest and other files", async (t) => {
  const now = new Date("2026-11-22T06:15:00Z");
  const cases: Array<[string, string[], string[]]> = [
    [
      "backups past the retention and stale partial files go",
      [
        "service-desk-bot-20261122T061500Z.backup.gz",
        "service-desk-bot-20261109T000000Z.backup.gz",
        "service-desk-bot-20261107T000000Z.backup.gz",
        "service-desk-bot-20261001T000000Z.backup.gz",
        "service-desk-bot-20261001T000000Z.backup.gz.partial",
        "service-desk-bot-20261122T060000Z.backup.gz.partial",
        "notes.txt",
        "service-desk-bot-latest.backup.gz",
        "other-20261001T000000Z.backup.gz",
      ],
      [
        "service-desk-bot-20261001T000000Z.backup.gz",
        "service-desk-bot-20261001T000000Z.backup.gz.partial",
        "service-desk-bot-20261107T000000Z.backup.gz",
      ],
    ],
    [
      "the newest backup stays however old it is",
      [
        "service-desk-bot-20250101T000000Z.backup.gz",
        "service-desk-bot-20250201T000000Z.backup.gz",
      ],
      ["service-desk-bot-20250101T000000Z.backup.gz"],
    ],
    ["an empty folder is fine", [], []],
  ];
  for (const [name, files, deleted] of cases) {
    await t.step(name, async () => {
      await using dir = await tempDir();
      for (const file of files) await Deno.writeTextFile(`${dir.path}/${file}`, "x");
      assert.deepEqual(await pruneBackups(dir.path, 14, now), deleted);
      const left = [...Deno.readDirSync(dir.path)].map((e) => e.name).sort();
      assert.deepEqual(left, files.filter((f) => !deleted.includes(f)).sort());
    });
  }
  await t.step("a missing folder deletes nothing", async () => {
    assert.deepEqual(await pruneBackups("/nonexistent/backups", 14, now), []);
  });
});
