/**
 * What a relayed message carries, and how it looks on the other side: its text or caption,
 * its file (kind and id), its formatting (entities), and a header naming the request put in
 * front of it, with the formatting shifted so that it stays where it was.
 */
import type { Message, MessageEntity } from "grammy/types";

/** The kinds of file that are relayed. */
export const FILE_KINDS = [
  "photo",
  "document",
  "video",
  "voice",
  "audio",
  "animation",
  "sticker",
  "video_note",
] as const;
/** Kinds that take no caption: their header goes in a message of its own. */
const NO_CAPTION = new Set(["sticker", "video_note"]);

/** A message's content, as stored and relayed. */
export interface Content {
  text: string | null;
  fileKind: string | null;
  fileId: string | null;
  mediaGroupId: string | null;
  entities: MessageEntity[];
}

/** The content of `message`, or null for what is not relayed (locations, polls, service messages). */
export function contentOf(message: Message): Content | null {
  const file = FILE_KINDS.map((kind) => [kind, fileIdOf(message, kind)] as const)
    .find(([, id]) => id !== null);
  const text = message.text ?? message.caption ?? null;
  if (!file && text === null) return null;
  return {
    text,
    fileKind: file?.[0] ?? null,
    fileId: file?.[1] ?? null,
    mediaGroupId: message.media_group_id ?? null,
    entities: [...(message.entities ?? message.caption_entities ?? [])],
  };
}

function fileIdOf(message: Message, kind: typeof FILE_KINDS[number]): string | null {
  if (kind === "photo") return message.photo?.at(-1)?.file_id ?? null;
  const file = (message as unknown as Record<string, { file_id?: string } | undefined>)[kind];
  return file?.file_id ?? null;
}

/** Whether a file of this kind can carry the header as its caption. */
export function takesCaption(kind: string | null): boolean {
  return kind !== null && !NO_CAPTION.has(kind);
}

/**
 * `header` (bold), a blank line, then `body` with its `entities` moved along, all within
 * `limit` characters (Telegram's 4096 for a text, 1024 for a caption).
 */
export function withHeader(
  header: string,
  body: string | null,
  entities: readonly MessageEntity[],
  limit: number,
): { text: string; entities: MessageEntity[] } {
  const bold: MessageEntity = { type: "bold", offset: 0, length: header.length };
  if (body === null || body === "") return { text: header.slice(0, limit), entities: [bold] };
  const shift = header.length + 2;
  let text = `${header}\n\n${body}`;
  if (text.length > limit) {
    let end = limit - 1;
    // Never split a surrogate pair: Telegram refuses text that is not valid UTF-16.
    if (/[\uD800-\uDBFF]/.test(text[end - 1] ?? "")) end--;
    text = `${text.slice(0, end)}…`;
  }
  const moved = entities
    .map((e) => ({ ...e, offset: e.offset + shift }))
    .filter((e) => e.offset + e.length <= text.length);
  return { text, entities: [bold, ...moved] };
}
