/** When a job runs next: the pure maths of {@link Schedule}s (cron in `util/cron.ts`). */
import { nextCronTime, parseCron } from "../util/cron.ts";
import type { Schedule } from "./job.ts";

/**
 * When a job whose last round started at `startedMs` runs next, seen at `nowMs`: an interval
 * counts from the start of the last round (at once if that is past); cron takes the next
 * matching minute after both.
 */
export function nextRun(schedule: Schedule, startedMs: number, nowMs: number): number {
  if ("everyMs" in schedule) return Math.max(nowMs, startedMs + schedule.everyMs);
  return nextCronTime(parseCron(schedule.cron), Math.max(startedMs, nowMs));
}
