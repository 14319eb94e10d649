import { MemcachedUsageError } from '../memcached.errors.js';
import { invalidTtl, show, ttlPast2106 } from '../memcached.messages.js';
/** memcached reads an expiry above 30 days as an absolute Unix time (REALTIME_MAXDELTA). */
export const MAX_RELATIVE_TTL = 60 * 60 * 24 * 30;
/** The longest TTL accepted: ten years (memcached's 32-bit absolute expiry ends in 2106). */
export const MAX_TTL = 10 * 365 * 24 * 60 * 60;
const MAX_EXPIRY = 0xffffffff;

/**
 * Validates a TTL in seconds: a number from 0 (no expiry) to ten years. Fractions round up, so a
 * short TTL never becomes 0 (= never expire). `name` is what the error calls the value (an option,
 * an env variable, a decorator field).
 */
export function normalizeTtl(ttl: unknown, name = 'ttl'): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0 || ttl > MAX_TTL) {
    throw new MemcachedUsageError('TTL', invalidTtl(name, show(ttl), MAX_TTL));
  }
  return Math.ceil(ttl);
}

/** A TTL given at a call: `undefined` means `fallback`; anything else (`null` included) is validated. */
export function ttlOrDefault(ttl: unknown, fallback: number, name = 'ttl'): number {
  return ttl === undefined ? fallback : normalizeTtl(ttl, name);
}

/**
 * The 32-bit expiry field memcached expects for a TTL in seconds: relative up to 30 days,
 * an absolute Unix time beyond (memcached's rule), 0 for no expiry.
 */
export function toExpiry(ttlSeconds: number, nowMs: number = Date.now()): number {
  const ttl = normalizeTtl(ttlSeconds);
  if (ttl <= MAX_RELATIVE_TTL) return ttl;
  const absolute = Math.floor(nowMs / 1000) + ttl;
  if (absolute > MAX_EXPIRY) {
    throw new MemcachedUsageError('TTL', ttlPast2106(ttlSeconds));
  }
  return absolute;
}
