/**
 * HTTP/1.1 requests on the wire, without I/O: where a request head ends, what it says, and
 * the size line of a chunk. Parsing is strict, since anything a proxy in front could read
 * differently is a way to smuggle a request past it. The reader (request_reader.ts) feeds
 * these the bytes; responses are made by http1_response.ts.
 *
 * @module
 */

/** Bytes as the server reads and writes them. */
export type Bytes = Uint8Array<ArrayBuffer>;

/** Carriage return. */
export const CR = 13;
/** Line feed. */
export const LF = 10;
/** Space. */
export const SP = 32;
/** Horizontal tab. */
export const HTAB = 9;
const COLON = 58;
/** No bytes: the body of a request without one. */
export const EMPTY: Bytes = new Uint8Array(0);

/** tchar of RFC 9110 §5.6.2: what a method or a field name is made of. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?$/;

/** A request the server refuses itself; the connection closes after the answer. */
export class Refusal {
  constructor(readonly status: number, readonly reason: string) {}
}

/** Refuses the request being read with `status`; `reason` is the answer's body. */
export function refuse(status: number, reason: string): never {
  throw new Refusal(status, reason);
}

/** The parsed request head. */
export interface Head {
  method: string;
  url: string;
  /** The request-target as sent (`/path?query` or an absolute URL). */
  target: string;
  minor: number;
  headers: [string, string][];
  contentLength: number;
  chunked: boolean;
  keepAlive: boolean;
  expectContinue: boolean;
}

/** What {@link parseHead} needs from the server. */
export interface HeadContext {
  readonly limits: { readonly maxBodyBytes: number };
  /** Used as the URL's authority when a request has no Host (HTTP/1.0). */
  readonly authority: string;
}

/**
 * Where the head that starts at `start` ends (after its blank line), or -1 if it has not
 * arrived yet. Only CRLF line endings are accepted: a bare LF or CR is how requests get
 * smuggled past a proxy that reads lines differently.
 */
export function scanHead(buf: Bytes, start: number, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const byte = buf[i];
    if (byte === LF) {
      if (i === start || buf[i - 1] !== CR) refuse(400, "bare LF in the request head");
      if (i - 3 >= start && buf[i - 2] === LF) return i + 1;
    } else if (i > start && buf[i - 1] === CR) {
      refuse(400, "bare CR in the request head");
    }
  }
  return -1;
}

/** Parses a complete head; every line already ends in CRLF. */
export function parseHead(buf: Bytes, start: number, end: number, context: HeadContext): Head {
  const latin1 = headText(buf, start, end);
  const lineEnd = buf.indexOf(CR, start);
  // METHOD SP request-target SP HTTP/1.x, with single spaces.
  let i = start;
  while (i < lineEnd && TCHAR[buf[i]!]) i++;
  if (i === start || buf[i] !== SP) refuse(400, "malformed request line");
  const method = latin1(buf, start, i);
  const targetStart = ++i;
  while (i < lineEnd && buf[i]! > SP && buf[i]! < 0x7f) i++;
  if (i === targetStart || buf[i] !== SP) refuse(400, "malformed request line");
  const target = latin1(buf, targetStart, i);
  const version = latin1(buf, i + 1, lineEnd);
  if (!/^HTTP\/1\.[0-9]$/.test(version)) {
    if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) refuse(505, "HTTP version not supported");
    refuse(400, "malformed request line");
  }
  const minor = version === "HTTP/1.0" ? 0 : 1;
  if (/^(?:CONNECT|TRACE|TRACK)$/i.test(method)) refuse(501, "method not implemented");

  const headers: [string, string][] = [];
  // The fields framing and routing depend on: how many came, and the first (connection: all).
  let contentLengths = 0, contentLength0 = "";
  let transferEncodings = 0, transferEncoding0 = "";
  let hosts = 0, host0 = "";
  let expects = 0, expect0 = "";
  let tokens = "";
  for (let line = lineEnd + 2; line < end - 2;) {
    const eol = buf.indexOf(CR, line);
    if (buf[line] === SP || buf[line] === HTAB) refuse(400, "obsolete line folding");
    let colon = line;
    while (colon < eol && TCHAR[buf[colon]!]) colon++;
    if (colon === line || buf[colon] !== COLON) refuse(400, "invalid header field name");
    let valueStart = colon + 1;
    while (valueStart < eol && (buf[valueStart] === SP || buf[valueStart] === HTAB)) valueStart++;
    let valueEnd = eol;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) {
      valueEnd--;
    }
    for (let k = valueStart; k < valueEnd; k++) {
      const byte = buf[k]!;
      if ((byte < SP && byte !== HTAB) || byte === 0x7f) refuse(400, "invalid header field value");
    }
    const name = knownName(buf, line, colon) ?? latin1(buf, line, colon).toLowerCase();
    const value = latin1(buf, valueStart, valueEnd);
    headers.push([name, value]);
    switch (name) {
      case "content-length":
        if (contentLengths++ === 0) contentLength0 = value;
        break;
      case "transfer-encoding":
        if (transferEncodings++ === 0) transferEncoding0 = value;
        break;
      case "host":
        if (hosts++ === 0) host0 = value;
        break;
      case "connection":
        tokens = tokens === "" ? value : `${tokens},${value}`;
        break;
      case "expect":
        if (expects++ === 0) expect0 = value;
    }
    line = eol + 2;
  }

  // Framing (RFC 9112 §6.3), strictly: anything a proxy in front could read differently is refused.
  let contentLength = 0;
  let chunked = false;
  if (transferEncodings > 0) {
    if (contentLengths > 0) refuse(400, "both Content-Length and Transfer-Encoding");
    if (minor === 0) refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (transferEncodings > 1 || transferEncoding0.toLowerCase() !== "chunked") {
      refuse(400, "unsupported Transfer-Encoding");
    }
    chunked = true;
  } else if (contentLengths > 0) {
    // Even identical repeats are refused: no legitimate client sends two.
    if (contentLengths > 1) refuse(400, "more than one Content-Length");
    if (!/^[0-9]{1,15}$/.test(contentLength0)) refuse(400, "invalid Content-Length");
    contentLength = Number(contentLength0);
    if (contentLength > context.limits.maxBodyBytes) refuse(413, "request body too large");
  }

  if (hosts > 1 || (minor === 1 && hosts === 0)) {
    refuse(400, "missing or repeated Host");
  }
  const host = hosts > 0 ? host0 : undefined;
  if (host !== undefined && !HOST.test(host)) refuse(400, "invalid Host");
  let url: string;
  if (target.startsWith("/")) url = `http://${host ?? context.authority}${target}`;
  else if (/^https?:\/\//i.test(target)) url = target;
  else refuse(400, "unsupported request target");

  let expectContinue = false;
  // RFC 9110 §10.1.1: an HTTP/1.0 expectation is ignored.
  if (expects > 0 && minor === 1) {
    if (expects > 1 || expect0.toLowerCase() !== "100-continue") {
      refuse(417, "expectation failed");
    }
    expectContinue = true;
  }
  const keepAlive = minor === 1
    ? !hasToken(tokens, "close")
    : hasToken(tokens, "keep-alive") && !hasToken(tokens, "close");
  return {
    method,
    url,
    target,
    minor,
    headers,
    contentLength,
    chunked,
    keepAlive,
    expectContinue,
  };
}

/**
 * The field names clients send most, by length: {@link knownName} answers them without making a
 * string (and a lower-case copy) per header per request.
 */
const KNOWN_NAMES = new Map<number, { name: string; bytes: Uint8Array }[]>();
for (
  const name of [
    "host",
    "accept",
    "connection",
    "content-type",
    "content-length",
    "accept-encoding",
    "accept-language",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "authorization",
    "transfer-encoding",
    "x-telegram-bot-api-secret-token",
  ]
) {
  const list = KNOWN_NAMES.get(name.length) ?? [];
  list.push({ name, bytes: Uint8Array.from(name, (c) => c.charCodeAt(0)) });
  KNOWN_NAMES.set(name.length, list);
}

/**
 * The lower-case name in `buf[start, end)` if it is a {@link KNOWN_NAMES} one, in any case; null
 * otherwise. The bytes are tchars (checked by the caller): setting bit 0x20 lower-cases an
 * upper-case letter and turns no other tchar into a letter or `-`, which is all the names hold.
 */
function knownName(buf: Bytes, start: number, end: number): string | null {
  const candidates = KNOWN_NAMES.get(end - start);
  if (candidates === undefined) return null;
  for (const { name, bytes } of candidates) {
    let i = 0;
    while (i < bytes.length && (buf[start + i]! | 0x20) === bytes[i]) i++;
    if (i === bytes.length) return name;
  }
  return null;
}

/** The size of a chunk-size line, its extensions ignored (RFC 9112 §7.1). */
export function parseChunkSize(buf: Bytes, start: number, end: number): number {
  let size = 0;
  let i = start;
  for (; i < end; i++) {
    const digit = hexValue(buf[i]!);
    if (digit < 0) break;
    size = size * 16 + digit;
    // Far beyond any body limit; stop before the number loses precision.
    if (size > 2 ** 40) refuse(413, "request body too large");
  }
  if (i === start) refuse(400, "invalid chunk size");
  while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
  if (i < end && buf[i] !== 0x3b) refuse(400, "invalid chunk size");
  for (; i < end; i++) {
    const byte = buf[i]!;
    if ((byte < SP && byte !== HTAB) || byte === 0x7f) refuse(400, "invalid chunk extension");
  }
  return size;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

/** The first `byte` in `buf[from, end)`, or -1. */
export function indexOf(buf: Bytes, byte: number, from: number, end: number): number {
  return buf.subarray(0, end).indexOf(byte, from);
}

/** Takes `buf[start, end)` as a string, one char per byte. */
type Latin1 = (buf: Bytes, start: number, end: number) => string;

const ASCII = new TextDecoder();

/**
 * How {@link parseHead} takes the parts of the head in `buf[start, end)` as strings. A head of
 * ASCII alone (any client's, in practice) is decoded once and its parts are slices of that
 * string. Taking each part on its own ({@link latin1}) costs a typed-array view and, in
 * `String.fromCharCode.apply`, a copy of 8 bytes per byte: half of the 3.4 KiB of garbage
 * parsing a webhook request's head made.
 */
function headText(buf: Bytes, start: number, end: number): Latin1 {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) return latin1;
  }
  const text = ASCII.decode(buf.subarray(start, end));
  return (_buf, from, to) => text.slice(from - start, to - start);
}

/** Bytes as a string, one char per byte: header values may carry obs-text. */
function latin1(buf: Bytes, start: number, end: number): string {
  let text = "";
  // `apply` takes the typed array as it is; spreading it runs the iterator (7× slower).
  for (let i = start; i < end; i += 4096) {
    const part = buf.subarray(i, Math.min(end, i + 4096)) as unknown as number[];
    text += String.fromCharCode.apply(null, part);
  }
  return text;
}

/** Whether the comma-separated `list` holds `token` (compared in lower case). */
export function hasToken(list: string | null, token: string): boolean {
  if (!list) return false;
  return list.split(",").some((item) => item.trim().toLowerCase() === token);
}
