import type { Api } from "grammy";
import type { RequestRow } from "../db/requests.ts";
import type { UserRow } from "../db/users.ts";

/** Where new requests go for staff to take: the staff chat (see `features/staff.ts`). */
export interface StaffBoard {
  /**
   * Posts a new request to the staff chat with Take / Done buttons. Never throws: a failure
   * is logged, the request stays stored and listed for staff.
   */
  announce(api: Api, request: RequestRow, author: UserRow | null): Promise<void>;
}
