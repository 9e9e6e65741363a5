/**
 * Files sent while filing a request: at the description step a photo, document, video, voice
 * or audio message is kept with the form (its caption, when long enough, is the description),
 * and the parts of an album, which arrive as several messages, are kept together even when
 * the form moved on after the first. At most {@link MAX_ATTACHMENTS} per request.
 */
import type { Message } from "grammy/types";
import { z } from "zod";
import { contentOf } from "../message_content.ts";

/** Most files one request carries (Telegram's album size). */
export const MAX_ATTACHMENTS = 10;

/** The kinds of file a request may carry. */
const KINDS = ["photo", "document", "video", "voice", "audio", "animation", "video_note"];

/** One file as the form keeps it. */
export const attachmentSchema = z.object({
  kind: z.string(),
  fileId: z.string(),
  mediaGroupId: z.string().nullable(),
  messageId: z.number().int(),
  caption: z.string().nullable(),
});

/** One file as the form keeps it. */
export type FormAttachment = z.infer<typeof attachmentSchema>;

/** The file `message` carries, if it is one a request may carry. */
export function attachmentOf(message: Message): FormAttachment | null {
  const content = contentOf(message);
  if (content?.fileKind == null || !KINDS.includes(content.fileKind)) return null;
  return {
    kind: content.fileKind,
    fileId: content.fileId!,
    mediaGroupId: content.mediaGroupId,
    messageId: message.message_id,
    caption: content.text,
  };
}

/** What adding a file did: the new list, whether it was dropped, and whether it opened an album. */
export function addAttachment(
  list: readonly FormAttachment[],
  file: FormAttachment,
): { list: FormAttachment[]; dropped: boolean; firstOfGroup: boolean } {
  const firstOfGroup = file.mediaGroupId === null ||
    !list.some((a) => a.mediaGroupId === file.mediaGroupId);
  if (list.some((a) => a.messageId === file.messageId)) {
    return { list: [...list], dropped: false, firstOfGroup: false };
  }
  if (list.length >= MAX_ATTACHMENTS) return { list: [...list], dropped: true, firstOfGroup };
  return { list: [...list, file], dropped: false, firstOfGroup };
}

/** Whether `file` belongs to an album the form already holds a part of. */
export function continuesAlbum(list: readonly FormAttachment[], file: FormAttachment): boolean {
  return file.mediaGroupId !== null && list.some((a) => a.mediaGroupId === file.mediaGroupId);
}
