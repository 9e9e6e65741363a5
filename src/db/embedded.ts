/**
 * The embedded database: PGlite (Postgres compiled to WebAssembly) keeping its files in
 * `DATA_DIR/pglite`, served over the Postgres wire protocol on the unix socket
 * `DATA_DIR/pglite.sock`, so the program talks to it through the same postgres.js client
 * and SQL as to a real server. The socket is also how `backup`, `restore` and `migrate`
 * reach the database while the bot runs: PGlite itself can be opened by one process only.
 */
import type { PGlite } from "@electric-sql/pglite";
import { causeChain, DatabaseError } from "../errors.ts";

/**
 * Postgres settings of the embedded database, given at each start on top of PGlite's own
 * (so they also apply to a database created by an older version). PGlite's Postgres lives
 * in WebAssembly memory, which only grows: every page it ever touched stays resident.
 * Postgres's defaults are for a server: shared_buffers alone (128 MB, zeroed at start)
 * was a third of the process's memory. The database of one bot instance is small and the
 * files sit in the operating system's cache anyway; PGlite serves one session, so a few
 * connection slots (and the locks and process entries sized by them) are enough.
 */
export const EMBEDDED_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: "4MB",
  max_connections: "8",
  autovacuum_worker_slots: "1",
  max_wal_senders: "0",
  max_replication_slots: "0",
  // Caps what an index build or a vacuum may take (and keep, see above).
  maintenance_work_mem: "16MB",
};

/** How a full disk shows in an error (Deno's "os error 28", Node's and Emscripten's ENOSPC). */
const NO_SPACE = /No space left on device|ENOSPC|os error 28/;
/** What a new embedded database takes on disk once started (`du -sm data/pglite`), rounded up. */
export const NEW_DATABASE_MIB = 45;

/**
 * The error of a failed open of the embedded database in `dir` (`first`: a new one), which says
 * how much room is needed when the disk is full.
 */
export function openFailure(dir: string, first: boolean, error: unknown): DatabaseError {
  const full = NO_SPACE.test(causeChain(error))
    ? first
      ? ` (a new database needs about ${NEW_DATABASE_MIB} MiB free under DATA_DIR)`
      : " (the disk under DATA_DIR is full: Postgres cannot start without room to write)"
    : "";
  return new DatabaseError(`could not open the embedded database in ${dir}${full}`, {
    cause: error,
  });
}

/** Where the embedded database keeps its files and its socket. */
export function embeddedPaths(dataDir: string): { dir: string; socket: string } {
  const base = dataDir.replace(/\/+$/, "");
  return { dir: `${base}/pglite`, socket: `${base}/pglite.sock` };
}

/** Whether `dir` is missing or empty: no database was made there yet. */
async function holdsNothing(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return false;
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

/** Whether a process is serving the embedded database on `socket` right now. */
export async function isServing(socket: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path: socket });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** A running embedded database. */
export interface EmbeddedServer {
  /** The unix socket clients connect to. */
  socket: string;
  /** Stops serving and closes PGlite, flushing its files. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens PGlite in `dataDir` (creating the database on first use) and serves it on the
 * socket. Refuses when another process already serves this `dataDir`: two processes writing
 * one PGlite directory would corrupt it.
 */
export async function startEmbedded(dataDir: string): Promise<EmbeddedServer> {
  const { dir, socket } = embeddedPaths(dataDir);
  if (await isServing(socket)) {
    throw new DatabaseError(
      `DATA_DIR ${dataDir} is in use by another running instance (its embedded database ` +
        `answers on ${socket}); stop it first, or set DATABASE_URL to share a Postgres server`,
      { permanent: true },
    );
  }
  // Nothing answers, so a socket file left behind by a killed process is stale.
  await Deno.remove(socket).catch(() => {});
  await Deno.mkdir(dataDir, { recursive: true });

  // Loaded only here: PGlite's code and its WebAssembly and data files (16 MB of bytes)
  // would otherwise sit in the memory of every process, also those that use Postgres.
  const [{ PGlite }, { PGLiteSocketServer }, { pgliteAssets }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite-socket"),
    import("./pglite_assets.ts"),
  ]);
  let db: PGlite;
  let first = false;
  try {
    // A first start copies a database made in advance (`pglite_template.ts`) instead of
    // running initdb. A folder holding anything else is PGlite's business, as before.
    first = await holdsNothing(dir);
    if (first) await (await import("./pglite_template.ts")).unpackTemplate(dir);
    db = await PGlite.create(dir, {
      ...(await pgliteAssets()),
      startParams: [
        ...PGlite.defaultStartParams,
        ...Object.entries(EMBEDDED_SETTINGS).flatMap(([name, value]) => ["-c", `${name}=${value}`]),
      ],
    });
  } catch (error) {
    throw openFailure(dir, first, error);
  }
  // Several connections: the bot's own plus `backup` or `migrate` run by the operator.
  // PGlite runs one statement at a time; the server queues them and keeps transactions whole.
  const server = new PGLiteSocketServer({ db, path: socket, maxConnections: 8 });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw new DatabaseError(`could not serve the embedded database on ${socket}`, {
      cause: error,
    });
  }
  let closing: Promise<void> | null = null;
  return {
    socket,
    close() {
      closing ??= (async () => {
        await server.stop();
        await db.close();
        await Deno.remove(socket).catch(() => {});
      })();
      return closing;
    },
  };
}
