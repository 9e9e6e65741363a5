/**
 * User profiles through the key-value store: a returning user's profile comes from the cache,
 * so the hot path sends no query to Postgres. A miss, or a changed Telegram profile, costs
 * one upsert; every change made through here rewrites the cached copy.
 *
 * Outage policy: when the store is unreachable the profile comes from Postgres (counted as
 * `error`); when Postgres is unreachable too, the lookup fails and the caller decides.
 */
import type { Counter } from "../metrics/prometheus.ts";
import type { TelegramProfile, UserRepository, UserRow } from "../db/users.ts";
import { NAMESPACES } from "./namespaces.ts";
import type { Json, KeyValueStore, StoreKey } from "./store.ts";

/** Options of {@link UserCache}. */
export interface UserCacheOptions {
  store: KeyValueStore;
  users: UserRepository;
  /** How long a cached profile is trusted, in milliseconds. */
  ttlMs: number;
  /** Lookups by result (`hit`, `miss`, `error`). */
  metrics?: { userCache: Counter<"result"> };
}

const DATE_FIELDS = ["createdAt", "lastSeenAt", "blockedAt", "bannedAt"] as const;

function toJson(row: UserRow): Json {
  return {
    ...row,
    createdAt: row.createdAt.toISOString(),
    lastSeenAt: row.lastSeenAt.toISOString(),
    blockedAt: row.blockedAt?.toISOString() ?? null,
    bannedAt: row.bannedAt?.toISOString() ?? null,
  };
}

function fromJson(value: Json): UserRow | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const row = { ...value } as Record<string, unknown>;
  // A copy written before bans existed says nothing about a ban: read the database instead.
  if (typeof row.id !== "number" || !("bannedAt" in row)) return null;
  for (const field of DATE_FIELDS) {
    if (typeof row[field] === "string") row[field] = new Date(row[field] as string);
  }
  return row as unknown as UserRow;
}

/** Whether Telegram's view of the user still matches what is stored. */
function matches(row: UserRow, profile: TelegramProfile): boolean {
  return row.username === profile.username && row.firstName === profile.firstName &&
    row.lastName === profile.lastName && row.languageCode === profile.languageCode &&
    row.blockedAt === null;
}

/** Cached access to user profiles. */
export class UserCache {
  readonly #store: KeyValueStore;
  readonly #users: UserRepository;
  readonly #ttlMs: number;
  readonly #metrics: UserCacheOptions["metrics"];

  constructor(options: UserCacheOptions) {
    this.#store = options.store;
    this.#users = options.users;
    this.#ttlMs = options.ttlMs;
    this.#metrics = options.metrics;
  }

  /** The store key of a user's cached profile. */
  static key(id: number): StoreKey {
    return [NAMESPACES.userCache, id];
  }

  /**
   * The stored profile of the user behind `profile`, registering them on first sight and
   * refreshing what Telegram changed (name, username, language). "Last seen" is not
   * written here: the event writer records it in batches. `prefetched` is the cached value
   * when the caller already read it (null: not cached).
   */
  async resolve(profile: TelegramProfile, prefetched?: Json): Promise<UserRow> {
    let cached: UserRow | null = null;
    let storeUp = true;
    try {
      // The gate reads the profile in its own round trip in private chats.
      const value = prefetched !== undefined
        ? prefetched
        : await this.#store.get(UserCache.key(profile.id));
      cached = fromJson(value);
    } catch {
      storeUp = false;
    }
    if (cached && matches(cached, profile)) {
      this.#metrics?.userCache.inc({ result: "hit" });
      return cached;
    }
    this.#metrics?.userCache.inc({ result: storeUp ? "miss" : "error" });
    const row = await this.#users.upsert(profile);
    if (storeUp) await this.#remember(row);
    return row;
  }

  /** Chooses the user's language and updates the cached copy. */
  async setLocale(id: number, locale: string | null): Promise<UserRow | null> {
    return await this.#changed(id, await this.#users.setLocale(id, locale));
  }

  /** Subscribes or unsubscribes the user and updates the cached copy. */
  async setNotifications(id: number, on: boolean): Promise<UserRow | null> {
    return await this.#changed(id, await this.#users.setNotifications(id, on));
  }

  /**
   * Records that the user blocked the bot. The cached copy is rewritten with the block, so the
   * user's next message misses the cache and the upsert clears it again.
   */
  async markBlocked(id: number): Promise<void> {
    await this.#changed(id, await this.#users.markBlocked(id));
  }

  /** Bans the user (see {@link UserRepository.ban}) and updates the cached copy. */
  async ban(id: number): Promise<UserRow | null> {
    return await this.#changed(id, await this.#users.ban(id));
  }

  /** Lifts the user's ban and updates the cached copy. */
  async unban(id: number): Promise<UserRow | null> {
    return await this.#changed(id, await this.#users.unban(id));
  }

  /** Drops the cached copy, e.g. after a change made elsewhere. */
  async forget(id: number): Promise<void> {
    await this.#store.delete(UserCache.key(id)).catch(() => {});
  }

  async #changed(id: number, row: UserRow | null): Promise<UserRow | null> {
    if (row) await this.#remember(row);
    else await this.forget(id);
    return row;
  }

  async #remember(row: UserRow): Promise<void> {
    // A failed write only costs a miss next time; the database already has the truth.
    await this.#store.set(UserCache.key(row.id), toJson(row), { ttlMs: this.#ttlMs })
      .catch(() => {});
  }
}
