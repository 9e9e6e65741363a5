import { PROGRAM_NAME, VERSION } from "./version.ts";
import { errorMessage } from "./errors.ts";
import { redactor } from "./log.ts";

/** A check's verdict, as in the `application/health+json` draft. */
export type HealthStatus = "pass" | "warn" | "fail";

/** What one check reports. */
export interface CheckResult {
  /** The verdict. */
  status: HealthStatus;
  /** Why, for warn and fail; the report leaves it out of a pass, as the draft says. */
  output?: string;
  /** What was measured, in `observedUnit`; defaults to how long the check took. */
  observedValue?: number;
  /** The unit of `observedValue`. @default "ms" */
  observedUnit?: HealthUnit;
  /** When `observedValue` was measured (ms since epoch), if not now: a job's last round. */
  time?: number;
}

/** What a check's value counts: a time (most checks), free space, or waiting items. */
export type HealthUnit = "ms" | "MiB" | "items";

/** A component's health check; it gets a signal that aborts when the probe gives up. */
export type Check = (signal: AbortSignal) => Promise<CheckResult>;

/** How a check is run. */
export interface CheckOptions {
  /**
   * The report's `componentType`: `datastore` for a database or store, `component`
   * otherwise. @default "component"
   */
  componentType?: string;
  /** A check still running after this long gets `onTimeout`. @default the registry's budget */
  timeoutMs?: number;
  /** The verdict for a check that timed out. @default "fail" */
  onTimeout?: HealthStatus;
}

/** Where the process is in its life. */
export type Phase = "starting" | "ready" | "stopping";

/** One entry of the report's `checks`. */
export interface CheckEntry {
  componentType: string;
  status: HealthStatus;
  observedValue: number;
  observedUnit: HealthUnit;
  time: string;
  output?: string;
}

/** The body of `GET /health`. */
export interface HealthReport {
  status: HealthStatus;
  version: string;
  releaseId: string;
  serviceId: string;
  description: string;
  output?: string;
  checks: Record<string, CheckEntry[]>;
}

/** Options of {@link Health}. */
export interface HealthOptions {
  /**
   * The longest any check may take, in ms: a probe with a 1–2 s timeout must always get its
   * answer. A check's own `timeoutMs` can only be shorter. @default 900
   */
  budgetMs?: number;
  /** Told each report's status (e.g. for a metric). */
  onReport?: (status: HealthStatus) => void;
  /**
   * Replaced in every `output` before it is shown, as the log does: the report is public, and a
   * check's error may quote a URL with a secret in it. @default none
   */
  secrets?: string[];
}

/**
 * The readiness registry: components register checks (the transport, Telegram, and storage
 * later), and the report combines them with the process phase.
 */
export class Health {
  #phase: Phase = "starting";
  #reason = "starting up";
  readonly #checks = new Map<string, Required<CheckOptions> & { check: Check }>();
  readonly #budgetMs: number;
  readonly #onReport: ((status: HealthStatus) => void) | undefined;
  readonly #redact: (text: string) => string;

  constructor(options: HealthOptions = {}) {
    this.#budgetMs = options.budgetMs ?? 900;
    this.#onReport = options.onReport;
    this.#redact = redactor(options.secrets ?? []);
  }

  /** The current phase. */
  get phase(): Phase {
    return this.#phase;
  }

  /** Moves to another phase; `reason` explains a non-ready phase in the report. */
  setPhase(phase: Phase, reason = ""): void {
    this.#phase = phase;
    this.#reason = reason;
  }

  /**
   * Adds a check under `name` (`component:measurement`, e.g. `telegram:responseTime`). A check
   * that takes longer than `timeoutMs` fails with "timed out".
   */
  register(
    name: string,
    check: Check,
    options: CheckOptions = {},
  ): void {
    this.#checks.set(name, {
      check,
      componentType: options.componentType ?? "component",
      timeoutMs: Math.min(options.timeoutMs ?? this.#budgetMs, this.#budgetMs),
      onTimeout: options.onTimeout ?? "fail",
    });
  }

  /** Runs every check concurrently and combines them with the phase. */
  async report(): Promise<HealthReport> {
    const entries = await Promise.all(
      [...this.#checks].map(async ([name, { check, componentType, timeoutMs, onTimeout }]) => {
        const started = performance.now();
        const result = await runWithTimeout(check, timeoutMs, onTimeout);
        const entry: CheckEntry = {
          componentType,
          status: result.status,
          observedValue: Math.round((result.observedValue ?? performance.now() - started) * 10) /
            10,
          observedUnit: result.observedValue === undefined ? "ms" : result.observedUnit ?? "ms",
          time: new Date(result.time ?? Date.now()).toISOString(),
        };
        // application/health+json: `output` is for warn and fail, and omitted on a pass.
        if (result.output && result.status !== "pass") entry.output = this.#redact(result.output);
        return [name, [entry]] as [string, CheckEntry[]];
      }),
    );
    const statuses = entries.map(([, [entry]]) => entry!.status);
    let status: HealthStatus = statuses.includes("fail")
      ? "fail"
      : statuses.includes("warn")
      ? "warn"
      : "pass";
    if (this.#phase !== "ready") status = "fail";
    const report: HealthReport = {
      status,
      version: VERSION.split(".")[0]!,
      releaseId: VERSION,
      serviceId: PROGRAM_NAME,
      description: "Telegram service-desk bot",
      checks: Object.fromEntries(entries),
    };
    if (this.#phase !== "ready") report.output = this.#redact(this.#reason || this.#phase);
    this.#onReport?.(status);
    return report;
  }
}

async function runWithTimeout(
  check: Check,
  timeoutMs: number,
  onTimeout: HealthStatus,
): Promise<CheckResult> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error("health check timed out"));
      resolve({ status: onTimeout, output: `timed out after ${timeoutMs} ms` });
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      // Through a promise, so that a check that throws synchronously is a fail, not a crash.
      Promise.resolve().then(() => check(controller.signal)).catch((error): CheckResult => ({
        status: "fail",
        output: errorMessage(error),
      })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
