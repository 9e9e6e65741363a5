// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Backup and restore benchmark: 100,000 users and 100,000 requests, backed up with
 * `createBackup` and restored with `restoreBackup` into a fresh database, on a throwaway
 * Postgres server and on the embedded PGlite.
 *
 * Run alone with `deno run --frozen --unstable-kv --unstable-raw-imports --allow-net
 * --allow-env --allow-read --allow-write --allow-sys
 * --allow-run=pg_ctl,initdb,postgres,runuser bench/backup_bench.ts`.
 *
 * @module
 */
import { loadConfig } from "../src/config.ts";
import { type Database, openDatabase } from "../src/db/database.ts";
import { Migrator, parseMigrations } from "../src/db/migrate.ts";
import { MIGRATION_FILES } from "../src/db/migration_files.ts";
import { createBackup } from "../src/ops/backup.ts";
import { restoreBackup, verifyBackup } from "../src/ops/restore.ts";
import { openKvStore } from "../src/store/kv_store.ts";
import { testDatabaseConfig } from "../tests/support/databases.ts";
import { startPostgres } from "../tests/support/postgres_server.ts";

/** Rows per table the benchmark creates. */
export const BENCH_ROWS = 100_000;

const CONFIG = loadConfig({ BOT_TOKEN: `123456:${"A".repeat(35)}` });

async function migrated(db: Database): Promise<Migrator> {
  const migrator = new Migrator(db.sql, await parseMigrations(MIGRATION_FILES));
  await migrator.up();
  return migrator;
}

/** Fills `users` and `requests` with plausible rows, in two statements. */
async function seed(db: Database): Promise<void> {
  await db.sql`
    insert into users (id, username, first_name, last_name, language_code, created_at)
    select g, 'user_' || g, 'First ' || g,
      case when g % 3 = 0 then null else 'Last ' || g end,
      (array['en', 'ru', 'de'])[1 + g % 3], now() - g * interval '1 minute'
    from generate_series(1, ${BENCH_ROWS}::int) g`;
  await db.sql`
    insert into requests (user_id, category, description, contact, status, created_at)
    select 1 + (g * 7919) % ${BENCH_ROWS}::int,
      (array['hardware', 'software', 'access', 'other'])[1 + g % 4],
      'Request ' || g || ': the printer on floor ' || g % 9 || ' jams on every second page',
      '@user_' || g, (array['new', 'in_progress', 'done', 'cancelled'])[1 + g % 4],
      now() - g * interval '1 second'
    from generate_series(1, ${BENCH_ROWS}::int) g`;
}

/**
 * Seeds `source`, backs it up into `dir`, then restores into the database `openTarget`
 * opens (after `source` is closed, so that two PGlite instances never share the memory).
 */
async function measure(
  backend: string,
  source: Database,
  openTarget: () => Promise<Database>,
  dir: string,
): Promise<Record<string, number>> {
  await using work = await tempDir(dir);
  const store = await openKvStore(`${work.path}/kv.sqlite3`);
  try {
    await migrated(source);
    await seed(source);
    const backup = await createBackup({ db: source, store, config: CONFIG, dir: work.path });
    await source.close();
    const verifyStarted = performance.now();
    await verifyBackup(backup.path);
    const verifyMs = performance.now() - verifyStarted;
    const target = await openTarget();
    try {
      const migrator = new Migrator(target.sql, await parseMigrations(MIGRATION_FILES));
      const restored = await restoreBackup({ db: target, store, migrator, path: backup.path });
      return {
        [`backup_${backend}_ms`]: Math.round(backup.durationMs),
        // Restore reads the file twice: verifyBackup first, then again to insert the rows.
        [`restore_${backend}_ms`]: Math.round(restored.durationMs),
        [`verify_${backend}_ms`]: Math.round(verifyMs),
        [`backup_file_mib_${backend}`]: Math.round(backup.bytes / 1024 / 1024 * 10) / 10,
      };
    } finally {
      await target.close();
    }
  } finally {
    await store.close();
    await source.close();
  }
}

async function tempDir(parent?: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "backup-bench-", dir: parent });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** Times backup and restore of {@link BENCH_ROWS} users and requests on both backends. */
export async function benchBackup(): Promise<Record<string, number>> {
  await using work = await tempDir();
  const figures: Record<string, number> = {};
  {
    await using server = await startPostgres();
    const open = async (name: string) =>
      await openDatabase({
        config: testDatabaseConfig(await server.createDatabase(name)),
        dataDir: "",
      });
    Object.assign(
      figures,
      await measure("postgres", await open("bench_source"), () => open("bench_target"), work.path),
    );
  }
  const openPglite = (name: string) =>
    openDatabase({ config: testDatabaseConfig(null), dataDir: `${work.path}/${name}` });
  Object.assign(
    figures,
    await measure("pglite", await openPglite("source"), () => openPglite("target"), work.path),
  );
  return figures;
}

if (import.meta.main) console.log(JSON.stringify(await benchBackup(), null, 2));
