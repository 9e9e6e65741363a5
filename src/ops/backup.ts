/**
 * `backup`: every table of the database and the durable store keys into one compressed file
 * in `BACKUP_DIR`, read from one consistent snapshot, and the retention clean-up after it.
 */
import type postgres from "postgres";
import { type Config, redactedConfig } from "../config.ts";
import { type Database, NO_STATEMENT_TIMEOUT, type Sql } from "../db/database.ts";
import { Migrator } from "../db/migrate.ts";
import { DatabaseError, errorMessage } from "../errors.ts";
import { DURABLE_NAMESPACES } from "../store/namespaces.ts";
import type { KeyValueStore } from "../store/store.ts";
import { PROGRAM_NAME, VERSION } from "../version.ts";
import { BackupWriter, type Manifest, type SectionSummary } from "./backup_format.ts";

/** Options of {@link createBackup}. */
export interface BackupOptions {
  db: Database;
  store: KeyValueStore;
  /** Recorded in the manifest, secrets redacted. */
  config: Config;
  /** Where the file goes; created when missing. */
  dir: string;
  /** The clock that names the file. @default () => new Date() */
  now?: () => Date;
}

/** What {@link createBackup} wrote. */
export interface BackupResult {
  path: string;
  /** Size of the compressed file. */
  bytes: number;
  schemaVersion: number;
  /** Rows per table. */
  tables: Record<string, number>;
  keys: number;
  durationMs: number;
}

/** A table as {@link listTables} describes it. */
export interface TableInfo {
  name: string;
  /** Every column, in table order. */
  columns: string[];
  /** Columns an insert may set (not `generated always as (…) stored`). */
  insertable: string[];
  /** Primary key columns, in key order; empty when the table has none. */
  primaryKey: string[];
  /** Columns fed by a sequence (identity or serial). */
  sequenced: string[];
  /** Tables this one references by foreign key. */
  parents: string[];
}

/** A postgres.js client or transaction. */
export type Queryable = postgres.ISql<{ bigint: number }>;

const BATCH_ROWS = 1000;
const DAY_MS = 86_400_000;
const FILE_NAME = /^service-desk-bot-(\d{8}T\d{6}Z)\.backup\.gz(\.partial)?$/;

/** The file name of a backup started at `at`: `service-desk-bot-20261122T061500Z.backup.gz`. */
export function backupFileName(at: Date): string {
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, "Z").replaceAll(/[-:]/g, "");
  return `service-desk-bot-${stamp}.backup.gz`;
}

/** Double-quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Every base table of schema `public` but `schema_migrations`, parents before children
 * (by foreign keys), ties by name, so that inserting in this order satisfies the keys.
 */
export async function listTables(sql: Queryable): Promise<TableInfo[]> {
  const rows = await sql.unsafe<TableInfo[]>(`
    select c.relname::text as name,
      array(select a.attname::text from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        order by a.attnum) as columns,
      array(select a.attname::text from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
        order by a.attnum) as insertable,
      array(select a.attname::text from pg_index i
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = c.oid and i.indisprimary
        order by array_position(i.indkey::int2[], a.attnum)) as "primaryKey",
      array(select a.attname::text from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          and pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) is not null
        order by a.attnum) as sequenced,
      array(select distinct p.relname::text from pg_constraint k
        join pg_class p on p.oid = k.confrelid
        where k.conrelid = c.oid and k.contype = 'f' and p.oid <> c.oid
          and p.relnamespace = n.oid) as parents
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
      and c.relname <> 'schema_migrations'
    order by c.relname`);
  return parentsFirst([...rows]);
}

/** Orders tables so that each follows the tables it references; a cycle keeps name order. */
export function parentsFirst(tables: TableInfo[]): TableInfo[] {
  const remaining = [...tables].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const known = new Set(tables.map((t) => t.name));
  const placed = new Set<string>();
  const ordered: TableInfo[] = [];
  while (remaining.length > 0) {
    const ready = remaining.findIndex((t) =>
      t.parents.every((parent) => placed.has(parent) || !known.has(parent))
    );
    const [next] = remaining.splice(ready === -1 ? 0 : ready, 1);
    placed.add(next!.name);
    ordered.push(next!);
  }
  return ordered;
}

/**
 * Writes a backup of the database (one `repeatable read` snapshot) and of the durable store
 * keys to `dir`. The file appears under its final name only once complete and fsynced.
 */
export async function createBackup(options: BackupOptions): Promise<BackupResult> {
  const { db, store, config, dir, now = () => new Date() } = options;
  const started = performance.now();
  const createdAt = now();
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir.replace(/\/+$/, "")}/${backupFileName(createdAt)}`;
  const partial = `${path}.partial`;
  // Deno.rename would silently replace a backup made within the same second.
  if (await exists(path)) {
    throw new DatabaseError(`backup ${path} already exists: try again in a second`);
  }
  let writer: BackupWriter;
  try {
    writer = await BackupWriter.create(partial);
  } catch (error) {
    throw new DatabaseError(`cannot create backup file ${partial}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  try {
    const snapshot = await db.sql.begin(
      "isolation level repeatable read read only",
      (tx) => writeTables(tx, writer),
    );
    await writer.begin({ store: "keys" });
    const batch: string[] = [];
    for (const namespace of DURABLE_NAMESPACES) {
      for await (const { key, value, ttlMs } of store.scan(namespace)) {
        batch.push(JSON.stringify({ key, value, ttlMs }));
        if (batch.length >= BATCH_ROWS) await writer.rows(batch.splice(0));
      }
    }
    await writer.rows(batch);
    const keys = await writer.end("keys");
    const manifest: Manifest = {
      program: PROGRAM_NAME,
      programVersion: VERSION,
      schemaVersion: snapshot.schemaVersion,
      createdAt: createdAt.toISOString(),
      database: db.backend,
      store: store.backend,
      tables: snapshot.tables,
      keys,
      config: redactedConfig(config),
    };
    await writer.finish(manifest);
    await Deno.rename(partial, path);
    const tables = Object.fromEntries(
      Object.entries(snapshot.tables).map(([name, { rows }]) => [name, rows]),
    );
    return {
      path,
      bytes: (await Deno.stat(path)).size,
      schemaVersion: snapshot.schemaVersion,
      tables,
      keys: keys.rows,
      durationMs: performance.now() - started,
    };
  } catch (error) {
    await writer.abort();
    await Deno.remove(partial).catch(() => {});
    if (error instanceof DatabaseError) throw error;
    throw new DatabaseError(`backup to ${path} failed: ${errorMessage(error)}`, { cause: error });
  }
}

/** Writes every table from inside the snapshot transaction; returns the schema version too. */
async function writeTables(
  tx: Queryable,
  writer: BackupWriter,
): Promise<{ schemaVersion: number; tables: Record<string, SectionSummary> }> {
  await tx.unsafe(NO_STATEMENT_TIMEOUT);
  // Read inside the snapshot, so that the version matches the rows.
  const schemaVersion = await new Migrator(tx as unknown as Sql, []).current();
  const tables: Record<string, SectionSummary> = {};
  for (const table of await listTables(tx)) {
    await writer.begin({ table: table.name, columns: table.columns });
    // Without a primary key the row text itself gives a stable order.
    const order = table.primaryKey.length > 0
      ? table.primaryKey.map(quoteIdent).join(", ")
      : "row_to_json(t)::text";
    const query = tx.unsafe<{ row: string }[]>(
      `select row_to_json(t)::text as row from ${quoteIdent(table.name)} t order by ${order}`,
    );
    for await (const rows of query.cursor(BATCH_ROWS)) {
      await writer.rows(rows.map((r) => r.row));
    }
    tables[table.name] = await writer.end(table.name);
  }
  return { schemaVersion, tables };
}

/**
 * Deletes backups in `dir` older than `retentionDays` (by the time in their names), except
 * the newest, and `.partial` files left over for more than a day. Returns the deleted names.
 */
export async function pruneBackups(
  dir: string,
  retentionDays: number,
  now: Date = new Date(),
): Promise<string[]> {
  const found: Array<{ name: string; time: number; partial: boolean }> = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const match = entry.isFile ? FILE_NAME.exec(entry.name) : null;
      if (!match) continue;
      const time = Date.parse(
        match[1]!.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, "$1-$2-$3T$4:$5:$6Z"),
      );
      if (!Number.isNaN(time)) found.push({ name: entry.name, time, partial: !!match[2] });
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const complete = found.filter((f) => !f.partial);
  const newest = complete.reduce<string | null>(
    (best, f) => best === null || f.name > best ? f.name : best,
    null,
  );
  const backupCutoff = now.getTime() - retentionDays * DAY_MS;
  // A young .partial may belong to a backup running right now.
  const partialCutoff = now.getTime() - DAY_MS;
  const doomed = found
    .filter((f) => f.partial ? f.time < partialCutoff : f.time < backupCutoff && f.name !== newest)
    .map((f) => f.name)
    .sort();
  for (const name of doomed) await Deno.remove(`${dir.replace(/\/+$/, "")}/${name}`);
  return doomed;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** What {@link backupAndPrune} did. */
export interface BackupRound {
  result: BackupResult;
  /** Names of the old backups deleted afterwards. */
  pruned: string[];
}

/**
 * One backup as the `backup` command, `/backup` and the schedule make it: written to
 * `BACKUP_DIR`, then backups older than `BACKUP_RETENTION_DAYS` deleted.
 */
export async function backupAndPrune(
  options: { db: Database; store: KeyValueStore; config: Config },
): Promise<BackupRound> {
  const { config } = options;
  const result = await createBackup({ ...options, dir: config.backupDir });
  const pruned = await pruneBackups(config.backupDir, config.backupRetentionDays);
  return { result, pruned };
}
