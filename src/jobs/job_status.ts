/**
 * How a job's last rounds went, and what `/health` says about it (`job:<name>`): `warn` after
 * `warnAfter` failed rounds in a row, otherwise when and how its last round ended. Pure.
 */
import type { CheckResult } from "../health.ts";
import type { Job } from "./job.ts";

/** How a job's last rounds went. */
export interface JobStatus {
  /** When the last round started (ms since epoch), or null before the first. */
  lastStartedAt: number | null;
  /** How long it took, in ms. */
  lastDurationMs: number | null;
  /** `ok` or `error`, or null before the first round ended. */
  lastOutcome: "ok" | "error" | null;
  /** Failed rounds in a row. */
  failures: number;
  /** The last failure's message, or null. */
  lastError: string | null;
}

/** The status of a job that never ran. */
export function newJobStatus(): JobStatus {
  return {
    lastStartedAt: null,
    lastDurationMs: null,
    lastOutcome: null,
    failures: 0,
    lastError: null,
  };
}

/**
 * The health of `job` with `status`: its last round's duration (`observedValue`) and start
 * (`time`), `warn` once `warnAfter` rounds in a row failed. `standingBy` is the instance that
 * runs the leader jobs while this one stands by (`""` while nobody holds the lease), null
 * while this one runs them.
 */
export function jobHealth(job: Job, status: JobStatus, standingBy: string | null): CheckResult {
  const last: CheckResult = {
    status: "pass",
    observedValue: status.lastDurationMs ?? 0,
    ...(status.lastStartedAt === null ? {} : { time: status.lastStartedAt }),
  };
  if (job.scope !== "instance" && standingBy !== null) {
    return {
      ...last,
      output: standingBy ? `runs on instance ${standingBy}` : "waiting for the jobs lease",
    };
  }
  if (status.failures >= (job.warnAfter ?? 3)) {
    return {
      ...last,
      status: "warn",
      output: `${status.failures} failed rounds in a row: ${status.lastError}`,
    };
  }
  return last;
}
