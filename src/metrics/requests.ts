/**
 * The metrics of the service desk's requests and conversations: request events, open requests
 * by status, time to take and to close, relayed messages. Registered on the program's registry
 * by `Metrics`; components receive the parts they use.
 */
import { Counter, Gauge, Histogram, type Registry } from "./prometheus.ts";

/** Buckets for request lifetimes, in seconds: a minute to a week. */
const LIFETIME_BUCKETS = [
  60,
  300,
  900,
  1800,
  3600,
  4 * 3600,
  8 * 3600,
  86400,
  3 * 86400,
  7 * 86400,
];

/** Request events the service desk counts. */
export const REQUEST_EVENTS = [
  "created",
  "taken",
  "released",
  "done",
  "reopened",
  "rejected",
] as const;

/** Creates the requests' metrics on `registry`. */
export function requestMetrics(registry: Registry) {
  const registers = [registry];
  const events = new Counter({
    name: "bot_requests_total",
    help: "Request events (created, taken, released, done, reopened, rejected)",
    labelNames: ["event"],
    registers,
  });
  for (const event of REQUEST_EVENTS) events.inc({ event }, 0);
  const relayed = new Counter({
    name: "bot_relayed_messages_total",
    help: "Messages relayed between users and staff, by direction (to_staff, to_user) and result",
    labelNames: ["direction", "result"],
    registers,
  });
  for (const direction of ["to_staff", "to_user"]) {
    for (const result of ["sent", "blocked"]) relayed.inc({ direction, result }, 0);
  }
  const open = new Gauge({
    name: "bot_requests_open",
    help: "Open requests by status (new, in_progress)",
    labelNames: ["status"],
    registers,
  });
  for (const status of ["new", "in_progress"]) open.set({ status }, 0);
  return {
    /** Request events by kind. */
    events,
    /** Open requests by status, as the last refresh counted them. */
    open,
    /** Age of the oldest request nobody took yet, in seconds (0 when none waits). */
    oldestNewAge: new Gauge({
      name: "bot_request_oldest_new_age_seconds",
      help: "Age of the oldest request nobody took yet",
      registers,
    }),
    /** Time from filing to the first take. */
    timeToTake: new Histogram({
      name: "bot_request_time_to_take_seconds",
      help: "Time from filing a request to its first take",
      buckets: LIFETIME_BUCKETS,
      registers,
    }),
    /** Time from filing to done. */
    timeToClose: new Histogram({
      name: "bot_request_time_to_close_seconds",
      help: "Time from filing a request to done",
      buckets: LIFETIME_BUCKETS,
      registers,
    }),
    /** Relayed messages by direction and result. */
    relayed,
  };
}

/** The requests' metrics. */
export type RequestMetrics = ReturnType<typeof requestMetrics>;
