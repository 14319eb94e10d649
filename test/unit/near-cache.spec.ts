import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NearCache } from '../../lib/near/near-cache.js';

const entry = (family: string, held: unknown = 'v', size = 10) => ({ family, held, size });

function activeCache(maxBytes = 1 << 20, ttl = 60) {
  const cache = new NearCache({ maxBytes, ttl });
  cache.setActive(true);
  return cache;
}

describe('NearCache', () => {
  it('serves what it stored, and nothing while the bus does not vouch for it', () => {
    const cache = new NearCache({ maxBytes: 1 << 20, ttl: 60 });
    expect(cache.store(cache.begin(), 'w1', entry('f1'), {})).toBe(false);
    cache.setActive(true);
    expect(cache.store(cache.begin(), 'w1', entry('f1'), { namespace: 'ns', generation: 7 })).toBe(true);
    expect(cache.get('w1')?.held).toBe('v');
    expect(cache.generation('ns')).toBe(7);
    cache.setActive(false);
    expect(cache.get('w1')).toBeUndefined();
    expect(cache.generation('ns')).toBeUndefined();
    cache.setActive(true);
    expect(cache.get('w1')).toBeUndefined(); // dropped when the bus went away
  });

  it('refuses a value whose read began before an invalidation of its key arrived (the fill race)', () => {
    const cache = activeCache();
    const start = cache.begin();
    cache.invalidateKey('f1'); // the invalidation arrives while the read is in flight
    expect(cache.store(start, 'w1', entry('f1'), {})).toBe(false);
    expect(cache.get('w1')).toBeUndefined();
    expect(cache.stats().refusedFills).toBe(1);
    // a read that began after the invalidation is kept; other keys are not affected
    expect(cache.store(cache.begin(), 'w1', entry('f1'), {})).toBe(true);
    const other = cache.begin();
    cache.invalidateKey('f2');
    expect(cache.store(other, 'w3', entry('f3'), {})).toBe(true);
  });

  it('refuses a value read before a namespace eviction, and forgets the generation it had', () => {
    const cache = activeCache();
    cache.store(cache.begin(), 'ns@1:a', entry('ns a'), { namespace: 'ns', generation: 1 });
    const start = cache.begin();
    cache.invalidateNamespace('ns');
    expect(cache.generation('ns')).toBeUndefined();
    expect(cache.store(start, 'ns@1:b', entry('ns b'), { namespace: 'ns', generation: 1 })).toBe(false);
    expect(cache.generation('ns')).toBeUndefined();
  });

  it('refuses reads that began before a flush or a change of the bus state', () => {
    const cache = activeCache();
    const start = cache.begin();
    cache.flush();
    expect(cache.store(start, 'w', entry('f'), {})).toBe(false);
    const beforeDown = cache.begin();
    cache.setActive(false);
    cache.setActive(true);
    expect(cache.store(beforeDown, 'w', entry('f'), {})).toBe(false);
  });

  it('drops every variant of a key on its invalidation', () => {
    const cache = activeCache();
    cache.store(cache.begin(), 'v1', entry('key'), {});
    cache.store(cache.begin(), 'v2', entry('key'), {});
    cache.store(cache.begin(), 'other', entry('key2'), {});
    cache.invalidateKey('key');
    expect(cache.get('v1')).toBeUndefined();
    expect(cache.get('v2')).toBeUndefined();
    expect(cache.get('other')).toBeDefined();
  });

  it('stays within maxBytes, least recently used out first', () => {
    const cache = activeCache(1000);
    for (let i = 0; i < 50; i++) cache.store(cache.begin(), `w${i}`, entry(`f${i}`, i, 100), {});
    expect(cache.stats().bytes).toBeLessThanOrEqual(1000);
    expect(cache.get('w49')).toBeDefined();
    expect(cache.get('w0')).toBeUndefined();
    expect(cache.store(cache.begin(), 'huge', entry('h', 'x', 5000), {})).toBe(false);
  });

  it('serves an entry for at most its TTL', async () => {
    const cache = activeCache(1 << 20, 0.05);
    cache.store(cache.begin(), 'w', entry('f'), {});
    expect(cache.get('w')).toBeDefined();
    await new Promise((r) => setTimeout(r, 80));
    expect(cache.get('w')).toBeUndefined();
  });

  it('property: whatever interleaving of reads, invalidations and flushes, no kept value was read before an invalidation of it', () => {
    type Step =
      | { op: 'begin'; read: number }
      | { op: 'store'; read: number; key: number }
      | { op: 'invalidate'; key: number }
      | { op: 'flush' };
    const step = fc.oneof(
      fc.record({ op: fc.constant('begin' as const), read: fc.nat(4) }),
      fc.record({ op: fc.constant('store' as const), read: fc.nat(4), key: fc.nat(3) }),
      fc.record({ op: fc.constant('invalidate' as const), key: fc.nat(3) }),
      fc.record({ op: fc.constant('flush' as const) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps: Step[]) => {
        const cache = activeCache();
        const reads = new Map<number, { epoch: number; version: number[] }>();
        const version = [0, 0, 0, 0];
        for (const s of steps) {
          if (s.op === 'begin') reads.set(s.read, { epoch: cache.begin(), version: [...version] });
          else if (s.op === 'invalidate') {
            version[s.key]++;
            cache.invalidateKey(`k${s.key}`);
          } else if (s.op === 'flush') {
            for (let k = 0; k < version.length; k++) version[k]++;
            cache.flush();
          } else {
            const read = reads.get(s.read);
            if (read === undefined) continue;
            cache.store(read.epoch, `w${s.key}`, entry(`k${s.key}`, read.version[s.key]), {});
          }
          for (let k = 0; k < version.length; k++) {
            const held = cache.get(`w${k}`);
            if (held !== undefined) expect(held.held).toBe(version[k]);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
