/**
 * How one environment variable is read: each helper gives a zod schema for a string that may be
 * unset or empty (then the default applies) and otherwise must parse, with a message naming
 * what was expected (and the value, unless it is a secret).
 */
import { z } from "zod";

// Telegram allows 1 to 256 characters; fewer than 16 would be guessable and unredactable.
const SECRET_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;

/** The zod context a parser reports problems to. */
export type Ctx = z.RefinementCtx;
/** Reports `message` for the variable being parsed. */
export const fail = (ctx: Ctx, message: string): never => {
  ctx.addIssue({ code: "custom", message });
  return z.NEVER;
};
/** The value as a message quotes it, shortened. */
export const shown = (value: string) =>
  ` (got "${value.length > 60 ? `${value.slice(0, 60)}…` : value}")`;

/** A variable that is unset or empty takes its default; `parse` checks the rest. */
export function variable<T>(fallback: T, parse: (value: string, ctx: Ctx) => T) {
  return z.string().optional().transform((raw, ctx): T => {
    const value = raw?.trim();
    return value === undefined || value === "" ? fallback : parse(value, ctx);
  });
}

/** A whole number from `min` to `max`. */
export function wholeNumber(fallback: number, min: number, max: number) {
  return variable(fallback, (value, ctx) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      return fail(ctx, `must be a whole number from ${min} to ${max}${shown(value)}`);
    }
    return n;
  });
}

/** A number of seconds (fractions allowed) from `min` to `max`. */
export function seconds(fallback: number, min: number, max: number) {
  return variable(fallback, (value, ctx) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || n < min || n > max) {
      return fail(ctx, `must be a number of seconds from ${min} to ${max}${shown(value)}`);
    }
    return n;
  });
}

/**
 * One of `options`, case-insensitive; `aliases` maps other common spellings to an option
 * (`warn` → `warning`).
 */
export function oneOf<const T extends readonly string[]>(
  options: T,
  fallback: T[number],
  aliases: Readonly<Record<string, T[number]>> = {},
) {
  return variable<T[number]>(fallback, (value, ctx) => {
    const lower = value.toLowerCase();
    const option = Object.hasOwn(aliases, lower) ? aliases[lower]! : lower;
    if (!options.includes(option)) {
      return fail(ctx, `must be one of ${options.join(", ")}${shown(value)}`);
    }
    return option as T[number];
  });
}

/** An http(s) URL. */
export function httpUrl(fallback: string | null, what: string) {
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

/** true/false, 1/0, yes/no or on/off. */
export function booleanVar(fallback: boolean) {
  return variable(fallback, (value, ctx) => {
    const lower = value.toLowerCase();
    if (["true", "1", "yes", "on"].includes(lower)) return true;
    if (["false", "0", "no", "off"].includes(lower)) return false;
    return fail(ctx, `must be true or false${shown(value)}`);
  });
}

/** A connection URL with one of `schemes`; never shown, since it may carry a password. */
export function connectionUrl(schemes: string[], what: string) {
  return variable<string | null>(null, (value, ctx) => {
    if (!URL.canParse(value)) return fail(ctx, `must be ${what} (the value is not shown)`);
    const url = new URL(value);
    if (!schemes.includes(url.protocol) || url.hostname === "") {
      return fail(ctx, `must be ${what} (the value is not shown)`);
    }
    return value;
  });
}

/** A proxy for outgoing HTTP (as Deno's `fetch` reads it); never shown: it may carry a password. */
export const proxyUrl = () =>
  connectionUrl(
    ["http:", "https:", "socks5:", "socks5h:"],
    "an http://, https:// or socks5:// proxy URL",
  );

/** A secret token: 16–256 URL-safe characters, never shown. */
export const secretVar = (what: string) =>
  variable<string | null>(
    null,
    (value, ctx) => SECRET_PATTERN.test(value) ? value : fail(ctx, what),
  );
