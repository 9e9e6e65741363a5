/**
 * Files in the fake: the media objects Telegram puts in messages (a PhotoSize array, Document,
 * Video, Voice, ...), each with a unique `file_id` and `file_unique_id`, and how a send method's
 * file parameter (a known `file_id`, an HTTP URL or an upload) becomes one. The store remembers
 * every file it described, so a `file_id` the bot sends back names the same file, as with
 * Telegram.
 *
 * @module
 */

import { badRequest, isObject, type JsonObject, type Params } from "./wire.ts";

/** The kinds of file a message can carry. */
export type MediaKind =
  | "photo"
  | "video"
  | "animation"
  | "audio"
  | "document"
  | "voice"
  | "sticker";

/** Every {@linkcode MediaKind}, in the order Telegram's Message lists them. */
export const MEDIA_KINDS: readonly MediaKind[] = [
  "animation",
  "audio",
  "document",
  "photo",
  "sticker",
  "video",
  "voice",
];

/** Message fields that hold content; a message with none of them is a service message. */
export const CONTENT_KEYS: readonly string[] = [
  "text",
  ...MEDIA_KINDS,
  "contact",
  "video_note",
  "location",
  "venue",
  "poll",
  "dice",
];

/** Kinds whose messages can have a caption. */
export const CAPTIONED_KINDS: ReadonlySet<string> = new Set([
  "animation",
  "audio",
  "document",
  "photo",
  "video",
  "voice",
]);

// Real file ids start with a type tag; keeping them apart makes ids in test output readable.
const ID_PREFIX: Record<MediaKind, string> = {
  photo: "AgACAgIAAxkDAAI",
  video: "BAACAgIAAxkDAAI",
  animation: "CgACAgIAAxkDAAI",
  audio: "CQACAgIAAxkDAAI",
  document: "BQACAgIAAxkDAAI",
  voice: "AwACAgIAAxkDAAI",
  sticker: "CAACAgIAAxkDAAI",
};
const DEFAULTS: Record<MediaKind, JsonObject> = {
  photo: {},
  video: { width: 1280, height: 720, duration: 10, mime_type: "video/mp4" },
  animation: { width: 320, height: 240, duration: 3, mime_type: "video/mp4" },
  audio: { duration: 180, mime_type: "audio/mpeg" },
  document: { file_name: "file" },
  voice: { duration: 5, mime_type: "audio/ogg" },
  sticker: { type: "regular", width: 512, height: 512, is_animated: false, is_video: false },
};
// What a send method may say about a new file (Telegram takes the bot's word for it).
const SEND_ATTRIBUTES: Record<MediaKind, readonly string[]> = {
  photo: [],
  video: ["duration", "width", "height"],
  animation: ["duration", "width", "height"],
  audio: ["duration", "performer", "title"],
  document: [],
  voice: ["duration"],
  sticker: ["emoji"],
};
const NAMED_KINDS = new Set<MediaKind>(["document", "video", "animation", "audio"]);
// Telegram stores a photo in several sizes, smallest first; the fake never looks at pixels.
const PHOTO_SIZES: ReadonlyArray<readonly [number, number]> = [[90, 67], [320, 240], [800, 600]];
const ALBUM_KINDS = new Set(["photo", "video", "document", "audio"]);

/** The files the fake has described, by `file_id`. */
export class FileStore {
  #counter = 0;
  readonly #files = new Map<string, { kind: MediaKind; media: unknown }>();

  /**
   * Describes a new file of `kind` (a PhotoSize array for photos), with `fields` added to the
   * defaults; `fileId` names it (the largest size of a photo) instead of a fresh id.
   */
  mint(kind: MediaKind, fields: JsonObject = {}, fileId?: string): unknown {
    const given = Object.fromEntries(
      Object.entries(fields).filter(([k, v]) => v !== undefined && k !== "file_id"),
    );
    let media: unknown;
    if (kind === "photo") {
      media = PHOTO_SIZES.map(([width, height], i) => {
        const largest = i === PHOTO_SIZES.length - 1;
        const size: JsonObject = {
          ...this.#ids(kind, largest ? fileId : undefined),
          width,
          height,
        };
        if (largest && typeof given.file_size === "number") size.file_size = given.file_size;
        return size;
      });
      for (const size of media as JsonObject[]) {
        this.#files.set(size.file_id as string, { kind, media });
      }
    } else {
      const file = { ...this.#ids(kind, fileId), ...DEFAULTS[kind], ...given };
      this.#files.set(file.file_id, { kind, media: file });
      media = file;
    }
    return structuredClone(media);
  }

  /** The kind of a `file_id` the fake described, if it did. */
  kindOf(fileId: string): MediaKind | undefined {
    return this.#files.get(fileId)?.kind;
  }

  /**
   * Turns a send method's file parameter into the media object of the sent message: a known
   * `file_id` is the same file again, a string with a dot or a scheme is an HTTP URL Telegram
   * downloads, and an object is an upload described by the request decoder.
   */
  fromInput(kind: MediaKind, value: unknown, p: Params = {}): unknown {
    if (value === undefined || value === null || value === "") {
      throw badRequest(`there is no ${kind} in the request`);
    }
    const attributes = Object.fromEntries(
      SEND_ATTRIBUTES[kind].filter((k) => p[k] !== undefined).map((k) => [k, attribute(p[k])]),
    );
    if (typeof value === "string") {
      const known = this.#files.get(value);
      if (known !== undefined) {
        if (known.kind !== kind) throw badRequest("type of file mismatch");
        return structuredClone(known.media);
      }
      // TDLib takes a string with a dot or a scheme for a URL; anything else must be a file_id.
      if (!/[.:]/.test(value)) throw badRequest("wrong file identifier/HTTP URL specified");
      const name = value.split(/[/?#]/).filter(Boolean).at(-1);
      const named = NAMED_KINDS.has(kind) && name !== undefined ? { file_name: name } : {};
      return this.mint(kind, { ...named, ...attributes });
    }
    if (isObject(value)) {
      const upload: JsonObject = { mime_type: value.mime_type, file_size: value.file_size };
      if (NAMED_KINDS.has(kind)) upload.file_name = value.file_name;
      if (kind === "sticker") delete upload.mime_type;
      return this.mint(kind, { ...upload, ...attributes });
    }
    throw badRequest(`there is no ${kind} in the request`);
  }

  #ids(kind: MediaKind, fileId?: string): { file_id: string; file_unique_id: string } {
    const n = String(++this.#counter).padStart(6, "0");
    return {
      file_id: fileId ?? `${ID_PREFIX[kind]}${n}`,
      file_unique_id: `${kind === "photo" ? "AQAD" : "AgAD"}${n}`,
    };
  }
}

/** The message fields for a file: an animation also fills `document`, as Telegram does. */
export function mediaFields(kind: MediaKind, media: unknown): JsonObject {
  return kind === "animation"
    ? { animation: media, document: structuredClone(media) }
    : { [kind]: media };
}

/** The kind of media a stored message carries, if any. */
export function mediaKindOf(message: JsonObject): MediaKind | undefined {
  // An animation also carries `document`, so it must be recognised first.
  return MEDIA_KINDS.find((k) => message[k] !== undefined);
}

/** Checks the item types of a sendMediaGroup album; throws Telegram's error for a bad mix. */
export function checkAlbumTypes(types: readonly string[]): void {
  for (const type of types) {
    if (!ALBUM_KINDS.has(type)) {
      throw badRequest(`can't parse InputMedia: type "${type}" can't be used in sendMediaGroup`);
    }
  }
  for (const alone of ["document", "audio"]) {
    if (types.includes(alone) && types.some((t) => t !== alone)) {
      throw badRequest(`${alone} can't be mixed with other media types`);
    }
  }
}

function attribute(value: unknown): unknown {
  return typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
}
