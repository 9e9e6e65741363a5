/** What of the configuration is secret: redaction for logs, reports and backups. */
import type { Config } from "./types.ts";

/** A connection URL with its password replaced, safe to print. */
export function redactUrl(url: string | null): string | null {
  if (url === null) return null;
  const parsed = new URL(url);
  if (parsed.password !== "") parsed.password = "***";
  return parsed.toString();
}

/** Secrets shorter than this are not redacted: they would match ordinary text. */
const SHORTEST_SECRET = 4;

/** The bot token's secrets: the whole token and its part after the colon. */
export function tokenSecrets(token: string): string[] {
  return [token, token.split(":")[1] ?? ""].filter((secret) => secret.length >= SHORTEST_SECRET);
}

/** The values that must never appear in logs or messages. */
export function secretsOf(config: Config): string[] {
  const secrets = tokenSecrets(config.botToken);
  if (config.webhook) secrets.push(config.webhook.secret);
  if (config.metricsToken) secrets.push(config.metricsToken);
  for (const url of [config.database.url, config.store.url, ...config.proxies]) {
    const password = url === null ? "" : new URL(url).password;
    // The URL carries it percent-encoded; drivers and errors may show either form.
    if (password !== "") secrets.push(password, decodeURIComponent(password));
  }
  return secrets.filter((secret) => secret.length >= SHORTEST_SECRET);
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
    proxies: config.proxies.map(redactUrl),
  };
}
