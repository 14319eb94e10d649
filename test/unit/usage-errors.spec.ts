import { describe, expect, it } from 'vitest';
import { Cacheable, InMemoryMemcachedClient, MemcachedUsageError } from '../../lib/index.js';

const usage = (code: string) => expect.objectContaining({ name: 'MemcachedUsageError', code });

describe('a call that cannot be carried out as written is a MemcachedUsageError with a code', () => {
  const cache = new InMemoryMemcachedClient({ logger: false });

  it('keys, namespaces, TTLs, values and counter amounts', async () => {
    await expect(cache.get(7 as unknown as string)).rejects.toThrow(usage('KEY'));
    await expect(cache.set('k', 1, { namespace: 'no spaces please' })).rejects.toThrow(usage('NAMESPACE'));
    await expect(cache.set('k', 1, { ttl: -1 })).rejects.toThrow(usage('TTL'));
    await expect(cache.set('k', undefined)).rejects.toThrow(usage('VALUE'));
    await expect(cache.increment('k', -1)).rejects.toThrow(usage('COUNTER'));
    // with a namespace too, and on getOrSet (refused: not a cache failure that runs the loader)
    await expect(cache.set(7 as unknown as string, 1, { namespace: 'ns' })).rejects.toThrow(usage('KEY'));
    await expect(cache.getMulti([7 as unknown as string], { namespace: 'ns' })).rejects.toThrow(usage('KEY'));
    let loads = 0;
    const load = async () => ++loads;
    await expect(cache.getOrSet('k', load, { namespace: 'a b' })).rejects.toThrow(usage('NAMESPACE'));
    await expect(cache.getOrSet(null as unknown as string, load, { namespace: 'ns' })).rejects.toThrow(usage('KEY'));
    expect(loads).toBe(0);
    const error = await cache.set('k', 1, { ttl: Number.NaN }).catch((e: unknown) => e);
    // a TypeError too, for code that checks for one
    expect(error).toBeInstanceOf(MemcachedUsageError);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toContain('NaN');
  });

  it('decorator options, at decoration time', () => {
    class Prices {}
    expect(() => Cacheable({ ttl: -5 })(Prices)).toThrow(usage('DECORATOR'));
    expect(() => Cacheable({ namespace: 'a b' })(Prices)).toThrow(usage('DECORATOR'));
  });
});
