/** The `requests` and `request_history` tables: service requests and who changed them. */
import { DatabaseError } from "../errors.ts";
import type { Sql } from "./database.ts";

/** Where a request stands. */
export type RequestStatus = "new" | "in_progress" | "done" | "cancelled" | "rejected";

/** A service request as stored. */
export interface RequestRow {
  number: number;
  userId: number;
  category: string;
  description: string;
  contact: string;
  status: RequestStatus;
  assigneeId: number | null;
  createdAt: Date;
  updatedAt: Date;
  closedAt: Date | null;
  /** The staff chat's post about the request, once delivered. */
  staffMessageId: number | null;
  /** Its forum topic in the staff chat, when that chat is a forum. */
  staffThreadId: number | null;
  /** When staff first took it. */
  takenAt: Date | null;
  /** Why it was rejected (the last time). */
  rejectReason: string | null;
  /** The author's rating of the work, 1–5, once done. */
  rating: number | null;
  ratingComment: string | null;
  /** Reminders sent to the staff chat while nobody took it. */
  remindersSent: number;
}

/** A file sent with a request when it was filed. */
export interface Attachment {
  /** `photo`, `document`, `video`, `voice`, `audio`, … */
  kind: string;
  fileId: string;
  /** The album it came in, if any. */
  mediaGroupId?: string | null;
  /** The user's message in their chat. */
  messageId?: number | null;
  caption?: string | null;
}

/** One change of a request. */
export interface HistoryRow {
  actorId: number;
  action: string;
  fromStatus: RequestStatus | null;
  toStatus: RequestStatus | null;
  at: Date;
}

/** What a user files. */
export interface NewRequest {
  userId: number;
  category: string;
  description: string;
  contact: string;
}

/** A request filed from a draft (the /new form), identified by the draft's UUID. */
export interface DraftRequest extends NewRequest {
  /** Random UUID made when the form was opened; filing the same draft again files nothing. */
  draftId: string;
  /** Files sent with it; stored as the first messages of its conversation. @default [] */
  attachments?: readonly Attachment[];
}

/** What {@link RequestRepository.createOnce} did. */
export interface CreatedOnce {
  /** The request filed from the draft (now or earlier). */
  request: RequestRow;
  /** False when the draft had been filed before and `request` is that earlier request. */
  created: boolean;
}

/** One page of a user's requests. */
export interface RequestPage {
  items: RequestRow[];
  /** How many requests the user has in all. */
  total: number;
}

/** The columns of a {@link RequestRow}, as a fragment of a query on `requests`. */
export function requestColumns(sql: Sql) {
  return sql`number, user_id as "userId", category, description, contact, status,
    assignee_id as "assigneeId", created_at as "createdAt", updated_at as "updatedAt",
    closed_at as "closedAt", staff_message_id as "staffMessageId",
    staff_thread_id as "staffThreadId", taken_at as "takenAt", reject_reason as "rejectReason",
    rating, rating_comment as "ratingComment", reminders_sent as "remindersSent"`;
}

/** The outbox kind of a new request's post to the staff chat (written with the request). */
export const STAFF_POST = "staff_post";

/** Which status changes are allowed, so a late or repeated button press cannot undo work. */
const TRANSITIONS: Record<RequestStatus, RequestStatus[]> = {
  new: ["in_progress", "done", "cancelled"],
  in_progress: ["done", "cancelled"],
  done: [],
  cancelled: [],
  rejected: [],
};

/** Queries on requests; every method is one statement (no N+1). */
export class RequestRepository {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  #columns() {
    return requestColumns(this.#sql);
  }

  /**
   * Files a request, writes its "created" history entry and owes its staff post (an outbox
   * item), in one statement.
   */
  async create(request: NewRequest): Promise<RequestRow> {
    const [row] = await this.#sql<RequestRow[]>`
      with created as (
        insert into requests (user_id, category, description, contact)
        values (${request.userId}, ${request.category}, ${request.description},
          ${request.contact})
        returning *
      ), history as (
        insert into request_history (request_number, actor_id, action, to_status)
        select number, user_id, 'created', status from created
      ), announce as (
        insert into outbox (kind, ref) select ${STAFF_POST}, number::text from created
        on conflict (kind, ref) do nothing
      )
      select ${this.#columns()} from created`;
    return row!;
  }

  /**
   * Files the request unless its draft was filed before, and writes the "created" history
   * entry and the staff post's outbox item only for a new one. Confirming a draft twice (a double tap, an update delivered
   * again, two instances at once) therefore files exactly one request; the repeat gets the
   * earlier request back with `created: false`.
   */
  async createOnce(request: DraftRequest): Promise<CreatedOnce> {
    const [row] = await this.#sql<(RequestRow & { created: boolean })[]>`
      with created as (
        insert into requests (user_id, category, description, contact, draft_id)
        values (${request.userId}, ${request.category}, ${request.description},
          ${request.contact}, ${request.draftId})
        on conflict (draft_id) do nothing
        returning *
      ), history as (
        insert into request_history (request_number, actor_id, action, to_status)
        select number, user_id, 'created', status from created
      ), announce as (
        insert into outbox (kind, ref) select ${STAFF_POST}, number::text from created
        on conflict (kind, ref) do nothing
      ), files as (
        insert into request_messages (request_number, direction, author_id, text, file_kind,
          file_id, media_group_id, user_message_id)
        select created.number, 'in', created.user_id, f.caption, f.kind, f."fileId",
          f."mediaGroupId", f."messageId"
        from created, jsonb_to_recordset(${this.#sql.json(attachments(request) as never)}) as
          f(kind text, "fileId" text, "mediaGroupId" text, "messageId" bigint, caption text)
      )
      select ${this.#columns()}, true as created from created
      union all
      select ${this.#columns()}, false as created from requests
      where draft_id = ${request.draftId} and not exists (select from created)`;
    if (row) {
      const { created, ...stored } = row;
      return { request: stored, created };
    }
    // A concurrent filing of the same draft committed after this statement's snapshot was
    // taken: the conflict skipped the insert, but only a new statement can see that row.
    const [earlier] = await this.#sql<RequestRow[]>`
      select ${this.#columns()} from requests where draft_id = ${request.draftId}`;
    if (!earlier) {
      throw new DatabaseError(`request draft ${request.draftId} was neither filed nor found`);
    }
    return { request: earlier, created: false };
  }

  /** The request with `number`, or null. */
  async get(number: number): Promise<RequestRow | null> {
    const [row] = await this.#sql<RequestRow[]>`
      select ${this.#columns()} from requests where number = ${number}`;
    return row ?? null;
  }

  /** A page of the user's requests, newest first, with their total, in one query. */
  async listByUser(userId: number, limit: number, offset = 0): Promise<RequestPage> {
    const rows = await this.#sql<(RequestRow & { total: number })[]>`
      select ${this.#columns()}, count(*) over () as total
      from requests where user_id = ${userId}
      order by number desc limit ${limit} offset ${offset}`;
    if (rows.length === 0 && offset > 0) {
      const [count] = await this.#sql<{ total: number }[]>`
        select count(*) as total from requests where user_id = ${userId}`;
      return { items: [], total: count?.total ?? 0 };
    }
    return {
      items: rows.map(({ total: _, ...row }) => row),
      total: rows[0]?.total ?? 0,
    };
  }

  /** Requests of the user that are not closed, newest first. */
  async openByUser(userId: number): Promise<RequestRow[]> {
    return await this.#sql<RequestRow[]>`
      select ${this.#columns()} from requests
      where user_id = ${userId} and status in ('new', 'in_progress')
      order by number desc`;
  }

  /** Open requests in `status`, oldest first (the staff queue). */
  async listOpen(status: "new" | "in_progress", limit: number): Promise<RequestRow[]> {
    return await this.#sql<RequestRow[]>`
      select ${this.#columns()} from requests
      where status = ${status} order by created_at limit ${limit}`;
  }

  /** Remembers the staff chat's post about the request. */
  async setStaffMessage(number: number, messageId: number): Promise<void> {
    await this.#sql`update requests set staff_message_id = ${messageId} where number = ${number}`;
  }

  /** Remembers the request's forum topic in the staff chat. */
  async setStaffThread(number: number, threadId: number): Promise<void> {
    await this.#sql`update requests set staff_thread_id = ${threadId} where number = ${number}`;
  }

  /** The request's history, oldest first. */
  async history(number: number): Promise<HistoryRow[]> {
    return await this.#sql<HistoryRow[]>`
      select actor_id as "actorId", action, from_status as "fromStatus",
        to_status as "toStatus", at
      from request_history where request_number = ${number} order by at, id`;
  }

  /**
   * Moves the request to `status` on behalf of `actorId` and records it in the history, in
   * one statement. Returns the updated request, or null when the change is not allowed from
   * where the request stands now (already taken, already closed, unknown number).
   */
  async changeStatus(
    number: number,
    status: RequestStatus,
    actorId: number,
    action: string,
  ): Promise<RequestRow | null> {
    const from = (Object.keys(TRANSITIONS) as RequestStatus[])
      .filter((s) => TRANSITIONS[s].includes(status));
    const closes = status === "done" || status === "cancelled";
    const [row] = await this.#sql<RequestRow[]>`
      with before as (
        select number, status from requests
        where number = ${number} and status = any(${from}::text[])
        for update
      ), changed as (
        update requests r set
          status = ${status},
          assignee_id = case when ${status} = 'in_progress' then ${actorId}::bigint
            else r.assignee_id end,
          updated_at = now(),
          closed_at = case when ${closes} then now() else null end
        from before where r.number = before.number
        returning r.*, before.status as from_status
      ), history as (
        insert into request_history (request_number, actor_id, action, from_status, to_status)
        select number, ${actorId}, ${action}, from_status, status from changed
      )
      select ${this.#columns()} from changed`;
    return row ?? null;
  }
}

/** The draft's attachments as the JSON the filing statement reads. */
function attachments(request: DraftRequest): Record<string, unknown>[] {
  return (request.attachments ?? []).map((a) => ({
    kind: a.kind,
    fileId: a.fileId,
    mediaGroupId: a.mediaGroupId ?? null,
    messageId: a.messageId ?? null,
    caption: a.caption ?? null,
  }));
}
