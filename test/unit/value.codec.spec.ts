import { describe, expect, it } from 'vitest';
import { FLAG_COMPRESSED, FLAGS_MAGIC, UNDECODABLE, ValueCodec } from '../../lib/codec/value.codec.js';

const codec = new ValueCodec({ compressionThreshold: 1024 });
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
      serializer: { serialize: (v) => `custom:${JSON.stringify(v)}`, deserialize: (b) => JSON.parse(b.toString().slice(7)) },
    });
    const encoded = custom.encode({ a: 1 });
    expect(encoded.bytes.toString()).toBe('custom:{"a":1}');
    expect(custom.decode(encoded.bytes, encoded.flags)).toStrictEqual({ a: 1 });
    const json = codec.encode({ b: 2 });
    expect(custom.decode(json.bytes, json.flags)).toStrictEqual({ b: 2 });
    expect(codec.decode(encoded.bytes, encoded.flags)).toBe(UNDECODABLE);
  });
});
