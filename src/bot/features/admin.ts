/**
 * Commands for the operators in `ADMIN_IDS`: `/health`, `/metrics`, `/stats`, `/backup`,
 * `/ban` and `/unban`. Anyone else falls through to the fallback and gets the same answer as
 * for any unknown command, so the commands do not even reveal that they exist.
 */
import { Composer, InputFile } from "grammy";
import type { Message } from "grammy/types";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import type { HealthStatus } from "../../health.ts";
import { createBackup, pruneBackups } from "../../ops/backup.ts";
import type { Sql } from "../../db/database.ts";
import type { UserRow } from "../../db/users.ts";
import type { BotContext } from "../context.ts";
import { escapeHtml } from "../html.ts";
import type { MessageKey } from "../i18n.ts";
import type { FeatureDeps } from "./index.ts";
import { errorMessage } from "../../errors.ts";

/** The largest file a bot may upload to Telegram. */
const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

const STATUS_ICONS: Record<HealthStatus, string> = { pass: "✅", warn: "⚠️", fail: "❌" };

const REQUEST_STATUS_KEYS: Record<string, MessageKey> = {
  new: "admin.status.new",
  in_progress: "admin.status.in_progress",
  done: "admin.status.done",
  cancelled: "admin.status.cancelled",
};

/** The admin commands, for `config.adminIds` only. */
export function adminFeature(deps: FeatureDeps): Composer<BotContext> {
  const { config, storage, health, metrics } = deps;
  const feature = new Composer<BotContext>();
  const admin = feature.filter((ctx) =>
    ctx.from !== undefined && config.adminIds.includes(ctx.from.id)
  );
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
          ms: entry.observedValue,
        });
        if (entry.output) line += `\n    ${escapeHtml(entry.output)}`;
        lines.push(line);
      }
    }
    if (Object.keys(report.checks).length === 0) lines.push(ctx.t("admin.health.none"));
    await html(ctx, lines.join("\n"));
  });

  admin.command("metrics", async (ctx) => {
    const summary = summarizeMetrics(await metrics.registry.getMetricsAsJSON() as MetricJson[]);
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
    const stats = await readStats(storage.db.sql);
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
      stats.medianCloseSeconds === null
        ? ctx.t("admin.stats.no_median")
        : ctx.t("admin.stats.median", {
          duration: formatDuration(stats.medianCloseSeconds, ctx),
          done: stats.done,
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
    let result;
    let pruned: string[];
    try {
      result = await createBackup({
        db: storage.db,
        store: storage.store,
        config,
        dir: config.backupDir,
      });
      pruned = await pruneBackups(config.backupDir, config.backupRetentionDays);
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
      if (command === "ban" && config.adminIds.includes(id)) {
        return void await html(ctx, ctx.t("admin.ban.admin", { id }));
      }
      const row = command === "ban"
        ? await storage.userCache.ban(id)
        : await storage.userCache.unban(id);
      if (row === null) return void await html(ctx, ctx.t("admin.ban.unknown", { id }));
      ctx.log.info(`admin ${command}ned user {target_id}`, { target_id: id });
      const key = command === "ban" ? "admin.ban.done" : "admin.unban.done";
      await html(ctx, ctx.t(key, { user: escapeHtml(displayName(row)), id }));
    });
  }

  return feature;
}

/** What `/stats` shows. */
export interface Stats {
  users: { total: number; today: number; blocked: number; banned: number };
  /** Requests by status, statuses in alphabetical order; only statuses with requests. */
  requests: { status: string; count: number }[];
  /** Median time from creation to closing of done requests; null when none is done. */
  medianCloseSeconds: number | null;
  /** Done requests the median is taken over. */
  done: number;
}

/** Reads the service desk's numbers: three queries, each a single scan. */
export async function readStats(sql: Sql): Promise<Stats> {
  const [users] = await sql<Stats["users"][]>`
    select count(*)::int as total,
      (count(*) filter (
        where created_at >= date_trunc('day', now() at time zone 'utc') at time zone 'utc'
      ))::int as today,
      (count(*) filter (where blocked_at is not null))::int as blocked,
      (count(*) filter (where banned_at is not null))::int as banned
    from users`;
  const requests = await sql<{ status: string; count: number }[]>`
    select status, count(*)::int as count from requests group by status order by status`;
  const [closing] = await sql<{ seconds: number | null; done: number }[]>`
    select extract(epoch from percentile_cont(0.5) within group (
        order by closed_at - created_at))::float8 as seconds,
      count(*)::int as done
    from requests where status = 'done' and closed_at is not null`;
  return {
    users: { ...users! },
    requests: requests.map(({ status, count }) => ({ status, count })),
    medianCloseSeconds: closing?.seconds ?? null,
    done: closing?.done ?? 0,
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

/** One metric of `Registry.getMetricsAsJSON()`. */
interface MetricJson {
  name: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** What `/metrics` shows, read from the registry. */
export interface MetricsSummary {
  updates: number;
  handled: number;
  errors: number;
  /** Handling time percentiles in seconds (estimated from the histogram), null without data. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  uptimeSeconds: number;
  cacheHits: number;
  cacheLookups: number;
  limited: number;
  banned: number;
  duplicates: number;
  retries: { total: number; "429": number; "5xx": number; network: number };
}

/** Sums the registry's counters into what an admin wants to know. */
export function summarizeMetrics(json: readonly MetricJson[]): MetricsSummary {
  const values = (name: string) => json.find((m) => m.name === name)?.values ?? [];
  const sum = (name: string, label?: string, value?: string) =>
    values(name)
      .filter((v) => label === undefined || String(v.labels[label]) === value)
      .reduce((total, v) => total + v.value, 0);
  const buckets = new Map<number, number>();
  for (const v of values("bot_update_duration_seconds")) {
    if (v.metricName !== "bot_update_duration_seconds_bucket") continue;
    const le = Number(v.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + v.value);
  }
  const cumulative = [...buckets].map(([le, count]) => ({ le, count }))
    .sort((a, b) => a.le - b.le);
  return {
    updates: sum("bot_updates_total"),
    handled: sum("bot_updates_total", "outcome", "handled"),
    errors: sum("bot_updates_total", "outcome", "error"),
    p50: histogramQuantile(0.5, cumulative),
    p95: histogramQuantile(0.95, cumulative),
    p99: histogramQuantile(0.99, cumulative),
    uptimeSeconds: sum("process_uptime_seconds"),
    cacheHits: sum("bot_user_cache_total", "result", "hit"),
    cacheLookups: sum("bot_user_cache_total"),
    limited: sum("bot_gate_total", "outcome", "limited"),
    banned: sum("bot_gate_total", "outcome", "banned"),
    duplicates: sum("bot_gate_total", "outcome", "duplicate"),
    retries: {
      total: sum("bot_api_retries_total"),
      "429": sum("bot_api_retries_total", "reason", "429"),
      "5xx": sum("bot_api_retries_total", "reason", "5xx"),
      network: sum("bot_api_retries_total", "reason", "network"),
    },
  };
}

/**
 * The `q` quantile of a histogram given as cumulative bucket counts sorted by upper bound
 * (the last being +Inf), interpolated linearly inside the bucket as Prometheus'
 * `histogram_quantile` does: beyond the last finite bound it is that bound; null when nothing
 * was observed.
 */
export function histogramQuantile(
  q: number,
  buckets: readonly { le: number; count: number }[],
): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const { le, count } of buckets) {
    if (count >= rank && count > below) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * (rank - below) / (count - below);
    }
    lower = le;
    below = count;
  }
  return lower;
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
