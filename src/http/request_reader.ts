/**
 * The reading side of a connection: a read buffer that starts small and grows up to the
 * head limit only when a head needs it, from which request heads are parsed and bodies read
 * (by Content-Length or chunked). It reads no further than the current request, so that a
 * pipelined one waits in the socket or the buffer. Timeouts are the connection's business:
 * it closes the socket, and the read in progress ends.
 *
 * @module
 */
import { BodyBuffer } from "./body_buffer.ts";
import {
  type Bytes,
  CR,
  EMPTY,
  type Head,
  type HeadContext,
  HTAB,
  indexOf,
  LF,
  parseChunkSize,
  parseHead,
  refuse,
  scanHead,
  SP,
} from "./http1.ts";

/** The read buffer starts this small and grows up to the head limit when a head needs it. */
const INITIAL_READ_BYTES = 4096;
/** A body buffer starts at most this big, whatever the declared length: memory follows bytes. */
const INITIAL_BODY_BYTES = 16 * 1024;
/** Longest chunk-size line, extensions included. */
const MAX_CHUNK_LINE = 1024;

/** The connection ended (closed by the client, timed out, evicted): nothing more to say. */
class Closed {}
/** Thrown by a read when nothing more will come; a head read turns it into null. */
export const CLOSED: Closed = new Closed();

/** What a {@link RequestReader} needs from the server. */
export interface RequestReaderContext extends HeadContext {
  readonly limits: { readonly maxHeaderBytes: number; readonly maxBodyBytes: number };
  /** Where the sizes of the read and body buffers are counted. */
  readonly stats: { bufferedBytes: number };
}

/**
 * Reads into `target`: resolves to the number of bytes read, or throws {@link CLOSED} at the
 * end of the stream or once the connection is closed.
 */
export type ReadBytes = (target: Bytes) => Promise<number>;

/** Reads one connection's requests: heads, then bodies, one request at a time. */
export class RequestReader {
  readonly #read: ReadBytes;
  readonly #context: RequestReaderContext;
  /** Capacity of the read buffer, at least what a chunk-size line needs. */
  readonly #maxReadBytes: number;
  #buf: Bytes;
  #start = 0;
  #end = 0;

  /** Reads with `read`; the read buffer is counted in `context.stats` until {@link release}. */
  constructor(read: ReadBytes, context: RequestReaderContext) {
    this.#read = read;
    this.#context = context;
    this.#maxReadBytes = Math.max(context.limits.maxHeaderBytes, MAX_CHUNK_LINE);
    this.#buf = new Uint8Array(Math.min(INITIAL_READ_BYTES, this.#maxReadBytes));
    context.stats.bufferedBytes += this.#buf.length;
  }

  /** Whether bytes past the last request are buffered: a pipelined request has begun. */
  get buffered(): boolean {
    return this.#start < this.#end;
  }

  /**
   * The next request head, or null when the client closed, or was closed, between requests
   * or before finishing a head. `onBytes` runs after each read, for the header timer.
   */
  async readHead(onBytes: () => void): Promise<Head | null> {
    const context = this.#context;
    const { maxHeaderBytes } = context.limits;
    // A getter, because a read may replace the buffer with a bigger one.
    const buf = () => this.#buf;
    let scanned = 0;
    for (;;) {
      // RFC 9112 §2.2: skip empty lines before a request line (some clients send one after a body).
      while (
        this.#end - this.#start >= 2 && buf()[this.#start] === CR && buf()[this.#start + 1] === LF
      ) {
        this.#start += 2;
        scanned = Math.max(0, scanned - 2);
      }
      const end = scanHead(buf(), this.#start, this.#start + scanned, this.#end);
      if (end >= 0) {
        if (end - this.#start > maxHeaderBytes) refuse(431, "request head too large");
        const head = parseHead(buf(), this.#start, end, context);
        this.#start = end;
        return head;
      }
      if (this.#end - this.#start >= maxHeaderBytes) refuse(431, "request head too large");
      scanned = this.#end - this.#start;
      try {
        await this.#fill();
      } catch (error) {
        if (error === CLOSED) return null;
        throw error;
      }
      onBytes();
    }
  }

  /** The body announced by `head`; a view, valid until the next read. */
  readBody(head: Head): Promise<Bytes> {
    return head.chunked ? this.#readChunked() : this.#readFixed(head.contentLength);
  }

  /** Reads whatever comes into the whole buffer and drops it: draining a closing connection. */
  discard(): Promise<number> {
    this.#start = this.#end = 0;
    return this.#read(this.#buf);
  }

  /** Uncounts the read buffer; called once, when the connection's loop ends. */
  release(): void {
    this.#context.stats.bufferedBytes -= this.#buf.length;
  }

  /** Reads more into the read buffer, making room first; throws {@link CLOSED} at the end. */
  async #fill(): Promise<void> {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    } else if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        // Callers check their limits first, so the buffer is below maxReadBytes here.
        if (this.#buf.length >= this.#maxReadBytes) throw new Error("read buffer full");
        const grown = new Uint8Array(Math.min(this.#buf.length * 2, this.#maxReadBytes));
        grown.set(this.#buf.subarray(0, this.#end));
        this.#context.stats.bufferedBytes += grown.length - this.#buf.length;
        this.#buf = grown;
      }
    }
    this.#end += await this.#read(this.#buf.subarray(this.#end));
  }

  async #readFixed(length: number): Promise<Bytes> {
    if (length === 0) return EMPTY;
    const available = this.#end - this.#start;
    if (available >= length) {
      const body = this.#buf.subarray(this.#start, this.#start + length);
      this.#start += length;
      return body;
    }
    const body = new BodyBuffer(
      this.#context.stats,
      Math.min(length, Math.max(INITIAL_BODY_BYTES, available)),
      length,
    );
    try {
      await this.#readInto(body, length);
      return body.bytes();
    } finally {
      body.release();
    }
  }

  /** Moves `length` body bytes into `body`: the buffered ones, then straight from the socket. */
  async #readInto(body: BodyBuffer, length: number): Promise<void> {
    const buffered = Math.min(length, this.#end - this.#start);
    body.append(this.#buf.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let missing = length - buffered;
    while (missing > 0) {
      // Reading no further than the body keeps the next pipelined request in the socket.
      const n = await this.#read(body.spare(missing));
      body.commit(n);
      missing -= n;
    }
  }

  async #readChunked(): Promise<Bytes> {
    const { maxBodyBytes, maxHeaderBytes } = this.#context.limits;
    const body = new BodyBuffer(
      this.#context.stats,
      Math.min(INITIAL_BODY_BYTES, maxBodyBytes),
      maxBodyBytes,
    );
    try {
      for (;;) {
        const [start, end] = await this.#readLine(MAX_CHUNK_LINE);
        const size = parseChunkSize(this.#buf, start, end);
        if (size === 0) break;
        if (body.length + size > maxBodyBytes) refuse(413, "request body too large");
        await this.#readInto(body, size);
        const [crlfStart, crlfEnd] = await this.#readLine(2);
        if (crlfStart !== crlfEnd) refuse(400, "chunk data longer than its size");
      }
      // Trailer fields are read and dropped: nothing here uses them.
      let trailerBytes = 0;
      for (;;) {
        const [start, end] = await this.#readLine(maxHeaderBytes - trailerBytes);
        if (start === end) break;
        if (this.#buf[start] === SP || this.#buf[start] === HTAB) {
          refuse(400, "obsolete line folding");
        }
        trailerBytes += end - start + 2;
        if (trailerBytes > maxHeaderBytes) refuse(431, "trailer fields too large");
      }
      return body.bytes();
    } finally {
      body.release();
    }
  }

  /** The next CRLF-ended line as [start, end) in the read buffer, valid until the next read. */
  async #readLine(max: number): Promise<[number, number]> {
    let from = 0;
    for (;;) {
      const lf = indexOf(this.#buf, LF, this.#start + from, this.#end);
      if (lf >= 0) {
        const start = this.#start;
        if (lf === start || this.#buf[lf - 1] !== CR) refuse(400, "bare LF");
        if (indexOf(this.#buf, CR, start, lf - 1) >= 0) refuse(400, "bare CR");
        this.#start = lf + 1;
        return [start, lf - 1];
      }
      from = this.#end - this.#start;
      if (from >= max) refuse(400, "line too long");
      await this.#fill();
    }
  }
}
