import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BinaryResponse } from '../../lib/transport/protocol.js';
import { HEADER_LENGTH, ProtocolError, ResponseParser } from '../../lib/transport/response-parser.js';
import { response } from '../support/hostile-server.js';

const MAX_BODY = 4096;

/** Splits `bytes` at the given cut points (any order, duplicates and out-of-range ones ignored). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    if (point > from) chunks.push(bytes.subarray(from, point));
    from = Math.max(from, point);
  }
  if (from < bytes.length) chunks.push(bytes.subarray(from));
  return chunks;
}

const frame = fc.record({
  opcode: fc.integer({ min: 0, max: 255 }),
  opaque: fc.integer({ min: 0, max: 0xffffffff }),
  status: fc.integer({ min: 0, max: 0xffff }),
  key: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  extras: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
  value: fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
});

describe('ResponseParser', () => {
  it('gives back every well-formed frame as sent, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
        const got: BinaryResponse[] = [];
        const parser = new ResponseParser(MAX_BODY, (res) => got.push(res));
        for (const chunk of split(Buffer.concat(frames.map((f) => response(f))), cuts)) parser.push(chunk);
        expect(got).toHaveLength(frames.length);
        frames.forEach((f, i) => {
          expect(got[i].header.opcode).toBe(f.opcode);
          expect(got[i].header.opaque).toBe(f.opaque);
          expect(got[i].header.status).toBe(f.status);
          expect(Buffer.compare(got[i].key, f.key)).toBe(0);
          expect(Buffer.compare(got[i].extras, f.extras)).toBe(0);
          expect(Buffer.compare(got[i].val, f.value)).toBe(0);
        });
        expect(parser.buffered).toBe(0);
      }),
    );
  });

  it('on random bytes throws nothing but ProtocolError and never holds more than a header plus the body limit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }),
        fc.boolean(),
        (chunks, validMagic) => {
          const parser = new ResponseParser(MAX_BODY, () => undefined);
          for (const raw of chunks) {
            const chunk = Buffer.from(raw);
            // half the runs keep a valid magic byte in front, to reach the length checks
            if (validMagic && chunk.length > 0) chunk[0] = 0x81;
            try {
              parser.push(chunk);
            } catch (error) {
              expect(error).toBeInstanceOf(ProtocolError);
              return;
            }
            expect(parser.buffered).toBeLessThanOrEqual(HEADER_LENGTH + MAX_BODY);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('rejects a key and extras longer than the body, a wrong magic byte and an unknown data type', () => {
    const cases = [
      response({ opcode: 0, opaque: 1, keyLength: 100, extrasLength: 4, totalBodyLength: 10, value: Buffer.alloc(10) }),
      response({ opcode: 0, opaque: 1, magic: 0x80 }),
      response({ opcode: 0, opaque: 1, dataType: 1 }),
      response({ opcode: 0, opaque: 1, totalBodyLength: 0x7fffffff }),
    ];
    for (const bytes of cases) {
      const parser = new ResponseParser(MAX_BODY, () => undefined);
      expect(() => parser.push(bytes)).toThrow(ProtocolError);
    }
  });

  it('skips a body over the limit as it streams, delivers it at once as oversized, then reads on', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MAX_BODY + 1, max: MAX_BODY * 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (size, cuts) => {
          const got: BinaryResponse[] = [];
          const parser = new ResponseParser(MAX_BODY, (res) => got.push(res));
          const big = response({ opcode: 0, opaque: 7, extras: Buffer.alloc(4), value: Buffer.alloc(size - 4, 1) });
          const next = response({ opcode: 0, opaque: 8, value: Buffer.from('after') });
          for (const chunk of split(Buffer.concat([big, next]), cuts)) {
            parser.push(chunk);
            expect(parser.buffered).toBeLessThanOrEqual(HEADER_LENGTH + MAX_BODY);
          }
          expect(got.map((r) => [r.header.opaque, r.oversized === true, r.val.toString()])).toStrictEqual([
            [7, true, ''],
            [8, false, 'after'],
          ]);
        },
      ),
    );
  });

  it('forgets a half-received frame on reset', () => {
    const got: BinaryResponse[] = [];
    const parser = new ResponseParser(MAX_BODY, (res) => got.push(res));
    const first = response({ opcode: 0, opaque: 1, value: Buffer.from('one') });
    parser.push(first.subarray(0, 13));
    parser.reset();
    parser.push(response({ opcode: 0, opaque: 2, value: Buffer.from('two') }));
    expect(got.map((r) => r.val.toString())).toStrictEqual(['two']);
  });
});
