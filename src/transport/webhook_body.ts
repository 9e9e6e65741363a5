/**
 * A webhook request's body: read within a size and a time limit when it arrives as a stream,
 * and parsed as UTF-8 JSON.
 *
 * @module
 */

/**
 * Reads the body into one buffer that grows with what actually arrived (never the declared
 * size up front, and no chunk views pinning larger buffers), within `limit` and `timeoutMs`.
 */
export async function readLimited(
  req: Request,
  limit: number,
  timeoutMs: number,
): Promise<Uint8Array | "too_large" | "timeout"> {
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  let buffer = new Uint8Array(Math.min(limit, 16 * 1024));
  let size = 0;
  let timedOut = false;
  // Cancelling ends the pending read. (Racing each read against one long-lived timeout promise
  // would keep every chunk alive through the reactions it collects.)
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  try {
    for (;;) {
      const next = await reader.read();
      if (timedOut) return "timeout";
      if (next.done) return buffer.subarray(0, size);
      const chunk = next.value;
      if (size + chunk.byteLength > limit) return "too_large";
      if (size + chunk.byteLength > buffer.byteLength) {
        const grown = new Uint8Array(
          Math.min(limit, Math.max(buffer.byteLength * 2, size + chunk.byteLength)),
        );
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(chunk, size);
      size += chunk.byteLength;
    }
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The parsed JSON body, or undefined when it is not UTF-8 JSON. */
export function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(body));
  } catch {
    return undefined;
  }
}
