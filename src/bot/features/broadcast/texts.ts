/** What the admins read about broadcasts: progress, summary and the list, in their language. */
import type { Locale } from "../../../config.ts";
import type { BroadcastCounts, BroadcastRow, BroadcastSummary } from "../../../db/broadcasts.ts";
import { formatDuration } from "../../duration.ts";
import { escapeHtml } from "../../html.ts";
import { type MessageKey, translate } from "../../i18n.ts";

const STATUS_KEYS: Record<BroadcastRow["status"], MessageKey> = {
  draft: "broadcast.status.draft",
  sending: "broadcast.status.sending",
  done: "broadcast.status.done",
  cancelled: "broadcast.status.cancelled",
};

/** The progress message: counts so far and, while sending, about how long is left. */
export function progressText(
  locale: Locale,
  id: number,
  counts: BroadcastCounts,
  secondsLeft: number | null,
): string {
  const line = translate(locale, "broadcast.progress", { id, ...counts });
  if (secondsLeft === null) return line;
  return `${line}\n${
    translate(locale, "broadcast.eta", { eta: formatDuration(secondsLeft * 1000, locale) })
  }`;
}

/** The summary of an ended broadcast (`row` with its stored counts). */
export function summaryText(row: BroadcastRow, counts: BroadcastCounts): string {
  const locale = row.locale as Locale;
  const ms = (row.finishedAt?.getTime() ?? Date.now()) - (row.startedAt?.getTime() ?? Date.now());
  const key = row.status === "cancelled" ? "broadcast.summary.cancelled" : "broadcast.summary.done";
  return translate(locale, key, {
    id: row.id,
    duration: formatDuration(ms, locale),
    ...counts,
    unsent: counts.total - counts.sent - counts.failed - counts.blocked,
  });
}

/** `/broadcasts`: the newest broadcasts, one line each (HTML). */
export function listText(locale: Locale, rows: readonly BroadcastSummary[]): string {
  if (rows.length === 0) return translate(locale, "broadcast.list.empty");
  const lines = rows.map((row) =>
    translate(locale, "broadcast.list.item", {
      id: row.id,
      date: escapeHtml(row.createdAt.toISOString().slice(0, 16).replace("T", " ")),
      admin: row.adminId,
      status: translate(locale, STATUS_KEYS[row.status]),
      sent: row.sent,
      total: row.total,
      failed: row.failed,
      blocked: row.blocked,
    })
  );
  return [translate(locale, "broadcast.list.title"), ...lines].join("\n");
}
