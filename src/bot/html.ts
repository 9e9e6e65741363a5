/**
 * Escaping for Telegram's HTML parse mode: every piece of user-supplied text (names,
 * descriptions, categories an operator wrote) goes through {@link escapeHtml} before it is
 * placed in a message sent with `parse_mode: "HTML"`, so that no input can break the markup
 * ("can't parse entities") or inject formatting.
 */

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };

/** `text` with `&`, `<`, `>` and `"` replaced by their HTML entities. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => ENTITIES[char]!);
}
