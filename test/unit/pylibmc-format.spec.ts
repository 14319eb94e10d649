import { deflateRawSync, deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_INFLATED_BYTES } from '../../lib/codec/inflate.js';
import { decodePylibmc, encodePylibmc, PylibmcFlag } from '../../lib/codec/pylibmc-format.js';
import {
  FLAG_COMPRESSED,
  FLAGS_MAGIC,
  UNDECODABLE,
  UnsupportedValueError,
  ValueCodec,
} from '../../lib/codec/value.codec.js';

const codec = new ValueCodec({ compressionThreshold: 64, format: 'pylibmc' });
const roundTrip = (value: unknown) => {
  const { bytes, flags } = codec.encode(value);
  return codec.decodeItem(bytes, flags);
};

describe('valueFormat "pylibmc"', () => {
  it.each([
    ['text', 'héllo', PylibmcFlag.Text, 'héllo'],
    ['digits stay text', '42', PylibmcFlag.Text, '42'],
    ['bytes', Buffer.from([0, 255]), PylibmcFlag.Bytes, '\u0000\u00ff'],
    ['an integer', -17, PylibmcFlag.Long, '-17'],
    ['a large BigInt', 2n ** 70n, PylibmcFlag.Long, String(2n ** 70n)],
    ['an object', { a: [1, 'x'] }, PylibmcFlag.Json, '{"a":[1,"x"]}'],
    ['a float', 1.5, PylibmcFlag.Json, '1.5'],
    ['a boolean', true, PylibmcFlag.Json, 'true'],
    ['null', null, PylibmcFlag.Json, 'null'],
  ])('%s: the flag and bytes pylibmc expects', (_, value, flag, text) => {
    const { bytes, flags } = codec.encode(value);
    expect(flags).toBe(flag);
    expect(bytes.toString('latin1')).toBe(
      Buffer.from(text, flag === PylibmcFlag.Bytes ? 'latin1' : 'utf8').toString('latin1'),
    );
  });

  it('round-trips strings, bytes, safe integers and JSON values with their type (property)', () => {
    // -0 is refused (JSON writes it as 0), tested below
    const json = fc
      .jsonValue()
      .filter((v) => !JSON.stringify(v, (_, x) => (Object.is(x, -0) ? 'NEGATIVE ZERO' : x)).includes('NEGATIVE ZERO'));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'grapheme' }),
          fc.uint8Array().map((a) => Buffer.from(a)),
          fc.maxSafeInteger(),
          json,
        ),
        (value) => {
          const out = roundTrip(value);
          expect(out).toEqual({ value });
          expect(typeof (out as { value: unknown }).value).toBe(typeof value);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('compresses with zlib (what pylibmc inflates) above the threshold', () => {
    const text = 'abc'.repeat(100);
    const { bytes, flags } = codec.encode(text);
    expect(flags).toBe(PylibmcFlag.Text | PylibmcFlag.Zlib);
    expect(bytes.subarray(0, 1)[0]).toBe(0x78);
    expect(roundTrip(text)).toEqual({ value: text });
  });

  it('refuses what would come back changed: small BigInts, -0, Dates, Maps, undefined fields, functions', () => {
    for (const value of [5n, -0, new Date(0), new Map([[1, 2]]), { nested: undefined }, [1, () => 1]]) {
      expect(() => codec.encode(value)).toThrow(UnsupportedValueError);
    }
  });

  it('a string that is not valid UTF-8 (a lone surrogate) travels as JSON and comes back exactly', () => {
    expect(codec.encode('a\ud800b').flags).toBe(PylibmcFlag.Json);
    expect(roundTrip('a\ud800b')).toEqual({ value: 'a\ud800b' });
  });

  it('keeps our own layout for what only we read: freshness, HTTP responses', () => {
    expect(codec.encode('x', Date.now() + 1000).flags & FLAGS_MAGIC).toBe(FLAGS_MAGIC);
    expect(codec.encode({ a: 1 }, undefined, true).flags & FLAGS_MAGIC).toBe(FLAGS_MAGIC);
  });

  it('a pickle, an unknown flag, bad UTF-8, a non-digit integer or bad zlib is undecodable, never thrown (property)', () => {
    expect(codec.decodeItem(Buffer.from([0x80, 0x04]), PylibmcFlag.Pickle)).toBe(UNDECODABLE);
    expect(codec.decodeItem(Buffer.from([0xff]), PylibmcFlag.Text)).toBe(UNDECODABLE);
    expect(codec.decodeItem(Buffer.from('12a'), PylibmcFlag.Long)).toBe(UNDECODABLE);
    expect(codec.decodeItem(Buffer.from('x'), PylibmcFlag.Zlib)).toBe(UNDECODABLE);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 0xffff }), (bytes, flags) => {
        expect(() => decodePylibmc(Buffer.from(bytes), flags)).not.toThrow();
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decompression is bounded', () => {
  // 65 MiB of zeros deflate to about 65 KB: a hostile writer's bomb
  const bomb = Buffer.alloc(MAX_INFLATED_BYTES + 1024 * 1024);

  it('a body that would inflate past the bound is undecodable, in both layouts', () => {
    const native = new ValueCodec({ compressionThreshold: 1024 });
    expect(native.decode(deflateRawSync(bomb, { level: 9 }), FLAGS_MAGIC | FLAG_COMPRESSED | 2)).toBe(UNDECODABLE);
    expect(decodePylibmc(deflateSync(bomb, { level: 9 }), PylibmcFlag.Bytes | PylibmcFlag.Zlib)).toBeUndefined();
  });

  it('the writer never compresses a body the reader would refuse', () => {
    expect(encodePylibmc(bomb, 1024).flags).toBe(PylibmcFlag.Bytes);
    const native = new ValueCodec({ compressionThreshold: 1024 });
    expect(native.encode(bomb).flags & FLAG_COMPRESSED).toBe(0);
    const under = Buffer.alloc(1024 * 1024);
    const encoded = native.encode(under);
    expect(encoded.flags & FLAG_COMPRESSED).toBe(FLAG_COMPRESSED);
    expect(native.decode(encoded.bytes, encoded.flags)).toEqual(under);
  });
});
