/**
 * The `request_messages` table: a request's conversation. Every message relayed between the
 * user and staff is stored here together with the outbox item that delivers it (one
 * statement, so a crash never loses or repeats one), as are staff's internal notes and the
 * message ids on both sides, through which a reply finds its request.
 */
import type { Json } from "../store/store.ts";
import type { Sql } from "./database.ts";

/** Who a message went from and to. */
export type Direction = "in" | "out" | "note" | "notice";

/** One message of a conversation. */
export interface ConversationMessage {
  id: number;
  requestNumber: number;
  direction: Direction;
  authorId: number | null;
  /** The text, or a file's caption. */
  text: string | null;
  /** `photo`, `document`, `video`, `voice`, … for a file. */
  fileKind: string | null;
  fileId: string | null;
  mediaGroupId: string | null;
  /** The message in the user's private chat (theirs for `in`, the bot's copy otherwise). */
  userMessageId: number | null;
  /** The message in the staff chat (staff's own for `out`/`note`, the bot's copy for `in`). */
  staffMessageId: number | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

/** What a new message says; the side it was written on gives its message id. */
export interface NewMessage {
  requestNumber: number;
  authorId: number;
  text: string | null;
  fileKind?: string | null;
  fileId?: string | null;
  mediaGroupId?: string | null;
  /** The original's id in the chat it was written in. */
  messageId: number;
}

/** The outbox kind that delivers a user's message to staff. */
export const RELAY_TO_STAFF = "relay_to_staff";
/** The outbox kind that delivers staff's message to the user. */
export const RELAY_TO_USER = "relay_to_user";

/** Queries on a request's conversation. */
export class RequestMessages {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  #columns() {
    return this.#sql`id, request_number as "requestNumber", direction, author_id as "authorId",
      text, file_kind as "fileKind", file_id as "fileId", media_group_id as "mediaGroupId",
      user_message_id as "userMessageId", staff_message_id as "staffMessageId",
      created_at as "createdAt", delivered_at as "deliveredAt"`;
  }

  /**
   * Stores a message and owes its delivery (outbox kind `kind`), in one statement. `side` says
   * where the original was written: `user` (it goes to staff) or `staff` (it goes to the user).
   * A message stored before (the same update handled again) is not stored twice. `payload`
   * travels with the delivery (the original's formatting).
   */
  async relay(
    message: NewMessage,
    side: "user" | "staff",
    payload: Json = {},
  ): Promise<ConversationMessage> {
    const direction = side === "user" ? "in" : "out";
    const kind = side === "user" ? RELAY_TO_STAFF : RELAY_TO_USER;
    const userMessageId = side === "user" ? message.messageId : null;
    const staffMessageId = side === "staff" ? message.messageId : null;
    const [row] = await this.#sql<ConversationMessage[]>`
      with existing as (
        select ${this.#columns()} from request_messages
        where request_number = ${message.requestNumber} and direction = ${direction}
          and ${side === "user" ? this.#sql`user_message_id` : this.#sql`staff_message_id`}
            = ${message.messageId}
      ), added as (
        insert into request_messages (request_number, direction, author_id, text, file_kind,
          file_id, media_group_id, user_message_id, staff_message_id)
        select ${message.requestNumber}, ${direction}, ${message.authorId}, ${message.text},
          ${message.fileKind ?? null}, ${message.fileId ?? null}, ${message.mediaGroupId ?? null},
          ${userMessageId}, ${staffMessageId}
        where not exists (select from existing)
        returning ${this.#columns()}
      ), owed as (
        insert into outbox (kind, ref, payload) select ${kind}, id::text, ${this.#sql.json(payload)}
        from added
        on conflict (kind, ref) do nothing
      )
      select * from added union all select * from existing`;
    return row!;
  }

  /** Stores staff's internal note: shown to staff, never sent to the user. */
  async note(message: NewMessage): Promise<ConversationMessage> {
    const [row] = await this.#sql<ConversationMessage[]>`
      insert into request_messages (request_number, direction, author_id, text, file_kind,
        file_id, media_group_id, staff_message_id, delivered_at)
      values (${message.requestNumber}, 'note', ${message.authorId}, ${message.text},
        ${message.fileKind ?? null}, ${message.fileId ?? null}, ${message.mediaGroupId ?? null},
        ${message.messageId}, now())
      returning ${this.#columns()}`;
    return row!;
  }

  /** Remembers a message the bot sent the user about the request, so replies to it find it. */
  async notice(requestNumber: number, text: string, userMessageId: number): Promise<void> {
    await this.#sql`
      insert into request_messages (request_number, direction, text, user_message_id,
        delivered_at)
      values (${requestNumber}, 'notice', ${text}, ${userMessageId}, now())`;
  }

  /** The message with `id`, or null. */
  async get(id: number): Promise<ConversationMessage | null> {
    const [row] = await this.#sql<ConversationMessage[]>`
      select ${this.#columns()} from request_messages where id = ${id}`;
    return row ?? null;
  }

  /** Records a delivery: the copy's message id on the other side. */
  async delivered(
    id: number,
    copy: { userMessageId?: number; staffMessageId?: number },
  ): Promise<void> {
    await this.#sql`
      update request_messages set delivered_at = now(),
        user_message_id = coalesce(${copy.userMessageId ?? null}::bigint, user_message_id),
        staff_message_id = coalesce(${copy.staffMessageId ?? null}::bigint, staff_message_id)
      where id = ${id}`;
  }

  /** The request of `userId` that the bot's (or their own) message `messageId` belongs to. */
  async requestOfUserMessage(userId: number, messageId: number): Promise<number | null> {
    const [row] = await this.#sql<{ number: number }[]>`
      select m.request_number as number from request_messages m
      join requests r on r.number = m.request_number
      where m.user_message_id = ${messageId} and r.user_id = ${userId}
      order by m.id desc limit 1`;
    return row?.number ?? null;
  }

  /** The request a staff chat message belongs to: its post, or a message relayed for it. */
  async requestOfStaffMessage(messageId: number): Promise<number | null> {
    const [row] = await this.#sql<{ number: number }[]>`
      select number from requests where staff_message_id = ${messageId}
      union all
      select request_number from request_messages where staff_message_id = ${messageId}
      limit 1`;
    return row?.number ?? null;
  }

  /** The request whose forum topic is `threadId`. */
  async requestOfThread(threadId: number): Promise<number | null> {
    const [row] = await this.#sql<{ number: number }[]>`
      select number from requests where staff_thread_id = ${threadId} limit 1`;
    return row?.number ?? null;
  }

  /** A page of the conversation, newest first, with the total. */
  async page(
    requestNumber: number,
    limit: number,
    offset: number,
    withNotes: boolean,
  ): Promise<{ items: ConversationMessage[]; total: number }> {
    const rows = await this.#sql<(ConversationMessage & { total: number })[]>`
      select ${this.#columns()}, count(*) over () as total from request_messages
      where request_number = ${requestNumber}
        and direction in ${this.#sql(withNotes ? ["in", "out", "note"] : ["in", "out"])}
      order by id desc limit ${limit} offset ${offset}`;
    return { items: rows.map(({ total: _, ...row }) => row), total: rows[0]?.total ?? 0 };
  }

  /** The files sent with the request when it was filed, oldest first. */
  async attachments(requestNumber: number): Promise<ConversationMessage[]> {
    return await this.#sql<ConversationMessage[]>`
      select ${this.#columns()} from request_messages m
      where request_number = ${requestNumber} and direction = 'in' and file_id is not null
        -- Filed in the same statement as the request: the same transaction time.
        and created_at = (select created_at from requests where number = ${requestNumber})
      order by id`;
  }

  /** Owes the user of a request a notice (outbox kind `kind`, unique `ref`). */
  async owe(kind: string, ref: string, payload: Json = {}): Promise<void> {
    await this.#sql`
      insert into outbox (kind, ref, payload) values (${kind}, ${ref}, ${this.#sql.json(payload)})
      on conflict (kind, ref) do nothing`;
  }
}
