import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BusCodec } from '../../lib/bus/bus-message.js';
import { changeNames, tagWire } from '../../lib/codec/keyspace.js';
import { MAX_KEY_LENGTH } from '../../lib/codec/key.codec.js';
import {
  checkTags,
  decodeStamps,
  freshTagVersion,
  MAX_TAG_LENGTH,
  MAX_TAGS,
  type TagStamp,
} from '../../lib/codec/tags.js';
import { FLAG_TAGS, ValueCodec } from '../../lib/codec/value.codec.js';
import { MemcachedUsageError } from '../../lib/memcached.errors.js';
import { NearCache } from '../../lib/near/near-cache.js';

const tag = fc
  .string({ minLength: 1, maxLength: MAX_TAG_LENGTH, unit: 'grapheme' })
  .filter((t) => t.length <= MAX_TAG_LENGTH);
const stamps = fc.uniqueArray(fc.tuple(tag, fc.maxSafeNat()), { maxLength: MAX_TAGS, selector: ([t]) => t });

describe('tags: checking, stamps, wire keys', () => {
  it('stamps survive the value codec with any value, freshness and response metadata', () => {
    const codec = new ValueCodec({ compressionThreshold: 64 });
    fc.assert(
      fc.property(
        stamps,
        fc.jsonValue(),
        fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
        fc.boolean(),
        (given, value, freshUntil, meta) => {
          if (value === undefined) return;
          const encoded = codec.encode(
            value,
            freshUntil,
            false,
            meta ? { vary: [['accept', 'x']] } : undefined,
            given as TagStamp[],
          );
          expect((encoded.flags & FLAG_TAGS) !== 0).toBe(given.length > 0);
          const item = codec.decodeItem(encoded.bytes, encoded.flags);
          if (typeof item === 'symbol') throw new Error('undecodable');
          expect(item.tags).toStrictEqual(given.length > 0 ? given : undefined);
          expect(item.freshUntil).toBe(freshUntil);
          expect(JSON.stringify(item.value)).toBe(JSON.stringify(value));
        },
      ),
    );
  });

  it('stamps that are not what we write are undecodable, never partly read (any bytes)', () => {
    const codec = new ValueCodec({ compressionThreshold: 1 << 20 });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const flags = (0x4e4d0000 | FLAG_TAGS | 2) >>> 0;
        const item = codec.decodeItem(Buffer.from(bytes), flags);
        if (typeof item === 'symbol') return;
        // what decoded is exactly a stamp list of the right shape
        expect(decodeStamps(JSON.stringify(item.tags))).toStrictEqual(item.tags);
      }),
    );
    expect(decodeStamps('[["a",1.5]]')).toBeUndefined();
    expect(decodeStamps('[["",1]]')).toBeUndefined();
    expect(decodeStamps('{"a":1}')).toBeUndefined();
    expect(decodeStamps(JSON.stringify(Array.from({ length: MAX_TAGS + 1 }, (_, i) => [`t${i}`, 1])))).toBeUndefined();
  });

  it('checkTags keeps valid lists (repeats dropped, order kept) and refuses the rest with TAGS', () => {
    expect(checkTags(['a', 'b', 'a'])).toEqual(['a', 'b']);
    for (const bad of [
      'a',
      [1],
      [''],
      ['x'.repeat(MAX_TAG_LENGTH + 1)],
      Array.from({ length: MAX_TAGS + 1 }, (_, i) => `${i}`),
      null,
    ]) {
      const error = (() => {
        try {
          checkTags(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(MemcachedUsageError);
      expect((error as MemcachedUsageError).code).toBe('TAGS');
    }
  });

  it('tag wire keys are valid memcached keys, distinct per tag and prefix, and never an entry or counter name', () => {
    fc.assert(
      fc.property(fc.constantFrom('', 'svc:', 'shared-tags.'), tag, tag, (prefix, a, b) => {
        const wire = tagWire(prefix, a);
        expect(wire.length).toBeLessThanOrEqual(MAX_KEY_LENGTH);
        expect(wire).toMatch(/^[\x21-\x7e]+$/);
        // the text after the last '#' is 'tag', or the hashed kind's mark
        expect(wire.slice(wire.lastIndexOf('#'))).toMatch(/^#(tag|~.{43})$/);
        if (a !== b) expect(tagWire(prefix, b)).not.toBe(wire);
      }),
    );
    expect(tagWire('', 'user:7')).toBe('user:7#tag');
    expect(tagWire('t:', 'user 7')).not.toContain(' ');
  });

  it('fresh versions are positive safe integers that do not repeat', () => {
    const seen = new Set(Array.from({ length: 10_000 }, () => freshTagVersion()));
    expect(seen.size).toBe(10_000);
    for (const version of seen) expect(Number.isSafeInteger(version) && version > 0).toBe(true);
  });
});

describe('tags on the bus', () => {
  const NOW = 1_800_000_000_000;
  const message = {
    source: 'src1',
    seq: 3,
    type: 'g' as const,
    changes: [
      { tagPrefix: '', tag: 'user:7' },
      { tagPrefix: 'shared:', tag: 'team a' },
    ],
    at: NOW,
  };

  it('a tag message round-trips, signed or not', () => {
    const plain = new BusCodec();
    expect(plain.decode(plain.encode(message), NOW)).toStrictEqual({ message });
    const signed = new BusCodec([{ id: 1, key: Buffer.alloc(32, 7) }]);
    expect(signed.decode(signed.encode(message), NOW)).toStrictEqual({ message });
    expect(new BusCodec([{ id: 1, key: Buffer.alloc(32, 8) }]).decode(signed.encode(message), NOW)).toEqual({
      rejected: 'forged',
    });
  });

  it('a tag message that is not what a sender writes is malformed, whatever it holds', () => {
    const codec = new BusCodec();
    const payload = (x: unknown, extra = '') =>
      `2..{"s":"src1","q":3,"t":"g","x":${JSON.stringify(x)},"a":${NOW}${extra}}`;
    for (const x of [
      [],
      [['', '']],
      [['has space', 'a']],
      [['', 'x'.repeat(MAX_TAG_LENGTH + 1)]],
      [['', 7]],
      [['', 'a', 'b']],
      [['a#b', 'a']],
    ]) {
      expect(codec.decode(payload(x), NOW)).toEqual({ rejected: 'malformed' });
    }
    // owed only as memcached's refusal (1), never as a stand-in node's (2)
    expect(codec.decode(payload([['', 'a']], ',"o":2'), NOW)).toEqual({ rejected: 'malformed' });
    expect(codec.decode(payload([['', 'a']], ',"o":1'), NOW)).toMatchObject({ message: { type: 'g', owed: 1 } });
    // the previous release's format carries no tags
    expect(codec.decode(JSON.stringify({ v: 1, s: 'src1', q: 1, t: 'g', x: ['a\u0000b'] }), NOW)).toEqual({
      rejected: 'malformed',
    });
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        const decoded = codec.decode(payload(x), NOW);
        if ('message' in decoded) {
          for (const change of decoded.message.changes as Array<{ tagPrefix: string; tag: string }>) {
            expect(typeof change.tag).toBe('string');
            expect(change.tag.length).toBeGreaterThan(0);
            expect(change.tag.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
          }
        }
      }),
    );
  });
});

describe('tags in the near cache', () => {
  const name = (t: string) => changeNames.tagName({ tagPrefix: '', tag: t });
  const active = () => {
    const cache = new NearCache({ maxBytes: 1 << 20, ttl: 60 });
    cache.setActive(true);
    return cache;
  };

  it('a tag invalidation drops every entry carrying it, and only those', () => {
    const cache = active();
    const start = cache.begin();
    cache.store(start, 'w1', { family: 'f1', held: 1, size: 1, tags: [name('user:7'), name('team:a')] }, {});
    cache.store(start, 'w2', { family: 'f2', held: 2, size: 1, tags: [name('user:7')] }, {});
    cache.store(start, 'w3', { family: 'f3', held: 3, size: 1, tags: [name('user:8')] }, {});
    cache.invalidateTag(name('user:7'));
    expect(cache.get('w1')).toBeUndefined();
    expect(cache.get('w2')).toBeUndefined();
    expect(cache.get('w3')?.held).toBe(3);
    expect(cache.stats().invalidations).toBe(2);
  });

  it('refuses an entry read before an invalidation of one of its tags arrived', () => {
    const cache = active();
    const start = cache.begin();
    cache.invalidateTag(name('user:7'));
    expect(cache.store(start, 'w1', { family: 'f1', held: 1, size: 1, tags: [name('user:7')] }, {})).toBe(false);
    expect(cache.store(start, 'w2', { family: 'f2', held: 1, size: 1, tags: [name('user:8')] }, {})).toBe(true);
  });

  it('tag names meet no key family or namespace name', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), (prefix, a, b) => {
        const tagName = changeNames.tagName({ tagPrefix: prefix, tag: a });
        expect(tagName).not.toBe(changeNames.namespaceName({ prefix, namespace: b }));
        expect(tagName).not.toBe(changeNames.family({ prefix, namespace: b, key: a }));
      }),
    );
  });
});

describe('tags in InMemoryMemcachedClient (what apps test with)', () => {
  it('behave as against memcached: an invalidated tag makes its entries miss, others keep hitting', async () => {
    const { InMemoryMemcachedClient } = await import('../../lib/index.js');
    const cache = new InMemoryMemcachedClient({ logger: false });
    let loads = 0;
    const load = () => ++loads;
    await cache.getOrSet('a', load, { namespace: 'n', tags: ['user:1', 'team:1'] });
    await cache.getOrSet('b', load, { tags: ['user:2'] });
    expect(await cache.getOrSet('a', load, { namespace: 'n', tags: ['user:1', 'team:1'] })).toBe(1);
    await cache.invalidateTags(['team:1']);
    expect(await cache.getOrSet('a', load, { namespace: 'n', tags: ['user:1', 'team:1'] })).toBe(3);
    expect(await cache.getOrSet('b', load, { tags: ['user:2'] })).toBe(2);
    expect(cache.stats()).toMatchObject({ tagInvalidations: 1, tagMisses: 1 });
    cache.close();
  });
});
