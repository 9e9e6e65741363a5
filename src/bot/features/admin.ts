/**
 * Commands for the operators in `ADMIN_IDS`: `/health`, `/metrics`, `/stats`, `/backup`,
 * `/ban` and `/unban`. Anyone else falls through to the fallback and gets the same answer as
 * for any unknown command, so the commands do not even reveal that they exist.
 */
import { InputFile } from "grammy";
import { BotComposer } from "../composer.ts";
import type { Message } from "grammy/types";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import type { Stats } from "../../db/stats.ts";
import type { UserRow } from "../../db/users.ts";
import type { Health, HealthStatus, HealthUnit } from "../../health.ts";
import type { MetricsSummary } from "../../metrics/summary.ts";
import type { BackupRound } from "../../ops/backup.ts";
import type { UserCache } from "../../store/user_cache.ts";
import type { Feature } from "../feature.ts";
import type { Roles } from "../roles.ts";
import type { BotContext } from "../context.ts";
import { escapeHtml } from "../html.ts";
import type { MessageKey } from "../i18n.ts";
import { errorMessage } from "../../errors.ts";

/** The largest file a bot may upload to Telegram. */
const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

const STATUS_ICONS: Record<HealthStatus, string> = { pass: "✅", warn: "⚠️", fail: "❌" };

/** How `/health` shows a check's value in its unit. */
const UNIT_KEYS: Record<HealthUnit, MessageKey> = {
  ms: "admin.health.ms",
  MiB: "admin.health.MiB",
  items: "admin.health.items",
};

const REQUEST_STATUS_KEYS: Record<string, MessageKey> = {
  new: "admin.status.new",
  in_progress: "admin.status.in_progress",
  done: "admin.status.done",
  cancelled: "admin.status.cancelled",
  rejected: "requests.status.rejected",
};

/** What the admin commands need. */
export interface AdminOptions {
  roles: Roles;
  /** The readiness checks `/health` shows. */
  health: Pick<Health, "report">;
  /** The counters `/metrics` shows. */
  metrics: () => Promise<MetricsSummary>;
  /** The numbers `/stats` shows. */
  stats: () => Promise<Stats>;
  /** Makes a backup now (and prunes old ones). */
  backup: () => Promise<BackupRound>;
  /** Bans and lifts bans, keeping the cached profile in step. */
  bans: Pick<UserCache, "ban" | "unban">;
}

/** The admin commands, for `ADMIN_IDS` only. */
export function adminFeature(options: AdminOptions): Feature {
  const { roles, health, bans } = options;
  const feature = new BotComposer<BotContext>();
  const admin = feature.filter((ctx) => roles.isAdmin(ctx.from?.id));
  const html = (ctx: BotContext, text: string) =>
    ctx.reply(text, { parse_mode: "HTML", link_preview_options: { is_disabled: true } });

  admin.command("health", async (ctx) => {
    const report = await health.report();
    const lines = [ctx.t("admin.health.title", { status: statusText(report.status) })];
    if (report.output) {
      lines.push(ctx.t("admin.health.reason", { reason: escapeHtml(report.output) }));
    }
    for (const [name, entries] of Object.entries(report.checks)) {
      for (const entry of entries) {
        let line = ctx.t("admin.health.check", {
          icon: STATUS_ICONS[entry.status],
          name: escapeHtml(name),
          status: entry.status,
          measured: ctx.t(UNIT_KEYS[entry.observedUnit], { value: entry.observedValue }),
        });
        if (entry.output) line += `\n    ${escapeHtml(entry.output)}`;
        lines.push(line);
      }
    }
    if (Object.keys(report.checks).length === 0) lines.push(ctx.t("admin.health.none"));
    await html(ctx, lines.join("\n"));
  });

  admin.command("metrics", async (ctx) => {
    const summary = await options.metrics();
    await html(
      ctx,
      [
        ctx.t("admin.metrics.title", { uptime: formatDuration(summary.uptimeSeconds, ctx) }),
        ctx.t("admin.metrics.updates", {
          total: summary.updates,
          rate: percent(summary.handled, summary.handled + summary.errors),
          errors: summary.errors,
        }),
        ctx.t("admin.metrics.latency", {
          p50: formatSeconds(summary.p50),
          p95: formatSeconds(summary.p95),
          p99: formatSeconds(summary.p99),
        }),
        ctx.t("admin.metrics.cache", {
          rate: percent(summary.cacheHits, summary.cacheLookups),
          hits: summary.cacheHits,
          lookups: summary.cacheLookups,
        }),
        ctx.t("admin.metrics.limiter", { limited: summary.limited, banned: summary.banned }),
        ctx.t("admin.metrics.dedup", { duplicates: summary.duplicates }),
        ctx.t("admin.metrics.retries", {
          total: summary.retries.total,
          flood: summary.retries["429"],
          server: summary.retries["5xx"],
          network: summary.retries.network,
        }),
      ].join("\n"),
    );
  });

  admin.command("stats", async (ctx) => {
    const stats = await options.stats();
    const lines = [
      ctx.t("admin.stats.title"),
      ctx.t("admin.stats.users", { ...stats.users }),
      stats.requests.length === 0
        ? ctx.t("admin.stats.no_requests")
        : ctx.t("admin.stats.requests", {
          counts: stats.requests.map(({ status, count }) => {
            const key = REQUEST_STATUS_KEYS[status];
            return `${key ? ctx.t(key) : escapeHtml(status)} ${count}`;
          }).join(", "),
        }),
      stats.medianTakeSeconds === null
        ? ctx.t("admin.stats.no_take")
        : ctx.t("admin.stats.take", { duration: formatDuration(stats.medianTakeSeconds, ctx) }),
      stats.medianCloseSeconds === null
        ? ctx.t("admin.stats.no_median")
        : ctx.t("admin.stats.median", {
          duration: formatDuration(stats.medianCloseSeconds, ctx),
          done: stats.done,
        }),
      stats.averageRating === null ? ctx.t("admin.stats.no_rating") : ctx.t("admin.stats.rating", {
        rating: stats.averageRating.toFixed(1),
        count: stats.ratings,
      }),
    ];
    await html(ctx, lines.join("\n"));
  });

  let backupRunning = false;
  admin.command("backup", async (ctx) => {
    if (backupRunning) return void await html(ctx, ctx.t("admin.backup.busy"));
    backupRunning = true;
    try {
      await backup(ctx);
    } finally {
      backupRunning = false;
    }
  });

  async function backup(ctx: BotContext): Promise<void> {
    await ctx.replyWithChatAction("upload_document").catch(() => {});
    let result: BackupRound["result"];
    let pruned: string[];
    try {
      ({ result, pruned } = await options.backup());
    } catch (error) {
      ctx.log.error("backup requested by an admin failed", { error });
      await html(ctx, ctx.t("admin.backup.failed", { error: escapeHtml(errorMessage(error)) }));
      return;
    }
    ctx.log.info("backup written: {path}", { path: result.path, bytes: result.bytes });
    const size = formatBytes(result.bytes);
    if (result.bytes >= MAX_UPLOAD_BYTES) {
      await html(ctx, ctx.t("admin.backup.too_big", { path: escapeHtml(result.path), size }));
      return;
    }
    const caption = ctx.t("admin.backup.done", {
      name: escapeHtml(basename(result.path)),
      size,
      version: result.schemaVersion,
      pruned: pruned.length,
    });
    try {
      // A file URL: streamed from disk, and read again if the upload is retried.
      const url = pathToFileURL(await Deno.realPath(result.path));
      await ctx.replyWithDocument(new InputFile(url, basename(result.path)), {
        caption,
        parse_mode: "HTML",
      });
    } catch (error) {
      ctx.log.warning("could not send the backup file", { error });
      await html(
        ctx,
        ctx.t("admin.backup.not_sent", {
          path: escapeHtml(result.path),
          size,
          error: escapeHtml(errorMessage(error)),
        }),
      );
    }
  }

  for (const command of ["ban", "unban"] as const) {
    admin.command(command, async (ctx) => {
      const id = targetOf(ctx.match, ctx.msg.reply_to_message);
      if (id === null) return void await html(ctx, ctx.t("admin.ban.usage", { command }));
      if (command === "ban" && roles.isAdmin(id)) {
        return void await html(ctx, ctx.t("admin.ban.admin", { id }));
      }
      const row = command === "ban" ? await bans.ban(id) : await bans.unban(id);
      if (row === null) return void await html(ctx, ctx.t("admin.ban.unknown", { id }));
      ctx.log.info(`admin ${command}ned user {target_id}`, { target_id: id });
      const key = command === "ban" ? "admin.ban.done" : "admin.unban.done";
      await html(ctx, ctx.t(key, { user: escapeHtml(displayName(row)), id }));
    });
  }

  return {
    name: "admin",
    composer: feature,
    commands: {
      admin: ["health", "metrics", "stats", "backup", "ban", "unban"].map((command) => ({
        command,
        rank: 100,
      })),
    },
  };
}

/**
 * Whom `/ban` or `/unban` means: the numeric id after the command, else the author of the
 * message it replies to (the original sender of a forwarded one); null when unknown.
 */
export function targetOf(match: string, replyTo: Message | undefined): number | null {
  const argument = match.trim();
  if (argument !== "") {
    if (!/^\d{1,16}$/.test(argument)) return null;
    const id = Number(argument);
    return Number.isSafeInteger(id) && id > 0 ? id : null;
  }
  // A forward from a hidden account, a chat or a channel does not say who wrote it.
  const origin = replyTo?.forward_origin;
  if (origin) return origin.type === "user" ? origin.sender_user.id : null;
  if (replyTo?.from && !replyTo.from.is_bot) return replyTo.from.id;
  return null;
}

function displayName(row: UserRow): string {
  const name = [row.firstName, row.lastName].filter(Boolean).join(" ");
  return `${name}${row.username ? ` @${row.username}` : ""} (${row.id})`;
}

function statusText(status: HealthStatus): string {
  return `${STATUS_ICONS[status]} ${status}`;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? "—" : `${(part / whole * 100).toFixed(1)} %`;
}

function formatSeconds(seconds: number | null): string {
  if (seconds === null) return "—";
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

/** `1 d 02:05:09`, `02:05:09` (hours, minutes, seconds). */
function formatDuration(seconds: number, ctx: BotContext): string {
  const whole = Math.round(seconds);
  const days = Math.floor(whole / 86_400);
  const clock = [Math.floor(whole / 3600) % 24, Math.floor(whole / 60) % 60, whole % 60]
    .map((n) => String(n).padStart(2, "0")).join(":");
  return days > 0 ? `${ctx.t("admin.duration.days", { days })} ${clock}` : clock;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
