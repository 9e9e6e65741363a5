/**
 * Reading HTTP/1.1 responses off a byte buffer, for the Bot API client (`api_fetch.ts`): the
 * status line, the headers the client acts on, and a body framed by `Content-Length`, by chunks,
 * or by the end of the connection. Strict where a wrong guess would mix two responses up.
 *
 * @module
 */

/** A response read in full. */
export interface ParsedResponse {
  status: number;
  /** The `Content-Type` header, if any. */
  contentType: string | null;
  body: Uint8Array<ArrayBuffer>;
  /** Whether the connection may carry another request. */
  keepAlive: boolean;
}

/** What {@link parseResponse} reads from and how far it got. */
export interface ResponseBuffer {
  bytes: Uint8Array<ArrayBuffer>;
  /** Where the unread bytes start. */
  at: number;
  /** Where they end. */
  end: number;
  /** Whether the connection has ended (nothing more will come). */
  ended: boolean;
}

/** A response the client cannot read: the connection is unusable afterwards. */
export class ResponseError extends Error {
  override name = "ResponseError";
}

import { concat } from "../util/bytes.ts";

const MAX_HEAD = 64 * 1024;
const CR = 0x0d;
const LF = 0x0a;
const decoder = new TextDecoder();

/**
 * The first complete response in `buffer` (moving `buffer.at` past it), or null when more bytes
 * are needed. Informational (1xx) responses are skipped. Throws {@link ResponseError} for bytes
 * that are not a response, or a connection that ended within one.
 */
export function parseResponse(buffer: ResponseBuffer): ParsedResponse | null {
  for (;;) {
    const headEnd = indexOfHeadEnd(buffer.bytes, buffer.at, buffer.end);
    if (headEnd < 0) {
      if (buffer.end - buffer.at > MAX_HEAD) throw new ResponseError("response head too large");
      if (buffer.ended) throw new ResponseError(endedWithin(buffer, "the response head"));
      return null;
    }
    const head = decoder.decode(buffer.bytes.subarray(buffer.at, headEnd));
    const lines = head.split("\r\n");
    const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
    if (!status) throw new ResponseError(`not an HTTP/1.1 status line: ${lines[0]!.slice(0, 80)}`);
    const code = Number(status[2]);
    const fields = headerFields(lines);
    const bodyStart = headEnd + 4;
    if (code >= 100 && code < 200) {
      buffer.at = bodyStart;
      continue;
    }
    const connection = (fields.get("connection") ?? "").toLowerCase();
    let keepAlive = status[1] === "1"
      ? !/\bclose\b/.test(connection)
      : /\bkeep-alive\b/.test(connection);
    let body: { bytes: Uint8Array<ArrayBuffer>; next: number } | null;
    const coding = fields.get("transfer-encoding");
    const length = fields.get("content-length");
    if (code === 204 || code === 304) {
      body = { bytes: new Uint8Array(0), next: bodyStart };
    } else if (coding !== undefined) {
      if (coding.toLowerCase() !== "chunked") {
        throw new ResponseError(`unsupported transfer-encoding: ${coding}`);
      }
      body = readChunked(buffer, bodyStart);
    } else if (length !== undefined) {
      if (!/^\d{1,15}$/.test(length)) throw new ResponseError(`bad content-length: ${length}`);
      const next = bodyStart + Number(length);
      body = next <= buffer.end ? { bytes: buffer.bytes.slice(bodyStart, next), next } : null;
    } else {
      // Framed by the end of the connection.
      keepAlive = false;
      body = buffer.ended
        ? { bytes: buffer.bytes.slice(bodyStart, buffer.end), next: buffer.end }
        : null;
    }
    if (body === null) {
      if (buffer.ended) throw new ResponseError(endedWithin(buffer, "the response body"));
      return null;
    }
    buffer.at = body.next;
    return {
      status: code,
      contentType: fields.get("content-type") ?? null,
      body: body.bytes,
      keepAlive,
    };
  }
}

function endedWithin(buffer: ResponseBuffer, part: string): string {
  return buffer.at === buffer.end
    ? "the server closed the connection without a response"
    : `the server closed the connection within ${part}`;
}

/** The position of the `\r\n\r\n` that ends a head starting at `from`, or -1. */
function indexOfHeadEnd(bytes: Uint8Array, from: number, end: number): number {
  for (let i = bytes.indexOf(CR, from); i >= 0 && i + 3 < end; i = bytes.indexOf(CR, i + 1)) {
    if (bytes[i + 1] === LF && bytes[i + 2] === CR && bytes[i + 3] === LF) return i;
  }
  return -1;
}

/** The header fields the client reads, by lower-case name; a repeated one must agree. */
function headerFields(lines: string[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new ResponseError(`bad header line: ${line.slice(0, 80)}`);
    const name = line.slice(0, colon).toLowerCase();
    if (
      name !== "content-length" && name !== "transfer-encoding" && name !== "connection" &&
      name !== "content-type"
    ) continue;
    const value = line.slice(colon + 1).trim();
    const before = fields.get(name);
    if (before !== undefined && before !== value && name !== "connection") {
      throw new ResponseError(`conflicting ${name} headers`);
    }
    fields.set(name, before !== undefined && name === "connection" ? `${before}, ${value}` : value);
  }
  return fields;
}

/** A chunked body starting at `from`, or null while incomplete. */
function readChunked(
  buffer: ResponseBuffer,
  from: number,
): { bytes: Uint8Array<ArrayBuffer>; next: number } | null {
  const { bytes, end } = buffer;
  const parts: Uint8Array[] = [];
  let size = 0;
  let at = from;
  for (;;) {
    const lineEnd = indexOfLineEnd(bytes, at, end);
    if (lineEnd < 0) return null;
    const sizeText = decoder.decode(bytes.subarray(at, lineEnd)).split(";")[0]!.trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) throw new ResponseError("bad chunk size");
    const chunk = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (chunk === 0) {
      // Trailer fields, if any, end with an empty line.
      for (;;) {
        const trailerEnd = indexOfLineEnd(bytes, at, end);
        if (trailerEnd < 0) return null;
        const empty = trailerEnd === at;
        at = trailerEnd + 2;
        if (empty) break;
      }
      // A copy, also of a single part: the read buffer is reused.
      const body = parts.length === 1 ? parts[0]!.slice() : concat(parts, size);
      return { bytes: body as Uint8Array<ArrayBuffer>, next: at };
    }
    if (at + chunk + 2 > end) return null;
    if (bytes[at + chunk] !== CR || bytes[at + chunk + 1] !== LF) {
      throw new ResponseError("chunk not followed by CRLF");
    }
    parts.push(bytes.subarray(at, at + chunk));
    size += chunk;
    at += chunk + 2;
  }
}

function indexOfLineEnd(bytes: Uint8Array, from: number, end: number): number {
  for (let i = bytes.indexOf(CR, from); i >= 0 && i + 1 < end; i = bytes.indexOf(CR, i + 1)) {
    if (bytes[i + 1] === LF) return i;
  }
  return -1;
}
