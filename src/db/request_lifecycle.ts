/**
 * What staff and users do with a request after it was filed: take, release, close, reopen,
 * reject (each allowed only from where it makes sense, so a late or repeated button press
 * changes nothing), the user's rating, the staff queue and search, and the reminders about
 * requests nobody took. Each action is one statement that also records the history and owes
 * the user their notification (an outbox item), so nothing is announced that did not happen
 * and nothing that happened goes unannounced.
 */
import type { Sql } from "./database.ts";
import { requestColumns, type RequestRow, type RequestStatus } from "./requests.ts";

/** What staff can do with a request. */
export type StaffAction = "take" | "release" | "done" | "reopen" | "reject";

/** Each action: where it may start, where it leads, and its name in the history. */
export const ACTIONS: Record<
  StaffAction,
  { from: RequestStatus[]; to: RequestStatus; history: string }
> = {
  take: { from: ["new"], to: "in_progress", history: "taken" },
  release: { from: ["in_progress"], to: "new", history: "released" },
  done: { from: ["new", "in_progress"], to: "done", history: "closed" },
  reopen: { from: ["done", "rejected"], to: "in_progress", history: "reopened" },
  reject: { from: ["new", "in_progress"], to: "rejected", history: "rejected" },
};

/** The outbox kind of a notification to the request's author. */
export const NOTIFY_USER = "notify_user";
/** The outbox kind of a notice in the request's thread in the staff chat. */
export const STAFF_NOTICE = "staff_notice";
/** The outbox kind of a private message to one admin. */
export const ADMIN_NOTICE = "admin_notice";

/** An applied action: the request now, and where it came from. */
export interface Applied {
  request: RequestRow & { createdAt: Date };
  from: RequestStatus;
  /** When it was first taken before this action (null: never), for the time-to-take metric. */
  wasTakenAt: Date | null;
}

/** The numbers `/stats` shows about requests. */
export interface RequestFigures {
  byStatus: { status: string; count: number }[];
  averageRating: number | null;
  ratings: number;
  medianTakeSeconds: number | null;
  medianCloseSeconds: number | null;
}

/** Queries on requests' lifecycle; each method is one statement. */
export class RequestLifecycle {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /**
   * Applies `action` by `actorId` to request `number` if it stands where the action may start;
   * null otherwise (already taken, closed, unknown…). Records the history and owes the author
   * their notification.
   */
  async act(
    number: number,
    action: StaffAction,
    actorId: number,
    reason: string | null = null,
  ): Promise<Applied | null> {
    const { from, to, history } = ACTIONS[action];
    const closes = to === "done" || to === "rejected" || to === "cancelled";
    const [row] = await this.#sql<
      (RequestRow & { fromStatus: RequestStatus; wasTakenAt: Date | null })[]
    >`
      with before as (
        select number, status, taken_at from requests
        where number = ${number} and status = any(${from}::text[])
        for update
      ), changed as (
        update requests r set
          status = ${to},
          assignee_id = case when ${to} = 'in_progress' then ${actorId}::bigint
            when ${to} = 'new' then null else r.assignee_id end,
          taken_at = case when ${to} = 'in_progress' then coalesce(r.taken_at, now())
            else r.taken_at end,
          reject_reason = case when ${to} = 'rejected' then ${reason} else r.reject_reason end,
          -- Back in the queue: the reminders start over.
          reminders_sent = case when ${to} = 'new' then 0 else r.reminders_sent end,
          updated_at = now(),
          closed_at = case when ${closes} then now() else null end
        from before where r.number = before.number
        returning r.*, before.status as from_status, before.taken_at as was_taken_at
      ), logged as (
        insert into request_history (request_number, actor_id, action, from_status, to_status)
        select number, ${actorId}, ${history}, from_status, status from changed
        returning id, request_number
      ), owed as (
        insert into outbox (kind, ref, payload)
        select ${NOTIFY_USER}, request_number || ':' || id, jsonb_build_object('action', ${action}::text)
        from logged
      )
      select ${requestColumns(this.#sql)}, from_status as "fromStatus", was_taken_at as "wasTakenAt"
      from changed`;
    if (!row) return null;
    const { fromStatus, wasTakenAt, ...request } = row;
    return { request, from: fromStatus, wasTakenAt };
  }

  /** Stores the author's rating (1–5) of a done request; false when it is not theirs or not done. */
  async rate(number: number, userId: number, stars: number): Promise<boolean> {
    const rows = await this.#sql`
      update requests set rating = ${stars}, rated_at = now()
      where number = ${number} and user_id = ${userId} and status = 'done'
      returning number`;
    return rows.length > 0;
  }

  /** Stores the comment on a rating. */
  async comment(number: number, userId: number, comment: string): Promise<boolean> {
    const rows = await this.#sql`
      update requests set rating_comment = ${comment}
      where number = ${number} and user_id = ${userId} and rating is not null
      returning number`;
    return rows.length > 0;
  }

  /** A page of the open requests: new ones first, then those in progress, oldest first. */
  async queue(limit: number, offset: number): Promise<{ items: RequestRow[]; total: number }> {
    const rows = await this.#sql<(RequestRow & { total: number })[]>`
      select ${requestColumns(this.#sql)}, count(*) over () as total from requests
      where status in ('new', 'in_progress')
      order by status = 'new' desc, created_at, number
      limit ${limit} offset ${offset}`;
    return { items: rows.map(({ total: _, ...row }) => row), total: rows[0]?.total ?? 0 };
  }

  /**
   * Requests matching `query`: `#12` (a number), `@name` (a user's), digits (a user id), or
   * words (in the description or the category); newest first, at most `limit`.
   */
  async find(query: string, limit: number): Promise<RequestRow[]> {
    const q = query.trim();
    const columns = requestColumns(this.#sql);
    let where;
    if (/^#\d{1,15}$/.test(q)) where = this.#sql`number = ${Number(q.slice(1))}`;
    else if (/^\d{1,16}$/.test(q)) where = this.#sql`user_id = ${Number(q)}`;
    else if (/^@\w{1,64}$/.test(q)) {
      where = this.#sql`user_id in (select id from users where lower(username) = ${
        q.slice(1).toLowerCase()
      })`;
    } else {
      const words = q.split(/\s+/).filter((w) => w.length > 0).slice(0, 5)
        .map((w) => `%${w.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      if (words.length === 0) return [];
      where = this
        .#sql`(description ilike all(${words}::text[]) or category ilike all(${words}::text[]))`;
    }
    return [
      ...await this.#sql<RequestRow[]>`
        select ${columns} from requests where ${where} order by number desc limit ${limit}`,
    ];
  }

  /**
   * New requests that waited `slaMinutes` more since their last reminder (or filing): each is
   * counted as reminded, and its reminder in the staff chat owed (and, at the third, a note to
   * every admin), in one statement per request so two instances never remind twice.
   */
  async remindDue(
    slaMinutes: number,
    adminIds: readonly number[],
  ): Promise<{ number: number; reminders: number }[]> {
    const rows = await this.#sql<{ number: number; reminders: number }[]>`
      with due as (
        select number from requests
        where status = 'new'
          and created_at <= now() - (reminders_sent + 1) * ${slaMinutes} * interval '1 minute'
        for update skip locked
      ), counted as (
        update requests r set reminders_sent = r.reminders_sent + 1
        from due where r.number = due.number
        returning r.number, r.reminders_sent as reminders
      ), to_staff as (
        insert into outbox (kind, ref, payload)
        select ${STAFF_NOTICE}, 'reminder:' || number || ':' || reminders,
          jsonb_build_object('notice', 'reminder', 'number', number, 'reminders', reminders)
        from counted
        on conflict (kind, ref) do nothing
      ), to_admins as (
        insert into outbox (kind, ref, payload)
        select ${ADMIN_NOTICE}, 'untaken:' || number || ':' || admin,
          jsonb_build_object('notice', 'untaken', 'number', number, 'admin', admin,
            'minutes', ${slaMinutes} * reminders)
        from counted, unnest(${adminIds as number[]}::bigint[]) as admin
        where reminders = 3
        on conflict (kind, ref) do nothing
      )
      select number, reminders from counted order by number`;
    return rows.map(({ number, reminders }) => ({ number, reminders }));
  }

  /** Open requests by status, and the age of the oldest new one (seconds; 0 when none). */
  async openCounts(): Promise<{ new: number; inProgress: number; oldestNewSeconds: number }> {
    const [row] = await this.#sql<{ new: number; inProgress: number; oldestNewSeconds: number }[]>`
      select (count(*) filter (where status = 'new'))::int as new,
        (count(*) filter (where status = 'in_progress'))::int as "inProgress",
        coalesce(extract(epoch from now() - min(created_at) filter (where status = 'new')), 0)
          ::float8 as "oldestNewSeconds"
      from requests where status in ('new', 'in_progress')`;
    return row!;
  }

  /** The numbers `/stats` shows about requests: by status, ratings, median times. */
  async figures(): Promise<RequestFigures> {
    const byStatus = await this.#sql<{ status: string; count: number }[]>`
      select status, count(*)::int as count from requests group by status order by status`;
    const [row] = await this.#sql<Omit<RequestFigures, "byStatus">[]>`
      select avg(rating)::float8 as "averageRating", count(rating)::int as ratings,
        extract(epoch from percentile_cont(0.5) within group (order by taken_at - created_at)
          filter (where taken_at is not null))::float8 as "medianTakeSeconds",
        extract(epoch from percentile_cont(0.5) within group (order by closed_at - created_at)
          filter (where status = 'done' and closed_at is not null))::float8 as "medianCloseSeconds"
      from requests`;
    return { byStatus: [...byStatus], ...row! };
  }
}
