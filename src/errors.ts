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
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** The database could not be opened, migrated, backed up or restored. */
export class DatabaseError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DatabaseError";
  }
}
