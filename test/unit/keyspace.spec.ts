import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { changeNames, flightNames, Keyspace, refreshMarker } from '../../lib/codec/keyspace.js';
import { MAX_KEY_LENGTH } from '../../lib/codec/key.codec.js';

const isWireSafe = (key: string) => Buffer.byteLength(key) <= MAX_KEY_LENGTH && /^[\x21-\x7e]+$/.test(key);

// strings that look like our own syntax, so the properties meet the hard cases often
const tricky = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('gen', 'r', 'r:', '#', '#gen', '#r', '#~', ':', '1:', '5v0:', '["a","b"]', '\u0000', '\u0001', ''),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ minLength: 240, maxLength: 260 }),
);
const key = fc.oneof(
  tricky,
  fc.array(tricky, { maxLength: 4 }).map((parts) => parts.join('')),
);
const namespace = fc.oneof(fc.constantFrom('users', 'a'), fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/));
const counter = fc.oneof(fc.constantFrom(0, 1, 5), fc.nat({ max: 2 ** 52 }));
/** A plain key spelled like another kind's name, in this scheme's syntax or an older one. */
const impostor = fc
  .tuple(
    namespace,
    fc.constantFrom('#', '@', ':', '\u0000'),
    fc.oneof(
      fc.constantFrom('gen', 'r'),
      key.map((k) => 'r:' + k),
      fc.tuple(counter, key).map(([g, k]) => `${g}:${k}`),
      fc.tuple(counter, counter, key, key).map(([g, r, k, v]) => `${g}v${r}:${JSON.stringify([k, v])}`),
      fc.tuple(counter, counter, key, key).map(([g, r, k, v]) => `${g}:${JSON.stringify([k, r, v])}`),
    ),
  )
  .map(([ns, sep, tail]) => ({ kind: 'plain', key: ns + sep + tail }));

/** Every kind of name, as a description of what it names. */
const named = fc.oneof(
  key.map((k) => ({ kind: 'plain', key: k })),
  impostor,
  namespace.map((ns) => ({ kind: 'generation', ns })),
  fc.record({ kind: fc.constant('group'), ns: namespace, key }),
  fc.record({ kind: fc.constant('entry'), ns: namespace, key, generation: counter }),
  fc.record({ kind: fc.constant('variant'), ns: namespace, key, variant: key, generation: counter, group: counter }),
);
type Named = { kind: string; ns?: string; key?: string; variant?: string; generation?: number; group?: number };

function wireOf(space: Keyspace, n: Named): string {
  switch (n.kind) {
    case 'plain':
      return space.plain(n.key!);
    case 'generation':
      return space.generation(n.ns!);
    case 'group':
      return space.group(n.ns!, n.key!);
    case 'entry':
      return space.entry({ namespace: n.ns, key: n.key! }, n.generation!, 0);
    default:
      return space.entry({ namespace: n.ns, key: n.key!, variant: n.variant }, n.generation!, n.group!);
  }
}

describe('Keyspace: wire keys', () => {
  it('keeps plain keys as other clients name them, and short namespaced names readable', () => {
    const space = new Keyspace('app:');
    expect(space.plain('users:7')).toBe('app:users:7');
    expect(space.generation('users')).toBe('app:users#gen');
    expect(space.group('users', '/users/7')).toBe('app:users#r:/users/7');
    expect(space.entry({ namespace: 'users', key: '7' }, 42, 0)).toBe('app:users#42:7');
    expect(space.entry({ namespace: 'users', key: '/u', variant: 'q=1' }, 42, 3)).toBe('app:users#42v3:["/u","q=1"]');
  });

  it('a plain key can never overwrite a namespace counter, group or entry (the old `@` forms could)', () => {
    const space = new Keyspace('');
    for (const sep of ['#', '@']) {
      expect(space.plain(`users${sep}gen`)).not.toBe(space.generation('users'));
      expect(space.plain(`users${sep}r:7`)).not.toBe(space.group('users', '7'));
      expect(space.plain(`users${sep}42:7`)).not.toBe(space.entry({ namespace: 'users', key: '7' }, 42, 0));
    }
    expect(space.plain('users#gen')).not.toBe(space.generation('users'));
    expect(space.plain('users#r:7')).not.toBe(space.group('users', '7'));
    expect(space.plain('users#42:7')).not.toBe(space.entry({ namespace: 'users', key: '7' }, 42, 0));
  });

  it('is injective across every kind, and every name is a key memcached accepts', () => {
    const space = new Keyspace('p:');
    fc.assert(
      fc.property(fc.array(named, { minLength: 2, maxLength: 30 }), (all) => {
        const seen = new Map<string, string>();
        for (const n of all) {
          const wire = wireOf(space, n);
          expect(isWireSafe(wire)).toBe(true);
          const identity = JSON.stringify(n);
          const before = seen.get(wire);
          if (before !== undefined) expect(before).toBe(identity);
          seen.set(wire, identity);
          // refresh markers are a kind of their own too
          const marker = refreshMarker(wire);
          expect(isWireSafe(marker)).toBe(true);
          const markerBefore = seen.get(marker);
          if (markerBefore !== undefined) expect(markerBefore).toBe(`refresh ${identity}`);
          seen.set(marker, `refresh ${identity}`);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('pairs that differ in one place never meet', () => {
    const space = new Keyspace('');
    fc.assert(
      fc.property(named, named, (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        expect(wireOf(space, a)).not.toBe(wireOf(space, b));
        expect(refreshMarker(wireOf(space, a))).not.toBe(wireOf(space, b));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('flights and changes: names inside the process', () => {
  const ref = fc.record(
    { namespace: fc.option(namespace, { nil: undefined }), key, variant: fc.option(key, { nil: undefined }) },
    { requiredKeys: ['key'] },
  );

  it('an entry load name is injective, and a key prefix covers exactly its own variants', () => {
    fc.assert(
      fc.property(ref, ref, (a, b) => {
        const same = (a.namespace ?? '') === (b.namespace ?? '') && a.key === b.key && a.variant === b.variant;
        expect(flightNames.ofEntry(a) === flightNames.ofEntry(b)).toBe(same);
        const sameKey = (a.namespace ?? '') === (b.namespace ?? '') && a.key === b.key;
        expect(flightNames.ofEntry(b).startsWith(flightNames.keyPrefix(a))).toBe(sameKey);
        expect(flightNames.ofEntry(b).startsWith(flightNames.namespacePrefix(a.namespace ?? ''))).toBe(
          (a.namespace ?? '') === (b.namespace ?? ''),
        );
        // a wire key is printable: never an entry's load name nor an HTTP read's, even a key
        // spelled like one (with the default empty prefix)
        for (const plainKey of [a.key, JSON.stringify([b.namespace ?? '', b.key])]) {
          const wire = new Keyspace('').plain(plainKey);
          expect(flightNames.ofWire(wire, false)).not.toBe(flightNames.ofEntry(b));
          expect(flightNames.ofWire(wire, true)).not.toBe(flightNames.ofEntry(b));
          expect(flightNames.ofWire(wire, true)).not.toBe(flightNames.ofWire(wire, false));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('key families and namespace names are injective, hashed keys apart from keys', () => {
    const change = fc.record({
      prefix: fc.stringMatching(/^[!-"$-~]{0,6}$/),
      namespace: fc.oneof(fc.constant(''), namespace),
      key,
      hashed: fc.boolean(),
    });
    fc.assert(
      fc.property(change, change, (a, b) => {
        const same = a.prefix === b.prefix && a.namespace === b.namespace && a.key === b.key && a.hashed === b.hashed;
        expect(changeNames.family(a) === changeNames.family(b)).toBe(same);
        expect(changeNames.namespaceName(a) === changeNames.namespaceName(b)).toBe(
          a.prefix === b.prefix && a.namespace === b.namespace,
        );
        // the near cache marks both in one map
        expect(changeNames.family(a)).not.toBe(changeNames.namespaceName(b));
      }),
      { numRuns: 3000 },
    );
  });

  it('a key too long for the bus travels as its hash', () => {
    const short = changeNames.ofKey('p', { namespace: 'n', key: 'k' }, 2048);
    expect(short).toEqual({ prefix: 'p', namespace: 'n', key: 'k' });
    const long = changeNames.ofKey('p', { namespace: 'n', key: 'k'.repeat(3000) }, 2048);
    expect(long.hashed).toBe(true);
    expect(long.key).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
