/** memcached reads an expiry above 30 days as an absolute Unix time (REALTIME_MAXDELTA). */
export const MAX_RELATIVE_TTL = 60 * 60 * 24 * 30;
const MAX_EXPIRY = 0xffffffff;

/**
 * Validates a TTL in seconds. Fractions round up, so a short TTL never becomes 0 (= never expire).
 * `name` is what the error calls the value (an option, an env variable, a decorator field).
 */
export function normalizeTtl(ttl: unknown, name = 'ttl'): number {
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw new RangeError(
      `Invalid ${name} ${JSON.stringify(ttl) ?? String(ttl)}: expected a number of seconds >= 0 (0 = no expiry)`,
    );
  }
  return Math.ceil(ttl);
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
    throw new RangeError(`Invalid ttl ${ttlSeconds}: expires after the year 2106, beyond memcached's 32-bit expiry`);
  }
  return absolute;
}
