/**
 * The state of one infrastructure problem (the database unreachable, the disk nearly full…),
 * shared by the instances through the store so that the admins hear of it once, whichever
 * instances see it: each instance reports what it sees; the problem is raised once the
 * earliest instance still seeing it has seen it for `alertAfterMs`, and cleared once no
 * instance sees it any more. An instance that stops reporting (it died) is forgotten after
 * `staleMs`. Written as a pure function ({@link reportProblem}) and as an atomic store script
 * with its Lua twin ({@link problemScript}); the tests run both.
 */
import { NAMESPACES } from "../store/namespaces.ts";
import type { AtomicScript, Json, StoreKey } from "../store/store.ts";

/** One problem as stored: whether the admins were told, the latest detail, who sees it. */
export interface ProblemState {
  raised: boolean;
  detail: string;
  /** Instances seeing the problem: since when, and when they last said so (ms). */
  by: Record<string, { since: number; seen: number }>;
}

/** What an instance saw in one round. */
export interface ProblemReport {
  instance: string;
  failing: boolean;
  /** Why it fails (shown to the admins); ignored when not failing. */
  detail: string;
  alertAfterMs: number;
  staleMs: number;
}

/** What to tell the admins after a report. */
export interface ProblemAnswer {
  action: "raise" | "clear" | "none";
  detail: string;
  /** Since when the problem is seen (ms); `now` when nobody sees it. */
  since: number;
  [key: string]: Json;
}

/** Where problem `name` is kept. */
export function problemKey(name: string): StoreKey {
  return [NAMESPACES.alert, name];
}

function isState(value: unknown): value is ProblemState {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    typeof (value as ProblemState).by === "object" && (value as ProblemState).by !== null &&
    !Array.isArray((value as ProblemState).by);
}

/** The new state (null: forget the problem) and what to tell; see the module documentation. */
export function reportProblem(
  current: unknown,
  report: ProblemReport,
  now: number,
): { state: ProblemState | null; answer: ProblemAnswer } {
  const state: ProblemState = isState(current) ? current : { raised: false, detail: "", by: {} };
  const by: ProblemState["by"] = {};
  for (const [id, entry] of Object.entries(state.by)) {
    const live = typeof entry?.seen === "number" && entry.seen > now - report.staleMs;
    if (id !== report.instance && live) by[id] = entry;
  }
  let detail = typeof state.detail === "string" ? state.detail : "";
  if (report.failing) {
    const since = state.by[report.instance]?.since;
    by[report.instance] = { since: typeof since === "number" ? since : now, seen: now };
    detail = report.detail;
  }
  const sinces = Object.values(by).map((entry) => entry.since);
  const oldest = sinces.length === 0 ? null : Math.min(...sinces);
  let raised = state.raised === true;
  let action: ProblemAnswer["action"] = "none";
  if (oldest !== null && !raised && now - oldest >= report.alertAfterMs) {
    raised = true;
    action = "raise";
  } else if (oldest === null && raised) {
    action = "clear";
  }
  return {
    state: oldest === null ? null : { raised, detail, by },
    answer: { action, detail, since: oldest ?? now },
  };
}

/** Arguments of {@link problemScript}. */
export type ProblemArgs = [
  instance: string,
  failing: boolean,
  detail: string,
  alertAfterMs: number,
  staleMs: number,
];

/** {@link reportProblem} over the problem's key, atomically. */
export const problemScript: AtomicScript<ProblemArgs, ProblemAnswer> = {
  name: "alert_report",
  lua: `
    local now = tonumber(ARGV[1])
    local instance = cjson.decode(ARGV[2])
    local failing = cjson.decode(ARGV[3])
    local detail = cjson.decode(ARGV[4])
    local alert_after = cjson.decode(ARGV[5])
    local stale = cjson.decode(ARGV[6])
    local raw = redis.call('GET', KEYS[1])
    local s = raw and cjson.decode(raw) or nil
    if type(s) ~= 'table' or type(s.by) ~= 'table' then
      s = {raised = false, detail = '', by = {}}
    end
    local by = {}
    for id, entry in pairs(s.by) do
      if id ~= instance and type(entry) == 'table' and type(entry.seen) == 'number'
        and entry.seen > now - stale then
        by[id] = entry
      end
    end
    local kept = type(s.detail) == 'string' and s.detail or ''
    if failing then
      local mine = s.by[instance]
      local since = now
      if type(mine) == 'table' and type(mine.since) == 'number' then since = mine.since end
      by[instance] = {since = since, seen = now}
      kept = detail
    end
    local oldest = nil
    for _, entry in pairs(by) do
      if oldest == nil or entry.since < oldest then oldest = entry.since end
    end
    local raised = s.raised == true
    local action = 'none'
    if oldest ~= nil and not raised and now - oldest >= alert_after then
      raised = true
      action = 'raise'
    elseif oldest == nil and raised then
      action = 'clear'
    end
    if oldest == nil then
      redis.call('DEL', KEYS[1])
    else
      redis.call('SET', KEYS[1], cjson.encode({raised = raised, detail = kept, by = by}))
    end
    return cjson.encode({action = action, detail = kept, since = oldest or now})`,
  apply([current], [instance, failing, detail, alertAfterMs, staleMs], nowMs) {
    const { state, answer } = reportProblem(
      current ?? null,
      { instance, failing, detail, alertAfterMs, staleMs },
      nowMs,
    );
    return {
      writes: [state === null ? null : { value: state as unknown as Json, ttlMs: null }],
      result: answer,
    };
  },
};
