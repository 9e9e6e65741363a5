/** Byte buffers as the protocol clients (Redis, the Bot API) fill and join them. */

/** `parts` (of `size` bytes in all) in one array; the part itself when there is only one. */
export function concat(parts: readonly Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Room to read more into a full buffer whose bytes from `start` are still unread: those bytes
 * moved to the front of `bytes`, or of a buffer twice as large when they fill more than half of
 * it. Returns the buffer to go on with; its unread bytes end at `end - start`.
 */
export function makeRoom(
  bytes: Uint8Array<ArrayBuffer>,
  start: number,
  end: number,
): Uint8Array<ArrayBuffer> {
  const target = end - start > bytes.length / 2 ? new Uint8Array(bytes.length * 2) : bytes;
  target.set(bytes.subarray(start, end), 0);
  return target;
}
