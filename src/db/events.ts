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
 * Inserts a batch of events in one statement. The batch travels as ONE JSON parameter made by
 * one `JSON.stringify` (sent as text, so that postgres.js does not encode it again): as eight
 * array parameters, postgres.js escaped every element on its own, which was 60 % of the
 * program's Postgres time per update under load.
 */
export async function insertEvents(sql: Sql, events: readonly EventRecord[]): Promise<void> {
  if (events.length === 0) return;
  await sql`
    insert into events (update_id, user_id, chat_id, type, command, outcome, duration_ms, at)
    select "updateId", "userId", "chatId", type, command, outcome, "durationMs", at
    from json_to_recordset(${JSON.stringify(events)}::text::json) as e(
      "updateId" bigint, "userId" bigint, "chatId" bigint, type text, command text,
      outcome text, "durationMs" real, at timestamptz
    )`;
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
