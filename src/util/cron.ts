/**
 * 5-field cron expressions in UTC (`minute hour day-of-month month day-of-week`, each `*`, a
 * number, a range `a-b`, a list `a,b`, and steps `*\/n` or `a-b/n`; day-of-week 0 or 7 is
 * Sunday; when both day fields are restricted a day matching either runs, as in Vixie cron).
 * Pure: parsing and the next matching minute.
 */

/** A parsed cron expression: the allowed values of each field. */
export interface CronSpec {
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  days: ReadonlySet<number>;
  months: ReadonlySet<number>;
  weekdays: ReadonlySet<number>;
  /** Whether day-of-month and day-of-week were both restricted (either may match). */
  eitherDay: boolean;
}

const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12 },
  { name: "day of week", min: 0, max: 7 },
] as const;

/** Parses a cron expression; throws a RangeError naming the bad field. */
export function parseCron(expression: string): CronSpec {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new RangeError(`a cron expression has 5 fields, got ${parts.length}: "${expression}"`);
  }
  const sets = parts.map((part, i) => parseField(part, FIELDS[i]!));
  const weekdays = new Set([...sets[4]!].map((d) => d % 7));
  return {
    minutes: sets[0]!,
    hours: sets[1]!,
    days: sets[2]!,
    months: sets[3]!,
    weekdays,
    eitherDay: parts[2] !== "*" && parts[4] !== "*",
  };
}

function parseField(
  text: string,
  field: { name: string; min: number; max: number },
): Set<number> {
  const values = new Set<number>();
  const bad = () =>
    new RangeError(
      `bad cron ${field.name} "${text}": use *, a number from ${field.min} to ${field.max}, ` +
        `a range a-b, a list a,b or a step */n`,
    );
  for (const item of text.split(",")) {
    const match = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(item);
    if (!match) throw bad();
    const from = match[1] === "*" ? field.min : Number(match[2]);
    const to = match[1] === "*"
      ? field.max
      : match[3] !== undefined
      ? Number(match[3])
      : match[4] !== undefined
      ? field.max
      : from;
    const step = match[4] === undefined ? 1 : Number(match[4]);
    if (from < field.min || to > field.max || from > to || step < 1) throw bad();
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return values;
}

/** Whether `date` (UTC) matches `spec` to the minute. */
export function cronMatches(spec: CronSpec, date: Date): boolean {
  if (!spec.minutes.has(date.getUTCMinutes()) || !spec.hours.has(date.getUTCHours())) {
    return false;
  }
  if (!spec.months.has(date.getUTCMonth() + 1)) return false;
  const day = spec.days.has(date.getUTCDate());
  const weekday = spec.weekdays.has(date.getUTCDay());
  return spec.eitherDay ? day || weekday : day && weekday;
}

/** The first minute strictly after `afterMs` that matches `spec`, in ms since epoch. */
export function nextCronTime(spec: CronSpec, afterMs: number): number {
  const date = new Date(Math.floor(afterMs / 60_000) * 60_000 + 60_000);
  // Five years of minutes is far more than any valid expression needs (Feb 29 on a Monday).
  for (let i = 0; i < 5 * 366 * 24 * 60; i++) {
    if (!spec.months.has(date.getUTCMonth() + 1)) {
      date.setUTCMonth(date.getUTCMonth() + 1, 1);
      date.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (cronMatches(spec, date)) return date.getTime();
    date.setUTCMinutes(date.getUTCMinutes() + 1);
  }
  throw new RangeError("the cron expression never matches");
}

/**
 * The latest minute at or before `atMs` that matches `spec`, looking back at most
 * `lookbackMs`; null when none does.
 */
export function previousCronTime(spec: CronSpec, atMs: number, lookbackMs: number): number | null {
  const date = new Date(Math.floor(atMs / 60_000) * 60_000);
  const oldest = atMs - lookbackMs;
  while (date.getTime() >= oldest) {
    if (cronMatches(spec, date)) return date.getTime();
    date.setUTCMinutes(date.getUTCMinutes() - 1);
  }
  return null;
}
