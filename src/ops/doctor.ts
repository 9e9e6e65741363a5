/**
 * `doctor`: checks what an operator would check by hand and prints one line per finding. The
 * local part is here (configuration, sandbox, data directory and its free space, store,
 * database); the questions to Telegram are in `doctor_telegram.ts`.
 */
import { join } from "node:path";
import { type Config, secretsOf } from "../config.ts";
import { redactor } from "../log.ts";
import { PROGRAM_NAME, VERSION } from "../version.ts";
import { sandboxReport, symlinkIssues } from "./sandbox.ts";
import { APPLICATION_NAME, type Database, openDatabase } from "../db/database.ts";
import { Migrator, parseMigrations } from "../db/migrate.ts";
import { MIGRATION_FILES } from "../db/migration_files.ts";
import { diskSpace } from "../jobs/disk.ts";
import { openStore } from "../storage.ts";
import { causeChain, errorMessage } from "../errors.ts";
import {
  type AddFinding,
  telegramFindings,
  type TelegramFindingsOptions,
  type Verdict,
} from "./doctor_telegram.ts";

export type { Verdict } from "./doctor_telegram.ts";

/** One finding of the doctor. */
export interface Finding {
  /** Which area, e.g. `telegram`. */
  area: string;
  verdict: Verdict;
  /** What was found, for a human. */
  text: string;
}

/** Options of {@link doctor}. */
export interface DoctorOptions extends TelegramFindingsOptions {
  /** How free space is measured. @default diskSpace (statfs) */
  diskSpace?: typeof diskSpace;
}

const MIB = 1024 * 1024;

/**
 * Checks what an operator would check by hand: the configuration, the sandbox, the data
 * directory and its free space, the store, the database, and Telegram's view of the token,
 * the staff chat, the admins and the webhook.
 */
export async function doctor(config: Config, options: DoctorOptions = {}): Promise<Finding[]> {
  const findings: Finding[] = [];
  // An error may quote a request's URL, and the Bot API's URLs carry the token.
  const redact = redactor(secretsOf(config));
  const add: AddFinding = (area, verdict, text) =>
    findings.push({ area, verdict, text: redact(text) });
  add("program", "ok", `${PROGRAM_NAME} ${VERSION} on Deno ${Deno.version.deno}`);
  add(
    "config",
    "ok",
    `mode ${config.mode}, Bot API ${config.botApiRoot}, HTTP ${config.http.host}:${config.http.port}, ` +
      `log ${config.log.level}/${config.log.format}`,
  );
  for (const line of sandboxReport(config)) {
    const wanted = line.capability.startsWith("read and write DATA_DIR");
    add(
      "sandbox",
      line.granted === wanted ? "ok" : wanted ? "fail" : "warn",
      `${line.granted ? "may" : "may not"} ${line.capability}`,
    );
  }
  for (const issue of symlinkIssues(config)) {
    add("sandbox", "fail", `${issue.variable}: ${issue.message}`);
  }
  try {
    await Deno.mkdir(config.dataDir, { recursive: true });
    const probe = join(config.dataDir, `.doctor-${crypto.randomUUID()}`);
    await Deno.writeTextFile(probe, "ok");
    await Deno.remove(probe);
    add("data", "ok", `DATA_DIR ${config.dataDir} is writable`);
  } catch (error) {
    add("data", "fail", `DATA_DIR ${config.dataDir} is not writable: ${errorMessage(error)}`);
  }
  await diskFinding(config, add, options.diskSpace ?? diskSpace);
  await storageFindings(config, add);
  await telegramFindings(config, add, options);
  return findings;
}

/** Free space under DATA_DIR against DISK_MIN_FREE_MB. */
async function diskFinding(
  config: Config,
  add: AddFinding,
  measure: typeof diskSpace,
): Promise<void> {
  try {
    const space = await measure(config.dataDir);
    if ("unknown" in space) {
      add("data", "warn", `DATA_DIR ${config.dataDir}: ${space.unknown}`);
      return;
    }
    const free = Math.floor(space.freeBytes / MIB);
    const min = config.diskMinFreeMb;
    if (min > 0 && free < min) {
      add(
        "data",
        "warn",
        `${free} MiB free under DATA_DIR ${config.dataDir}, below DISK_MIN_FREE_MB=${min}: ` +
          `/health warns and the admins are told`,
      );
    } else {
      add("data", "ok", `${free} MiB free under DATA_DIR ${config.dataDir}`);
    }
  } catch (error) {
    add("data", "warn", `free space under DATA_DIR unknown: ${errorMessage(error)}`);
  }
}

/** The store's and the database's reachability, round trip and schema version. */
async function storageFindings(config: Config, add: AddFinding): Promise<void> {
  try {
    const store = await openStore(config);
    try {
      const ms = await store.ping();
      add("store", "ok", `${store.backend} answers in ${ms.toFixed(1)} ms`);
      try {
        for (const note of await store.durability?.() ?? []) add("store", note.verdict, note.text);
      } catch (error) {
        add("store", "warn", `cannot read how the store keeps data: ${causeChain(error)}`);
      }
    } finally {
      await store.close();
    }
  } catch (error) {
    add("store", "fail", `cannot use the key-value store: ${causeChain(error)}`);
  }
  try {
    // "share": while the bot runs, its embedded database answers on its socket.
    const db = await openDatabase({
      config: config.database,
      dataDir: config.dataDir,
      embedded: "share",
      applicationName: `${APPLICATION_NAME} doctor`,
    });
    try {
      const ms = await db.ping();
      add("database", "ok", `${db.description} answers in ${ms.toFixed(1)} ms`);
      await databaseSettingsFindings(db, config, add);
      const migrator = new Migrator(db.sql, await parseMigrations(MIGRATION_FILES));
      const status = await migrator.status();
      const changed = status.filter((s) => s.state === "changed" || s.state === "unknown");
      const pending = status.filter((s) => s.state === "pending");
      if (changed.length > 0) {
        add(
          "database",
          "fail",
          `migrations that do not match this program: ${changed.map((s) => s.name).join(", ")}`,
        );
      } else if (pending.length > 0) {
        add(
          "database",
          "warn",
          `${pending.length} migration(s) pending (${
            pending.map((s) => s.name).join(", ")
          }); the bot applies them at start unless MIGRATE_ON_START=false`,
        );
      } else {
        add("database", "ok", `schema is up to date (version ${migrator.latest})`);
      }
    } finally {
      await db.close();
    }
  } catch (error) {
    add("database", "fail", `cannot use the database: ${causeChain(error)}`);
  }
}

/** The statement timeout the database applies, and the pool's size and wait. */
async function databaseSettingsFindings(
  db: Database,
  config: Config,
  add: AddFinding,
): Promise<void> {
  const { statementTimeoutMs, poolSize, poolTimeoutMs } = config.database;
  const wait = `a query waits at most ${poolTimeoutMs / 1000} s for it (DB_POOL_TIMEOUT)`;
  if (db.backend === "pglite") {
    add(
      "database",
      "ok",
      "the embedded database cannot cancel a slow statement (PGlite has no statement timeout; " +
        "DB_STATEMENT_TIMEOUT applies to Postgres)",
    );
    add("database", "ok", `one connection (PGlite runs one statement at a time); ${wait}`);
    return;
  }
  const [row] = await db.sql<{ shown: string; ms: number }[]>`
    select current_setting('statement_timeout') as shown, setting::int as ms
    from pg_settings where name = 'statement_timeout'`;
  const wanted = statementTimeoutMs === 0 ? "no limit" : `${statementTimeoutMs} ms`;
  if (row && row.ms === statementTimeoutMs) {
    add(
      "database",
      "ok",
      row.ms === 0
        ? "statement timeout: none (DB_STATEMENT_TIMEOUT=0): a slow query may hold a connection"
        : `statement timeout ${row.shown} (DB_STATEMENT_TIMEOUT): longer statements are cancelled`,
    );
  } else {
    add(
      "database",
      "warn",
      `the database applies statement_timeout ${row?.shown ?? "unknown"}, but ` +
        `DB_STATEMENT_TIMEOUT asks for ${wanted}: a connection pooler in between may drop ` +
        `connection settings, or the role or database overrides it`,
    );
  }
  add("database", "ok", `pool of up to ${poolSize} connections (DB_POOL_SIZE); ${wait}`);
}

/** The findings as the text `doctor` prints. */
export function formatFindings(findings: Finding[]): string {
  const mark: Record<Verdict, string> = { ok: "ok  ", warn: "WARN", fail: "FAIL" };
  const lines = findings.map((f) => `${mark[f.verdict]} ${f.area.padEnd(9)} ${f.text}`);
  const failed = findings.filter((f) => f.verdict === "fail").length;
  const warned = findings.filter((f) => f.verdict === "warn").length;
  lines.push(
    "",
    failed > 0
      ? `${failed} problem(s) found`
      : `no problems found${warned ? ` (${warned} warning(s))` : ""}`,
  );
  return lines.join("\n");
}
