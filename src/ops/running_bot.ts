/**
 * Whether the bot is running against the database a command is about to replace. For the
 * embedded database the running bot is the process serving its socket. For Postgres it is any
 * session in the same database whose `application_name` is the bot's: the bot names its
 * connections `service-desk-bot`, operator commands add their own name, so the command never
 * counts itself.
 */
import { APPLICATION_NAME, type Database } from "../db/database.ts";
import { embeddedPaths } from "../db/embedded.ts";

/** A session of `pg_stat_activity`; another role's shows neither address nor start. */
interface Session {
  addr: string | null;
  started: Date | null;
}

/**
 * What was found of a bot running against `db` (the embedded one lives in `dataDir`), for a human (e.g. "2 connections named
 * service-desk-bot from 10.0.0.5, the oldest since …"), or null when none is.
 */
export async function runningBot(db: Database, dataDir: string): Promise<string | null> {
  if (db.backend === "pglite") {
    const { socket } = embeddedPaths(dataDir);
    return db.shared ? `a running instance serves the embedded database on ${socket}` : null;
  }
  const sessions = await db.sql<Session[]>`
    select host(client_addr) as addr, backend_start as started
    from pg_stat_activity
    where datname = current_database() and application_name = ${APPLICATION_NAME}
      and pid <> pg_backend_pid()
    order by backend_start nulls last`;
  if (sessions.length === 0) return null;
  const from = [...new Set(sessions.map((s) => s.addr ?? "a local socket or hidden address"))];
  const oldest = sessions.find((s) => s.started !== null)?.started;
  const count = sessions.length;
  return `${count} connection${count === 1 ? "" : "s"} named ${APPLICATION_NAME} from ` +
    `${from.join(", ")} in ${db.description}` +
    (oldest ? `, the oldest open since ${oldest.toISOString()}` : "");
}
