/**
 * The rating buttons a user gets with a closed request: `rate:<number>:<stars>`. Made where
 * the closing is announced (the staff side) and pressed in the user's chat (the requests
 * side), so the format lives here, between them.
 */
import type { InlineKeyboardMarkup } from "grammy/types";

/** A rating button's data: `rate:<request number>:<1-5>`. */
export const RATING_DATA = /^rate:(\d{1,15}):([1-5])$/;

/** Five buttons, one to five stars. */
export function ratingKeyboard(number: number): InlineKeyboardMarkup {
  return {
    inline_keyboard: [[1, 2, 3, 4, 5].map((stars) => ({
      text: stars === 5 ? "5 ⭐" : `${stars}`,
      callback_data: `rate:${number}:${stars}`,
    }))],
  };
}

/** `stars` as stars: `★★★★☆`. */
export function starsText(stars: number): string {
  return "★".repeat(stars) + "☆".repeat(5 - stars);
}
