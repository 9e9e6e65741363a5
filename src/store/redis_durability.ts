/**
 * Whether the Redis the bot uses keeps the bot's keys: the gate's guarantees (an update handled
 * once, a dialog that survives a restart of the bot, a ban that lasts) hold only while Redis
 * neither evicts those keys when full nor forgets them when it restarts. A Redis set up as a
 * cache (`maxmemory-policy allkeys-lru`, no persistence) loses them silently, so `doctor` and the
 * start say so.
 */
import type { DurabilityNote } from "./store.ts";

/** What Redis says about eviction and persistence (`INFO`, and `CONFIG GET` where allowed). */
export interface RedisSettings {
  /** `maxmemory` in bytes; 0: no limit. */
  maxmemoryBytes: number;
  /** `maxmemory-policy`, e.g. `noeviction`, `allkeys-lru`. */
  policy: string;
  /** The append-only file is on (`appendonly yes`). */
  aof: boolean;
  /** `appendfsync` (`everysec`, `always`, `no`); null when CONFIG GET was refused. */
  fsync: string | null;
  /** The snapshot schedule `save` ("" none); null when CONFIG GET was refused. */
  save: string | null;
}

/** The `field:value` lines of an `INFO` reply. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(":");
    if (at > 0 && !line.startsWith("#")) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

/** The value of a `CONFIG GET name` reply (`[name, value]`); null when there is none. */
export function configValue(reply: unknown): string | null {
  return Array.isArray(reply) && reply.length >= 2 ? String(reply[1]) : null;
}

const MIB = 1024 * 1024;

/** What `settings` mean for the bot's keys: one note on eviction, one on restarts. */
export function durabilityNotes(settings: RedisSettings): DurabilityNote[] {
  return [evictionNote(settings), persistenceNote(settings)];
}

function evictionNote({ maxmemoryBytes, policy }: RedisSettings): DurabilityNote {
  if (maxmemoryBytes === 0 || policy === "noeviction") {
    const limit = maxmemoryBytes === 0
      ? "no maxmemory"
      : `maxmemory ${mib(maxmemoryBytes)}, maxmemory-policy noeviction: a full Redis refuses ` +
        "writes, and /health says so";
    return { verdict: "ok", text: `Redis never evicts the bot's keys (${limit})` };
  }
  return {
    verdict: "warn",
    text: `Redis evicts keys when full (maxmemory ${mib(maxmemoryBytes)}, maxmemory-policy ` +
      `${policy}): a dialog in progress, a ban or the mark of a handled update may vanish, and ` +
      "an update Telegram sends again be handled twice; set maxmemory-policy noeviction",
  };
}

function persistenceNote({ aof, fsync, save }: RedisSettings): DurabilityNote {
  if (aof) {
    const every = fsync === null ? "" : `, appendfsync ${fsync}`;
    return {
      verdict: "ok",
      text: `Redis keeps its data across a restart (appendonly yes${every})`,
    };
  }
  if (save === null) {
    return {
      verdict: "warn",
      text: "Redis has appendonly no and refused CONFIG GET, so whether it saves snapshots is " +
        "unknown: without them a restart of Redis loses every dialog in progress, ban and mark " +
        "of a handled update; check its persistence",
    };
  }
  if (save.trim() === "") {
    return {
      verdict: "warn",
      text: "Redis keeps nothing across a restart (appendonly no, no save schedule): a restart " +
        "of Redis loses every dialog in progress, ban and mark of a handled update; set " +
        "appendonly yes",
    };
  }
  return {
    verdict: "ok",
    text: `Redis saves snapshots (save "${save}"): a restart of Redis loses what changed since ` +
      "the last one (appendonly yes would lose at most a second)",
  };
}

function mib(bytes: number): string {
  return `${Math.round(bytes / MIB)} MiB`;
}
