/**
 * The `outbox` table: side effects owed because of a stored fact, delivered by a background
 * job (`jobs/outbox.ts`). An item is claimed for a while before it is delivered, so that two
 * instances never deliver it at the same time and an instance that died mid-delivery leaves it
 * to be claimed again once the claim runs out.
 */
import type { Json } from "../store/store.ts";
import type { Sql } from "./database.ts";

/** One owed side effect. */
export interface OutboxItem {
  id: number;
  /** What to do, e.g. `staff_post`. */
  kind: string;
  /** What it is about, unique per kind (e.g. the request number). */
  ref: string;
  payload: Json;
  /** Delivery attempts so far, this one included. */
  attempts: number;
  createdAt: Date;
  /** Why the previous attempt failed, or null. */
  lastError: string | null;
}

/** Undelivered items of one kind. */
export interface OutboxBacklog {
  kind: string;
  count: number;
  /** Age of the oldest, in seconds. */
  oldestSeconds: number;
  /** The newest failure among them, or null when none failed yet. */
  lastError: string | null;
}

/** Queries on the outbox; each method is one statement. */
export class OutboxRepository {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  #columns() {
    return this.#sql`o.id, o.kind, o.ref, o.payload, o.attempts, o.created_at as "createdAt",
      o.last_error as "lastError"`;
  }

  /** Queues an item unless the same kind and ref was queued before; true when it is new. */
  async enqueue(kind: string, ref: string, payload: Json = {}): Promise<boolean> {
    const rows = await this.#sql`
      insert into outbox (kind, ref, payload) values (${kind}, ${ref}, ${this.#sql.json(payload)})
      on conflict (kind, ref) do nothing
      returning id`;
    return rows.length > 0;
  }

  /**
   * Claims up to `limit` due items of `kinds` for `claimer` for `claimMs`, oldest first; nobody
   * else takes them until the claim runs out or they are completed or rescheduled.
   */
  async claim(
    kinds: readonly string[],
    limit: number,
    claimer: string,
    claimMs: number,
  ): Promise<OutboxItem[]> {
    return await this.#sql<OutboxItem[]>`
      with due as (
        select id from outbox
        where done_at is null and next_attempt_at <= now()
          and (claimed_until is null or claimed_until < now())
          and kind = any(${kinds as string[]}::text[])
        order by next_attempt_at, id
        limit ${limit}
        for update skip locked
      )
      update outbox o set
        claimed_until = now() + ${claimMs} * interval '1 millisecond',
        claimed_by = ${claimer},
        attempts = o.attempts + 1
      from due where o.id = due.id
      returning ${this.#columns()}`;
  }

  /** Marks an item delivered, with what the delivery gave back. */
  async complete(id: number, result: Json = null): Promise<void> {
    await this.#sql`
      update outbox set done_at = now(), result = ${this.#sql.json(result)},
        claimed_until = null, last_error = null
      where id = ${id}`;
  }

  /** Gives a failed item back to be tried again after `delayMs`. */
  async retry(id: number, error: string, delayMs: number): Promise<void> {
    await this.#sql`
      update outbox set claimed_until = null, last_error = ${error.slice(0, 1000)},
        next_attempt_at = now() + ${Math.round(delayMs)} * interval '1 millisecond'
      where id = ${id}`;
  }

  /** Hands claimed items back untried (a stop came before their turn). */
  async release(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#sql`
      update outbox set claimed_until = null, attempts = greatest(0, attempts - 1)
      where id = any(${ids as number[]}::bigint[]) and done_at is null`;
  }

  /** The undelivered items by kind, with the age of the oldest and the latest failure. */
  async backlog(): Promise<OutboxBacklog[]> {
    return await this.#sql<OutboxBacklog[]>`
      select kind, count(*)::int as count,
        extract(epoch from now() - min(created_at))::float8 as "oldestSeconds",
        (array_agg(last_error order by next_attempt_at desc)
          filter (where last_error is not null))[1] as "lastError"
      from outbox where done_at is null group by kind order by kind`;
  }

  /**
   * Deletes up to `limit` items delivered before `before` (with their payloads: relayed texts,
   * user ids); undelivered ones stay however old. Returns how many went.
   */
  async purgeDelivered(before: Date, limit: number): Promise<number> {
    // Delivered items are the oldest: walking the primary key finds them first.
    const result = await this.#sql`
      delete from outbox where id in (
        select id from outbox where done_at < ${before} order by id limit ${limit}
      )`;
    return result.count;
  }

  /** Refs of undelivered items of `kind`, oldest first. */
  async undelivered(kind: string, limit: number): Promise<string[]> {
    const rows = await this.#sql<{ ref: string }[]>`
      select ref from outbox where kind = ${kind} and done_at is null
      order by created_at, id limit ${limit}`;
    return rows.map((row) => row.ref);
  }
}
