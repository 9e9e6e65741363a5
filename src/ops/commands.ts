/**
 * The storage subcommands: `migrate`, `backup` and `restore`. Each opens the storage the
 * configuration names (sharing the running bot's embedded database through its socket when
 * there is one), does its work, prints a short report, and returns the exit code.
 */
import { join } from "node:path";
import type { Config } from "../config.ts";
import { APPLICATION_NAME } from "../db/database.ts";
import { describeWait } from "../db/lock_wait.ts";
import type { MigrationStatus } from "../db/migrate.ts";
import { DatabaseError } from "../errors.ts";
import { openStorage, type Storage } from "../storage.ts";
import { backupAndPrune } from "./backup.ts";
import { restoreBackup } from "./restore.ts";
import { runningBot } from "./running_bot.ts";

/** Where a command writes its report (stdout in `main.ts`). */
export type Print = (line: string) => void;

/** A command line the subcommand could not make sense of; `main.ts` exits 2 with usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

async function withStorage<T>(
  config: Config,
  command: string,
  work: (storage: Storage) => Promise<T>,
): Promise<T> {
  // Named after the command, so that a running bot's connections can be told from ours.
  const storage = await openStorage(config, {
    embedded: "share",
    applicationName: `${APPLICATION_NAME} ${command}`,
  });
  try {
    return await work(storage);
  } finally {
    await storage.close(5000);
  }
}

function statusTable(rows: MigrationStatus[]): string[] {
  const lines = rows.map((row) =>
    `${String(row.version).padStart(4, "0")}  ${row.name.padEnd(32)} ${row.state.padEnd(8)} ${
      row.appliedAt?.toISOString() ?? ""
    }`
  );
  return [`${"ver".padEnd(4)}  ${"file".padEnd(32)} ${"state".padEnd(8)} applied at`, ...lines];
}

/** `migrate` (up to latest), `migrate up`, `migrate down N`, `migrate status`. */
export async function migrateCommand(config: Config, args: string[], print: Print) {
  const [action = "up", count, ...extra] = args;
  if (extra.length > 0 || !["up", "down", "status"].includes(action)) {
    throw new UsageError(`usage: migrate [up | down N | status], got "${args.join(" ")}"`);
  }
  if ((action === "down") !== (count !== undefined)) {
    throw new UsageError("usage: migrate down N, where N is how many migrations to revert");
  }
  const steps = Number(count ?? 0);
  if (action === "down" && !(Number.isInteger(steps) && steps >= 1)) {
    throw new UsageError(`migrate down N: N must be a whole number of 1 or more, got "${count}"`);
  }
  return await withStorage(config, "migrate", async ({ db, migrator }) => {
    print(`database: ${db.description}`);
    if (action === "status") {
      const rows = await migrator.status();
      for (const line of statusTable(rows)) print(line);
      const current = await migrator.current();
      print(`schema version ${current} of ${migrator.latest}`);
      return rows.some((row) => row.state === "changed" || row.state === "unknown") ? 1 : 0;
    }
    const done = action === "up"
      ? await migrator.up(undefined, { onWait: (wait) => print(`waiting: ${describeWait(wait)}`) })
      : await migrator.down(steps);
    const verb = action === "up" ? "applied" : "reverted";
    for (const migration of done) print(`${verb} ${migration.name}`);
    if (done.length === 0) print(`nothing to do`);
    print(`schema version ${await migrator.current()} of ${migrator.latest}`);
    return 0;
  });
}

/** `backup`: writes one backup file to BACKUP_DIR and prunes old ones. */
export async function backupCommand(config: Config, print: Print): Promise<number> {
  return await withStorage(config, "backup", async ({ db, store }) => {
    const { result, pruned: deleted } = await backupAndPrune({ db, store, config });
    const rows = Object.entries(result.tables).map(([table, n]) => `${table} ${n}`).join(", ");
    print(`backup written: ${result.path}`);
    print(
      `${(result.bytes / 1024).toFixed(1)} KiB in ${
        Math.round(result.durationMs)
      } ms; schema version ` +
        `${result.schemaVersion}; rows: ${rows}; dialog keys: ${result.keys}`,
    );
    if (deleted.length > 0) {
      print(
        `deleted ${deleted.length} backup(s) older than ${config.backupRetentionDays} days: ${
          deleted.join(", ")
        }`,
      );
    }
    return 0;
  });
}

/**
 * Where `restore` reads `file`: a bare file name (`service-desk-bot-20261122T030000Z.backup.gz`,
 * as `/backup` sends it) is a backup in BACKUP_DIR; a path is taken as it is, relative to the
 * working directory.
 */
export function backupPath(config: Config, file: string): string {
  return file.includes("/") ? file : join(config.backupDir, file);
}

/**
 * `restore FILE [--force]`: checks the file, then restores it in one transaction. Refuses
 * while the bot runs against the same database (its cached profiles and queued events belong
 * to the data being replaced); `--force` goes ahead after a warning on `warn`.
 */
export async function restoreCommand(
  config: Config,
  args: string[],
  print: Print,
  warn: Print = print,
): Promise<number> {
  const force = args.includes("--force");
  const files = args.filter((arg) => arg !== "--force");
  if (files.length !== 1 || files[0]!.startsWith("-")) {
    throw new UsageError(
      "usage: restore FILE [--force], where FILE is a backup's name in BACKUP_DIR or its path",
    );
  }
  const path = backupPath(config, files[0]!);
  return await withStorage(config, "restore", async ({ db, store, migrator }) => {
    const running = await runningBot(db, config.dataDir);
    if (running !== null && !force) {
      throw new DatabaseError(
        `the bot is running against this database (${running}): stop it first, then restore ` +
          `(or pass --force to restore under it)`,
      );
    }
    if (running !== null) {
      warn(
        `warning: the bot is running against this database (${running}); restoring anyway ` +
          `(--force). Restart it afterwards: its cached profiles and queued events belong to ` +
          `the data being replaced.`,
      );
    }
    print(`restoring ${path} into ${db.description}`);
    const result = await restoreBackup({ db, store, migrator, path, force });
    const rows = Object.entries(result.tables).map(([table, n]) => `${table} ${n}`).join(", ");
    print(`restored in ${Math.round(result.durationMs)} ms: ${rows}; dialog keys: ${result.keys}`);
    print(`schema version ${await migrator.current()} of ${migrator.latest}`);
    return 0;
  });
}
