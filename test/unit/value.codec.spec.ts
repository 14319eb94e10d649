import { describe, expect, it } from 'vitest';
import { inspect, isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  FLAG_COMPRESSED,
  FLAGS_MAGIC,
  UNDECODABLE,
  UnsupportedValueError,
  ValueCodec,
} from '../../lib/codec/value.codec.js';

const codec = new ValueCodec({ compressionThreshold: 1024 });
// Node's isDeepStrictEqual compares Dates by getTime() with ===, so two Invalid Dates are never
// equal to it; where it says no, an exhaustive inspect (prototypes, hidden properties) decides.
const same = (a: unknown, b: unknown) =>
  isDeepStrictEqual(a, b) ||
  inspect(a, { depth: null, showHidden: true }) === inspect(b, { depth: null, showHidden: true });
const roundTrip = (value: unknown, c = codec) => {
  const { bytes, flags } = c.encode(value);
  return c.decode(bytes, flags);
};

describe('ValueCodec', () => {
  it.each([null, false, 0, '', true, 1.5, -3, 'text', { a: [1, { b: null }] }, [1, '2']])(
    'round-trips %j with its type',
    (value) => {
      expect(roundTrip(value)).toStrictEqual(value);
    },
  );

  it('round-trips strings byte for byte, including ones that look like JSON', () => {
    for (const s of ['"quoted"', '{"a":1}', 'null', '42', 'emoji 😀', 'x'.repeat(5000)]) {
      expect(roundTrip(s)).toBe(s);
    }
  });

  it('round-trips lone surrogates (not valid UTF-8) exactly', () => {
    expect(roundTrip('a\ud800b')).toBe('a\ud800b');
  });

  it('round-trips Buffers exactly', () => {
    const buf = Buffer.from([0, 1, 2, 255, 254, 0x0d, 0x0a]);
    const out = roundTrip(buf) as Buffer;
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out.equals(buf)).toBe(true);
  });

  it('records the format in the flags', () => {
    expect(codec.encode('s').flags & 0xffff0000).toBe(FLAGS_MAGIC);
    expect(codec.encode('s').flags).not.toBe(codec.encode({}).flags);
    expect(codec.encode(Buffer.alloc(1)).flags).not.toBe(codec.encode('s').flags);
  });

  it('compresses bodies above the threshold when that saves space, and only then', () => {
    const big = { rows: Array.from({ length: 200 }, (_, i) => ({ id: i, name: 'same name' })) };
    const encoded = codec.encode(big);
    expect(encoded.flags & FLAG_COMPRESSED).toBe(FLAG_COMPRESSED);
    expect(encoded.bytes.length).toBeLessThan(JSON.stringify(big).length);
    expect(roundTrip(big)).toStrictEqual(big);
    expect(codec.encode('small').flags & FLAG_COMPRESSED).toBe(0);
    const noise = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251));
    expect(roundTrip(noise)).toStrictEqual(noise);
  });

  it('does not compress when the threshold is 0', () => {
    const off = new ValueCodec({ compressionThreshold: 0 });
    expect(off.encode('x'.repeat(100_000)).flags & FLAG_COMPRESSED).toBe(0);
  });

  it('reads bytes it cannot decode as UNDECODABLE, never throwing', () => {
    expect(codec.decode(Buffer.from('{not json'), FLAGS_MAGIC | 1)).toBe(UNDECODABLE);
    expect(codec.decode(Buffer.from('whatever'), 0x1234)).toBe(UNDECODABLE);
    expect(codec.decode(Buffer.from('plain text'), 0)).toBe(UNDECODABLE);
    expect(codec.decode(Buffer.from('garbage'), FLAGS_MAGIC | FLAG_COMPRESSED | 1)).toBe(UNDECODABLE);
    expect(codec.decode(Buffer.from('x'), FLAGS_MAGIC | 99)).toBe(UNDECODABLE);
  });

  it('reads counters created by increment (flags 0, decimal) as numbers, exactly', () => {
    expect(codec.decode(Buffer.from('42'), 0)).toBe(42);
    expect(codec.decode(Buffer.from('9   '), 0)).toBe(9);
    expect(codec.decode(Buffer.from('18446744073709551615'), 0)).toBe(18446744073709551615n);
  });

  it('refuses undefined with a message that says what to do instead', () => {
    expect(() => codec.encode(undefined)).toThrow(/undefined cannot be stored.*delete/);
  });

  it('uses a custom serializer for non-string values and still reads JSON entries', () => {
    const custom = new ValueCodec({
      compressionThreshold: 0,
      serializer: {
        serialize: (v) => `custom:${JSON.stringify(v)}`,
        deserialize: (b) => JSON.parse(b.toString().slice(7)),
      },
    });
    const encoded = custom.encode({ a: 1 });
    expect(encoded.bytes.toString()).toBe('custom:{"a":1}');
    expect(custom.decode(encoded.bytes, encoded.flags)).toStrictEqual({ a: 1 });
    const json = codec.encode({ b: 2 });
    expect(custom.decode(json.bytes, json.flags)).toStrictEqual({ b: 2 });
    expect(codec.decode(encoded.bytes, encoded.flags)).toBe(UNDECODABLE);
  });
});

/** `leaf` under `depth` levels of single-key plain objects. */
function nest(depth: number, leaf: Record<string, unknown>): Record<string, unknown> {
  let node = leaf;
  for (let i = 0; i < depth; i++) node = { child: node };
  return node;
}

describe('ValueCodec: a value comes back with its type, or is refused', () => {
  class User {
    constructor(readonly id: string) {}
  }

  it.each([
    [
      'a Map',
      new Map<unknown, unknown>([
        [1, { a: 2n }],
        ['k', new Set([1])],
      ]),
    ],
    ['a Set', new Set(['a', 1])],
    ['a Date', new Date(1_700_000_000_123)],
    ['a Date inside a row', { id: 1, createdAt: new Date(5), tags: ['x'] }],
    ['NaN, Infinity and -0', [Number.NaN, Infinity, -Infinity, -0]],
    ['a BigInt', 2n ** 70n],
    ['undefined inside', { a: undefined, b: [undefined] }],
    ['a sparse array', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a typed array', new Uint8Array([1, 2, 3])],
    ['a Buffer inside an object', { bytes: Buffer.from('hi') }],
    ['a RegExp', /x+/gi],
    [
      'a cycle',
      (() => {
        const o: Record<string, unknown> = { n: 1 };
        o.self = o;
        return o;
      })(),
    ],
  ])('%s round-trips exactly (structured serialisation)', (_, value) => {
    const { bytes, flags } = codec.encode(value);
    expect(flags & 0xff).toBe(5);
    const back = codec.decode(bytes, flags);
    expect(isDeepStrictEqual(back, value)).toBe(true);
  });

  it('plain JSON values stay JSON (readable by anyone)', () => {
    expect(codec.encode({ a: [1, 'x', null, true] }).flags & 0xff).toBe(1);
  });

  it.each([
    ['-0 deep in an array', { a: [[[1, [2, -0]]]] }, 5],
    ['NaN in a nested object', { a: { b: { c: Number.NaN } } }, 5],
    ['a hole deep in an array', { rows: [{ tags: [1, , 3] }] }, 5], // eslint-disable-line no-sparse-arrays
    [
      'a Date at the end of a long plain row list',
      { rows: [...Array.from({ length: 50 }, (_, i) => ({ i })), { at: new Date(1) }] },
      5,
    ],
    ['a plain tree 40 levels deep', nest(40, { leaf: 'x' }), 1],
    [
      'a cycle below 40 plain levels',
      (() => {
        const leaf: Record<string, unknown> = {};
        const root = nest(40, leaf);
        leaf.back = root;
        return root;
      })(),
      5,
    ],
  ])('%s is classified as the full walk says (format %i)', (_, value, format) => {
    const { bytes, flags } = codec.encode(value);
    expect(flags & 0xff).toBe(format);
    expect(same(codec.decode(bytes, flags), value)).toBe(true);
  });

  it('an enumerable property added to Object.prototype does not change how a plain object is stored', () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = () => 1;
    try {
      const { bytes, flags } = codec.encode({ a: 1, b: ['x'] });
      expect(flags & 0xff).toBe(1);
      expect(bytes.toString()).toBe('{"a":1,"b":["x"]}');
    } finally {
      delete proto.polluted;
    }
  });

  it.each([
    ['a class instance', new User('1'), 'an instance of User', ''],
    ['a class instance inside', { owner: { list: [new User('2')] } }, 'an instance of User', '.owner.list[0]'],
    ['a function', { run: () => 1 }, 'a function', '.run'],
    ['a symbol', { s: Symbol('x') }, 'a symbol', '.s'],
    ['an error', new Error('boom'), 'an error (Error)', ''],
    ['a promise', Promise.resolve(1), 'an instance of Promise', ''],
    ['a plain object with toJSON', { toJSON: () => 'other' }, 'a function', '.toJSON'],
  ])('%s is refused with UnsupportedValueError naming the type and where', (_, value, what, where) => {
    try {
      codec.encode(value);
      throw new Error('expected a refusal');
    } catch (error) {
      expect(error).toBeInstanceOf(UnsupportedValueError);
      expect((error as UnsupportedValueError).what).toBe(what);
      expect((error as UnsupportedValueError).where).toBe(where);
      expect((error as Error).message).toContain(what);
    }
  });

  it('serializer "json" refuses what JSON would change, "structured" stores everything it can keep that way', () => {
    const json = new ValueCodec({ compressionThreshold: 0, mode: 'json' });
    expect(() => json.encode(new Map())).toThrow(/serializer is "json"/);
    expect(json.encode({ a: 1 }).flags & 0xff).toBe(1);
    const structured = new ValueCodec({ compressionThreshold: 0, mode: 'structured' });
    expect(structured.encode({ a: 1 }).flags & 0xff).toBe(5);
    expect(() => structured.encode(new User('x'))).toThrow(UnsupportedValueError);
  });

  it('an HTTP response body is stored as the JSON Nest would send, whatever it holds', () => {
    const { bytes, flags } = codec.encode({ at: new Date(0), user: new User('1') }, undefined, true);
    expect(bytes.toString()).toBe('{"at":"1970-01-01T00:00:00.000Z","user":{"id":"1"}}');
    expect(flags & 0xff).toBe(1);
  });

  it('keeps an Invalid Date an Invalid Date', () => {
    const back = roundTrip({ at: new Date(Number.NaN) }) as { at: Date };
    expect(back.at).toBeInstanceOf(Date);
    expect(Number.isNaN(back.at.getTime())).toBe(true);
    expect(same(back, { at: new Date(0) })).toBe(false);
  });

  it('property: anything either decodes deep-strictly equal (prototypes included) or is refused', () => {
    fc.assert(
      fc.property(
        fc.anything({
          withBigInt: true,
          withDate: true,
          withMap: true,
          withSet: true,
          withTypedArray: true,
          withSparseArray: true,
          withNullPrototype: false,
          withBoxedValues: true,
          withObjectString: true,
        }),
        (value) => {
          if (value === undefined) return;
          let encoded;
          try {
            encoded = codec.encode(value);
          } catch (error) {
            expect(error).toBeInstanceOf(UnsupportedValueError);
            return;
          }
          expect(same(codec.decode(encoded.bytes, encoded.flags), value)).toBe(true);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
