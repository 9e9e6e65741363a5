/**
 * Who may do what: admins are `ADMIN_IDS`; staff are the members of the staff chat
 * (`STAFF_CHAT_ID`, asked from Telegram and cached in the store for a few minutes) and the
 * admins. Every feature asks here instead of keeping its own list.
 */
import { type Api, GrammyError } from "grammy";
import type { ChatMember } from "grammy/types";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { NAMESPACES } from "../store/namespaces.ts";
import type { KeyValueStore, StoreKey } from "../store/store.ts";

/** Options of {@link Roles}. */
export interface RolesOptions {
  /** `ADMIN_IDS`. */
  adminIds: readonly number[];
  /** `STAFF_CHAT_ID`; null: only admins are staff. */
  staffChatId: number | null;
  /** Where staff checks are cached; without it Telegram is asked every time. */
  store?: KeyValueStore;
  /**
   * How long a staff check is trusted; someone added to the staff chat waits at most this long.
   * @default 300000
   */
  staffCheckTtlMs?: number;
}

/** Chat member statuses that count as staff. */
const STAFF_STATUSES: ReadonlySet<ChatMember["status"]> = new Set([
  "creator",
  "administrator",
  "member",
  "restricted",
]);

/** Decides who is an admin and who is staff. */
export class Roles {
  /** `ADMIN_IDS`, e.g. for alerts. */
  readonly adminIds: readonly number[];
  /** `STAFF_CHAT_ID`. */
  readonly staffChatId: number | null;
  readonly #admins: ReadonlySet<number>;
  readonly #store: KeyValueStore | undefined;
  readonly #ttlMs: number;

  constructor(options: RolesOptions) {
    this.adminIds = options.adminIds;
    this.staffChatId = options.staffChatId;
    this.#admins = new Set(options.adminIds);
    this.#store = options.store;
    this.#ttlMs = options.staffCheckTtlMs ?? 300_000;
  }

  /** Whether `userId` is one of `ADMIN_IDS`. */
  isAdmin(userId: number | undefined): boolean {
    return userId !== undefined && this.#admins.has(userId);
  }

  /** Whether `chatId` is the staff chat. */
  isStaffChat(chatId: number | undefined): boolean {
    return chatId !== undefined && chatId === this.staffChatId;
  }

  /**
   * Whether `userId` is staff: an admin, or a member of the staff chat. Null when that cannot
   * be told right now (Telegram unreachable and nothing cached).
   */
  async isStaff(api: Api, userId: number, log?: Logger): Promise<boolean | null> {
    if (this.isAdmin(userId)) return true;
    const chatId = this.staffChatId;
    if (chatId === null) return false;
    const key: StoreKey = [NAMESPACES.staffCheck, userId];
    try {
      const cached = await this.#store?.get(key);
      if (typeof cached === "boolean") return cached;
    } catch {
      // Without the store, Telegram still knows.
    }
    let staff: boolean;
    try {
      const member = await api.getChatMember(chatId, userId);
      staff = STAFF_STATUSES.has(member.status) &&
        (member.status !== "restricted" || member.is_member);
    } catch (error) {
      // Telegram answers 400 ("user not found") for someone who never was in the chat.
      if (!(error instanceof GrammyError && error.error_code === 400)) {
        log?.warning("could not check staff membership: {message}", {
          message: errorMessage(error),
        });
        return null;
      }
      staff = false;
    }
    await this.#store?.set(key, staff, { ttlMs: this.#ttlMs }).catch(() => {});
    return staff;
  }
}
