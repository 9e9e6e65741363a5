/**
 * The embedded database: PGlite (Postgres compiled to WebAssembly) keeping its files in
 * `DATA_DIR/pglite`, served over the Postgres wire protocol on the unix socket
 * `DATA_DIR/pglite.sock`, so the program talks to it through the same postgres.js client
 * and SQL as to a real server. The socket is also how `backup`, `restore` and `migrate`
 * reach the database while the bot runs: PGlite itself can be opened by one process only.
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { DatabaseError } from "../errors.ts";
import { pgliteAssets } from "./pglite_assets.ts";

/** Where the embedded database keeps its files and its socket. */
export function embeddedPaths(dataDir: string): { dir: string; socket: string } {
  const base = dataDir.replace(/\/+$/, "");
  return { dir: `${base}/pglite`, socket: `${base}/pglite.sock` };
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

  let db: PGlite;
  try {
    db = await PGlite.create(dir, { ...(await pgliteAssets()) });
  } catch (error) {
    throw new DatabaseError(`could not open the embedded database in ${dir}`, { cause: error });
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
