/**
 * How a dialog is stored: the record the gate loads (and renews) in its round trip and the
 * commit stage writes back, shared by the gate's scripts and `ctx.dialog`.
 */

/**
 * How long an expired dialog is remembered after its TTL, so that a user who comes back is
 * told it expired instead of being silently ignored.
 */
export const EXPIRED_DIALOG_MEMORY_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * A user's dialog state as stored: version, state name, data (as JSON text, which Lua passes
 * through untouched), and when the state and the data expire (ms since epoch). A left dialog
 * keeps its record with `s: null`, so that versions never go back.
 */
export type DialogRecord = {
  v: number;
  s: string | null;
  d: string | null;
  sAt: number;
  dAt: number;
};
