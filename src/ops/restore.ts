/**
 * `restore`: checks a backup end to end, then puts its rows back in one transaction (all or
 * nothing), then its store keys, then migrates the database to this program's version.
 */
import { type Database, NO_STATEMENT_TIMEOUT } from "../db/database.ts";
import type { Migrator } from "../db/migrate.ts";
import { DatabaseError, errorMessage } from "../errors.ts";
import { DURABLE_NAMESPACES } from "../store/namespaces.ts";
import type { KeyValueStore, StoreEntry, StoreKey } from "../store/store.ts";
import { listTables, type Queryable, quoteIdent, type TableInfo } from "./backup.ts";
import type { Manifest } from "./backup_format.ts";
import { readBackup } from "./backup_reader.ts";

/** Options of {@link restoreBackup}. */
export interface RestoreOptions {
  db: Database;
  store: KeyValueStore;
  /** This program's migrations on `db`. */
  migrator: Migrator;
  /** The backup file. */
  path: string;
  /** Replace the data of a database that is not empty. @default false */
  force?: boolean;
}

/** What {@link restoreBackup} put back. */
export interface RestoreResult {
  /** The schema version of the backup (the database is at the latest version afterwards). */
  schemaVersion: number;
  /** Rows per table. */
  tables: Record<string, number>;
  keys: number;
  durationMs: number;
}

const BATCH_ROWS = 1000;

/**
 * Reads the whole backup at `path`, checking every section's rows and checksum and the
 * manifest; returns the manifest or throws a {@link DatabaseError} saying what is wrong.
 */
export async function verifyBackup(path: string): Promise<Manifest> {
  for await (const item of readBackup(path)) {
    if (item.kind === "manifest") return item.manifest;
  }
  throw new DatabaseError(`${path} is not a complete backup file: it has no manifest`);
}

/**
 * Restores the backup at `path` into `db` and `store`. Refuses a damaged file, a backup
 * from a newer program, a database newer than the backup and, without `force`, a database
 * that holds data; in each case nothing is changed.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const { db, store, migrator, path, force = false } = options;
  const started = performance.now();
  const manifest = await verifyBackup(path);
  const version = manifest.schemaVersion;
  if (version > migrator.latest) {
    throw new DatabaseError(
      `${path} was made by a newer program (schema version ${version}, this program knows ` +
        `up to ${migrator.latest}): restore it with ${manifest.program} ` +
        `${manifest.programVersion} or later`,
    );
  }
  const current = await migrator.current();
  if (current > version) {
    throw new DatabaseError(
      `the database is at schema version ${current}, newer than the backup's ${version}: ` +
        `restore into a fresh, empty database (or revert the database with "migrate down")`,
    );
  }
  // Checked before migrating, so that a refusal leaves even the schema as it was.
  const filled = await tablesWithRows(db.sql, await listTables(db.sql));
  if (filled.length > 0 && !force) {
    throw new DatabaseError(
      `the database already holds data (in ${filled.join(", ")}): pass --force to replace ` +
        `it with the backup`,
    );
  }
  if (current < version) await migrator.up(version);
  const tables = new Map((await listTables(db.sql)).map((table) => [table.name, table]));
  const missing = Object.keys(manifest.tables).filter((name) => !tables.has(name));
  if (missing.length > 0) {
    throw new DatabaseError(
      `${path} has table(s) ${missing.join(", ")}, which the database at schema version ` +
        `${version} does not have: the backup does not belong to these migrations`,
    );
  }

  let restored: { tables: Record<string, number>; keys: StoreEntry[] };
  try {
    restored = await db.sql.begin((tx) => insertAll(tx, path, tables, force));
  } catch (error) {
    if (error instanceof DatabaseError) throw error;
    throw new DatabaseError(
      `restoring ${path} failed and was rolled back, the data is as before: ` +
        `${errorMessage(error)}`,
      { cause: error },
    );
  }

  try {
    await restoreKeys(store, restored.keys, force);
  } catch (error) {
    throw new DatabaseError(
      `the database was restored from ${path}, but writing the store keys failed ` +
        `(${errorMessage(error)}): run restore again ` +
        `with --force once the store is reachable`,
      { cause: error },
    );
  }
  await migrator.up();
  return {
    schemaVersion: version,
    tables: restored.tables,
    keys: restored.keys.length,
    durationMs: performance.now() - started,
  };
}

/** Names of the tables that hold at least one row. */
async function tablesWithRows(sql: Queryable, tables: TableInfo[]): Promise<string[]> {
  const filled: string[] = [];
  for (const table of tables) {
    const [row] = await sql.unsafe<{ filled: boolean }[]>(
      `select exists (select 1 from ${quoteIdent(table.name)}) as filled`,
    );
    if (row?.filled) filled.push(table.name);
  }
  return filled;
}

/**
 * Inside the restore transaction: empties the tables (with `force`), inserts the backup's
 * rows in batches and moves every sequence past the restored values. Returns the row counts
 * and the store keys, which are written only after the commit.
 */
async function insertAll(
  tx: Queryable,
  path: string,
  tables: ReadonlyMap<string, TableInfo>,
  force: boolean,
): Promise<{ tables: Record<string, number>; keys: StoreEntry[] }> {
  await tx.unsafe(NO_STATEMENT_TIMEOUT);
  // The file is parents first; deferrable keys may still form a cycle.
  await tx.unsafe("set constraints all deferred");
  if (force && tables.size > 0) {
    const names = [...tables.keys()].map(quoteIdent).join(", ");
    await tx.unsafe(`truncate ${names} restart identity cascade`);
  }
  const counts: Record<string, number> = {};
  const keys: StoreEntry[] = [];
  let table: TableInfo | undefined;
  let batch: string[] = [];
  const flush = async () => {
    if (!table || batch.length === 0) return;
    const name = quoteIdent(table.name);
    const columns = table.insertable.map(quoteIdent).join(", ");
    // Postgres parses the rows it wrote, so every type comes back exactly; identity columns
    // declared `generated always` accept the backup's values only when told to.
    await tx.unsafe(
      `insert into ${name} (${columns}) overriding system value ` +
        `select ${columns} from json_populate_recordset(null::${name}, $1::text::json)`,
      [`[${batch.join(",")}]`],
    );
    counts[table.name] = (counts[table.name] ?? 0) + batch.length;
    batch = [];
  };
  for await (const item of readBackup(path)) {
    if (item.kind === "table") {
      await flush();
      table = tables.get(item.table);
      counts[item.table] = 0;
    } else if (item.kind === "rows") {
      for (const row of item.rows) {
        batch.push(row);
        if (batch.length >= BATCH_ROWS) await flush();
      }
    } else if (item.kind === "keys") {
      keys.push(...item.entries);
    } else {
      await flush();
    }
  }
  for (const { name, sequenced } of tables.values()) {
    for (const column of sequenced) {
      await tx.unsafe(
        `select setval(pg_get_serial_sequence(format('public.%I', $1::text), $2::text), max(${
          quoteIdent(column)
        })) from ${quoteIdent(name)} having max(${quoteIdent(column)}) is not null`,
        [name, column],
      );
    }
  }
  return { tables: counts, keys };
}

/** Writes the backup's store keys; with `force`, first deletes the durable keys there are. */
async function restoreKeys(
  store: KeyValueStore,
  entries: readonly StoreEntry[],
  force: boolean,
): Promise<void> {
  if (force) {
    const old: StoreKey[] = [];
    for (const namespace of DURABLE_NAMESPACES) {
      for await (const entry of store.scan(namespace)) old.push(entry.key);
    }
    for (const key of old) await store.delete(key);
  }
  // A TTL counts down only while the bot runs: the backup keeps what was left when it was
  // made, as it keeps the rows as they were then.
  for (const { key, value, ttlMs } of entries) {
    if (ttlMs !== null && ttlMs <= 0) continue;
    await store.set(key, value, { ttlMs });
  }
}
