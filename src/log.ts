import {
  configure,
  getAnsiColorFormatter,
  getLogger,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { dirname } from "node:path";
import type { LogLevel } from "./config.ts";

export type { Logger };

/** Logging options, resolved from the configuration. */
export interface LogOptions {
  /** Lowest level written. @default "info" */
  level: LogLevel;
  /** `json`: one JSON object a line; `pretty`: coloured text for humans. @default "json" */
  format: "json" | "pretty";
  /** Also append the lines to this file. @default null */
  file: string | null;
  /** Strings replaced by `[redacted]` wherever they appear in a line. @default [] */
  secrets: string[];
  /** Where lines go. @default standard output */
  write?: (line: string) => void;
}

/** The root category of every logger of the program. */
export const ROOT_CATEGORY = "bot";

/** A logger under the program's root category, e.g. `logger("http")`. */
export function logger(...category: string[]): Logger {
  return getLogger([ROOT_CATEGORY, ...category]);
}

/** Returns a function that replaces every secret in a text with `[redacted]`. */
export function redactor(secrets: string[]): (text: string) => string {
  const unique = [...new Set(secrets.filter((secret) => secret.length > 0))]
    .sort((a, b) => b.length - a.length);
  if (unique.length === 0) return (text) => text;
  const escaped = unique.map((secret) => secret.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // Secrets also show up percent-encoded inside URLs in fetch errors.
  const encoded = unique.map((secret) => encodeURIComponent(secret))
    .filter((secret) => !unique.includes(secret))
    .map((secret) => secret.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp([...escaped, ...encoded].join("|"), "g");
  return (text) => text.replace(pattern, "[redacted]");
}

/**
 * Whether `error` is an operational failure (a network, store or database problem, an answer
 * from Telegram) rather than a bug: its stack says nothing an operator needs, so a log line
 * carries its message chain only (stacks come back at `debug` level).
 */
export function isOperational(error: unknown): boolean {
  if (!(error instanceof Error)) return true;
  if (error.name === "GrammyError") {
    // Telegram refusing a request the bot made (400: bad markup, a missing message) is a bug;
    // 401, 403, 409, 429 and 5xx are the world's state.
    const code = (error as { error_code?: unknown }).error_code;
    return typeof code === "number" && code !== 400 && code !== 404;
  }
  if (OPERATIONAL_NAMES.has(error.name)) return true;
  const code = (error as { code?: unknown }).code;
  // postgres.js server errors carry a SQLSTATE; Node-style network errors an E… code.
  if (
    typeof code === "string" &&
    /^([0-9A-Z]{5}|E[A-Z]+|[A-Z_]+_TIMEOUT|CONNECTION_[A-Z]+)$/.test(code)
  ) {
    return true;
  }
  return Object.values(Deno.errors).some((kind) => error instanceof kind);
}

/** Error classes that report the world's state, not the program's mistakes. */
const OPERATIONAL_NAMES = new Set([
  "HttpError",
  "StoreUnavailableError",
  "DatabaseError",
  "UnauthorizedTokenError",
  "ConfigError",
  "PostgresError",
  "AbortError",
  "TimeoutError",
  "ConnectionTimeoutError",
  "SocketClosedUnexpectedlyError",
  "ErrorReply",
]);

/**
 * Plain JSON for an error, with its cause chain; `JSON.stringify(error)` would give `{}`.
 * Stacks only for bugs (see {@link isOperational}), or for everything when `stacks` is set.
 */
export function serializeError(error: unknown, depth = 0, stacks?: boolean): unknown {
  if (!(error instanceof Error)) return error;
  const out: Record<string, unknown> = { name: error.name, message: error.message };
  const withStack = stacks ?? (depth === 0 && !isOperational(error));
  if (error.stack && withStack) out.stack = error.stack;
  for (const [key, value] of Object.entries(error)) {
    // postgres.js errors carry the query's `parameters` (and `args`): user data such as
    // phone numbers, which logs must not collect. The query text itself stays.
    if (key === "parameters" || key === "args") continue;
    // grammY's HttpError keeps the underlying fetch error in `error`.
    if (key !== "cause" && typeof value !== "function") {
      out[key] = value instanceof Error && depth < 5
        ? serializeError(value, depth + 1, stacks ?? (withStack ? undefined : false))
        : value;
    }
  }
  if (error.cause !== undefined && depth < 5) {
    out.cause = serializeError(error.cause, depth + 1, stacks ?? (withStack ? undefined : false));
  }
  return out;
}

/** Formats one record as one JSON line: time, level, logger, msg, then the properties. */
export function formatJson(record: LogRecord): string {
  const line: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    logger: record.category.join("."),
    msg: renderMessage(record.message),
  };
  // At debug level and below every error keeps its stack.
  const stacks = record.level === "debug" || record.level === "trace" ? true : undefined;
  for (const [key, value] of Object.entries(record.properties)) {
    // A property never overwrites the line's own fields.
    line[key in line ? `prop_${key}` : key] = serializeError(value, 0, stacks);
  }
  return `${
    JSON.stringify(line, (_key, value) => typeof value === "bigint" ? String(value) : value)
  }\n`;
}

function renderMessage(parts: readonly unknown[]): string {
  return parts.map((part, i) =>
    i % 2 === 0
      ? String(part)
      : typeof part === "string"
      ? part
      : JSON.stringify(serializeError(part))
  ).join("");
}

const prettyFormatter = getAnsiColorFormatter({ timestamp: "time" });

function formatPretty(record: LogRecord): string {
  const extras = Object.entries(record.properties)
    .map(([key, value]) =>
      value instanceof Error
        ? `\n  ${key}: ${value.stack ?? value.message}`
        : ` ${key}=${typeof value === "string" ? value : JSON.stringify(value)}`
    ).join("");
  return prettyFormatter(record).replace(/\n$/, `${extras}\n`);
}

function stdoutWriter(): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    const bytes = encoder.encode(line);
    // Synchronous so that the last lines before exit are never lost.
    let written = 0;
    while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
  };
}

function fileWriter(path: string): { write: (line: string) => void; close: () => void } {
  Deno.mkdirSync(dirname(path), { recursive: true });
  const file = Deno.openSync(path, { append: true, create: true, mode: 0o640 });
  const encoder = new TextEncoder();
  return {
    write(line) {
      const bytes = encoder.encode(line);
      let written = 0;
      while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    },
    close: () => file.close(),
  };
}

/**
 * Configures the program's loggers. Returns a function that flushes and closes the sinks.
 * Every line passes through the redactor, so a secret never reaches a sink.
 */
export async function setupLogging(options: LogOptions): Promise<() => Promise<void>> {
  const redact = redactor(options.secrets);
  const format = options.format === "pretty" ? formatPretty : formatJson;
  const writers = [options.write ?? stdoutWriter()];
  const file = options.file === null ? null : fileWriter(options.file);
  if (file) writers.push(file.write);
  const sink: Sink = (record) => {
    const line = redact(format(record));
    for (const write of writers) write(line);
  };
  await configure({
    reset: true,
    sinks: { main: sink },
    loggers: [
      { category: [ROOT_CATEGORY], sinks: ["main"], lowestLevel: options.level },
      { category: ["logtape", "meta"], sinks: ["main"], lowestLevel: "warning" },
    ],
  });
  return async () => {
    await reset();
    file?.close();
  };
}
