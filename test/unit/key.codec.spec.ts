import { describe, expect, it } from 'vitest';
import { composeKey, MAX_KEY_LENGTH, toWireKey } from '../../lib/codec/key.codec.js';

const isWireSafe = (key: string) => Buffer.byteLength(key) <= MAX_KEY_LENGTH && /^[\x21-\x7e]+$/.test(key);

describe('composeKey', () => {
  it('joins prefix, namespace and key as prefix + namespace + ":" + key', () => {
    expect(composeKey('svc:', 'users', '42')).toBe('svc:users:42');
    expect(composeKey('svc:', undefined, '42')).toBe('svc:42');
    expect(composeKey('', '', 'k')).toBe('k');
  });

  it('rejects namespaces that would make the namespace/key split ambiguous', () => {
    expect(() => composeKey('', 'a:b', 'c')).toThrow(/Invalid cache namespace "a:b"/);
    expect(() => composeKey('', 'has space', 'c')).toThrow(/namespace/);
  });

  it('rejects non-string keys with a clear error', () => {
    expect(() => composeKey('', undefined, 42 as unknown as string)).toThrow(/key must be a string, got number/);
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
      'a b', 'a_b', 'a\tb', 'a\u00a0b', `a_b#${'x'.repeat(43)}`, 'k'.repeat(251), 'k'.repeat(252),
      `${'k'.repeat(206)}x${'y'.repeat(100)}`, `${'k'.repeat(206)}z${'y'.repeat(100)}`, 'é', 'e\u0301', '#', '',
    ];
    const wires = inputs.map(toWireKey);
    expect(new Set(wires).size).toBe(inputs.length);
  });

  it('rewrites keys that contain the hash mark, so a plain key cannot impersonate a hashed one', () => {
    const hashed = toWireKey('a b');
    expect(toWireKey(hashed)).not.toBe(hashed);
  });
});
