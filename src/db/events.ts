/** The `events` table: one row per handled update, written in batches in the background. */
import type { Sql } from "./database.ts";

/** One handled update. */
export interface EventRecord {
  updateId: number;
  userId: number | null;
  chatId: number | null;
  /** The update type, e.g. `message` or `callback_query`. */
  type: string;
  /** The bot command, e.g. `/start`, when the update was one. */
  command: string | null;
  /** `handled`, `error`, `dropped`, … as in the per-update log line. */
  outcome: string;
  durationMs: number;
  at: Date;
}

/**
 * Inserts a batch of events in one statement. Each column travels as one array literal made
 * here and sent as text: given arrays, postgres.js serialized and escaped every element on its
 * own, which was 60 % of the program's Postgres time per update under load (one JSON parameter
 * instead cost as little here but slowed the embedded database's side by about 15 %).
 */
export async function insertEvents(sql: Sql, events: readonly EventRecord[]): Promise<void> {
  if (events.length === 0) return;
  const column = (pick: (event: EventRecord) => string | number | null) =>
    `{${events.map((event) => element(pick(event))).join(",")}}`;
  await sql`
    insert into events (update_id, user_id, chat_id, type, command, outcome, duration_ms, at)
    select * from unnest(
      ${column((e) => e.updateId)}::text::bigint[],
      ${column((e) => e.userId)}::text::bigint[],
      ${column((e) => e.chatId)}::text::bigint[],
      ${column((e) => e.type)}::text::text[],
      ${column((e) => e.command)}::text::text[],
      ${column((e) => e.outcome)}::text::text[],
      ${column((e) => e.durationMs)}::text::real[],
      ${
    column((e) => Number.isNaN(e.at.getTime()) ? null : e.at.toISOString())
  }::text::timestamptz[]
    )`;
}

/**
 * One element of an array literal: a number as JavaScript writes it (Postgres reads NaN,
 * Infinity and exponents alike), text in double quotes with `"` and `\` escaped, null as NULL.
 * What Postgres refuses (a NUL, a fraction for a bigint) fails the statement as a data error.
 */
function element(value: string | number | null): string {
  if (value === null) return "NULL";
  if (typeof value === "number") return String(value);
  return `"${value.replace(/["\\]/g, "\\$&")}"`;
}

/**
 * Deletes up to `limit` events older than `before`, oldest first, in one short statement (the
 * retention job calls it until nothing is left, so no lock is held for long); returns how
 * many went.
 */
export async function deleteEventsBefore(sql: Sql, before: Date, limit: number): Promise<number> {
  const result = await sql`
    delete from events where id in (
      select id from events where at < ${before} order by at limit ${limit}
    )`;
  return result.count;
}
