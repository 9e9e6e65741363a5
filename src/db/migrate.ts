/**
 * Schema migrations: numbered SQL files (`0001_init.sql`) with an up part and a down part,
 * each applied in its own transaction and recorded in `schema_migrations` with a checksum.
 * A transaction-scoped advisory lock makes several instances starting at once apply each
 * migration exactly once.
 */
import type postgres from "postgres";
import { DatabaseError } from "../errors.ts";
import { NO_STATEMENT_TIMEOUT, type Sql } from "./database.ts";
import { type LockWait, type UpOptions, watchLockWait } from "./lock_wait.ts";

/** One migration file, parsed. */
export interface Migration {
  /** The number the file name starts with: 1, 2, … */
  version: number;
  /** The file name, e.g. `0001_init.sql`. */
  name: string;
  /** SQL that applies it. */
  up: string;
  /** SQL that reverts it; empty when it cannot be reverted. */
  down: string;
  /** SHA-256 of the file (line endings normalised), hex. */
  checksum: string;
}

/** Where one migration stands in a database. */
export interface MigrationStatus {
  version: number;
  name: string;
  /** `changed`: applied, but the file differs now; `unknown`: applied, but no such file. */
  state: "applied" | "pending" | "changed" | "unknown";
  appliedAt: Date | null;
}

const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;
const UP = /^--\s*migrate:up\s*$/m;
const DOWN = /^--\s*migrate:down\s*$/m;
// Any constant works; this one is "sdb-migr" in ASCII, unlikely to clash with other apps.
const LOCK_KEY = 0x7364622d6d696772n;

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Parses migration files (name → text), sorted by version. Rejects bad names, duplicate
 * versions, gaps (versions must run 1, 2, 3, … without a hole) and files without an up part.
 */
export async function parseMigrations(
  files: Readonly<Record<string, string>>,
): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const [name, raw] of Object.entries(files)) {
    const match = FILE_NAME.exec(name);
    if (!match) {
      throw new DatabaseError(`migration file name ${name} must look like 0001_some_name.sql`, {
        permanent: true,
      });
    }
    const text = raw.replaceAll("\r\n", "\n");
    const up = UP.exec(text);
    if (!up) {
      throw new DatabaseError(`migration ${name} has no "-- migrate:up" line`, { permanent: true });
    }
    const down = DOWN.exec(text);
    if (down && down.index < up.index) {
      throw new DatabaseError(`migration ${name}: "-- migrate:down" must follow the up part`, {
        permanent: true,
      });
    }
    const upSql = text.slice(up.index + up[0].length, down?.index ?? text.length).trim();
    if (upSql === "") {
      throw new DatabaseError(`migration ${name} has an empty up part`, { permanent: true });
    }
    migrations.push({
      version: Number(match[1]),
      name,
      up: upSql,
      down: down ? text.slice(down.index + down[0].length).trim() : "",
      checksum: await sha256(text),
    });
  }
  migrations.sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      const expected = String(index + 1).padStart(4, "0");
      throw new DatabaseError(
        migration.version === migrations[index - 1]?.version
          ? `two migrations have version ${migration.version}`
          : `migrations have a gap: expected ${expected}_…sql before ${migration.name}`,
        { permanent: true },
      );
    }
  });
  return migrations;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
  applied_at: Date;
}

/** Applies, reverts and reports migrations on one database. */
export class Migrator {
  readonly #sql: Sql;
  readonly #migrations: Migration[];

  constructor(sql: Sql, migrations: Migration[]) {
    this.#sql = sql;
    this.#migrations = migrations;
  }

  /** The newest version this program knows. */
  get latest(): number {
    return this.#migrations.at(-1)?.version ?? 0;
  }

  /** Every known or applied migration and where it stands, by version. */
  async status(): Promise<MigrationStatus[]> {
    const applied = await this.#applied(this.#sql);
    const byVersion = new Map(applied.map((row) => [row.version, row]));
    const rows: MigrationStatus[] = this.#migrations.map((m) => {
      const row = byVersion.get(m.version);
      return {
        version: m.version,
        name: m.name,
        state: !row ? "pending" : row.checksum === m.checksum ? "applied" : "changed",
        appliedAt: row?.applied_at ?? null,
      };
    });
    for (const row of applied) {
      if (row.version > this.latest) {
        rows.push({
          version: row.version,
          name: row.name,
          state: "unknown",
          appliedAt: row.applied_at,
        });
      }
    }
    return rows;
  }

  /** The highest applied version (0 for an empty database). */
  async current(): Promise<number> {
    const applied = await this.#applied(this.#sql);
    return applied.at(-1)?.version ?? 0;
  }

  /**
   * Applies every pending migration up to `target` (default: the latest), each in its own
   * transaction under the advisory lock. Returns those this call applied; migrations another
   * instance applied meanwhile are skipped.
   */
  async up(target = this.latest, options: UpOptions = {}): Promise<Migration[]> {
    // At most starts nothing is pending: one read tells, with no transaction and no lock (each
    // transaction on the embedded database is a write to disk; the round of them that found
    // nothing to do took a quarter of a later start). What another instance applies meanwhile
    // is committed whole or not seen, and anything pending takes the locked path below.
    const current = await this.#applied(this.#sql);
    this.#verify(current);
    const known = new Set(current.map((row) => row.version));
    if (this.#migrations.every((m) => m.version > target || known.has(m.version))) return [];
    await this.#sql.begin(async (tx) => {
      await tx.unsafe(NO_STATEMENT_TIMEOUT);
      await watchLockWait(this.#sql, tx, "creating schema_migrations", options, async () => {
        await tx`select pg_advisory_xact_lock(${LOCK_KEY.toString()}::bigint)`;
        await tx`
          create table if not exists schema_migrations (
            version    integer primary key,
            name       text not null,
            checksum   text not null,
            applied_at timestamptz not null default now()
          )`;
      });
    });
    const done: Migration[] = [];
    for (const migration of this.#migrations.filter((m) => m.version <= target)) {
      const applied = await this.#sql.begin(async (tx) => {
        await tx.unsafe(NO_STATEMENT_TIMEOUT);
        return await watchLockWait(
          this.#sql,
          tx,
          migration.name,
          options,
          () => this.#apply(tx, migration),
        );
      });
      if (applied) done.push(migration);
    }
    return done;
  }

  /** Applies `migration` in `tx` unless applied meanwhile; whether this call applied it. */
  async #apply(
    tx: postgres.TransactionSql<{ bigint: number }>,
    migration: Migration,
  ): Promise<boolean> {
    await tx`select pg_advisory_xact_lock(${LOCK_KEY.toString()}::bigint)`;
    const rows = await this.#applied(tx as unknown as Sql);
    this.#verify(rows);
    if (rows.some((row) => row.version === migration.version)) return false;
    const current = rows.at(-1)?.version ?? 0;
    if (current !== migration.version - 1) {
      throw new DatabaseError(
        `cannot apply ${migration.name}: the database is at version ${current}`,
        { permanent: true },
      );
    }
    await tx.unsafe(migration.up).simple();
    await tx`
      insert into schema_migrations (version, name, checksum)
      values (${migration.version}, ${migration.name}, ${migration.checksum})`;
    return true;
  }

  /** Reverts the `steps` newest applied migrations, newest first, each in a transaction. */
  async down(steps: number): Promise<Migration[]> {
    const done: Migration[] = [];
    for (let i = 0; i < steps; i++) {
      const reverted = await this.#sql.begin(async (tx) => {
        await tx.unsafe(NO_STATEMENT_TIMEOUT);
        await tx`select pg_advisory_xact_lock(${LOCK_KEY.toString()}::bigint)`;
        const rows = await this.#applied(tx as unknown as Sql);
        this.#verify(rows);
        const last = rows.at(-1);
        if (!last) return null;
        const migration = this.#migrations.find((m) => m.version === last.version)!;
        if (migration.down === "") {
          throw new DatabaseError(`${migration.name} has no "-- migrate:down" part to revert it`, {
            permanent: true,
          });
        }
        await tx.unsafe(migration.down).simple();
        await tx`delete from schema_migrations where version = ${migration.version}`;
        return migration;
      });
      if (!reverted) break;
      done.push(reverted);
    }
    return done;
  }

  /** Refuses a database whose applied migrations do not match this program's files. */
  #verify(rows: AppliedRow[]): void {
    for (const row of rows) {
      const migration = this.#migrations.find((m) => m.version === row.version);
      if (!migration) {
        throw new DatabaseError(
          `the database schema is at version ${rows.at(-1)?.version}, newer than this ` +
            `program knows (${this.latest}): run the newer program, or revert with its ` +
            `"migrate down"`,
          { permanent: true },
        );
      }
      if (migration.checksum !== row.checksum) {
        throw new DatabaseError(
          `migration ${migration.name} was changed after it was applied (checksum ` +
            `${row.checksum.slice(0, 12)}… in the database, ${
              migration.checksum.slice(0, 12)
            }… in the file): put the original back and add a new migration instead`,
          { permanent: true },
        );
      }
    }
  }

  async #applied(sql: Sql): Promise<AppliedRow[]> {
    const [exists] = await sql<{ found: boolean }[]>`
      select to_regclass('schema_migrations') is not null as found`;
    if (!exists?.found) return [];
    return await sql<AppliedRow[]>`
      select version, name, checksum, applied_at from schema_migrations order by version`;
  }
}

/**
 * Brings the schema to this program's version at start: applies pending migrations (under the
 * advisory lock), or with `migrate` false refuses a schema that is not current. Returns the
 * names of the migrations it applied.
 */
export async function prepareSchema(
  migrator: Migrator,
  migrate: boolean,
  onWait?: (wait: LockWait) => void,
): Promise<string[]> {
  if (migrate) {
    return (await migrator.up(undefined, onWait ? { onWait } : {})).map((m) => m.name);
  }
  const current = await migrator.current();
  if (current !== migrator.latest) {
    throw new DatabaseError(
      `the database schema is at version ${current} but this program needs ` +
        `${migrator.latest}: run "service-desk-bot migrate" (MIGRATE_ON_START is false)`,
      { permanent: true },
    );
  }
  return [];
}
