import { describe, expect, it } from 'vitest';
import { stableKey } from '../../lib/codec/stable-key.js';

describe('stableKey (default keys from method arguments)', () => {
  it('ignores object key order and undefined properties', () => {
    expect(stableKey([{ b: 1, a: [2, { d: 3, c: 4 }] }])).toBe(
      stableKey([{ a: [2, { c: 4, d: 3 }], b: 1, e: undefined }]),
    );
  });

  it('keeps values of different types apart', () => {
    const inputs = [
      [1],
      ['1'],
      [1n],
      [true],
      ['true'],
      [null],
      [undefined],
      [[]],
      [{}],
      [''],
      [-0],
      [0],
      [new Date(0)],
      ['Date(1970-01-01T00:00:00.000Z)'],
      [Buffer.from('a')],
      [new Map([[1, 2]])],
      [new Set([1])],
      [[1, 2]],
      [1, 2],
    ];
    const keys = inputs.map(stableKey);
    expect(new Set(keys).size).toBe(inputs.length);
  });

  it('encodes Maps and Sets independent of insertion order', () => {
    expect(stableKey([new Set([1, 2])])).toBe(stableKey([new Set([2, 1])]));
    expect(
      stableKey([
        new Map([
          ['a', 1],
          ['b', 2],
        ]),
      ]),
    ).toBe(
      stableKey([
        new Map([
          ['b', 2],
          ['a', 1],
        ]),
      ]),
    );
  });

  it('refuses functions, symbols and circular structures with a clear error', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => stableKey([() => 1])).toThrow(/function: give the decorator a key function/);
    expect(() => stableKey([Symbol('s')])).toThrow(/symbol/);
    expect(() => stableKey([circular])).toThrow(/circular/);
  });

  it('allows the same object twice when it is not circular', () => {
    const shared = { a: 1 };
    expect(stableKey([shared, shared])).toBe('[{"a":1},{"a":1}]');
  });
});
