/**
 * HTTP/1.1 responses as bytes, without I/O: the status line, the fields the server sets
 * itself (Date, Content-Length, Connection, Keep-Alive), the handler's fields and the body,
 * in one buffer so that a response is one write.
 *
 * @module
 */
import type { Bytes } from "./http1.ts";

/** Reason phrases of the usual statuses; another keeps the response's own statusText. */
const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  417: "Expectation Failed",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** Response fields set by the server, so never copied from the handler's response. */
export const OWN_HEADERS = new Set([
  "connection",
  "keep-alive",
  "content-length",
  "transfer-encoding",
]);

/** The interim response sent before reading a body the client waits to send. */
export const CONTINUE: Bytes = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");

let dateSecond = -1;
let dateText = "";

/** The Date header's value, formatted at most once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

const encoder = new TextEncoder();

/** The inputs and output of the last response made from bytes: see {@link serializeResponse}. */
interface Made {
  status: number;
  statusText: string;
  headers: readonly (readonly [string, string])[];
  bytes: Bytes;
  keepAlive: boolean;
  keepAliveHeader: string;
  sendBody: boolean;
  http10: boolean;
  date: string;
  out: Bytes;
}

let made: Made | null = null;

/**
 * One response as bytes: status line, the server's fields, the handler's fields, the body. The
 * same answer again within the same second (the webhook's 200, the same fields and body objects,
 * for every update) gets the same buffer back, which nothing writes to: building it cost every
 * request a head string and a buffer.
 */
export function serializeResponse(
  status: number,
  statusText: string,
  headers: readonly (readonly [string, string])[],
  body: Bytes | string,
  keepAlive: boolean,
  keepAliveHeader: string,
  options: { sendBody?: boolean; http10?: boolean } = {},
): Bytes {
  const sendBody = options.sendBody ?? true;
  const http10 = options.http10 ?? false;
  const date = httpDate();
  const text = typeof body === "string";
  if (
    !text && made !== null && made.bytes === body && made.headers === headers &&
    made.status === status && made.statusText === statusText &&
    made.keepAlive === keepAlive && made.keepAliveHeader === keepAliveHeader &&
    made.sendBody === sendBody && made.http10 === http10 && made.date === date
  ) {
    return made.out;
  }
  const bytes = text ? encoder.encode(body) : body;
  const out = build(status, statusText, headers, bytes, text, keepAlive, keepAliveHeader, {
    sendBody,
    http10,
    date,
  });
  // A text body is encoded afresh each time: its bytes are never the same object twice.
  if (text) return out;
  made = {
    status,
    statusText,
    headers,
    bytes: body,
    keepAlive,
    keepAliveHeader,
    sendBody,
    http10,
    date,
    out,
  };
  return out;
}

function build(
  status: number,
  statusText: string,
  headers: readonly (readonly [string, string])[],
  bytes: Bytes,
  text: boolean,
  keepAlive: boolean,
  keepAliveHeader: string,
  { sendBody, http10, date }: { sendBody: boolean; http10: boolean; date: string },
): Bytes {
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? statusText}\r\n`;
  if (!headers.some(([name]) => name === "date")) head += `date: ${date}\r\n`;
  if (text) head += "content-type: text/plain; charset=utf-8\r\n";
  // RFC 9110 §8.6: no Content-Length on 204; on 304 it would have to be the 200's.
  const bodyless = status === 204 || status === 304;
  if (!bodyless) head += `content-length: ${bytes.length}\r\n`;
  if (!keepAlive) head += "connection: close\r\n";
  else {
    if (http10) head += "connection: keep-alive\r\n";
    head += keepAliveHeader;
  }
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  head += "\r\n";
  const withBody = sendBody && !bodyless;
  const out = new Uint8Array(head.length + (withBody ? bytes.length : 0));
  // Header values are byte strings: one char, one byte. TextEncoder writes UTF-8, which is
  // the same for ASCII; anything else is written char by char (the body is set after).
  const { read, written } = encoder.encodeInto(head, out);
  if (read !== head.length || written !== head.length) {
    for (let i = 0; i < head.length; i++) out[i] = head.charCodeAt(i);
  }
  if (withBody) out.set(bytes, head.length);
  return out;
}
