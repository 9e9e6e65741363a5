/**
 * A request body's buffer. It grows with the bytes received rather than being sized by the
 * declared Content-Length, so a client that announces a large body and sends it slowly (or
 * never) holds no more memory than it has actually sent. What it holds is counted in the
 * server's `bufferedBytes`.
 *
 * @module
 */
import { type Bytes, EMPTY } from "./http1.ts";

/** A body buffer that grows with the bytes received, never past `limit`. */
export class BodyBuffer {
  #bytes: Bytes;
  /** Bytes received so far. */
  length = 0;

  /** Starts with `initial` bytes of room, counted in `stats.bufferedBytes`. */
  constructor(readonly stats: { bufferedBytes: number }, initial: number, readonly limit: number) {
    this.#bytes = new Uint8Array(initial);
    stats.bufferedBytes += initial;
  }

  /** Copies `bytes` in after those received so far. */
  append(bytes: Bytes): void {
    this.#reserve(this.length + bytes.length);
    this.#bytes.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Free space to read up to `wanted` bytes into, grown by doubling when full. */
  spare(wanted: number): Bytes {
    this.#reserve(this.length + 1);
    return this.#bytes.subarray(this.length, Math.min(this.#bytes.length, this.length + wanted));
  }

  /** Counts `n` bytes read into the last {@link spare} as received. */
  commit(n: number): void {
    this.length += n;
  }

  /** The bytes so far: a view, which the Request constructor copies. */
  bytes(): Bytes {
    return this.#bytes.subarray(0, this.length);
  }

  /** Gives the memory back (uncounting it); the buffer is empty afterwards. */
  release(): void {
    this.stats.bufferedBytes -= this.#bytes.length;
    this.#bytes = EMPTY;
  }

  #reserve(needed: number): void {
    let capacity = this.#bytes.length;
    if (capacity >= needed) return;
    // Doubling keeps memory below twice what was received; the limit caps the last step.
    while (capacity < needed) capacity = Math.min(this.limit, Math.max(1, capacity * 2));
    const grown = new Uint8Array(capacity);
    grown.set(this.#bytes.subarray(0, this.length));
    this.stats.bufferedBytes += capacity - this.#bytes.length;
    this.#bytes = grown;
  }
}
