/**
 * Every namespace of store keys (the first part of every `StoreKey`), in one place: a key
 * spelled anywhere else is a bug. Redis keys read `<prefix><namespace>:{<entity>}:…`.
 */
export const NAMESPACES = {
  /** Dialog state per chat and user. Durable: backed up and restored. */
  dialog: "fsm",
  /** Cached user profiles; rebuilt from the database on a miss. */
  userCache: "user",
  /** Update ids handled in the last day, per chat (the gate's dedup). */
  seen: "seen",
  /** Rate-limit buckets per chat and user. */
  bucket: "rl",
  /** Which instance handles a chat right now (webhook mode with several instances). */
  chatLease: "lease",
  /** Leader leases by name: `polling`, `jobs`. */
  leader: "leader",
  /** Cached answers of "is this user staff?" (Telegram's `getChatMember`). */
  staffCheck: "staff",
  /** Background jobs' progress, by job name. */
  job: "job",
  /**
   * Outbound flood control: every key has the entity `bot` (one Redis Cluster slot), so that
   * the bot-wide log, a chat's log and the broadcast pacing are one script's keys.
   */
  flood: "flood",
  /** Infrastructure alerts: which problems are open and who sees them, by problem. */
  alert: "alert",
  /**
   * The polling inbox: updates received and not yet finished, with the instances' claims on
   * them; every key has the entity `polling` (one Redis Cluster slot, one script's keys).
   */
  inbox: "inbox",
  /** The key the store's health probe writes (it expires in seconds): see `ping()`. */
  probe: "probe",
} as const;

/** Namespaces whose keys `backup` saves: losing them would lose users' dialogs. */
export const DURABLE_NAMESPACES: readonly string[] = [NAMESPACES.dialog];
