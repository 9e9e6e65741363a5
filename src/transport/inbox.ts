/**
 * The polling inbox: a durable record, in the key-value store, of the updates this instance
 * received and has not finished, so that Telegram can be told at once that they arrived (its
 * `offset` confirms every update below it) and polling never waits for a slow one.
 *
 * - The poller records each batch it fetched in one store round trip ({@link UpdateInbox.record})
 *   before it polls again with an offset past the batch; an update that finishes is reported
 *   ({@link UpdateInbox.finished}), and once every update of a batch finished the batch is
 *   trimmed (one more round trip per batch, none per update).
 * - Whether an update was handled is the gate's business: its dedup marker, written at the
 *   commit, makes a replayed update that had been handled a duplicate.
 * - Each instance holds a claim (a key with a TTL, renewed by {@link UpdateInbox.heartbeat})
 *   while it may be handling its batches. Batches whose owner's claim lapsed (a crash, the end
 *   of a stop that abandoned updates) are adopted by the instance that polls and replayed. On
 *   a store that no other instance shares there are no claims: every batch left in it belongs
 *   to a process that has exited.
 * - A claim says `running` while its owner runs and `exiting` after a stop that abandoned
 *   updates. A new leader waits for the `running` claims of others to lapse before it polls
 *   (after a crash they lapse about when the lease does), so that a chat's replayed updates
 *   run before its newer ones; it does not wait for `exiting` ones, whose updates ran past
 *   `SHUTDOWN_TIMEOUT` already, and replays those once the claim lapsed.
 *
 * The inbox never throws: when the store fails, a batch is reported as not recorded and the
 * poller keeps those updates unconfirmed at Telegram instead, as without an inbox. A batch
 * recorded before a store outage is trimmed once the store answers again; only a crash during
 * the outage replays its updates that finished meanwhile, whose dedup marker the gate could not
 * write either (the same exposure as the gate's in-memory fallback).
 *
 * Why an inbox rather than polling from the lowest unfinished id without a pause: Telegram
 * answers a poll with everything from the offset on, at most 100 updates, so with one update
 * in flight every poll would come back at once with it (a busy loop re-sending the same
 * updates), and once 100 updates had arrived behind the slow one, newer ones would not be
 * fetched until it finished. The inbox costs two store round trips per batch (record, trim).
 */
import type { Update } from "grammy/types";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Json, KeyValueStore } from "../store/store.ts";
import {
  adoptScript,
  chunked,
  heartbeatScript,
  inboxKeys,
  type IndexEntry,
  recordScript,
  trimScript,
} from "./inbox_scripts.ts";

/** A batch older than this is dropped unreplayed: the gate forgets handled updates after a day. */
export const MAX_BATCH_AGE_MS = 23 * 60 * 60 * 1000;
/** How long the chunks of a batch live at most. */
const CHUNK_TTL_MS = 24 * 60 * 60 * 1000;

/** Options of {@link UpdateInbox}. */
export interface InboxOptions {
  store: KeyValueStore;
  /** This instance's name among those sharing the store. */
  owner: string;
  log: Logger;
  /** How long a claim lasts unless renewed. @default 10000 */
  claimTtlMs?: number;
  /**
   * How long the claim outlives a stop that abandoned updates: the rest of the shutdown, while
   * they may still run. @default 10000
   */
  exitGraceMs?: number;
}

/** The claim's value while its owner runs, and after a stop that abandoned updates. */
const RUNNING = 1;
const EXITING = 2;

/** What {@link UpdateInbox.heartbeat} found. */
export interface Replay {
  /** Updates of adopted batches, oldest first, to be handled again. */
  updates: Update[];
  /** Batches of other instances left alone because their owner is still running. */
  claimed: number;
}

/** A batch this instance owns, as tracked in memory. */
interface OpenBatch {
  id: string;
  chunks: number;
  /** Its updates that have not finished. */
  remaining: Set<number>;
  /** Settles true once the batch is in the store, false when it could not be recorded. */
  stored: Promise<boolean>;
}

/** See the module documentation. */
export class UpdateInbox {
  readonly #o: Required<InboxOptions>;
  /** Whether other instances may hold batches in the store (a claim tells they are alive). */
  readonly #claims: boolean;
  readonly #open = new Map<string, OpenBatch>();
  /** Open batches by update id (an update may be in two after Telegram re-sent it). */
  readonly #batchesOf = new Map<number, Set<OpenBatch>>();
  /** Trims in progress, and finished batches whose trim failed (retried by the heartbeat). */
  readonly #trimming = new Set<Promise<void>>();
  readonly #untrimmed = new Set<OpenBatch>();
  #sequence = 0;
  #failing = false;

  constructor(options: InboxOptions) {
    this.#o = { claimTtlMs: 10_000, exitGraceMs: 10_000, ...options };
    this.#claims = options.store.shared;
  }

  /** How often {@link heartbeat} should run to keep the claim. */
  get heartbeatMs(): number {
    return Math.floor(this.#o.claimTtlMs / 3);
  }

  /** Longest a running claim of a crashed instance can outlive its last renewal. */
  get claimTtlMs(): number {
    return this.#o.claimTtlMs;
  }

  /** Batches this instance owns that are not trimmed yet. */
  get openBatches(): number {
    return this.#open.size;
  }

  /**
   * Records `updates` (received together, ascending ids) as one batch; resolves true once they
   * are in the store, false when they could not be stored (never rejects).
   */
  record(updates: readonly Update[]): Promise<boolean> {
    if (updates.length === 0) return Promise.resolve(true);
    const ids = updates.map((u) => u.update_id);
    const id = `${ids[0]}-${(this.#sequence++).toString(36)}-${randomTag()}`;
    const chunks = chunked(updates as unknown as Json[]);
    const batch: OpenBatch = {
      id,
      chunks: chunks.length,
      remaining: new Set(ids),
      stored: this.#o.store.run(
        recordScript,
        [inboxKeys.index, inboxKeys.claim(this.#o.owner), ...inboxKeys.chunks(id, chunks.length)],
        [this.#o.owner, id, ids, this.#claimTtl(), CHUNK_TTL_MS, ...chunks],
      ).then(() => this.#answered(), (error) => this.#failed("record a batch", error)),
    };
    this.#track(batch);
    return batch.stored;
  }

  /** Tells the inbox that an update finished (handled, failed for good or dropped). */
  finished(updateId: number): void {
    const batches = this.#batchesOf.get(updateId);
    if (!batches) return;
    this.#batchesOf.delete(updateId);
    for (const batch of batches) {
      batch.remaining.delete(updateId);
      if (batch.remaining.size === 0) this.#trim(batch);
    }
  }

  /**
   * Renews this instance's claim and retries failed trims; with `adopt`, also takes over the
   * batches nobody is handling any more and answers their updates, oldest first, to be
   * handled again. Never rejects: a store failure is logged and answers no updates.
   */
  async heartbeat({ adopt }: { adopt: boolean }): Promise<Replay> {
    const none: Replay = { updates: [], claimed: 0 };
    const { store, owner } = this.#o;
    let index;
    try {
      index = await store.run(
        heartbeatScript,
        [inboxKeys.index, inboxKeys.claim(owner)],
        [this.#claimTtl()],
      );
      this.#answered();
    } catch (error) {
      this.#failed("renew the claim", error);
      return none;
    }
    for (const batch of this.#untrimmed) {
      this.#untrimmed.delete(batch);
      this.#trim(batch);
    }
    if (!adopt || index === null) return none;
    const foreign = Object.entries(index).filter(([id, entry]) =>
      entry.o !== owner || !this.#open.has(id)
    );
    if (foreign.length === 0) return none;
    try {
      return await this.#adopt(foreign);
    } catch (error) {
      this.#failed("replay the batches of other instances", error);
      return none;
    }
  }

  /**
   * At a stop, after the drain: waits for the trims, then gives the claim up, or, when updates
   * were abandoned (they may still run until the process exits), leaves it for `exitGraceMs`
   * more, so that nobody replays them before this process is gone.
   */
  async stop(): Promise<void> {
    while (this.#trimming.size > 0) await Promise.all(this.#trimming);
    for (const batch of this.#untrimmed) {
      this.#untrimmed.delete(batch);
      this.#trim(batch);
    }
    while (this.#trimming.size > 0) await Promise.all(this.#trimming);
    if (!this.#claims) return;
    const { store, owner, claimTtlMs, exitGraceMs, log } = this.#o;
    const open = this.#open.size;
    try {
      if (open === 0) await store.delete(inboxKeys.claim(owner));
      else await store.set(inboxKeys.claim(owner), EXITING, { ttlMs: claimTtlMs + exitGraceMs });
    } catch (error) {
      log.warning("could not update the inbox claim at the stop: {error_message}", {
        error_message: errorMessage(error),
      });
    }
    if (open > 0) {
      log.info("{batches} inbox batches stay claimed for {claim_ms} ms, then are replayed", {
        batches: open,
        claim_ms: claimTtlMs + exitGraceMs,
      });
    }
  }

  async #adopt(entries: Array<[string, IndexEntry]>): Promise<Replay> {
    const { store, owner, log } = this.#o;
    const claims = new Map<string, Json>();
    if (this.#claims) {
      const owners = [...new Set(entries.map(([, e]) => e.o))].filter((o) => o !== owner);
      const values = await store.getMany(owners.map(inboxKeys.claim));
      owners.forEach((o, i) => claims.set(o, values[i] ?? null));
    }
    const now = Date.now();
    const replayed: Update[] = [];
    let claimed = 0;
    entries.sort(([, a], [, b]) => (a.ids[0] ?? 0) - (b.ids[0] ?? 0));
    for (const [id, entry] of entries) {
      const claim = claims.get(entry.o) ?? null;
      if (claim !== null) {
        if (claim === RUNNING) claimed++;
        continue;
      }
      if (now - entry.at > MAX_BATCH_AGE_MS) {
        log.warning("dropped inbox batch {batch} of {updates} updates: older than a day", {
          batch: id,
          updates: entry.ids.length,
        });
        await store.run(trimScript, [inboxKeys.index, ...inboxKeys.chunks(id, entry.n)], [id]);
        continue;
      }
      const answer = await store.run(
        adoptScript,
        [inboxKeys.index, inboxKeys.claim(entry.o), ...inboxKeys.chunks(id, entry.n)],
        [id, entry.o, owner, this.#claims && entry.o !== owner],
      );
      if (!answer.adopted) continue;
      const updates = answer.chunks.flat() as unknown as Update[];
      this.#track({
        id,
        chunks: entry.n,
        remaining: new Set(updates.map((u) => u.update_id)),
        stored: Promise.resolve(true),
      });
      if (updates.length === 0) this.#trim(this.#open.get(id)!);
      log.info("replaying {updates} updates of inbox batch {batch} left by {previous}", {
        batch: id,
        updates: updates.length,
        previous: entry.o,
        update_ids: updates.map((u) => u.update_id),
      });
      replayed.push(...updates);
    }
    return { updates: replayed.sort((a, b) => a.update_id - b.update_id), claimed };
  }

  #track(batch: OpenBatch): void {
    this.#open.set(batch.id, batch);
    for (const id of batch.remaining) {
      let batches = this.#batchesOf.get(id);
      if (!batches) this.#batchesOf.set(id, batches = new Set());
      batches.add(batch);
    }
    batch.stored.then((stored) => {
      if (!stored) this.#forget(batch);
    });
  }

  #forget(batch: OpenBatch): void {
    this.#open.delete(batch.id);
    for (const id of batch.remaining) {
      const batches = this.#batchesOf.get(id);
      batches?.delete(batch);
      if (batches?.size === 0) this.#batchesOf.delete(id);
    }
  }

  #trim(batch: OpenBatch): void {
    const trimming = (async () => {
      if (!await batch.stored) return;
      try {
        await this.#o.store.run(
          trimScript,
          [inboxKeys.index, ...inboxKeys.chunks(batch.id, batch.chunks)],
          [batch.id],
        );
        this.#answered();
        this.#open.delete(batch.id);
      } catch (error) {
        this.#failed("trim a finished batch", error);
        this.#untrimmed.add(batch);
      }
    })();
    this.#trimming.add(trimming);
    trimming.finally(() => this.#trimming.delete(trimming));
  }

  #claimTtl(): number {
    return this.#claims ? this.#o.claimTtlMs : 0;
  }

  #answered(): true {
    if (this.#failing) this.#o.log.info("the inbox is stored again");
    this.#failing = false;
    return true;
  }

  /** Logs the first failure of an outage, not every one. */
  #failed(what: string, error: unknown): false {
    if (!this.#failing) {
      this.#o.log.warning(
        "the inbox could not {what}: {error_message}; until the store answers, received " +
          "updates stay unconfirmed at Telegram instead",
        { what, error_message: errorMessage(error) },
      );
    }
    this.#failing = true;
    return false;
  }
}

function randomTag(): string {
  return crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36);
}
