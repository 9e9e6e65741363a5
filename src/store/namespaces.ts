/** The namespaces of store keys (the first part of every `StoreKey`), in one place. */
export const NAMESPACES = {
  /** Dialog state per chat and user. Durable: backed up and restored. */
  dialog: "fsm",
  /** Cached user profiles; rebuilt from Postgres on a miss. */
  userCache: "user",
} as const;

/** Namespaces whose keys `backup` saves: losing them would lose users' dialogs. */
export const DURABLE_NAMESPACES: readonly string[] = [NAMESPACES.dialog];
