/**
 * Runs a database test on both backends: a throwaway Postgres server started for the test,
 * and the embedded PGlite in a temp dir. Each call of `fresh()` gives an empty database.
 */
import type { DatabaseConfig } from "../../src/config.ts";
import { type Database, openDatabase } from "../../src/db/database.ts";
import { Migrator, parseMigrations } from "../../src/db/migrate.ts";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import { startPostgres } from "./postgres_server.ts";

/** Database settings for tests: the production defaults with `url`. */
export function testDatabaseConfig(url: string | null): DatabaseConfig {
  return {
    url,
    poolSize: 10,
    idleTimeoutMs: 60_000,
    maxLifetimeMs: 1_800_000,
    connectTimeoutMs: 10_000,
    statementTimeoutMs: 5_000,
    poolTimeoutMs: 5_000,
    migrateOnStart: true,
  };
}

/** What a test body gets. */
export interface BackendContext {
  /** `postgres` or `pglite`. */
  backend: Database["backend"];
  /** An empty database; closed when the test ends. */
  fresh(options?: { onQuery?: () => void }): Promise<Database>;
  /** The settings `fresh()` last used, to open the same database again (e.g. from a CLI). */
  lastConfig(): { config: DatabaseConfig; dataDir: string };
}

/** Registers `Deno.test("<name> (<backend>)")` for each backend. */
export function testOnBothBackends(
  name: string,
  body: (t: Deno.TestContext, ctx: BackendContext) => Promise<void>,
): void {
  Deno.test(`${name} (postgres)`, async (t) => {
    await using server = await startPostgres();
    const open: Database[] = [];
    let counter = 0;
    let last = { config: testDatabaseConfig(null), dataDir: "" };
    try {
      await body(t, {
        backend: "postgres",
        async fresh(options) {
          const url = await server.createDatabase(`test_${++counter}`);
          last = { config: testDatabaseConfig(url), dataDir: "" };
          const db = await openDatabase({ ...last, ...options });
          open.push(db);
          return db;
        },
        lastConfig: () => last,
      });
    } finally {
      await Promise.all(open.map((db) => db.close()));
    }
  });

  Deno.test(`${name} (pglite)`, async (t) => {
    const dataDir = await Deno.makeTempDir({ prefix: "pglite-test-" });
    let db = null as Database | null;
    try {
      await body(t, {
        backend: "pglite",
        async fresh(options) {
          // A new PGlite costs about half a second, so later calls reuse it with an empty schema.
          if (db && !options) {
            await db.sql.unsafe("drop schema public cascade; create schema public").simple();
            return db;
          }
          await db?.close();
          db = await openDatabase({ config: testDatabaseConfig(null), dataDir, ...options });
          if (options) {
            await db.sql.unsafe("drop schema public cascade; create schema public").simple();
          }
          return db;
        },
        lastConfig: () => ({ config: testDatabaseConfig(null), dataDir }),
      });
    } finally {
      await db?.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  });
}

/** An empty database with the shipped schema that counts the queries sent to it. */
export async function migrated(fresh: BackendContext["fresh"]) {
  let sent = 0;
  const db: Database = await fresh({ onQuery: () => sent++ });
  await new Migrator(db.sql, await parseMigrations(MIGRATION_FILES)).up();
  return {
    db,
    /** Empties every table and restarts request numbers at 1. */
    async reset(): Promise<void> {
      await db
        .sql`truncate users, requests, request_history, events, outbox restart identity cascade`;
    },
    /** Runs `fn` and returns its result with the number of queries it sent. */
    async counted<T>(fn: () => Promise<T>): Promise<[T, number]> {
      const before = sent;
      const result = await fn();
      return [result, sent - before];
    },
  };
}
