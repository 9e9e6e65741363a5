import { z } from "zod";
import { ConfigError, type ConfigIssue } from "./errors.ts";

/** Languages the bot speaks; the first is the fallback of last resort. */
export const SUPPORTED_LOCALES = ["en", "ru", "uk"] as const;
/** One of {@link SUPPORTED_LOCALES}. */
export type Locale = typeof SUPPORTED_LOCALES[number];

/** Log levels an operator may choose with `LOG_LEVEL`. */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/**
 * Every environment variable the program reads. `deno.json`'s `start` task grants exactly
 * these with `--allow-env` (a test keeps the two equal).
 */
export const ENV_NAMES = [
  "BOT_TOKEN",
  "BOT_API_ROOT",
  "BOT_MODE",
  "WEBHOOK_URL",
  "WEBHOOK_SECRET",
  "WEBHOOK_MAX_CONNECTIONS",
  "HTTP_HOST",
  "HTTP_PORT",
  "METRICS_TOKEN",
  "DATA_DIR",
  "BACKUP_DIR",
  "ADMIN_IDS",
  "STAFF_CHAT_ID",
  "REQUEST_CATEGORIES",
  "DEFAULT_LOCALE",
  "LOG_LEVEL",
  "LOG_FORMAT",
  "LOG_FILE",
  "SHUTDOWN_TIMEOUT",
  "UPDATE_CONCURRENCY",
  "DATABASE_URL",
  "DB_POOL_SIZE",
  "DB_IDLE_TIMEOUT",
  "DB_MAX_LIFETIME",
  "DB_CONNECT_TIMEOUT",
  "MIGRATE_ON_START",
  "REDIS_URL",
  "REDIS_KEY_PREFIX",
  "USER_CACHE_TTL",
  "FSM_STATE_TTL",
  "FSM_DATA_TTL",
  "BACKUP_RETENTION_DAYS",
  "RATE_LIMIT_ENABLED",
  "RATE_LIMIT_MAX_REQUESTS",
  "RATE_LIMIT_TIME_WINDOW",
  "RATE_LIMIT_BAN_AFTER",
  "RATE_LIMIT_BAN_DURATION",
  "RATE_LIMIT_ADMIN_EXEMPT",
] as const;
/** One of {@link ENV_NAMES}. */
export type EnvName = typeof ENV_NAMES[number];
/** The raw environment as the program sees it: only the variables it reads. */
export type Env = Partial<Record<EnvName, string>>;

/** The resolved configuration: every default filled in, every value checked. */
export interface Config {
  /** Token from @BotFather. Secret. */
  botToken: string;
  /** Base URL of the Bot API server, without a trailing slash. */
  botApiRoot: string;
  /** How updates arrive. */
  mode: "polling" | "webhook";
  /** Webhook settings; present exactly when `mode` is `webhook`. */
  webhook: WebhookConfig | null;
  /** Where the built-in HTTP server listens. */
  http: { host: string; port: number };
  /** Bearer token that `/metrics` requires; `null` leaves it open. Secret. */
  metricsToken: string | null;
  /** Directory for persistent data. */
  dataDir: string;
  /** Directory for backup files. */
  backupDir: string;
  /** Telegram user ids with admin rights. */
  adminIds: number[];
  /** The chat new requests are posted to, for staff to take; null posts nowhere. */
  staffChatId: number | null;
  /** What users choose from when they file a request, as the operator wrote them. */
  requestCategories: string[];
  /** Language for users whose Telegram language the bot does not speak. */
  defaultLocale: Locale;
  /** Logging settings. */
  log: { level: LogLevel; format: "json" | "pretty"; file: string | null };
  /** How long a stop waits for in-flight updates, in milliseconds. */
  shutdownTimeoutMs: number;
  /** How many updates may be handled at the same time (different chats). */
  updateConcurrency: number;
  /** Relational database settings. */
  database: DatabaseConfig;
  /** Key-value store settings. */
  store: StoreConfig;
  /** How long a cached user profile is trusted, in milliseconds. */
  userCacheTtlMs: number;
  /** Backups older than this many days are deleted after each new backup. */
  backupRetentionDays: number;
  /** Per-user rate limiting. */
  rateLimit: RateLimitConfig;
  /** Dialog state lifetimes. */
  fsm: FsmConfig;
}

/** How long dialog state lives without activity; every update of the user renews both. */
export interface FsmConfig {
  /** How long a dialog's step is kept, in milliseconds. */
  stateTtlMs: number;
  /** How long the data collected in a dialog is kept, in milliseconds. */
  dataTtlMs: number;
}

/** Per-user rate limiting, resolved. */
export interface RateLimitConfig {
  /** Whether updates are limited at all (duplicates are dropped either way). */
  enabled: boolean;
  /** Most updates in a burst, and per window. */
  capacity: number;
  /** The window the capacity refills over, in milliseconds. */
  windowMs: number;
  /** Limited updates tolerated before a ban; 0 never bans. */
  banAfter: number;
  /** How long a ban lasts, in milliseconds. */
  banMs: number;
  /** Whether `ADMIN_IDS` are never limited. */
  adminExempt: boolean;
}

/** Relational database settings, resolved. */
export interface DatabaseConfig {
  /** Postgres URL; `null` runs the embedded PGlite in `DATA_DIR`. Secret (may hold a password). */
  url: string | null;
  /** Most connections in the pool. */
  poolSize: number;
  /** Close a connection idle this long, in milliseconds; 0 keeps it. */
  idleTimeoutMs: number;
  /** Replace a connection after this long, in milliseconds; 0 keeps it. */
  maxLifetimeMs: number;
  /** Give up opening a connection after this long, in milliseconds. */
  connectTimeoutMs: number;
  /** Apply pending migrations at start-up. */
  migrateOnStart: boolean;
}

/** Key-value store settings, resolved. */
export interface StoreConfig {
  /** Redis URL; `null` uses the embedded Deno KV file in `DATA_DIR`. Secret (may hold a password). */
  url: string | null;
  /** Prefix of every Redis key, so several bots can share one Redis. */
  keyPrefix: string;
}

/** Webhook settings, resolved. */
export interface WebhookConfig {
  /** The public URL Telegram posts updates to. */
  url: string;
  /** The path of `url`, served by the built-in HTTP server. */
  path: string;
  /** Value Telegram sends in `X-Telegram-Bot-Api-Secret-Token`. Secret. */
  secret: string;
  /** Most concurrent webhook connections Telegram may open. */
  maxConnections: number;
}

const TOKEN_PATTERN = /^\d{3,20}:[A-Za-z0-9_-]{30,64}$/;
// Telegram allows 1 to 256 characters; fewer than 16 would be guessable and unredactable.
const SECRET_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;
/** Paths the HTTP server serves itself; the webhook must not shadow them. */
const RESERVED_PATHS = ["/health", "/health/live", "/metrics"];

type Ctx = z.RefinementCtx;
const fail = (ctx: Ctx, message: string): never => {
  ctx.addIssue({ code: "custom", message });
  return z.NEVER;
};
const shown = (value: string) => ` (got "${value.length > 60 ? `${value.slice(0, 60)}…` : value}")`;

/** A variable that is unset or empty takes its default; `parse` checks the rest. */
function variable<T>(fallback: T, parse: (value: string, ctx: Ctx) => T) {
  return z.string().optional().transform((raw, ctx): T => {
    const value = raw?.trim();
    return value === undefined || value === "" ? fallback : parse(value, ctx);
  });
}

function wholeNumber(fallback: number, min: number, max: number) {
  return variable(fallback, (value, ctx) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      return fail(ctx, `must be a whole number from ${min} to ${max}${shown(value)}`);
    }
    return n;
  });
}

function seconds(fallback: number, min: number, max: number) {
  return variable(fallback, (value, ctx) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || n < min || n > max) {
      return fail(ctx, `must be a number of seconds from ${min} to ${max}${shown(value)}`);
    }
    return n;
  });
}

function oneOf<const T extends readonly string[]>(options: T, fallback: T[number]) {
  return variable<T[number]>(fallback, (value, ctx) => {
    const lower = value.toLowerCase();
    if (!options.includes(lower)) {
      return fail(ctx, `must be one of ${options.join(", ")}${shown(value)}`);
    }
    return lower as T[number];
  });
}

function httpUrl(fallback: string | null, what: string) {
  return variable<string | null>(fallback, (value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return fail(ctx, `must be ${what}${shown(value)}`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return fail(ctx, `must be ${what}${shown(value)}`);
    }
    return value;
  });
}

function booleanVar(fallback: boolean) {
  return variable(fallback, (value, ctx) => {
    const lower = value.toLowerCase();
    if (["true", "1", "yes", "on"].includes(lower)) return true;
    if (["false", "0", "no", "off"].includes(lower)) return false;
    return fail(ctx, `must be true or false${shown(value)}`);
  });
}

/** A connection URL with one of `schemes`; never shown, since it may carry a password. */
function connectionUrl(schemes: string[], what: string) {
  return variable<string | null>(null, (value, ctx) => {
    if (!URL.canParse(value)) return fail(ctx, `must be ${what} (the value is not shown)`);
    const url = new URL(value);
    if (!schemes.includes(url.protocol) || url.hostname === "") {
      return fail(ctx, `must be ${what} (the value is not shown)`);
    }
    return value;
  });
}

const secretVar = (what: string) =>
  variable<string | null>(
    null,
    (value, ctx) => SECRET_PATTERN.test(value) ? value : fail(ctx, what),
  );

const schema = z.object({
  BOT_TOKEN: z.string({ error: "is required: the token @BotFather gave you" }).transform(
    (raw, ctx) => {
      const value = raw.trim();
      if (value === "") return fail(ctx, "is required: the token @BotFather gave you");
      // The value itself is never shown: it is a secret even when malformed.
      if (!TOKEN_PATTERN.test(value)) {
        return fail(
          ctx,
          "does not look like a bot token (expected digits, a colon, then 30+ letters, digits, _ or -)",
        );
      }
      return value;
    },
  ),
  BOT_API_ROOT: httpUrl("https://api.telegram.org", "an http(s) URL of a Bot API server"),
  BOT_MODE: oneOf(["polling", "webhook"] as const, "polling"),
  WEBHOOK_URL: httpUrl(null, "the public https URL Telegram should post updates to"),
  WEBHOOK_SECRET: secretVar("must be 16 to 256 characters of A-Z, a-z, 0-9, _ and -"),
  WEBHOOK_MAX_CONNECTIONS: wholeNumber(40, 1, 100),
  HTTP_HOST: variable(
    "127.0.0.1",
    (value, ctx) =>
      /^[A-Za-z0-9.:[\]-]+$/.test(value)
        ? value
        : fail(ctx, `must be a host name or IP address${shown(value)}`),
  ),
  HTTP_PORT: wholeNumber(8080, 1, 65535),
  METRICS_TOKEN: secretVar("must be 16 to 256 characters of A-Z, a-z, 0-9, _ and -"),
  DATA_DIR: variable("./data", (value) => value),
  BACKUP_DIR: variable("./backups", (value) => value),
  ADMIN_IDS: variable<number[]>([], (value, ctx) => {
    const parts = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
    const bad = parts.filter((part) => !/^\d{1,16}$/.test(part));
    if (bad.length > 0) {
      return fail(ctx, `must be Telegram user ids separated by commas${shown(bad.join(","))}`);
    }
    return [...new Set(parts.map(Number))];
  }),
  STAFF_CHAT_ID: variable<number | null>(null, (value, ctx) => {
    if (!/^-?\d{1,16}$/.test(value.trim())) {
      return fail(ctx, `must be a Telegram chat id such as -1001234567890${shown(value)}`);
    }
    return Number(value.trim());
  }),
  REQUEST_CATEGORIES: variable<string[]>(
    ["Hardware", "Software", "Network", "Access", "Other"],
    (value, ctx) => {
      const parts = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
      const long = parts.filter((part) => new TextEncoder().encode(part).length > 40);
      if (parts.length === 0 || parts.length > 20 || long.length > 0) {
        return fail(
          ctx,
          `must be 1 to 20 names separated by commas, each at most 40 bytes${shown(value)}`,
        );
      }
      if (new Set(parts).size !== parts.length) {
        return fail(ctx, `must not name a category twice${shown(value)}`);
      }
      return parts;
    },
  ),
  DEFAULT_LOCALE: oneOf(SUPPORTED_LOCALES, "en"),
  LOG_LEVEL: oneOf(LOG_LEVELS, "info"),
  LOG_FORMAT: oneOf(["json", "pretty"] as const, "json"),
  LOG_FILE: variable<string | null>(null, (value) => value),
  SHUTDOWN_TIMEOUT: seconds(25, 1, 3600),
  UPDATE_CONCURRENCY: wholeNumber(100, 1, 10000),
  DATABASE_URL: connectionUrl(
    ["postgres:", "postgresql:"],
    "a postgres://user:password@host:port/database URL",
  ),
  DB_POOL_SIZE: wholeNumber(10, 1, 1000),
  DB_IDLE_TIMEOUT: seconds(60, 0, 86400),
  DB_MAX_LIFETIME: seconds(1800, 0, 604800),
  DB_CONNECT_TIMEOUT: seconds(10, 1, 300),
  MIGRATE_ON_START: booleanVar(true),
  REDIS_URL: connectionUrl(["redis:", "rediss:"], "a redis://[:password@]host:port[/db] URL"),
  REDIS_KEY_PREFIX: variable(
    "sdb:",
    (value, ctx) =>
      /^[A-Za-z0-9_:.-]{1,64}$/.test(value)
        ? value
        : fail(ctx, `must be 1 to 64 characters of A-Z, a-z, 0-9, _ : . and -${shown(value)}`),
  ),
  USER_CACHE_TTL: seconds(3600, 1, 604800),
  FSM_STATE_TTL: seconds(86400, 60, 31536000),
  FSM_DATA_TTL: seconds(86400, 60, 31536000),
  BACKUP_RETENTION_DAYS: wholeNumber(14, 1, 3650),
  RATE_LIMIT_ENABLED: booleanVar(true),
  RATE_LIMIT_MAX_REQUESTS: wholeNumber(20, 1, 10000),
  RATE_LIMIT_TIME_WINDOW: seconds(60, 1, 86400),
  RATE_LIMIT_BAN_AFTER: wholeNumber(5, 0, 10000),
  RATE_LIMIT_BAN_DURATION: seconds(3600, 1, 2592000),
  RATE_LIMIT_ADMIN_EXEMPT: booleanVar(true),
});

/** Rules between variables, checked on the raw values so they report alongside the rest. */
function webhookIssues(env: Env): ConfigIssue[] {
  if (env.BOT_MODE?.trim().toLowerCase() !== "webhook") return [];
  const issues: ConfigIssue[] = [];
  const url = env.WEBHOOK_URL?.trim() ?? "";
  if (url === "") {
    issues.push({ variable: "WEBHOOK_URL", message: "is required when BOT_MODE=webhook" });
  } else if (URL.canParse(url) && !isAllowedWebhookUrl(new URL(url))) {
    issues.push({
      variable: "WEBHOOK_URL",
      message: "must use https (Telegram posts only to https; plain http only for loopback tests)",
    });
  } else if (URL.canParse(url) && RESERVED_PATHS.includes(new URL(url).pathname)) {
    issues.push({
      variable: "WEBHOOK_URL",
      message: `its path must not be one of ${
        RESERVED_PATHS.join(", ")
      }, which the HTTP server serves`,
    });
  }
  if ((env.WEBHOOK_SECRET?.trim() ?? "") === "") {
    issues.push({
      variable: "WEBHOOK_SECRET",
      message: "is required when BOT_MODE=webhook, so that only Telegram can post updates",
    });
  }
  return issues;
}

function isAllowedWebhookUrl(url: URL): boolean {
  if (url.protocol === "https:") return true;
  return ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
}

/**
 * Turns the environment into a resolved {@link Config}, or throws a {@link ConfigError} that
 * names every bad variable at once. Pure: reads nothing but `env`.
 */
export function loadConfig(env: Env): Config {
  const result = schema.safeParse(env);
  const issues: ConfigIssue[] = result.success ? [] : result.error.issues.map((issue) => ({
    variable: String(issue.path[0] ?? "environment"),
    message: issue.message,
  }));
  issues.push(...webhookIssues(env));
  if (!result.success || issues.length > 0) {
    const order = (variable: string) => ENV_NAMES.indexOf(variable as EnvName);
    throw new ConfigError(issues.sort((a, b) => order(a.variable) - order(b.variable)));
  }
  const e = result.data;
  const webhookUrl = e.WEBHOOK_URL;
  return {
    botToken: e.BOT_TOKEN,
    botApiRoot: (e.BOT_API_ROOT ?? "https://api.telegram.org").replace(/\/+$/, ""),
    mode: e.BOT_MODE,
    webhook: e.BOT_MODE === "webhook" && webhookUrl !== null
      ? {
        url: webhookUrl,
        path: new URL(webhookUrl).pathname,
        secret: e.WEBHOOK_SECRET ?? "",
        maxConnections: e.WEBHOOK_MAX_CONNECTIONS,
      }
      : null,
    http: { host: e.HTTP_HOST, port: e.HTTP_PORT },
    metricsToken: e.METRICS_TOKEN,
    dataDir: e.DATA_DIR,
    backupDir: e.BACKUP_DIR,
    adminIds: e.ADMIN_IDS,
    staffChatId: e.STAFF_CHAT_ID,
    requestCategories: e.REQUEST_CATEGORIES,
    defaultLocale: e.DEFAULT_LOCALE,
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT, file: e.LOG_FILE },
    shutdownTimeoutMs: Math.round(e.SHUTDOWN_TIMEOUT * 1000),
    updateConcurrency: e.UPDATE_CONCURRENCY,
    database: {
      url: e.DATABASE_URL,
      poolSize: e.DB_POOL_SIZE,
      idleTimeoutMs: Math.round(e.DB_IDLE_TIMEOUT * 1000),
      maxLifetimeMs: Math.round(e.DB_MAX_LIFETIME * 1000),
      connectTimeoutMs: Math.round(e.DB_CONNECT_TIMEOUT * 1000),
      migrateOnStart: e.MIGRATE_ON_START,
    },
    store: { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX },
    userCacheTtlMs: Math.round(e.USER_CACHE_TTL * 1000),
    backupRetentionDays: e.BACKUP_RETENTION_DAYS,
    rateLimit: {
      enabled: e.RATE_LIMIT_ENABLED,
      capacity: e.RATE_LIMIT_MAX_REQUESTS,
      windowMs: Math.round(e.RATE_LIMIT_TIME_WINDOW * 1000),
      banAfter: e.RATE_LIMIT_BAN_AFTER,
      banMs: Math.round(e.RATE_LIMIT_BAN_DURATION * 1000),
      adminExempt: e.RATE_LIMIT_ADMIN_EXEMPT,
    },
    fsm: {
      stateTtlMs: Math.round(e.FSM_STATE_TTL * 1000),
      dataTtlMs: Math.round(e.FSM_DATA_TTL * 1000),
    },
  };
}

/** A connection URL with its password replaced, safe to print. */
export function redactUrl(url: string | null): string | null {
  if (url === null) return null;
  const parsed = new URL(url);
  if (parsed.password !== "") parsed.password = "***";
  return parsed.toString();
}

/** The values that must never appear in logs or messages. */
export function secretsOf(config: Config): string[] {
  const secrets = [config.botToken, config.botToken.split(":")[1] ?? ""];
  if (config.webhook) secrets.push(config.webhook.secret);
  if (config.metricsToken) secrets.push(config.metricsToken);
  for (const url of [config.database.url, config.store.url]) {
    const password = url === null ? "" : new URL(url).password;
    // The URL carries it percent-encoded; drivers and errors may show either form.
    if (password !== "") secrets.push(password, decodeURIComponent(password));
  }
  return secrets.filter((secret) => secret.length >= 4);
}

/** A copy of the configuration that is safe to log or print: secrets are replaced. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const hidden = "[redacted]";
  return {
    ...config,
    botToken: `${config.botToken.split(":")[0]}:${hidden}`,
    metricsToken: config.metricsToken === null ? null : hidden,
    webhook: config.webhook === null ? null : { ...config.webhook, secret: hidden },
    database: { ...config.database, url: redactUrl(config.database.url) },
    store: { ...config.store, url: redactUrl(config.store.url) },
  };
}
