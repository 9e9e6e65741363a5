/**
 * Free disk space under `DATA_DIR`, for `/health` (`disk:free`) and the alerts. Deno reads it
 * with `statfs` (node:fs), which needs `--allow-sys=statfs` besides read access to the
 * directory; without that permission the space is unknown, and the check says so instead of
 * failing: the program works, it only cannot warn before the disk fills up.
 */
import { statfs } from "node:fs/promises";
import type { Gauge } from "../metrics/prometheus.ts";
import type { CheckResult } from "../health.ts";

/** What was measured: free bytes, or why nothing could be. */
export type DiskSpace = { freeBytes: number } | { unknown: string };

const MIB = 1024 * 1024;

/** Free bytes (for an unprivileged process) of the file system that holds `path`. */
export async function diskSpace(path: string): Promise<DiskSpace> {
  try {
    const stats = await statfs(path);
    return { freeBytes: stats.bavail * stats.bsize };
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return { unknown: "free space unknown: the program needs --allow-sys=statfs to read it" };
    }
    // With Postgres and Redis nothing may be stored there, and nobody made the directory.
    if ((error as { code?: unknown }).code === "ENOENT") {
      return { unknown: `free space unknown: ${path} does not exist (nothing is stored there)` };
    }
    throw error;
  }
}

/** Options of {@link DiskWatch}. */
export interface DiskWatchOptions {
  /** `DATA_DIR`. */
  dir: string;
  /** `DISK_MIN_FREE_MB`; 0 never warns. */
  minFreeMb: number;
  metrics: { diskFree: Gauge };
  /** How free space is measured. @default {@link diskSpace} */
  measure?: (path: string) => Promise<DiskSpace>;
}

/** Measures free space under `DATA_DIR` and judges it against `DISK_MIN_FREE_MB`. */
export class DiskWatch {
  readonly #o: DiskWatchOptions;
  readonly #measure: (path: string) => Promise<DiskSpace>;

  constructor(options: DiskWatchOptions) {
    this.#o = options;
    this.#measure = options.measure ?? diskSpace;
  }

  /** What is wrong with the free space (for the alerts), or null when there is enough. */
  async problem(): Promise<string | null> {
    const space = await this.#measure(this.#o.dir);
    if ("unknown" in space) return null;
    this.#o.metrics.diskFree.set(space.freeBytes);
    return this.#short(space.freeBytes) ? this.#describe(space.freeBytes) : null;
  }

  /** The `/health` check: `warn` below `DISK_MIN_FREE_MB`; the observed value is free MiB. */
  async check(): Promise<CheckResult> {
    const space = await this.#measure(this.#o.dir);
    if ("unknown" in space) {
      return { status: "pass", observedValue: 0, observedUnit: "MiB", output: space.unknown };
    }
    this.#o.metrics.diskFree.set(space.freeBytes);
    const observedValue = Math.floor(space.freeBytes / MIB);
    if (this.#short(space.freeBytes)) {
      return {
        status: "warn",
        observedValue,
        observedUnit: "MiB",
        output: this.#describe(space.freeBytes),
      };
    }
    return {
      status: "pass",
      observedValue,
      observedUnit: "MiB",
      output: `${observedValue} MiB free`,
    };
  }

  #short(freeBytes: number): boolean {
    return this.#o.minFreeMb > 0 && freeBytes < this.#o.minFreeMb * MIB;
  }

  #describe(freeBytes: number): string {
    return `${Math.floor(freeBytes / MIB)} MiB free under ${this.#o.dir}, ` +
      `below DISK_MIN_FREE_MB=${this.#o.minFreeMb}`;
  }
}
