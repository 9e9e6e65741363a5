import type { HealthReport } from "../health.ts";

/** Options of {@link healthcheck}. */
export interface HealthcheckOptions {
  /** `HTTP_HOST` of the running instance; a wildcard address is asked on loopback. */
  host: string;
  /** `HTTP_PORT` of the running instance. */
  port: number;
  /** Give up after this long. @default 5000 */
  timeoutMs?: number;
  /** HTTP client. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** The result: the exit code (0 pass or warn, 1 otherwise) and one line to print. */
export interface HealthcheckResult {
  code: 0 | 1;
  line: string;
}

/**
 * Asks a running instance for `GET /health`, for Docker's HEALTHCHECK and scripts:
 * pass and warn are healthy, fail or no answer is not.
 */
export async function healthcheck(options: HealthcheckOptions): Promise<HealthcheckResult> {
  const host = ["0.0.0.0", "::", "[::]", ""].includes(options.host) ? "127.0.0.1" : options.host;
  const url = `http://${
    host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  }:${options.port}/health`;
  try {
    const res = await (options.fetch ?? fetch)(url, {
      signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    });
    const report = await res.json() as HealthReport;
    const failing = Object.entries(report.checks ?? {})
      .filter(([, [entry]]) => entry && entry.status !== "pass")
      .map(([name, [entry]]) =>
        `${name}=${entry!.status}${entry!.output ? ` (${entry!.output})` : ""}`
      );
    const detail = [report.output, ...failing].filter(Boolean).join("; ");
    const healthy = report.status === "pass" || report.status === "warn";
    return { code: healthy ? 0 : 1, line: `${report.status}${detail ? `: ${detail}` : ""}` };
  } catch (error) {
    return {
      code: 1,
      line: `unreachable: ${url}: ${error instanceof Error ? error.message : error}`,
    };
  }
}
