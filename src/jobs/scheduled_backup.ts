/**
 * Scheduled backups (`BACKUP_SCHEDULE`, cron in UTC): the same backup as the `backup` command,
 * pruned by `BACKUP_RETENTION_DAYS`, on one instance at a time. The admins hear of a success
 * in one quiet message a day at most (the file's name and size), of a failure at once, with
 * the reason (an alert, which clears with the next success). Also: the time of the newest
 * backup in `BACKUP_DIR`, for `bot_backup_last_success_timestamp_seconds`.
 */
import { basename } from "node:path";
import type { Api } from "grammy";
import { escapeHtml } from "../bot/html.ts";
import { translate } from "../bot/i18n.ts";
import type { Locale } from "../config.ts";
import { errorMessage } from "../errors.ts";
import type { BackupRound } from "../ops/backup.ts";
import type { Counter } from "../metrics/prometheus.ts";
import type { Alerter } from "./alerter.ts";
import type { Job } from "./job.ts";

/** Options of {@link scheduledBackupJob}. */
export interface ScheduledBackupOptions {
  /** `BACKUP_SCHEDULE`. */
  cron: string;
  /** Writes one backup and prunes old ones. */
  backup: () => Promise<BackupRound>;
  alerter: Pick<Alerter, "report">;
  /** The bot's API client, for the success message. */
  api: () => Api;
  adminIds: readonly number[];
  locale: Locale;
  metrics: { backups: Counter<"result"> };
  /** The clock. @default () => new Date() */
  now?: () => Date;
}

/** The scheduled backup job; see the module documentation. */
export function scheduledBackupJob(options: ScheduledBackupOptions): Job {
  const { alerter, metrics, locale } = options;
  const now = options.now ?? (() => new Date());
  return {
    name: "backup",
    schedule: { cron: options.cron },
    // One failure is already told to the admins; /health warns from the second in a row.
    warnAfter: 2,
    async run({ log, progress }) {
      let round: BackupRound;
      try {
        round = await options.backup();
      } catch (error) {
        metrics.backups.inc({ result: "error" });
        await alerter.report("backup", true, errorMessage(error), { alertAfterMs: 0 });
        throw error;
      }
      metrics.backups.inc({ result: "ok" });
      const { result, pruned } = round;
      log.info("scheduled backup written: {path}", {
        path: result.path,
        bytes: result.bytes,
        pruned: pruned.length,
      });
      await alerter.report("backup", false);
      // The day's first success is told, quietly; the day is kept with the job's progress.
      const day = now().toISOString().slice(0, 10);
      const told = await progress.load().catch(() => null);
      if (told === day) return;
      const text = translate(locale, "background.backup.done", {
        name: escapeHtml(basename(result.path)),
        size: formatBytes(result.bytes),
        pruned: pruned.length,
      });
      for (const admin of options.adminIds) {
        await options.api().sendMessage(admin, text, {
          parse_mode: "HTML",
          disable_notification: true,
        }).catch((error) =>
          log.warning("could not tell admin {admin_id} about the backup: {message}", {
            admin_id: admin,
            message: errorMessage(error),
          })
        );
      }
      await progress.save(day).catch(() => {});
    },
  };
}

/** Unix time (s) of the newest complete backup file in `dir`, or null when there is none. */
export async function newestBackupSeconds(dir: string): Promise<number | null> {
  let newest: number | null = null;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".backup.gz")) continue;
      const { mtime } = await Deno.stat(`${dir.replace(/\/+$/, "")}/${entry.name}`);
      if (mtime && (newest === null || mtime.getTime() > newest)) newest = mtime.getTime();
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return newest === null ? null : Math.floor(newest / 1000);
}

/** `812 B`, `4.2 KiB`, `17.0 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
