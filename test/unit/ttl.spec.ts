import { describe, expect, it } from 'vitest';
import { MAX_RELATIVE_TTL, normalizeTtl, toExpiry } from '../../lib/codec/ttl.js';

describe('TTL rules', () => {
  const now = Date.UTC(2026, 10, 23, 12, 0, 0);

  it('sends TTLs up to 30 days as relative seconds', () => {
    expect(toExpiry(0, now)).toBe(0);
    expect(toExpiry(60, now)).toBe(60);
    expect(toExpiry(MAX_RELATIVE_TTL, now)).toBe(MAX_RELATIVE_TTL);
  });

  it('sends TTLs above 30 days as an absolute Unix time', () => {
    const ttl = 31 * 24 * 3600;
    expect(toExpiry(ttl, now)).toBe(now / 1000 + ttl);
    expect(toExpiry(MAX_RELATIVE_TTL + 1, now)).toBe(now / 1000 + MAX_RELATIVE_TTL + 1);
  });

  it('rounds fractions up so a short TTL never becomes "no expiry"', () => {
    expect(toExpiry(0.2, now)).toBe(1);
    expect(normalizeTtl(1.5)).toBe(2);
  });

  it.each([
    [-1, 'Invalid ttl -1:'],
    [Number.NaN, 'Invalid ttl NaN:'],
    [Number.POSITIVE_INFINITY, 'Invalid ttl Infinity:'],
    [Number.NEGATIVE_INFINITY, 'Invalid ttl -Infinity:'],
    ['60', 'Invalid ttl "60":'],
    [10n, 'Invalid ttl 10n:'],
    [null, 'Invalid ttl null:'],
  ])('rejects %s naming the value as given, with the intended message', (ttl, shown) => {
    expect(() => normalizeTtl(ttl, 'ttl')).toThrow(
      expect.objectContaining({ name: 'MemcachedUsageError', code: 'TTL' }),
    );
    expect(() => normalizeTtl(ttl, 'ttl')).toThrow(`${shown} expected a number of seconds from 0 (no expiry)`);
  });

  it('rejects expiries beyond the 32-bit field instead of wrapping them', () => {
    expect(() => toExpiry(200 * 365 * 24 * 3600, now)).toThrow(/ten years/);
    // ten years from 2100 ends after the field does
    expect(() => toExpiry(10 * 365 * 24 * 3600, Date.UTC(2100, 0, 1))).toThrow(/2106/);
  });
});
