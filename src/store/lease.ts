/**
 * Leader leases: a named lease (e.g. `polling`) that one holder at a time owns for a TTL and
 * keeps by renewing it before the TTL runs out. Taking, renewing and giving it up are each one
 * atomic store call, so two instances can never both believe they hold it.
 *
 * The stored value is `{holder, expiresAt}`; the store's own expiry ends the lease, so a holder
 * that stops renewing (a crash, a lost connection) loses it after the TTL.
 */
import { NAMESPACES } from "./namespaces.ts";
import type { AtomicScript, Json, StoreKey } from "./store.ts";

/** Where the lease `name` lives; the name is the entity (one Redis Cluster slot per lease). */
export function leaseKey(name: string): StoreKey {
  return [NAMESPACES.leader, name];
}

/** Arguments of {@link acquireLeaseScript}: who asks, and for how long. */
export type AcquireLeaseArgs = [holder: string, ttlMs: number];

/** Arguments of {@link releaseLeaseScript}: who gives the lease up. */
export type ReleaseLeaseArgs = [holder: string];

/** Who holds a lease, as {@link acquireLeaseScript} answers. */
export interface LeaseAnswer {
  /** Whether the caller holds the lease now. */
  held: boolean;
  /** The holder now: the caller when `held`, else the other holder. */
  holder: string | null;
  /** Milliseconds until the lease ends unless its holder renews it. */
  ttlMs: number;
  [key: string]: Json;
}

function holderOf(value: Json): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  return typeof value.holder === "string" ? value.holder : null;
}

function leaseTtl(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs));
}

/**
 * Takes the lease when nobody holds it, or renews it (a fresh TTL) when the caller already
 * does; otherwise leaves it and says who holds it for how much longer.
 */
export const acquireLeaseScript: AtomicScript<AcquireLeaseArgs, LeaseAnswer> = {
  name: "lease_acquire",
  lua: `
    local now = tonumber(ARGV[1])
    local holder = cjson.decode(ARGV[2])
    local ttl = math.max(1, math.ceil(tonumber(ARGV[3])))
    local raw = redis.call('GET', KEYS[1])
    local current = raw and cjson.decode(raw) or nil
    local owner = type(current) == 'table' and type(current.holder) == 'string' and current.holder
      or nil
    if owner ~= nil and owner ~= holder then
      return cjson.encode({held = false, holder = owner,
        ttlMs = math.max(0, redis.call('PTTL', KEYS[1]))})
    end
    redis.call('SET', KEYS[1], cjson.encode({holder = holder, expiresAt = now + ttl}), 'PX', ttl)
    return cjson.encode({held = true, holder = holder, ttlMs = ttl})`,
  apply([current], [holder, ttlMs], nowMs) {
    const owner = holderOf(current ?? null);
    if (owner !== null && owner !== holder) {
      const expiresAt = (current as { expiresAt?: Json }).expiresAt;
      const left = typeof expiresAt === "number" ? Math.max(0, expiresAt - nowMs) : 0;
      return { writes: [], result: { held: false, holder: owner, ttlMs: left } };
    }
    const ttl = leaseTtl(ttlMs);
    return {
      writes: [{ value: { holder, expiresAt: nowMs + ttl }, ttlMs: ttl }],
      result: { held: true, holder, ttlMs: ttl },
    };
  },
};

/** Deletes the lease if the caller holds it; answers whether it did. */
export const releaseLeaseScript: AtomicScript<ReleaseLeaseArgs, boolean> = {
  name: "lease_release",
  lua: `
    local holder = cjson.decode(ARGV[2])
    local raw = redis.call('GET', KEYS[1])
    local current = raw and cjson.decode(raw) or nil
    if type(current) == 'table' and current.holder == holder then
      redis.call('DEL', KEYS[1])
      return cjson.encode(true)
    end
    return cjson.encode(false)`,
  apply([current], [holder]) {
    if (holderOf(current ?? null) !== holder) return { writes: [], result: false };
    return { writes: [null], result: true };
  },
};
