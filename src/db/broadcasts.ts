/**
 * The `broadcasts` and `broadcast_recipients` tables (migration 0006): an admin's message
 * copied to every subscribed user. Recipients are added in pages of subscribed users; each is
 * claimed for a while before its message is sent and marked after, so that two instances never
 * send to the same user and an instance that died mid-send leaves that one recipient to be
 * claimed again once the claim runs out. A broadcast's end is written with its counts and the
 * owed summary (an outbox item) in one statement.
 */
import type { Sql } from "./database.ts";

/** The outbox kind of a finished broadcast's summary for its admin. */
export const BROADCAST_SUMMARY = "broadcast_summary";

/** A broadcast as stored. */
export interface BroadcastRow {
  id: number;
  adminId: number;
  chatId: number;
  locale: string;
  sourceChatId: number;
  sourceMessageId: number;
  status: "draft" | "sending" | "done" | "cancelled";
  progressMessageId: number | null;
  queuedThrough: number;
  queued: boolean;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** How many recipients are where; `total` counts them all. */
export interface BroadcastCounts {
  total: number;
  sent: number;
  failed: number;
  blocked: number;
  /** Not sent yet (pending or claimed). */
  remaining: number;
}

/** A broadcast with its counts, as `/broadcasts` lists it. */
export type BroadcastSummary = BroadcastRow & BroadcastCounts;

/** How a send to one recipient ended. */
export type RecipientOutcome = "sent" | "failed" | "blocked";

/** One claimed recipient. */
export interface ClaimedRecipient {
  userId: number;
  /** Claims so far, this one included. */
  attempts: number;
}

/** Queries on broadcasts; each method is one statement. */
export class BroadcastRepository {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  #columns() {
    return this.#sql`b.id, b.admin_id as "adminId", b.chat_id as "chatId", b.locale,
      b.source_chat_id as "sourceChatId", b.source_message_id as "sourceMessageId", b.status,
      b.progress_message_id as "progressMessageId", b.queued_through as "queuedThrough",
      b.queued, b.created_at as "createdAt", b.started_at as "startedAt",
      b.finished_at as "finishedAt"`;
  }

  /** Records a draft: `admin` wants to broadcast the message `source` from `chat`. */
  async create(
    draft: { adminId: number; chatId: number; locale: string; sourceMessageId: number },
  ): Promise<BroadcastRow> {
    const [row] = await this.#sql<BroadcastRow[]>`
      insert into broadcasts as b (admin_id, chat_id, locale, source_chat_id, source_message_id)
      values (${draft.adminId}, ${draft.chatId}, ${draft.locale}, ${draft.chatId},
        ${draft.sourceMessageId})
      returning ${this.#columns()}`;
    return row!;
  }

  /** How many users a broadcast sent now would reach (subscribed, not blocked). */
  async audience(): Promise<number> {
    const [row] = await this.#sql<{ n: number }[]>`
      select count(*)::int as n from users where notifications and blocked_at is null`;
    return row!.n;
  }

  /** Starts a draft (once): it is sent from now on. Null when it is no draft any more. */
  async start(id: number, progressMessageId: number): Promise<BroadcastRow | null> {
    const [row] = await this.#sql<BroadcastRow[]>`
      update broadcasts b set status = 'sending', started_at = now(),
        progress_message_id = ${progressMessageId}
      where id = ${id} and status = 'draft'
      returning ${this.#columns()}`;
    return row ?? null;
  }

  /** Cancels a draft or a running broadcast; the rows that changed. */
  async cancel(by: number, id?: number): Promise<BroadcastRow[]> {
    return await this.#sql<BroadcastRow[]>`
      update broadcasts b set status = 'cancelled', cancelled_by = ${by}
      where status in ('draft', 'sending') ${
      id === undefined ? this.#sql`` : this.#sql`and id = ${id}`
    }
      returning ${this.#columns()}`;
  }

  /** Broadcasts that are sending, or were cancelled while sending and not yet wound up. */
  async running(): Promise<BroadcastRow[]> {
    return await this.#sql<BroadcastRow[]>`
      select ${this.#columns()} from broadcasts b
      where status in ('sending', 'cancelled') and started_at is not null
        and finished_at is null
      order by id`;
  }

  /** The broadcast `id`, or null. */
  async get(id: number): Promise<BroadcastRow | null> {
    const [row] = await this.#sql<BroadcastRow[]>`
      select ${this.#columns()} from broadcasts b where id = ${id}`;
    return row ?? null;
  }

  /**
   * Adds `userIds` (a page of subscribed users after `queuedThrough`) as recipients and moves
   * the page mark, in one statement; `last` says it was the last page. A page added twice
   * (after a crash) adds nobody twice.
   */
  async enqueue(id: number, userIds: readonly number[], last: boolean): Promise<void> {
    const through = userIds.length === 0 ? 0 : Math.max(...userIds);
    await this.#sql`
      with added as (
        insert into broadcast_recipients (broadcast_id, user_id)
        select ${id}, unnest(${userIds as number[]}::bigint[])
        on conflict do nothing
      )
      update broadcasts set queued_through = greatest(queued_through, ${through}),
        queued = queued or ${last}
      where id = ${id}`;
  }

  /**
   * Claims the next recipient of a sending broadcast for `claimer` for `claimMs`: one never
   * tried, or one whose claim ran out (its claimer died mid-send). Null when none is left or
   * the broadcast is no longer sending.
   */
  async claim(id: number, claimer: string, claimMs: number): Promise<ClaimedRecipient | null> {
    const [row] = await this.#sql<ClaimedRecipient[]>`
      with next as (
        select r.user_id from broadcast_recipients r
        where r.broadcast_id = ${id}
          and (r.status = 'pending' or (r.status = 'claimed' and r.claimed_until < now()))
          and exists (select 1 from broadcasts b where b.id = ${id} and b.status = 'sending')
        order by r.user_id
        limit 1
        for update skip locked
      )
      update broadcast_recipients r set status = 'claimed', claimed_by = ${claimer},
        claimed_until = now() + ${claimMs} * interval '1 millisecond', attempts = r.attempts + 1
      from next where r.broadcast_id = ${id} and r.user_id = next.user_id
      returning r.user_id as "userId", r.attempts`;
    return row ?? null;
  }

  /** Keeps `claimer`'s claim on a recipient whose send takes long (a 429 pause). */
  async extendClaim(id: number, userId: number, claimer: string, claimMs: number): Promise<void> {
    await this.#sql`
      update broadcast_recipients
      set claimed_until = now() + ${claimMs} * interval '1 millisecond'
      where broadcast_id = ${id} and user_id = ${userId} and status = 'claimed'
        and claimed_by = ${claimer}`;
  }

  /**
   * Marks a claimed recipient done; false when `claimer` no longer held the claim (it ran out
   * and another instance took the recipient).
   */
  async mark(
    id: number,
    userId: number,
    claimer: string,
    outcome: { status: RecipientOutcome; messageId?: number; error?: string },
  ): Promise<boolean> {
    const rows = await this.#sql`
      update broadcast_recipients set status = ${outcome.status},
        message_id = ${outcome.messageId ?? null}, error = ${outcome.error?.slice(0, 500) ?? null},
        done_at = now(), claimed_until = null
      where broadcast_id = ${id} and user_id = ${userId} and status = 'claimed'
        and claimed_by = ${claimer}
      returning user_id`;
    return rows.length > 0;
  }

  /** Gives a claimed recipient back untried (a stop, or Telegram said "later"). */
  async release(id: number, userId: number, claimer: string, error?: string): Promise<void> {
    await this.#sql`
      update broadcast_recipients set status = 'pending', claimed_until = null,
        error = ${error?.slice(0, 500) ?? null}
      where broadcast_id = ${id} and user_id = ${userId} and status = 'claimed'
        and claimed_by = ${claimer}`;
  }

  /** The broadcast's recipients by state. */
  async counts(id: number): Promise<BroadcastCounts> {
    const [row] = await this.#sql<BroadcastCounts[]>`
      select count(*)::int as total,
        count(*) filter (where status = 'sent')::int as sent,
        count(*) filter (where status = 'failed')::int as failed,
        count(*) filter (where status = 'blocked')::int as blocked,
        count(*) filter (where status in ('pending', 'claimed'))::int as remaining
      from broadcast_recipients where broadcast_id = ${id}`;
    return row!;
  }

  /**
   * Winds a broadcast up once nothing is left to send (or it was cancelled) and no live claim
   * is out: stores its counts, marks it done (or keeps it cancelled) and owes its summary, in
   * one statement. Null when it cannot end yet, or already ended.
   */
  async finish(id: number): Promise<BroadcastRow | null> {
    const [row] = await this.#sql<BroadcastRow[]>`
      with c as (
        select count(*)::int as total,
          count(*) filter (where status = 'sent')::int as sent,
          count(*) filter (where status = 'failed')::int as failed,
          count(*) filter (where status = 'blocked')::int as blocked,
          count(*) filter (where status = 'pending' or
            (status = 'claimed' and claimed_until < now()))::int as open,
          count(*) filter (where status = 'claimed' and claimed_until >= now())::int as live
        from broadcast_recipients where broadcast_id = ${id}
      ), ended as (
        update broadcasts b set finished_at = now(),
          status = case when b.status = 'sending' then 'done' else b.status end,
          total = c.total, sent = c.sent, failed = c.failed, blocked = c.blocked
        from c
        where b.id = ${id} and b.finished_at is null and b.started_at is not null
          and c.live = 0
          and (b.status = 'cancelled' or (b.status = 'sending' and b.queued and c.open = 0))
        returning ${this.#columns()}
      ), owed as (
        insert into outbox (kind, ref) select ${BROADCAST_SUMMARY}, id::text from ended
        on conflict do nothing
      )
      select * from ended`;
    return row ?? null;
  }

  /** The newest `limit` broadcasts with their counts (stored once ended, live before). */
  async list(limit: number): Promise<BroadcastSummary[]> {
    return await this.#sql<BroadcastSummary[]>`
      select ${this.#columns()},
        coalesce(b.total, c.total, 0)::int as total, coalesce(b.sent, c.sent, 0)::int as sent,
        coalesce(b.failed, c.failed, 0)::int as failed,
        coalesce(b.blocked, c.blocked, 0)::int as blocked,
        case when b.finished_at is null then coalesce(c.remaining, 0) else 0 end::int
          as remaining
      from broadcasts b
      left join lateral (
        select count(*) as total,
          count(*) filter (where status = 'sent') as sent,
          count(*) filter (where status = 'failed') as failed,
          count(*) filter (where status = 'blocked') as blocked,
          count(*) filter (where status in ('pending', 'claimed')) as remaining
        from broadcast_recipients r where r.broadcast_id = b.id and b.finished_at is null
      ) c on true
      where b.status <> 'draft' or b.created_at > now() - interval '1 day'
      order by b.id desc limit ${limit}`;
  }

  /**
   * Deletes up to `limit` recipient rows (user ids) of broadcasts that ended before `before`;
   * their counts stay on the broadcast. Returns how many went.
   */
  async purgeRecipients(before: Date, limit: number): Promise<number> {
    const result = await this.#sql`
      delete from broadcast_recipients r using (
        select r2.broadcast_id, r2.user_id from broadcast_recipients r2
        join broadcasts b on b.id = r2.broadcast_id
        where b.finished_at < ${before}
        limit ${limit}
      ) doomed
      where r.broadcast_id = doomed.broadcast_id and r.user_id = doomed.user_id`;
    return result.count;
  }
}
