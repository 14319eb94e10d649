import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { assertNamespace, MAX_KEY_LENGTH, MAX_NAMESPACE_LENGTH, toWireKey } from '../../lib/codec/key.codec.js';

const isWireSafe = (key: string) => Buffer.byteLength(key) <= MAX_KEY_LENGTH && /^[\x21-\x7e]+$/.test(key);

describe('assertNamespace', () => {
  it('accepts letters, digits and _ . -, and rejects anything else, naming the namespace', () => {
    expect(() => assertNamespace('users.v2_a-b')).not.toThrow();
    expect(() => assertNamespace('a:b')).toThrow(/Invalid cache namespace "a:b"/);
    expect(() => assertNamespace('has space')).toThrow(/namespace/);
    expect(() => assertNamespace('')).toThrow(/namespace/);
  });

  it('accepts at most MAX_NAMESPACE_LENGTH characters, and shows a long one cut short', () => {
    expect(() => assertNamespace('n'.repeat(MAX_NAMESPACE_LENGTH))).not.toThrow();
    const long = 'n'.repeat(1_000_000);
    let message = '';
    try {
      assertNamespace(long);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/Invalid cache namespace "n+\.\.\. \(1000002 characters\): use 1 to 200/);
    expect(message.length).toBeLessThan(300);
    expect(() => assertNamespace('n'.repeat(MAX_NAMESPACE_LENGTH + 1))).toThrow(/namespace/);
  });
});

describe('toWireKey', () => {
  it('sends ordinary keys unchanged', () => {
    expect(toWireKey('users:42')).toBe('users:42');
    const max = 'k'.repeat(250);
    expect(toWireKey(max)).toBe(max);
  });

  it.each([
    ['a 300-byte key with spaces and emoji', `user profile ${'x'.repeat(280)} 😀 end`],
    ['whitespace', 'a b\tc\nd'],
    ['control characters', 'a\u0000b\u0007'],
    ['unicode', 'café:ключ:鍵'],
    ['251 ASCII bytes', 'k'.repeat(251)],
    ['the empty string', ''],
  ])('makes %s safe: printable ASCII, at most 250 bytes, readable head', (_, key) => {
    const wire = toWireKey(key);
    expect(isWireSafe(wire)).toBe(true);
    expect(wire).toContain('#');
    expect(wire.length).toBeLessThanOrEqual(250);
    expect(toWireKey(key)).toBe(wire);
  });

  it('keeps a readable head of the original key', () => {
    expect(toWireKey('users:jane doe')).toMatch(/^users:jane_doe#[A-Za-z0-9_-]{43}$/);
  });

  it('never maps two distinct inputs to one wire key', () => {
    const inputs = [
      'a b',
      'a_b',
      'a\tb',
      'a\u00a0b',
      `a_b#${'x'.repeat(43)}`,
      'k'.repeat(251),
      'k'.repeat(252),
      `${'k'.repeat(206)}x${'y'.repeat(100)}`,
      `${'k'.repeat(206)}z${'y'.repeat(100)}`,
      'é',
      'e\u0301',
      '#',
      '',
    ];
    const wires = inputs.map(toWireKey);
    expect(new Set(wires).size).toBe(inputs.length);
  });

  it('rewrites keys that contain the hash mark, so a plain key cannot impersonate a hashed one', () => {
    const hashed = toWireKey('a b');
    expect(toWireKey(hashed)).not.toBe(hashed);
  });
});

describe('toWireKey, property-based', () => {
  // strings of any UTF-16 code units, lone surrogates included, biased towards the characters
  // the codec treats specially and towards lengths around the 250-byte limit
  const unit = fc.oneof(
    fc.constantFrom('#', ' ', '\t', '\u0000', '\u007f', '\ud800', '\udc00', '\ufffd', 'é', '_', ':', 'a', '!'),
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  );
  const key = fc.oneof(
    fc.array(unit, { maxLength: 20 }).map((a) => a.join('')),
    fc
      .tuple(fc.integer({ min: 200, max: 300 }), fc.array(unit, { maxLength: 6 }))
      .map(([n, tail]) => 'k'.repeat(n) + tail.join('')),
  );

  it('every wire key is valid: printable ASCII, no space, 1 to 250 bytes', () => {
    fc.assert(
      fc.property(key, (k) => {
        expect(isWireSafe(toWireKey(k))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('distinct inputs never share a wire key', () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        fc.pre(a !== b);
        expect(toWireKey(a)).not.toBe(toWireKey(b));
      }),
      { numRuns: 5000 },
    );
  });

  it('lone surrogates and the replacement character keep separate entries', () => {
    const inputs = ['\ud800', '\udc00', '\ufffd', 'a\ud800', 'a\udc00', 'a\ufffd', '\ud800\udc00', '\udc00\ud800'];
    expect(new Set(inputs.map(toWireKey)).size).toBe(inputs.length);
  });
});
