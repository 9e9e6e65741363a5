/**
 * Runs the background jobs (`job.ts`) inside the program: each on its schedule, `leader` jobs
 * on one instance at a time, `instance` jobs on every instance. When instances share the
 * store, the `jobs` leader lease decides which one runs the leader jobs; another instance
 * takes over within the lease's TTL when it stops or dies. The embedded store belongs to one
 * instance, which runs everything.
 *
 * Each job reports its last round to `/health` (`job:<name>`, `warn` after `warnAfter` failed
 * rounds in a row) and to metrics. A stop aborts the rounds in progress (their signal), waits
 * for them to save their progress within the timeout, then lets each job flush (`stop`).
 */
import type { Check, CheckResult } from "../health.ts";
import { errorMessage } from "../errors.ts";
import { logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { LeaderLease } from "../store/leader.ts";
import { NAMESPACES } from "../store/namespaces.ts";
import type { Json, KeyValueStore } from "../store/store.ts";
import type { Job, JobContext } from "./job.ts";
import { nextRun } from "./schedule.ts";

/** Options of {@link JobRunner}. */
export interface JobRunnerOptions {
  /** Where progress (and, when shared, the lease) is kept. */
  store: KeyValueStore;
  /** Whether other instances share `store`: leader jobs then run under the `jobs` lease. */
  shared: boolean;
  /** This instance's name among those sharing the store. */
  instanceId: string;
  /** Runs, durations and the lease. */
  metrics: Pick<Metrics, "jobRuns" | "jobDuration" | "leaseChanges" | "jobsLeader">;
  /** The clock. @default Date.now */
  now?: () => number;
}

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

interface Entry {
  job: Job;
  status: JobStatus;
  wake: (() => void) | null;
  triggered: boolean;
  running: Promise<void> | null;
}

/** Runs the jobs; see the module documentation. */
export class JobRunner {
  readonly #o: JobRunnerOptions;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #stop = new AbortController();
  readonly #log = logger("jobs");
  #lease: LeaderLease | null = null;
  #loops: Promise<void>[] = [];
  #stopping: Promise<void> | null = null;

  constructor(options: JobRunnerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Adds a job; call before {@link start}. */
  add(job: Job): void {
    if (this.#entries.has(job.name)) throw new Error(`job ${job.name} is added twice`);
    this.#entries.set(job.name, {
      job,
      status: {
        lastStartedAt: null,
        lastDurationMs: null,
        lastOutcome: null,
        failures: 0,
        lastError: null,
      },
      wake: null,
      triggered: false,
      running: null,
    });
  }

  /** The names of the jobs. */
  get names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Whether this instance runs the leader jobs now. */
  get leading(): boolean {
    return this.#lease === null || this.#lease.leading;
  }

  /** Starts every job's loop (and the lease, when the store is shared). */
  start(): void {
    const leaderJobs = [...this.#entries.values()].some((e) => e.job.scope !== "instance");
    if (this.#o.shared && leaderJobs) {
      this.#lease = new LeaderLease({
        store: this.#o.store,
        name: "jobs",
        holder: this.#o.instanceId,
        log: logger("leader"),
        metrics: { leaseChanges: this.#o.metrics.leaseChanges, leader: this.#o.metrics.jobsLeader },
        // A new leader runs the leader jobs at once rather than at their next due time.
        onElected: () => {
          for (const entry of this.#entries.values()) {
            if (entry.job.scope !== "instance") this.#wake(entry);
          }
        },
      });
      this.#lease.run(this.#stop.signal);
    } else {
      this.#o.metrics.jobsLeader.set(1);
    }
    this.#loops = [...this.#entries.values()].map((entry) => this.#loop(entry));
  }

  /** Runs `name` as soon as possible (e.g. after new work was queued for it). */
  trigger(name: string): void {
    const entry = this.#entries.get(name);
    if (entry) this.#wake(entry);
  }

  /** How `name`'s last rounds went. */
  status(name: string): JobStatus | null {
    const entry = this.#entries.get(name);
    return entry ? { ...entry.status } : null;
  }

  /** One `/health` check per job: `job:<name>`. */
  checks(): [string, Check][] {
    return [...this.#entries.values()].map((entry) => [
      `job:${entry.job.name}`,
      () => Promise.resolve(this.#health(entry)),
    ]);
  }

  /**
   * Stops: aborts the rounds in progress and waits for them (within `timeoutMs`), lets every
   * job flush, then gives the lease up. Calling it again returns the same promise.
   */
  stop(timeoutMs: number): Promise<void> {
    this.#stopping ??= (async () => {
      const deadline = this.#now() + timeoutMs;
      this.#stop.abort(new Error("stopping"));
      for (const entry of this.#entries.values()) entry.wake?.();
      const left = () => Math.max(0, deadline - this.#now());
      await withTimeout(Promise.all(this.#loops), left());
      for (const entry of this.#entries.values()) {
        if (!entry.job.stop) continue;
        try {
          await entry.job.stop(left());
        } catch (error) {
          this.#log.error("job {job} failed to stop: {message}", {
            job: entry.job.name,
            message: errorMessage(error),
          });
        }
      }
      await this.#lease?.release();
    })();
    return this.#stopping;
  }

  async #loop(entry: Entry): Promise<void> {
    const { job } = entry;
    const signal = this.#stop.signal;
    let due = this.#firstDue(job);
    while (!signal.aborted) {
      await this.#sleepUntil(entry, due);
      if (signal.aborted) break;
      if (job.scope !== "instance" && !this.leading) {
        // Standing by: look again soon (an election wakes the loop at once).
        due = this.#now() + 1000;
        continue;
      }
      entry.triggered = false;
      const started = this.#now();
      entry.running = this.#round(entry, started);
      await entry.running;
      entry.running = null;
      due = entry.triggered ? this.#now() : nextRun(job.schedule, started, this.#now());
    }
  }

  #firstDue(job: Job): number {
    const now = this.#now();
    // Interval jobs run at start (retention, the outbox); cron jobs wait for their time.
    return "everyMs" in job.schedule ? now : nextRun(job.schedule, now, now);
  }

  async #round(entry: Entry, started: number): Promise<void> {
    const { job, status } = entry;
    const log = logger("jobs", job.name);
    const key = [NAMESPACES.job, job.name] as const;
    const context: JobContext = {
      signal: this.#stop.signal,
      log,
      progress: {
        load: () => this.#o.store.get(key),
        save: (value: Json) => this.#o.store.set(key, value),
      },
    };
    status.lastStartedAt = started;
    let outcome: "ok" | "error" = "ok";
    try {
      await job.run(context);
      if (status.failures > 0) {
        log.info("job {job} works again after {failures} failed rounds", {
          job: job.name,
          failures: status.failures,
        });
      }
      status.failures = 0;
      status.lastError = null;
    } catch (error) {
      outcome = "error";
      status.failures++;
      status.lastError = errorMessage(error);
      // The first failure and then every tenth, not one line per round of an outage.
      if (status.failures === 1 || status.failures % 10 === 0) {
        log.warning("job {job} failed ({failures} in a row): {message}", {
          job: job.name,
          failures: status.failures,
          message: status.lastError,
          error,
        });
      }
    }
    const seconds = (this.#now() - started) / 1000;
    status.lastDurationMs = Math.round(seconds * 1000);
    status.lastOutcome = outcome;
    this.#o.metrics.jobRuns.inc({ job: job.name, result: outcome });
    this.#o.metrics.jobDuration.observe({ job: job.name }, seconds);
  }

  #health(entry: Entry): CheckResult {
    const { job, status } = entry;
    const observedValue = status.lastDurationMs ?? 0;
    if (job.scope !== "instance" && !this.leading) {
      const holder = this.#lease?.status.holder;
      return {
        status: "pass",
        observedValue,
        output: holder ? `runs on instance ${holder}` : "waiting for the jobs lease",
      };
    }
    if (status.failures >= (job.warnAfter ?? 3)) {
      return {
        status: "warn",
        observedValue,
        output: `${status.failures} failed rounds in a row: ${status.lastError}`,
      };
    }
    return { status: "pass", observedValue };
  }

  #wake(entry: Entry): void {
    entry.triggered = true;
    const wake = entry.wake;
    entry.wake = null;
    wake?.();
  }

  /** Waits until `due`, a trigger or the stop, whichever comes first. */
  async #sleepUntil(entry: Entry, due: number): Promise<void> {
    const wait = due - this.#now();
    if (wait <= 0 || entry.triggered) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(wait, 2 ** 31 - 1));
      function done() {
        clearTimeout(timer);
        entry.wake = null;
        resolve();
      }
      entry.wake = done;
      if (this.#stop.signal.aborted) done();
    });
  }
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise,
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}
