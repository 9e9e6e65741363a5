/**
 * The Bot API wire format as the fake server speaks it: parameters decoded from query, JSON,
 * form or multipart bodies; JSON answers; and the errors method handlers throw.
 *
 * @module
 */

/** Decoded request parameters; uploaded files become `{file_name, mime_type, file_size}`. */
export type Params = Record<string, unknown>;
/** Any JSON object, e.g. a Message under construction. */
export type JsonObject = Record<string, unknown>;
/** A Bot API response body. */
export type ApiBody =
  | { ok: true; result: unknown; description?: string }
  | { ok: false; error_code: number; description: string; parameters?: JsonObject };
/** A response body with the HTTP status it goes out with. */
export type Answer = { status: number; body: ApiBody };

/** An error that {@linkcode FakeBotApi.failNext} makes a method answer with. */
export interface FaultSpec {
  /** Telegram error code, also used as the HTTP status. */
  error_code: number;
  /** Defaults to Telegram's usual wording for the code. */
  description?: string;
  /** Seconds, copied to `parameters.retry_after`; a 429 always gets one, as from Telegram. */
  retry_after?: number;
}

/** Thrown inside method handlers; turned into a Telegram error response. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly description: string,
    readonly parameters?: JsonObject,
  ) {
    super(description);
    this.name = "ApiError";
  }
}

/** A 400 with Telegram's `Bad Request: ` prefix. */
export const badRequest = (what: string): ApiError => new ApiError(400, `Bad Request: ${what}`);

// Telegram decodes these fields as JSON when they arrive as strings (query, form, multipart).
const JSON_FIELDS = new Set(
  ("reply_markup allowed_updates entities caption_entities commands scope link_preview_options " +
    "reply_parameters menu_button media reaction").split(" "),
);

/** Reads a request's parameters from its query string and JSON, form or multipart body. */
export async function readParams(request: Request, url: URL): Promise<Params> {
  const params: Params = {};
  for (const [key, value] of url.searchParams) params[key] = value;
  if (request.method === "POST" || request.method === "PUT") {
    const type = request.headers.get("content-type") ?? "";
    if (
      type.includes("multipart/form-data") || type.includes("application/x-www-form-urlencoded")
    ) {
      Object.assign(params, await readForm(request));
    } else {
      const text = await request.text();
      if (text.trim() !== "") {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new Error("can't parse JSON object");
        }
        if (!isObject(body)) throw new Error("JSON object expected");
        Object.assign(params, body);
      }
    }
  } else {
    await request.body?.cancel();
  }
  for (const [key, value] of Object.entries(params)) params[key] = coerceJsonField(key, value);
  return params;
}

async function readForm(request: Request): Promise<Params> {
  let form: FormData;
  try {
    form = await request.formData();
  } catch {
    throw new Error("can't parse request body");
  }
  const params: Params = {};
  const files = new Map<string, JsonObject>();
  for (const [key, value] of form) {
    if (typeof value === "string") params[key] = value;
    else {
      files.set(key, {
        file_name: value.name || key,
        mime_type: value.type || "application/octet-stream",
        file_size: value.size,
      });
    }
  }
  // grammY uploads as `document: "attach://<part>"` plus a separate part holding the bytes.
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === "string" && value.startsWith("attach://")) {
      const part = value.slice("attach://".length);
      const file = files.get(part);
      if (file !== undefined) {
        params[key] = file;
        files.delete(part);
      }
    }
  }
  for (const [key, file] of files) params[key] = file;
  return params;
}

/** Parses a JSON-valued field that arrived as a string, as Telegram does. */
export function coerceJsonField(key: string, value: unknown): unknown {
  if (typeof value !== "string" || !JSON_FIELDS.has(key)) return value;
  try {
    return JSON.parse(value);
  } catch {
    throw new Error(`can't parse ${key} JSON object`);
  }
}

/** An integer parameter, from a number or a numeric string. */
export function optInt(p: Params, key: string): number | undefined {
  const n = optNumber(p, key);
  return n === undefined ? undefined : Math.trunc(n);
}

/** A numeric parameter, from a number or a numeric string. */
export function optNumber(p: Params, key: string): number | undefined {
  const value = p[key];
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

/** A string parameter; numbers are turned into strings as Telegram does. */
export function optString(p: Params, key: string): string | undefined {
  const value = p[key];
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return undefined;
}

/** A boolean parameter in any of the spellings clients use. */
export function optBool(p: Params, key: string): boolean {
  const value = p[key];
  return value === true || value === "true" || value === "1" || value === 1;
}

/** The numeric chat id in `key`, or Telegram's error for a missing or unknown chat. */
export function requireChatId(p: Params, key = "chat_id"): number {
  const value = p[key];
  if (value === undefined || value === "") throw badRequest(`${key} is empty`);
  const id = optInt(p, key);
  // "@username" ids would need a directory of public chats that the fake does not have.
  if (id === undefined || id === 0) throw badRequest("chat not found");
  return id;
}

// ---- responses -------------------------------------------------------------------------------

/** A JSON HTTP response. */
export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** An error body, with `parameters` only when there are some. */
export function fail(code: number, description: string, parameters?: JsonObject): ApiBody {
  return parameters === undefined
    ? { ok: false, error_code: code, description }
    : { ok: false, error_code: code, description, parameters };
}

/** An error answer whose HTTP status follows the error code, as with Telegram. */
export function errorAnswer(code: number, description: string, parameters?: JsonObject): Answer {
  const status = code >= 400 && code <= 599 ? code : 500;
  return { status, body: fail(code, description, parameters) };
}

/** The answer for an injected fault; a 429 always carries `retry_after`. */
export function faultAnswer(fault: FaultSpec): Answer {
  const retryAfter = fault.retry_after ?? (fault.error_code === 429 ? 1 : undefined);
  const description = fault.description ?? defaultDescription(fault.error_code, retryAfter);
  return errorAnswer(
    fault.error_code,
    description,
    retryAfter === undefined ? undefined : { retry_after: retryAfter },
  );
}

function defaultDescription(code: number, retryAfter: number | undefined): string {
  switch (code) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden: bot was blocked by the user";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 429:
      return `Too Many Requests: retry after ${retryAfter ?? 1}`;
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    default:
      return `Error ${code}`;
  }
}

/** True for a plain JSON object (not null, not an array). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
