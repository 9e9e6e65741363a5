/**
 * What a migration waiting for a lock tells the operator: after a while, who holds it up
 * (another instance migrating, or a session with an open transaction on a table it changes),
 * read from `pg_stat_activity` on another connection.
 */
import type postgres from "postgres";
import { errorMessage } from "../errors.ts";
import { APPLICATION_NAME, type Sql } from "./database.ts";

/** A session that holds up a migration: what `pg_stat_activity` says of it. */
export interface LockHolder {
  pid: number;
  /** Its `application_name` (this program's instances call themselves by its name). */
  application: string;
  /** `active`, `idle in transaction`, … */
  state: string;
  /** Seconds since its transaction (or its query) began. */
  seconds: number;
}

/** A migration that has waited for a lock longer than it should. */
export interface LockWait {
  /** The migration's file name, or `creating schema_migrations` for the table of them. */
  migration: string;
  waitedMs: number;
  /** Who holds it up now; empty when no session blocks it (it runs, slowly) or unknown. */
  holders: LockHolder[];
  /** Why `holders` could not be read, if it could not. */
  unknown?: string;
}

/** Options of {@link Migrator.up}. */
export interface UpOptions {
  /**
   * Told when a migration has waited `waitNoticeMs` for a lock, and every `waitRepeatMs` after:
   * another instance migrating, or a session (an operator's open transaction) holding a table.
   */
  onWait?: (wait: LockWait) => void;
  /** @default 10000 */
  waitNoticeMs?: number;
  /** @default 30000 */
  waitRepeatMs?: number;
}

/** One line for the operator: what waits, for how long, and who holds it up. */
export function describeWait(wait: LockWait): string {
  const what = wait.migration.endsWith(".sql") ? `migration ${wait.migration}` : wait.migration;
  const waited = `${what} has waited ${Math.round(wait.waitedMs / 1000)} s`;
  if (wait.unknown !== undefined) {
    return `${waited}; who holds it up could not be read: ${wait.unknown}`;
  }
  if (wait.holders.length === 0) return `${waited}, and still runs (no lock blocks it)`;
  const holders = wait.holders.map(({ pid, application, state, seconds }) => {
    const who = application === APPLICATION_NAME
      ? "another instance of this program"
      : application === ""
      ? "a session"
      : `a session of ${application}`;
    return `${who} (pid ${pid}, ${state || "state unknown"} for ${seconds} s)`;
  });
  return `${waited} for a lock held by ${holders.join(" and ")}; ` +
    "pg_stat_activity shows what it does";
}

/** `pg_stat_activity` of the sessions that block the backend `pid`, longest first. */
async function lockHolders(sql: Sql, pid: number): Promise<LockHolder[]> {
  return await sql<LockHolder[]>`
    select pid, application_name as application, coalesce(state, '') as state,
      extract(epoch from now() - coalesce(xact_start, query_start, backend_start))::int as seconds
    from pg_stat_activity where pid = any(pg_blocking_pids(${pid}))
    order by seconds desc`;
}

/**
 * Runs `work`, a migration's part of the transaction `tx` (which has no statement timeout: a
 * migration may take long, and waits for the advisory lock while another instance migrates),
 * and when it takes long tells `options.onWait` who holds it up: asked through `sql`, on
 * another connection than `tx`'s, one question at a time.
 */
export async function watchLockWait<T>(
  sql: Sql,
  tx: postgres.TransactionSql<{ bigint: number }>,
  migration: string,
  options: UpOptions,
  work: () => Promise<T>,
): Promise<T> {
  const { onWait, waitNoticeMs = 10_000, waitRepeatMs = 30_000 } = options;
  if (!onWait) return await work();
  const [{ pid }] = await tx<[{ pid: number }]>`select pg_backend_pid() as pid`;
  const started = performance.now();
  let asking = false;
  let finished = false;
  const ask = () => {
    if (asking) return;
    asking = true;
    lockHolders(sql, pid)
      .then(
        (holders) => ({ holders }),
        (error) => ({ holders: [], unknown: errorMessage(error) }),
      )
      .then((found) => {
        if (!finished) onWait({ migration, waitedMs: performance.now() - started, ...found });
      })
      .finally(() => asking = false);
  };
  let repeat: ReturnType<typeof setInterval> | undefined;
  const notice = setTimeout(() => {
    ask();
    repeat = setInterval(ask, waitRepeatMs);
  }, waitNoticeMs);
  try {
    return await work();
  } finally {
    finished = true;
    clearTimeout(notice);
    clearInterval(repeat);
  }
}
