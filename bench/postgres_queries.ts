/**
 * Counts the statements each database of a throwaway PostgreSQL server runs, for benchmarks
 * that compare programs on one server, each in a database of its own.
 *
 * From `pg_stat_statements` when the server can load it (it must be preloaded, so enabling it
 * restarts the server): calls per statement, counted as they finish. Otherwise from
 * `pg_stat_database.xact_commit`, one per committed transaction, which for programs that send
 * single statements outside transactions is the same count; backends report it lazily, so a
 * snapshot first waits for them.
 *
 * @module
 */
import postgres from "postgres";
import type { PostgresServer } from "../tests/support/postgres_server.ts";

/** Where the counts come from. */
export type QuerySource = "pg_stat_statements" | "pg_stat_database.xact_commit";

// Backends flush their pending statistics when idle, at the latest after 10 s (PostgreSQL 15+:
// PGSTAT_IDLE_INTERVAL); a snapshot waits that long so that a burst is counted in full.
const STATS_FLUSH_WAIT_MS = 11_000;

/** A counter on one server; `await using` closes its connection. */
export class QueryCounter implements AsyncDisposable {
  readonly #sql: postgres.Sql;
  /** Where the counts come from. */
  readonly source: QuerySource;

  private constructor(sql: postgres.Sql, source: QuerySource) {
    this.#sql = sql;
    this.source = source;
  }

  /**
   * Enables `pg_stat_statements` on `server` (restarting it: do this before anything connects)
   * and opens a counter on its `postgres` database; falls back to `xact_commit` if the server
   * does not have the extension.
   */
  static async open(server: PostgresServer): Promise<QueryCounter> {
    const connect = () => postgres(server.url, { max: 1, onnotice: () => {} });
    const sql = connect();
    const [row] = await sql<{ available: boolean }[]>`
      select exists (
        select from pg_available_extensions where name = 'pg_stat_statements'
      ) as available`;
    if (!row?.available) return new QueryCounter(sql, "pg_stat_database.xact_commit");
    await sql`alter system set shared_preload_libraries = 'pg_stat_statements'`;
    await sql.end();
    await server.stop();
    await server.start();
    const counter = new QueryCounter(connect(), "pg_stat_statements");
    await counter.#sql`create extension if not exists pg_stat_statements`;
    return counter;
  }

  /**
   * Statements `database` has run so far, by normalised text (`pg_stat_statements`), or its
   * committed transactions under one key, `"transactions"` (fallback).
   */
  async snapshot(database: string): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (this.source === "pg_stat_statements") {
      const rows = await this.#sql<{ query: string; calls: string }[]>`
        select s.query, s.calls from pg_stat_statements s
        join pg_database d on d.oid = s.dbid
        where d.datname = ${database}`;
      for (const row of rows) {
        counts.set(row.query, (counts.get(row.query) ?? 0) + Number(row.calls));
      }
      return counts;
    }
    await new Promise((resolve) => setTimeout(resolve, STATS_FLUSH_WAIT_MS));
    const [row] = await this.#sql<{ commits: string }[]>`
      select xact_commit as commits from pg_stat_database where datname = ${database}`;
    counts.set("transactions", Number(row?.commits ?? 0));
    return counts;
  }

  /** The server's `server_version`. */
  async version(): Promise<string> {
    const [row] = await this.#sql<{ v: string }[]>`select current_setting('server_version') as v`;
    return row?.v ?? "?";
  }

  /** Closes the connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#sql.end();
  }
}

/** What ran between two snapshots, by statement; statements that did not run left out. */
export function queryDelta(
  before: Map<string, number>,
  after: Map<string, number>,
): Record<string, number> {
  const delta: Record<string, number> = {};
  for (const [query, calls] of after) {
    const count = calls - (before.get(query) ?? 0);
    if (count > 0) delta[query] = count;
  }
  return delta;
}
