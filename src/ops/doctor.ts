import { Api, GrammyError } from "grammy";
import { join } from "node:path";
import type { Config } from "../config.ts";
import { PROGRAM_NAME, VERSION } from "../version.ts";
import { sandboxReport, symlinkIssues } from "./sandbox.ts";
import { openDatabase } from "../db/database.ts";
import { Migrator, parseMigrations } from "../db/migrate.ts";
import { MIGRATION_FILES } from "../db/migration_files.ts";
import { openStore } from "../storage.ts";
import { errorMessage } from "../errors.ts";

/** The verdict of one doctor line. */
export type Verdict = "ok" | "warn" | "fail";

/** One finding of the doctor. */
export interface Finding {
  /** Which area, e.g. `telegram`. */
  area: string;
  verdict: Verdict;
  /** What was found, for a human. */
  text: string;
}

/** Options of {@link doctor}. */
export interface DoctorOptions {
  /** HTTP client for the Bot API. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Per-call timeout in ms. @default 10000 */
  timeoutMs?: number;
}

/**
 * Checks what an operator would check by hand: the configuration, the sandbox, the data
 * directory, the token (`getMe`) and the webhook as Telegram sees it.
 */
export async function doctor(config: Config, options: DoctorOptions = {}): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (area: string, verdict: Verdict, text: string) =>
    findings.push({ area, verdict, text });
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
  await storageFindings(config, add);
  const api = new Api(config.botToken, {
    apiRoot: config.botApiRoot,
    ...(options.fetch ? { fetch: options.fetch as never } : {}),
  });
  const signal = () => AbortSignal.timeout(options.timeoutMs ?? 10_000) as never;
  try {
    const me = await api.getMe(signal());
    add("telegram", "ok", `token accepted: @${me.username} (id ${me.id})`);
  } catch (error) {
    const refused = error instanceof GrammyError && error.error_code === 401;
    add(
      "telegram",
      "fail",
      refused
        ? "Telegram refused BOT_TOKEN (401): get a new one from @BotFather"
        : `cannot reach the Bot API: ${errorMessage(error)}`,
    );
    return findings;
  }
  try {
    const info = await api.getWebhookInfo(signal());
    const pending = `${info.pending_update_count} updates waiting`;
    if (config.webhook) {
      if (info.url === config.webhook.url) {
        add("webhook", "ok", `registered at ${info.url}; ${pending}`);
      } else {add(
          "webhook",
          "warn",
          `Telegram has ${
            info.url || "no webhook"
          }; the bot registers ${config.webhook.url} at start`,
        );}
    } else if (info.url) {
      add(
        "webhook",
        "warn",
        `a webhook is registered (${info.url}); polling mode removes it at start`,
      );
    } else {
      add("webhook", "ok", `none registered (polling mode); ${pending}`);
    }
    if (info.last_error_message) {
      const when = info.last_error_date
        ? new Date(info.last_error_date * 1000).toISOString()
        : "unknown time";
      add(
        "webhook",
        "warn",
        `Telegram's last delivery error (${when}): ${info.last_error_message}`,
      );
    }
  } catch (error) {
    add("webhook", "warn", `getWebhookInfo failed: ${errorMessage(error)}`);
  }
  return findings;
}

/** The store's and the database's reachability, round trip and schema version. */
async function storageFindings(
  config: Config,
  add: (area: string, verdict: Verdict, text: string) => void,
): Promise<void> {
  try {
    const store = await openStore(config);
    try {
      const ms = await store.ping();
      add("store", "ok", `${store.backend} answers in ${ms.toFixed(1)} ms`);
    } finally {
      await store.close();
    }
  } catch (error) {
    add("store", "fail", `cannot use the key-value store: ${errorMessage(error)}`);
  }
  try {
    // "share": while the bot runs, its embedded database answers on its socket.
    const db = await openDatabase({
      config: config.database,
      dataDir: config.dataDir,
      embedded: "share",
    });
    try {
      const ms = await db.ping();
      add("database", "ok", `${db.description} answers in ${ms.toFixed(1)} ms`);
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
    add("database", "fail", `cannot use the database: ${errorMessage(error)}`);
  }
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
