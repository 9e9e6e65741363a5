/**
 * The program's few error classes, and how errors are told to a human in one line. Foreign
 * errors (postgres.js, Redis, grammY, Deno) are converted at the boundary that meets
 * them; an error that restarting the program cannot fix is marked `permanent`, so that the
 * start-up stops retrying it and the program exits with {@link EXIT_REFUSED}.
 */

/** Exit code of a bad configuration (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;
/**
 * Exit code of a start-up refused for good: Telegram refused the token, the database refused
 * the credentials or does not exist, the schema does not fit this program (EX_NOPERM). The
 * shipped unit does not restart on it: the operator must fix something first.
 */
export const EXIT_REFUSED = 77;

/** One problem with one environment variable. */
export interface ConfigIssue {
  /** The variable's name, e.g. `HTTP_PORT`. */
  variable: string;
  /** What was wrong and what is expected; never contains the value of a secret. */
  message: string;
}

/** The environment could not be turned into a configuration; lists every problem at once. */
export class ConfigError extends Error {
  /** Every problem found, one entry per variable and problem. */
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(
      `invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

/** The Telegram token was refused (401): nothing can work until the operator fixes it. */
export class UnauthorizedTokenError extends Error {
  /** Always true: restarting cannot fix a refused token. */
  readonly permanent = true;

  constructor(options?: ErrorOptions) {
    super(
      "Telegram refused BOT_TOKEN (401 Unauthorized): check the token from @BotFather",
      options,
    );
    this.name = "UnauthorizedTokenError";
  }
}

/** The key-value store (Redis or Deno KV) could not be reached or answered with an error. */
export class StoreUnavailableError extends Error {
  /** Whether waiting cannot fix it (Redis refused the password). */
  readonly permanent: boolean;

  constructor(message: string, options: ErrorOptions & { permanent?: boolean } = {}) {
    super(message, options);
    this.name = "StoreUnavailableError";
    this.permanent = options.permanent ?? false;
  }
}

/** Options of {@link DatabaseError}. */
export interface DatabaseErrorOptions extends ErrorOptions {
  /**
   * Whether waiting cannot fix it (credentials refused, no such database, a schema that does
   * not fit). @default false
   */
  permanent?: boolean;
}

/** The database could not be opened, migrated, backed up or restored. */
export class DatabaseError extends Error {
  /** Whether waiting and retrying cannot fix it. */
  readonly permanent: boolean;

  constructor(message: string, options: DatabaseErrorOptions = {}) {
    super(message, options);
    this.name = "DatabaseError";
    this.permanent = options.permanent ?? false;
  }
}

/** Whether `error` is one that restarting the program cannot fix. */
export function isPermanent(error: unknown): boolean {
  return typeof error === "object" && error !== null &&
    (error as { permanent?: unknown }).permanent === true;
}

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `error` itself when it is an Error, else an Error saying what was thrown. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * The messages of an error and its causes in one line, outermost first, each said once
 * (grammY's HttpError keeps its cause in `error`): `a: b: c`.
 */
export function causeChain(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 6; depth++) {
    const message = errorMessage(current).trim();
    // A message an outer one quotes is not said again, its closing full stop or not.
    const quoted = message.replace(/\.$/, "");
    if (quoted !== "" && !parts.some((part) => part.includes(quoted))) parts.push(message);
    if (!(current instanceof Error)) break;
    current = current.cause ?? (current as { error?: unknown }).error;
  }
  return parts.join(": ");
}
