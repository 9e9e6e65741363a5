/**
 * Runs the background jobs (`job.ts`) inside the program: each on its schedule, `leader` jobs
 * on one instance at a time, `instance` jobs on every instance. When instances share the
 * store, the `jobs` leader lease decides which one runs the leader jobs; another instance
 * takes over within the lease's TTL when it stops or dies, and the rounds of an instance that
 * lost the lease are aborted (their signal). The embedded store belongs to one instance,
 * which runs everything. Leader cron jobs remember their slots in the store (`slots.ts`), so
 * that a slot runs once across lease changes and a missed or cut-off one runs at start.
 *
 * Each job reports its last round to `/health` (`job:<name>`, `warn` after `warnAfter` failed
 * rounds in a row) and to metrics. A stop aborts the rounds in progress (their signal) and
 * waits for them to save their progress within the timeout ({@link JobRunner.halt}), then lets
 * each job flush (`stop`).
 */
import type { Check } from "../health.ts";
import { errorMessage } from "../errors.ts";
import { logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { LeaderLease } from "../store/leader.ts";
import { NAMESPACES } from "../store/namespaces.ts";
import type { Json, KeyValueStore } from "../store/store.ts";
import type { Job, JobContext } from "./job.ts";
import { nextRun } from "./schedule.ts";
import { CronSlots, type SlotRun } from "./slots.ts";
import { jobHealth, type JobStatus, newJobStatus } from "./job_status.ts";

export type { JobStatus };

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

/** When a job runs next; `slot` is the cron slot it serves (leader cron jobs only). */
type Next = { at: number; slot: number | null };

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
  readonly #slots: CronSlots;
  /** Aborts when this instance loses the lease; a new one per term as leader. */
  #term = new AbortController();
  /** The stop or the end of the term, whichever comes first: the signal of leader rounds. */
  #leaderSignal: AbortSignal = this.#stop.signal;
  #lease: LeaderLease | null = null;
  #loops: Promise<void>[] = [];
  #halting: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;

  constructor(options: JobRunnerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#slots = new CronSlots(options.store);
  }

  /** Adds a job; call before {@link start}. */
  add(job: Job): void {
    if (this.#entries.has(job.name)) throw new Error(`job ${job.name} is added twice`);
    this.#entries.set(job.name, {
      job,
      status: newJobStatus(),
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
        // A new leader runs the interval jobs at once; cron jobs keep their slots.
        onElected: () => {
          this.#term = new AbortController();
          // Once per term, not per round: each `any` hangs a listener on the stop signal.
          this.#leaderSignal = AbortSignal.any([this.#stop.signal, this.#term.signal]);
          for (const entry of this.#entries.values()) {
            if (entry.job.scope === "instance") continue;
            if ("cron" in entry.job.schedule) entry.wake?.();
            else this.#wake(entry);
          }
        },
        onDeposed: () => this.#term.abort(new Error("another instance took the jobs lease")),
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
      () =>
        Promise.resolve(
          jobHealth(
            entry.job,
            entry.status,
            this.leading ? null : this.#lease?.status.holder ?? "",
          ),
        ),
    ]);
  }

  /**
   * Aborts the rounds in progress and waits (within `timeoutMs`) for them to save their
   * progress and return; no round starts afterwards. Calling it again returns the same promise.
   */
  halt(timeoutMs: number): Promise<void> {
    this.#halting ??= (async () => {
      this.#stop.abort(new Error("stopping"));
      for (const entry of this.#entries.values()) entry.wake?.();
      await withTimeout(Promise.all(this.#loops), timeoutMs);
    })();
    return this.#halting;
  }

  /**
   * Stops: {@link halt}s the rounds (within `timeoutMs`), lets every job flush in what is left
   * of it, then gives the lease up. Calling it again returns the same promise.
   */
  stop(timeoutMs: number): Promise<void> {
    this.#stopping ??= (async () => {
      const deadline = this.#now() + timeoutMs;
      await this.halt(timeoutMs);
      const left = () => Math.max(0, deadline - this.#now());
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
    const leader = job.scope !== "instance";
    let next = await this.#firstRun(job);
    while (!signal.aborted) {
      if (leader && !this.leading) {
        // Standing by: triggers are the leader's business; look again every second (an
        // election wakes the loop at once).
        entry.triggered = false;
        await this.#sleepUntil(entry, this.#now() + 1000);
        continue;
      }
      await this.#sleepUntil(entry, next.at);
      if (signal.aborted || (leader && !this.leading)) continue;
      const triggered = entry.triggered;
      entry.triggered = false;
      // Woken before its time by an election: a cron job waits for its slot.
      if (!triggered && this.#now() < next.at) continue;
      const slot = triggered && this.#now() < next.at ? null : next.slot;
      const started = this.#now();
      // Another instance may have run this slot before this one took the lease.
      if (slot === null || !(await this.#slots.done(job.name, slot))) {
        entry.running = this.#round(entry, started, slot);
        await entry.running;
        entry.running = null;
      }
      next = entry.triggered ? { at: this.#now(), slot: null } : this.#after(job, started, slot);
    }
  }

  async #firstRun(job: Job): Promise<Next> {
    const now = this.#now();
    // Interval jobs run at start (retention, the outbox); cron jobs wait for their time.
    if ("everyMs" in job.schedule) return { at: now, slot: null };
    if (job.scope === "instance") return { at: nextRun(job.schedule, now, now), slot: null };
    return await this.#slots.first(job.name, job.schedule.cron, now);
  }

  #after(job: Job, started: number, slot: number | null): Next | SlotRun {
    const now = this.#now();
    if ("cron" in job.schedule && job.scope !== "instance") {
      return this.#slots.after(job.schedule.cron, slot ?? now, now);
    }
    return { at: nextRun(job.schedule, started, now), slot: null };
  }

  async #round(entry: Entry, started: number, slot: number | null): Promise<void> {
    const { job, status } = entry;
    const log = logger("jobs", job.name);
    const key = [NAMESPACES.job, job.name] as const;
    const signal = job.scope === "instance" ? this.#stop.signal : this.#leaderSignal;
    // A slot that never reaches `done` (a crash, a stop mid-round) runs again at the next start.
    if (slot !== null) await this.#slots.mark(job.name, slot, false).catch(() => {});
    const context: JobContext = {
      signal,
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
    if (slot !== null) await this.#slots.mark(job.name, slot, !signal.aborted).catch(() => {});
    const seconds = (this.#now() - started) / 1000;
    status.lastDurationMs = Math.round(seconds * 1000);
    status.lastOutcome = outcome;
    this.#o.metrics.jobRuns.inc({ job: job.name, result: outcome });
    this.#o.metrics.jobDuration.observe({ job: job.name }, seconds);
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
