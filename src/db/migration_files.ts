/**
 * The migrations in `migrations/`, imported as text so that `deno compile` embeds them and
 * the program needs no read permission for them. A test fails when a file in the folder is
 * missing here.
 */
import init from "../../migrations/0001_init.sql" with { type: "text" };
import requestDrafts from "../../migrations/0002_request_drafts.sql" with { type: "text" };
import bans from "../../migrations/0003_bans.sql" with { type: "text" };
import outbox from "../../migrations/0004_outbox.sql" with { type: "text" };
import conversation from "../../migrations/0005_conversation.sql" with { type: "text" };
import broadcasts from "../../migrations/0006_broadcasts.sql" with { type: "text" };

/** File name → SQL text, in any order; `parseMigrations` sorts and checks them. */
export const MIGRATION_FILES: Readonly<Record<string, string>> = {
  "0001_init.sql": init,
  "0002_request_drafts.sql": requestDrafts,
  "0003_bans.sql": bans,
  "0004_outbox.sql": outbox,
  "0005_conversation.sql": conversation,
  "0006_broadcasts.sql": broadcasts,
};
