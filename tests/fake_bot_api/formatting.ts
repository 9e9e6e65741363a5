/**
 * Telegram's text formatting as the fake applies it: HTML, MarkdownV2 and legacy Markdown parsed
 * into plain text plus entities with Telegram's error texts, length limits, and inline keyboard
 * validation.
 *
 * @module
 */

import { type ApiError, badRequest, isObject, type JsonObject } from "./wire.ts";

/** A MessageEntity as Telegram returns it. */
export type Entity = { type: string; offset: number; length: number; [key: string]: unknown };
/** Plain text plus entities, as Telegram stores a formatted message. */
export interface Formatted {
  /** Text with markup removed and HTML entities decoded. */
  text: string;
  /** Formatting entities with UTF-16 offsets. */
  entities: Entity[];
}

const BUTTON_ACTIONS = ("url callback_data web_app login_url switch_inline_query " +
  "switch_inline_query_current_chat switch_inline_query_chosen_chat copy_text callback_game pay")
  .split(" ");

/** Parses `value` in `parseMode` (or takes its `entities`) and enforces Telegram's limits. */
export function formatText(
  value: unknown,
  parseMode: unknown,
  entities: unknown,
  kind: "text" | "caption",
): Formatted {
  if (value === undefined && kind === "caption") return { text: "", entities: [] };
  const raw = typeof value === "string" ? value : typeof value === "number" ? String(value) : "";
  if (kind === "text" && raw.trim() === "") throw badRequest("message text is empty");
  let formatted: Formatted;
  const mode = typeof parseMode === "string" ? parseMode.toLowerCase() : "";
  if (mode === "html") formatted = parseHtml(raw);
  else if (mode === "markdownv2") formatted = parseMarkdownV2(raw);
  else if (mode === "markdown") formatted = parseLegacyMarkdown(raw);
  else if (mode === "") {
    formatted = { text: raw, entities: Array.isArray(entities) ? structuredClone(entities) : [] };
  } else throw badRequest(`unsupported parse_mode`);
  if (kind === "text") {
    if (formatted.text.trim() === "") throw badRequest("message text is empty");
    if (formatted.text.length > 4096) throw badRequest("message is too long");
  } else if (formatted.text.length > 1024) throw badRequest("message caption is too long");
  return formatted;
}

/** The message fields for formatted text: `text`/`entities` or `caption`/`caption_entities`. */
export function textFields(formatted: Formatted, kind: "text" | "caption"): JsonObject {
  const fields: JsonObject = {};
  if (formatted.text === "") return fields;
  fields[kind] = formatted.text;
  if (formatted.entities.length > 0) {
    fields[kind === "text" ? "entities" : "caption_entities"] = formatted.entities;
  }
  return fields;
}

function entityError(what: string): ApiError {
  return badRequest(`can't parse entities: ${what}`);
}

function byteOffset(source: string, index: number): number {
  return new TextEncoder().encode(source.slice(0, index)).length;
}

const HTML_ENTITY_TYPES: Record<string, string> = {
  b: "bold",
  strong: "bold",
  i: "italic",
  em: "italic",
  u: "underline",
  ins: "underline",
  s: "strikethrough",
  strike: "strikethrough",
  del: "strikethrough",
  a: "text_link",
  code: "code",
  pre: "pre",
  "tg-spoiler": "spoiler",
  span: "spoiler",
  blockquote: "blockquote",
  "tg-emoji": "custom_emoji",
};
const HTML_TAGS = new Set(Object.keys(HTML_ENTITY_TYPES));

/** Telegram's HTML subset: returns the plain text and entities, or throws its parse errors. */
export function parseHtml(source: string): Formatted {
  let text = "";
  const entities: Entity[] = [];
  const open: Array<{ tag: string; start: number; entity: Entity | null }> = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const rest = source.slice(i);
    if (c === "<" && rest[1] === "/") {
      const end = /^<\/([a-zA-Z][a-zA-Z0-9-]*)\s*>/.exec(rest);
      if (end === null) {
        throw entityError(`Unexpected end tag at byte offset ${byteOffset(source, i)}`);
      }
      const tag = (end[1] ?? "").toLowerCase();
      const top = open.pop();
      if (top === undefined) {
        throw entityError(`Unexpected end tag at byte offset ${byteOffset(source, i)}`);
      }
      if (top.tag !== tag) {
        throw entityError(
          `Unmatched end tag at byte offset ${
            byteOffset(source, i)
          }, expected "</${top.tag}>", found "</${tag}>"`,
        );
      }
      // Telegram silently drops entities that cover no text.
      if (top.entity !== null && text.length > top.start) {
        entities.push({ ...top.entity, offset: top.start, length: text.length - top.start });
      }
      i += end[0].length;
    } else if (c === "<") {
      const start =
        /^<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*)\s*>/
          .exec(rest);
      if (start === null) {
        const name = /^<([a-zA-Z0-9-]*)/.exec(rest)?.[1] ?? "";
        throw entityError(
          `Unsupported start tag "${name}" at byte offset ${byteOffset(source, i)}`,
        );
      }
      const tag = (start[1] ?? "").toLowerCase();
      if (!HTML_TAGS.has(tag)) {
        throw entityError(`Unsupported start tag "${tag}" at byte offset ${byteOffset(source, i)}`);
      }
      const attrs = parseAttributes(start[2] ?? "");
      const parent = open.at(-1);
      let entity: Entity | null = { type: HTML_ENTITY_TYPES[tag] ?? tag, offset: 0, length: 0 };
      if (tag === "a") {
        const href = attrs.get("href");
        entity = href === undefined ? null : { ...entity, url: href };
      } else if (tag === "span" && attrs.get("class") !== "tg-spoiler") {
        throw entityError(
          `Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(source, i)}`,
        );
      } else if (tag === "blockquote" && attrs.has("expandable")) {
        entity.type = "expandable_blockquote";
      } else if (tag === "tg-emoji") {
        const id = attrs.get("emoji-id");
        if (id === undefined) throw entityError(`Tag "tg-emoji" must have attribute "emoji-id"`);
        entity.custom_emoji_id = id;
      } else if (tag === "code" && parent?.tag === "pre" && parent.entity !== null) {
        // <pre><code class="language-x"> is one pre entity with a language, not two entities.
        const language = /^language-(.+)$/.exec(attrs.get("class") ?? "")?.[1];
        if (language !== undefined) parent.entity.language = language;
        entity = null;
      }
      open.push({ tag, start: text.length, entity });
      i += start[0].length;
    } else if (c === ">") {
      throw entityError(
        `Character '>' must be escaped as "&gt;" at byte offset ${byteOffset(source, i)}`,
      );
    } else if (c === "&") {
      const decoded = decodeEntity(rest);
      if (decoded === null) {
        throw entityError(
          `Character '&' must start an HTML entity (use "&amp;") at byte offset ${
            byteOffset(source, i)
          }`,
        );
      }
      text += decoded.text;
      i += decoded.length;
    } else {
      text += c;
      i++;
    }
  }
  const unclosed = open.at(-1);
  if (unclosed !== undefined) {
    throw entityError(`Can't find end tag corresponding to start tag "${unclosed.tag}"`);
  }
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

function decodeEntity(rest: string): { text: string; length: number } | null {
  const m = /^&(?:(lt|gt|amp|quot)|#(\d{1,8})|#[xX]([0-9a-fA-F]{1,7}));/.exec(rest);
  if (m === null) return null;
  const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };
  if (m[1] !== undefined) return { text: named[m[1]] ?? "", length: m[0].length };
  const code = m[2] !== undefined ? Number(m[2]) : parseInt(m[3] ?? "", 16);
  if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return null;
  return { text: String.fromCodePoint(code), length: m[0].length };
}

function parseAttributes(source: string): Map<string, string> {
  const attrs = new Map<string, string>();
  const re = /([^\s=>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g;
  for (const m of source.matchAll(re)) {
    const raw = m[2] ?? m[3] ?? m[4] ?? "";
    let value = "";
    for (let i = 0; i < raw.length;) {
      const decoded = raw[i] === "&" ? decodeEntity(raw.slice(i)) : null;
      value += decoded?.text ?? raw[i];
      i += decoded?.length ?? 1;
    }
    attrs.set((m[1] ?? "").toLowerCase(), value);
  }
  return attrs;
}

const MD_RESERVED = "_*[]()~`>#+-=|{}.!";
const MD_NAMES: Record<string, string> = {
  bold: "Bold",
  italic: "Italic",
  underline: "Underline",
  strikethrough: "Strikethrough",
  spoiler: "Spoiler",
  text_link: "TextUrl",
  custom_emoji: "CustomEmoji",
};

/** An approximation of Telegram's MarkdownV2 parser, strict about unescaped reserved characters. */
export function parseMarkdownV2(source: string): Formatted {
  let text = "";
  const entities: Entity[] = [];
  const open: Array<{ type: string; start: number; at: number }> = [];
  let quoteStart = -1;
  let i = 0;
  const push = (type: string, start: number, extra: JsonObject = {}) => {
    if (text.length > start) {
      entities.push({ type, offset: start, length: text.length - start, ...extra });
    }
  };
  while (i < source.length) {
    const c = source[i] ?? "";
    const next = source[i + 1];
    if (c === "\\") {
      const code = next?.charCodeAt(0) ?? 0;
      if (next !== undefined && code >= 1 && code <= 126) {
        text += next;
        i += 2;
      } else {
        text += c;
        i++;
      }
      continue;
    }
    if (c === "`") {
      const fence = source.startsWith("```", i);
      const marker = fence ? "```" : "`";
      let j = i + marker.length;
      let language: string | undefined;
      if (fence) {
        const newline = source.indexOf("\n", j);
        const first = newline === -1 ? "" : source.slice(j, newline);
        if (newline !== -1 && /^[\w+#.-]*$/.test(first)) {
          if (first !== "") language = first;
          j = newline + 1;
        }
      }
      let body = "";
      while (j < source.length && !source.startsWith(marker, j)) {
        if (source[j] === "\\" && (source[j + 1] === "`" || source[j + 1] === "\\")) {
          body += source[j + 1];
          j += 2;
        } else {
          body += source[j];
          j++;
        }
      }
      if (j >= source.length) {
        throw entityError(
          `Can't find end of ${fence ? "Pre" : "Code"} entity at byte offset ${
            byteOffset(source, i)
          }`,
        );
      }
      const start = text.length;
      text += body;
      push(fence ? "pre" : "code", start, language === undefined ? {} : { language });
      i = j + marker.length;
      continue;
    }
    if (c === ">" && (i === 0 || source[i - 1] === "\n")) {
      if (quoteStart < 0) quoteStart = text.length;
      i++;
      continue;
    }
    if (c === "\n" && quoteStart >= 0 && next !== ">") {
      push("blockquote", quoteStart);
      quoteStart = -1;
    }
    const marker = c === "_" && next === "_" ? "__" : c === "|" && next === "|" ? "||" : c;
    const type = ({
      "*": "bold",
      "_": "italic",
      "__": "underline",
      "~": "strikethrough",
      "||": "spoiler",
    } as Record<string, string>)[marker];
    if (type !== undefined) {
      const top = open.at(-1);
      if (top?.type === type) {
        open.pop();
        push(type, top.start);
      } else if (open.some((o) => o.type === type) && top !== undefined) {
        throw entityError(
          `Can't find end of ${MD_NAMES[top.type] ?? top.type} entity at byte offset ${
            byteOffset(source, top.at)
          }`,
        );
      } else open.push({ type, start: text.length, at: i });
      i += marker.length;
      continue;
    }
    if (c === "[" || (c === "!" && next === "[")) {
      open.push({ type: c === "!" ? "custom_emoji" : "text_link", start: text.length, at: i });
      i += c === "!" ? 2 : 1;
      continue;
    }
    if (c === "]") {
      const top = open.at(-1);
      if ((top?.type === "text_link" || top?.type === "custom_emoji") && next === "(") {
        let j = i + 2;
        let url = "";
        while (j < source.length && source[j] !== ")") {
          if (source[j] === "\\" && j + 1 < source.length) j++;
          url += source[j];
          j++;
        }
        if (j >= source.length) {
          throw entityError(`Can't find end of a URL at byte offset ${byteOffset(source, i + 1)}`);
        }
        open.pop();
        if (top.type === "custom_emoji") {
          const id = /^tg:\/\/emoji\?id=(\d+)$/.exec(url)?.[1];
          if (id === undefined) {
            throw entityError("Custom emoji entity must contain a tg://emoji URL");
          }
          push("custom_emoji", top.start, { custom_emoji_id: id });
        } else push("text_link", top.start, { url });
        i = j + 1;
        continue;
      }
    }
    if (MD_RESERVED.includes(c)) {
      throw entityError(`Character '${c}' is reserved and must be escaped with the preceding '\\'`);
    }
    text += c;
    i++;
  }
  if (quoteStart >= 0) push("blockquote", quoteStart);
  const unclosed = open.at(-1);
  if (unclosed !== undefined) {
    throw entityError(
      `Can't find end of ${MD_NAMES[unclosed.type] ?? unclosed.type} entity at byte offset ${
        byteOffset(source, unclosed.at)
      }`,
    );
  }
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
  return { text, entities };
}

/** Legacy Markdown: only unbalanced markers are errors, which is what trips bots up. */
function parseLegacyMarkdown(source: string): Formatted {
  let text = "";
  const entities: Entity[] = [];
  const types: Record<string, string> = { "*": "bold", "_": "italic", "`": "code" };
  let i = 0;
  while (i < source.length) {
    const c = source[i] ?? "";
    const type = types[c];
    if (type !== undefined) {
      const end = source.indexOf(c, i + 1);
      if (end === -1) {
        throw entityError(
          `Can't find end of the entity starting at byte offset ${byteOffset(source, i)}`,
        );
      }
      const start = text.length;
      text += source.slice(i + 1, end);
      if (text.length > start) entities.push({ type, offset: start, length: text.length - start });
      i = end + 1;
    } else {
      text += c;
      i++;
    }
  }
  return { text, entities };
}

/** Rejects keyboards Telegram rejects; returns the reply_markup to keep on the message. */
export function checkMarkup(markup: unknown): JsonObject {
  if (markup === undefined || markup === null) return {};
  if (!isObject(markup)) throw badRequest("can't parse reply keyboard markup JSON object");
  if (markup.inline_keyboard === undefined) return {}; // only inline keyboards stay on a Message
  const rows = markup.inline_keyboard;
  if (!Array.isArray(rows) || !rows.every(Array.isArray)) {
    throw badRequest(
      'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays',
    );
  }
  for (const row of rows as unknown[][]) {
    for (const button of row) {
      if (!isObject(button) || typeof button.text !== "string") {
        throw badRequest(
          "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        );
      }
      if (!BUTTON_ACTIONS.some((k) => button[k] !== undefined)) {
        throw badRequest(
          "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        );
      }
      const data = button.callback_data;
      if (data !== undefined) {
        const size = typeof data === "string" ? new TextEncoder().encode(data).length : 0;
        if (size < 1 || size > 64) throw badRequest("BUTTON_DATA_INVALID");
      }
    }
  }
  return rows.length === 0 ? {} : { reply_markup: structuredClone(markup) };
}
