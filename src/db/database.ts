/**
 * The relational database: a postgres.js pool on `DATABASE_URL`, or on the embedded PGlite
 * when it is unset. Either way the rest of the program gets one `Sql` and one SQL dialect.
 */
import postgres from "postgres";
import type { DatabaseConfig } from "../config.ts";
import { logger } from "../log.ts";
import { databaseError } from "./errors.ts";
import { embeddedPaths, type EmbeddedServer, isServing, startEmbedded } from "./embedded.ts";
import { limitPool } from "./pool_limit.ts";

/**
 * The `application_name` of the running bot's connections. Commands run by an operator add
 * their own name (`service-desk-bot restore`), so that `restore` can tell a running bot from
 * itself in `pg_stat_activity`.
 */
export const APPLICATION_NAME = "service-desk-bot";

/**
 * Lifts DB_STATEMENT_TIMEOUT for the rest of a transaction (`tx.unsafe(NO_STATEMENT_TIMEOUT)`):
 * waiting for another instance's migration, building an index, restoring or backing up a large
 * table may rightly take longer than a handler's query should.
 */
export const NO_STATEMENT_TIMEOUT = "set local statement_timeout = 0";

/** The postgres.js client type used throughout. */
export type Sql = postgres.Sql<{ bigint: number }>;

/** An open database. */
export interface Database {
  /** The postgres.js client (a pool for a server, one connection for PGlite). */
  readonly sql: Sql;
  /** Which backend this is. */
  readonly backend: "postgres" | "pglite";
  /** Where the data lives, without secrets: `postgres db.example:5432/desk` or a path. */
  readonly description: string;
  /**
   * Whether this is the embedded database served by another process (the running bot), which
   * this one reaches through its socket; always false for Postgres.
   */
  readonly shared: boolean;
  /** Round trip of `select 1` in milliseconds; rejects when the database is unreachable. */
  ping(): Promise<number>;
  /** Waits for running queries, then closes every connection (and PGlite). Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenOptions {
  /** Settings from the environment. */
  config: DatabaseConfig;
  /** Where the embedded database lives when `config.url` is null. */
  dataDir: string;
  /**
   * For the embedded database: `own` opens PGlite (and refuses when another process
   * serves it), `share` connects to the running bot's database when there is one, so that
   * `backup` and `migrate` work while the bot runs.
   * @default "own"
   */
  embedded?: "own" | "share";
  /** Called once per query sent, for the queries-per-update metric. */
  onQuery?: () => void;
  /** Called with each NOTICE the server sends. */
  onNotice?: (message: string) => void;
  /** The connections' `application_name`. @default APPLICATION_NAME */
  applicationName?: string;
}

// Telegram ids and counts are int8; they fit a JS number exactly (below 2^53), so the
// program works with numbers rather than strings or bigints.
const int8AsNumber = {
  to: 20,
  from: [20],
  serialize: (value: number) => String(value),
  parse: (value: string) => Number(value),
};

const log = logger("db");

/** Opens the database named by the configuration; does not run migrations. */
export async function openDatabase(options: OpenOptions): Promise<Database> {
  const { config, onQuery, onNotice } = options;
  const common = {
    types: { bigint: int8AsNumber },
    connection: {
      application_name: options.applicationName ?? APPLICATION_NAME,
      // So that one slow query cannot hold a connection (and the handlers waiting for it) for
      // long. PGlite ignores it: it has no timers to cancel a statement with.
      ...(config.statementTimeoutMs > 0 ? { statement_timeout: config.statementTimeoutMs } : {}),
    },
    onnotice: (notice: postgres.Notice) => onNotice?.(String(notice.message)),
    debug: onQuery ? () => onQuery() : false,
    connect_timeout: config.connectTimeoutMs / 1000,
  } as const;

  if (config.url !== null) {
    const url = new URL(config.url);
    const where = `postgres ${url.hostname}:${url.port || 5432}${url.pathname}`;
    const connectionString = config.url;
    const sql = limitPool(
      () =>
        postgres(connectionString, {
          ...common,
          max: config.poolSize,
          idle_timeout: config.idleTimeoutMs === 0 ? undefined : config.idleTimeoutMs / 1000,
          max_lifetime: config.maxLifetimeMs === 0 ? null : config.maxLifetimeMs / 1000,
        }) as unknown as Sql,
      {
        size: config.poolSize,
        waitMs: config.poolTimeoutMs,
        where,
        // The server ends a statement at the statement timeout; one that was sent (perhaps over
        // a connection still being opened) and has no answer well after that finds a server
        // that hangs. Without a statement timeout a long wait may be legitimate.
        answerMs: config.statementTimeoutMs > 0
          ? config.statementTimeoutMs + config.connectTimeoutMs
          : 0,
        onLost: (error) => log.warn("database connection lost: {error}", { error: error.message }),
      },
    );
    return database(sql, "postgres", where, false, null);
  }

  const { dir, socket } = embeddedPaths(options.dataDir);
  const share = options.embedded === "share" && await isServing(socket);
  const server: EmbeddedServer | null = share ? null : await startEmbedded(options.dataDir);
  const description = `pglite ${dir}${share ? " (served by the running instance)" : ""}`;
  const sql = limitPool(
    () =>
      postgres({
        ...common,
        path: socket,
        user: "postgres",
        database: "postgres",
        // PGlite is one session: a single connection keeps transactions and prepared
        // statements unambiguous. A second client (sharing the bot's) uses unnamed statements
        // so that its statement names cannot collide with the bot's.
        max: 1,
        prepare: !share,
        idle_timeout: undefined,
        max_lifetime: null,
      }) as unknown as Sql,
    { size: 1, waitMs: config.poolTimeoutMs, where: description },
  );
  return database(sql, "pglite", description, share, server);
}

function database(
  sql: Sql,
  backend: Database["backend"],
  description: string,
  shared: boolean,
  server: EmbeddedServer | null,
): Database {
  let closing: Promise<void> | null = null;
  return {
    sql,
    backend,
    description,
    shared,
    async ping() {
      const started = performance.now();
      try {
        await sql`select 1`;
      } catch (error) {
        throw databaseError(error, `(${description})`);
      }
      return performance.now() - started;
    },
    close() {
      closing ??= (async () => {
        await sql.end({ timeout: 5 });
        await server?.close();
      })();
      return closing;
    },
  };
}
