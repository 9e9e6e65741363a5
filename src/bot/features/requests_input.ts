/**
 * Pure checks of what a user types or presses in the request flows: the description, the
 * phone number, and the buttons' `callback_data`. No I/O, so they are tested as tables.
 */

/** Shortest description that says anything useful. */
export const DESCRIPTION_MIN = 10;
/** Longest description: leaves the summary well under Telegram's 4096 characters. */
export const DESCRIPTION_MAX = 2000;
/** Requests per page of `/my`. */
export const PAGE_SIZE = 5;

/** Why a description was refused. */
export type DescriptionProblem = "too_short" | "too_long" | "command";

/** A description as stored, or why it was refused. */
export type DescriptionCheck =
  | { ok: true; value: string }
  | { ok: false; problem: DescriptionProblem; length: number };

/**
 * Checks a typed description: trimmed, {@link DESCRIPTION_MIN}–{@link DESCRIPTION_MAX}
 * characters, and not a command such as `/help` (usually a user who meant to leave the form).
 * Characters are UTF-16 code units, as Telegram counts its 4096-character limit (an emoji
 * counts two), so that the summary always fits in one message.
 */
export function checkDescription(text: string): DescriptionCheck {
  const value = text.trim();
  const length = value.length;
  if (/^\/[A-Za-z0-9_]+(@\w+)?(\s|$)/.test(value)) return { ok: false, problem: "command", length };
  if (length < DESCRIPTION_MIN) return { ok: false, problem: "too_short", length };
  if (length > DESCRIPTION_MAX) return { ok: false, problem: "too_long", length };
  return { ok: true, value };
}

/**
 * A phone number as stored: `+` and 7–15 digits (E.164 allows at most 15) when the user wrote
 * a `+`, else just the digits; spaces, dashes, dots and brackets are dropped. Null when `text`
 * is not a phone number.
 */
export function normalizePhone(text: string): string | null {
  const value = text.trim();
  if (!/^\+?[\d\s().-]+$/.test(value)) return null;
  if (/\(.*\(|\).*\)/.test(value)) return null;
  const digits = value.replace(/\D/g, "");
  if (digits.length < 7 || digits.length > 15) return null;
  return value.startsWith("+") ? `+${digits}` : digits;
}

/** A shared Telegram contact's number in the same form; Telegram omits the `+` at times. */
export function contactPhone(phoneNumber: string): string | null {
  const digits = phoneNumber.replace(/\D/g, "");
  return normalizePhone(`+${digits}`);
}

/**
 * Short id of a request form: the first 8 hex digits of its draft UUID. Every button of the
 * form carries it, so that a button of an earlier form is recognised as old.
 */
export function formTag(draftId: string): string {
  return draftId.replaceAll("-", "").slice(0, 8);
}

/** A button press of the request flows, decoded. */
export type RequestAction =
  | { kind: "category"; index: number; tag: string }
  | { kind: "confirm"; tag: string }
  | { kind: "edit"; tag: string }
  | { kind: "cancel"; tag: string }
  | { kind: "page"; page: number }
  | { kind: "open"; number: number; page: number }
  /** A page of a request's conversation; `back` is the list page to return to. */
  | { kind: "messages"; number: number; index: number; back: number };

/** Largest page or request number a button may carry; anything above it is forged. */
const MAX_NUMBER = 1_000_000_000_000;

/** The `callback_data` of {@link action}; at most 64 bytes. */
export function encodeAction(action: RequestAction): string {
  switch (action.kind) {
    case "category":
      return `rq:c:${action.index}:${action.tag}`;
    case "confirm":
      return `rq:ok:${action.tag}`;
    case "edit":
      return `rq:ed:${action.tag}`;
    case "cancel":
      return `rq:x:${action.tag}`;
    case "page":
      return `my:p:${action.page}`;
    case "open":
      return `my:o:${action.number}:${action.page}`;
    case "messages":
      return `my:m:${action.number}:${action.index}:${action.back}`;
  }
}

/** Whether `data` belongs to the request flows (the `rq:` and `my:` buttons). */
export const ACTION_DATA = /^(rq|my):/;

/** `data` decoded, or null when it is no button these flows ever made (forged, garbled). */
export function decodeAction(data: string): RequestAction | null {
  const parts = data.split(":");
  const tag = /^[0-9a-f]{8}$/;
  const whole = (text: string | undefined): number | null => {
    if (text === undefined || !/^(0|[1-9]\d{0,12})$/.test(text)) return null;
    const n = Number(text);
    return n <= MAX_NUMBER ? n : null;
  };
  const [scope, verb, a, b] = parts;
  if (scope === "rq") {
    if (verb === "c" && parts.length === 4 && tag.test(b ?? "")) {
      const index = whole(a);
      return index === null ? null : { kind: "category", index, tag: b! };
    }
    if (parts.length !== 3 || !tag.test(a ?? "")) return null;
    if (verb === "ok") return { kind: "confirm", tag: a! };
    if (verb === "ed") return { kind: "edit", tag: a! };
    if (verb === "x") return { kind: "cancel", tag: a! };
    return null;
  }
  if (scope === "my") {
    if (verb === "p" && parts.length === 3) {
      const page = whole(a);
      return page === null ? null : { kind: "page", page };
    }
    if (verb === "m" && parts.length === 5) {
      const number = whole(a);
      const index = whole(b);
      const back = whole(parts[4]);
      return number === null || number === 0 || index === null || back === null
        ? null
        : { kind: "messages", number, index, back };
    }
    if (verb === "o" && parts.length === 4) {
      const number = whole(a);
      const page = whole(b);
      return number === null || number === 0 || page === null
        ? null
        : { kind: "open", number, page };
    }
  }
  return null;
}

/** How many pages `total` requests fill (at least one, which may be empty). */
export function pageCount(total: number, size = PAGE_SIZE): number {
  return Math.max(1, Math.ceil(total / size));
}
