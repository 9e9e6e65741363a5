/** The `users` table: everyone who talked to the bot. */
import type { Sql } from "./database.ts";

/** A user as stored. */
export interface UserRow {
  id: number;
  username: string | null;
  firstName: string;
  lastName: string | null;
  /** The language Telegram reports for the user. */
  languageCode: string | null;
  /** The language the user chose with /language, overriding `languageCode`. */
  locale: string | null;
  notifications: boolean;
  createdAt: Date;
  lastSeenAt: Date;
  /** When the bot last got 403 "blocked by the user"; `null` while reachable. */
  blockedAt: Date | null;
  /** When an admin banned the user (their updates are dropped); `null` when not banned. */
  bannedAt: Date | null;
}

/** What Telegram tells about a user in every update. */
export interface TelegramProfile {
  id: number;
  username: string | null;
  firstName: string;
  lastName: string | null;
  languageCode: string | null;
}

/** One "last seen" fact for {@link UserRepository.touch}. */
export interface Sighting {
  id: number;
  at: Date;
}

/** Queries on `users`; each method is one statement. */
export class UserRepository {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** The columns of a {@link UserRow}, as a fragment of the query that nests it. */
  #columns() {
    return this.#sql`id, username, first_name as "firstName", last_name as "lastName",
      language_code as "languageCode", locale, notifications, created_at as "createdAt",
      last_seen_at as "lastSeenAt", blocked_at as "blockedAt", banned_at as "bannedAt"`;
  }

  /** The user with `id`, or null. */
  async get(id: number): Promise<UserRow | null> {
    const [row] = await this.#sql<UserRow[]>`
      select ${this.#columns()} from users where id = ${id}`;
    return row ?? null;
  }

  /**
   * Creates the user or refreshes their Telegram profile, marks them seen and reachable, and
   * returns the stored row, in one statement.
   */
  async upsert(profile: TelegramProfile): Promise<UserRow> {
    const [row] = await this.#sql<UserRow[]>`
      insert into users (id, username, first_name, last_name, language_code)
      values (${profile.id}, ${profile.username}, ${profile.firstName}, ${profile.lastName},
        ${profile.languageCode})
      on conflict (id) do update set
        username = excluded.username,
        first_name = excluded.first_name,
        last_name = excluded.last_name,
        language_code = excluded.language_code,
        last_seen_at = now(),
        blocked_at = null
      returning ${this.#columns()}`;
    return row!;
  }

  /** Records when users were last seen, many in one statement; never moves a time back. */
  async touch(sightings: readonly Sighting[]): Promise<void> {
    if (sightings.length === 0) return;
    const latest = new Map<number, Date>();
    for (const { id, at } of sightings) {
      const known = latest.get(id);
      if (!known || known < at) latest.set(id, at);
    }
    await this.#sql`
      update users set last_seen_at = greatest(users.last_seen_at, seen.at)
      from unnest(${[...latest.keys()]}::bigint[], ${
      [...latest.values()].map((at) => at.toISOString())
    }::timestamptz[]) as seen(id, at)
      where users.id = seen.id`;
  }

  /** Sets or clears the chosen language; returns the updated row, or null when unknown. */
  async setLocale(id: number, locale: string | null): Promise<UserRow | null> {
    const [row] = await this.#sql<UserRow[]>`
      update users set locale = ${locale} where id = ${id}
      returning ${this.#columns()}`;
    return row ?? null;
  }

  /** Subscribes or unsubscribes the user; returns the updated row, or null when unknown. */
  async setNotifications(id: number, on: boolean): Promise<UserRow | null> {
    const [row] = await this.#sql<UserRow[]>`
      update users set notifications = ${on} where id = ${id}
      returning ${this.#columns()}`;
    return row ?? null;
  }

  /**
   * Marks that the user blocked the bot (Telegram answered 403), so announcements skip them;
   * returns the updated row, or null when unknown.
   */
  async markBlocked(id: number, at = new Date()): Promise<UserRow | null> {
    const [row] = await this.#sql<UserRow[]>`
      update users set blocked_at = ${at} where id = ${id}
      returning ${this.#columns()}`;
    return row ?? null;
  }

  /**
   * Bans the user: the bot ignores them from now on. Banning again keeps the first time;
   * returns the updated row, or null when unknown.
   */
  async ban(id: number, at = new Date()): Promise<UserRow | null> {
    const [row] = await this.#sql<UserRow[]>`
      update users set banned_at = coalesce(banned_at, ${at}) where id = ${id}
      returning ${this.#columns()}`;
    return row ?? null;
  }

  /** Lifts the user's ban; returns the updated row, or null when unknown. */
  async unban(id: number): Promise<UserRow | null> {
    const [row] = await this.#sql<UserRow[]>`
      update users set banned_at = null where id = ${id}
      returning ${this.#columns()}`;
    return row ?? null;
  }

  /** Ids of subscribed users who have not blocked the bot, after `afterId`, in id order. */
  async notifiable(afterId: number, limit: number): Promise<number[]> {
    const rows = await this.#sql<{ id: number }[]>`
      select id from users
      where notifications and blocked_at is null and id > ${afterId}
      order by id limit ${limit}`;
    return rows.map((row) => row.id);
  }
}
