/**
 * What a connection writes back for one request: the handler's WHATWG Response read whole, a
 * {@link DirectRoute}'s answer as it is, or, when either throws, `onError`'s (else a bare 500).
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { type Bytes, EMPTY, hasToken, type Head } from "./http1.ts";
import { OWN_HEADERS } from "./http1_response.ts";
import type {
  DirectRequest,
  DirectRoute,
  ServeHandler,
  ServeInfo,
  ServerLog,
} from "./server_types.ts";

const ENCODER = new TextEncoder();
const INTERNAL_ERROR = ENCODER.encode("internal error\n");

/** A response as the connection writes it. */
export interface Answer {
  status: number;
  statusText: string;
  /** Fields besides the server's own (Content-Length, Connection, Keep-Alive, Date…). */
  headers: readonly (readonly [string, string])[];
  bytes: Bytes;
  /** The handler asked to close the connection after it (`Connection: close`). */
  close: boolean;
}

/** What answering needs from the server. */
export interface Responders {
  readonly handler: ServeHandler;
  readonly onError: (error: unknown) => Response | Promise<Response>;
  readonly log: ServerLog | undefined;
}

/** The handler's answer to `request`. */
export async function respond(
  server: Responders,
  request: Request,
  info: ServeInfo,
): Promise<Answer> {
  try {
    const response = await server.handler(request, info);
    if (!(response instanceof Response)) {
      throw new TypeError(`the handler returned ${typeof response}, not a Response`);
    }
    return await answerOf(response);
  } catch (error) {
    return await failed(server, error);
  }
}

/** `route`'s answer: no Request, no Response, no streams. */
export async function respondDirect(
  server: Responders,
  route: DirectRoute,
  head: Head,
  body: Bytes,
): Promise<Answer> {
  const request: DirectRequest = {
    method: head.method,
    header(name) {
      for (const [field, value] of head.headers) if (field === name) return value;
      return null;
    },
    body,
  };
  try {
    const response = await route.handler(request);
    return {
      status: response.status,
      statusText: "",
      headers: response.headers,
      // As bytes: a string body would get the server's own text/plain Content-Type.
      bytes: encoded(response.body),
      close: false,
    };
  } catch (error) {
    return await failed(server, error);
  }
}

let lastBody = "";
let lastBytes: Bytes = EMPTY;

/**
 * `body` as UTF-8, the same bytes object while the body repeats (the webhook's `{"ok":true}`), so
 * that `serializeResponse` can give back the response it made for it.
 */
function encoded(body: string): Bytes {
  if (body !== lastBody) {
    lastBody = body;
    lastBytes = ENCODER.encode(body);
  }
  return lastBytes;
}

/** The answer when a handler threw: `onError`'s, else a bare 500. */
async function failed(server: Responders, error: unknown): Promise<Answer> {
  try {
    const response = await server.onError(error);
    if (response instanceof Response) return await answerOf(response);
  } catch (failure) {
    server.log?.warning("HTTP onError failed: {message}", {
      message: errorMessage(failure),
      error: failure,
    });
  }
  return { status: 500, statusText: "", headers: [], bytes: INTERNAL_ERROR, close: false };
}

/** A WHATWG Response as an {@link Answer}, its body read whole. */
async function answerOf(response: Response): Promise<Answer> {
  const headers: [string, string][] = [];
  for (const field of response.headers) if (!OWN_HEADERS.has(field[0])) headers.push(field);
  return {
    status: response.status,
    statusText: response.statusText,
    headers,
    bytes: response.body === null ? EMPTY : new Uint8Array(await response.arrayBuffer()),
    close: hasToken(response.headers.get("connection"), "close"),
  };
}
