/** Durations as the admins read them: `45 seconds`, `12 minutes`, `3 hours`, in their language. */
import type { Locale } from "../config.ts";
import { translate } from "./i18n.ts";

/** `ms` rounded to seconds (under 2 minutes), minutes (under 2 hours) or hours, in `locale`. */
export function formatDuration(ms: number, locale: Locale): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) return translate(locale, "background.duration.seconds", { n: seconds });
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return translate(locale, "background.duration.minutes", { n: minutes });
  return translate(locale, "background.duration.hours", { n: Math.round(minutes / 60) });
}
