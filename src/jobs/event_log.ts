/**
 * The event log's job: on every instance, writes what the pipeline queued (a partial batch
 * once a second; full batches go at once) and, at the stop, flushes what is left once the
 * updates in flight have finished.
 */
import type { EventWriter } from "../db/event_writer.ts";
import type { Job } from "./job.ts";

/** The event log's job; see the module documentation. */
export function eventLogJob(writer: EventWriter, everyMs = 1000): Job {
  return {
    name: "events",
    scope: "instance",
    schedule: { everyMs },
    async run() {
      await writer.flush();
      if (writer.lastError !== null) throw new Error(writer.lastError);
    },
    stop: (timeoutMs) => writer.close(timeoutMs),
  };
}
