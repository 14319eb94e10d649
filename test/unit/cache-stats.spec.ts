import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CacheStats,
  DEFAULT_NAMESPACE_LIMITS,
  leadingLetters,
  MAX_FAMILIES,
  MAX_NAMESPACES,
  NAMESPACE_ENTRY_BYTES,
  type NamespaceLimits,
  OTHER_NAMESPACES,
} from '../../lib/stats/cache-stats.js';

const limits = (over: Partial<NamespaceLimits>): NamespaceLimits => ({ ...DEFAULT_NAMESPACE_LIMITS, ...over });
const sum = (entries: Iterable<[string, { hits: number; misses: number }]>, field: 'hits' | 'misses') => {
  let total = 0;
  for (const [, s] of entries) total += s[field];
  return total;
};

describe('CacheStats: the one place that counts, bounded', () => {
  it('namespaces not declared in code are kept up to a bound; the least recently used fold into (other), totals exact', () => {
    const stats = new CacheStats();
    stats.declare('users');
    const reads = 10 * MAX_NAMESPACES;
    for (let i = 0; i < reads; i++) {
      stats.read(`tenant-${i}`, 'k', i % 2 ? 'HIT' : 'MISS', 1);
      stats.read('users', 'k', 'HIT', 1);
      // one tenant stays busy: never folded
      stats.read('tenant-busy', 'k', 'HIT', 1);
    }
    const snapshot = stats.namespaceStats();
    const names = Object.keys(snapshot);
    expect(names.length).toBeLessThanOrEqual(MAX_NAMESPACES + 2);
    expect(names).toContain('users');
    expect(names).toContain('tenant-busy');
    expect(names).toContain(`tenant-${reads - 1}`);
    expect(names).not.toContain('tenant-0');
    const total = (field: 'hits' | 'misses') => Object.values(snapshot).reduce((t, s) => t + s[field], 0);
    expect(total('hits') + total('misses')).toBe(3 * reads);
    expect(total('hits')).toBe(stats.snapshot().hits);
    expect(snapshot[OTHER_NAMESPACES].latency.count).toBe(
      snapshot[OTHER_NAMESPACES].hits + snapshot[OTHER_NAMESPACES].misses,
    );
    expect(snapshot.users.hits).toBe(reads);
  });

  it('metric labels: declared namespaces by name, the others by family, never more than the families bound', () => {
    const stats = new CacheStats();
    stats.declare('orders');
    // 10x the families bound, each family with several members
    for (let f = 0; f < 10 * MAX_FAMILIES; f++) {
      for (let m = 0; m < 3; m++)
        stats.read(`fam${String.fromCharCode(97 + (f % 26))}${'x'.repeat(f)}-${m}`, 'k', 'MISS', 1);
    }
    for (let i = 0; i < 5; i++) stats.read('orders', 'k', 'HIT', 1);
    const labels = [...stats.families()];
    const names = labels.map(([name]) => name);
    expect(names.length).toBeLessThanOrEqual(1 + MAX_FAMILIES + 1);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('orders');
    expect(names).toContain(OTHER_NAMESPACES);
    expect(sum(labels, 'misses')).toBe(30 * MAX_FAMILIES);
    expect(sum(labels, 'hits')).toBe(5);
  });

  it('the default family is the leading letters, and never a user id', () => {
    expect(leadingLetters('user-7')).toBe('user');
    expect(leadingLetters('user.7')).toBe('user');
    expect(leadingLetters('user_123456')).toBe('user');
    expect(leadingLetters('tenant42')).toBe('tenant');
    expect(leadingLetters('7-user')).toBe(OTHER_NAMESPACES);
    expect(leadingLetters('-')).toBe(OTHER_NAMESPACES);
    const stats = new CacheStats();
    for (let i = 0; i < 10 * MAX_NAMESPACES; i++) stats.read(`user-${i}`, 'k', 'HIT', 1);
    expect([...stats.families()].map(([name]) => name)).toEqual(['user']);
  });

  it('a family rule that throws, returns a non-string or an overlong name counts under (other) and never fails the call', () => {
    const answers: unknown[] = [new Error('bug'), 42, '', 'x'.repeat(101), 'ok'];
    let call = 0;
    const stats = new CacheStats(
      limits({
        namespaces: 0,
        family: () => {
          const answer = answers[call++ % answers.length];
          if (answer instanceof Error) throw answer;
          return answer as string;
        },
      }),
    );
    for (let i = 0; i < answers.length; i++) expect(() => stats.read(`n${i}`, 'k', 'MISS', 1)).not.toThrow();
    const labels = Object.fromEntries(stats.families());
    expect(Object.keys(labels).sort()).toEqual([OTHER_NAMESPACES, 'ok']);
    expect(labels[OTHER_NAMESPACES].misses).toBe(4);
    expect(labels.ok.misses).toBe(1);
  });

  it('namespaces: 0 keeps no undeclared namespace apart, yet counts every read', () => {
    const stats = new CacheStats(limits({ namespaces: 0 }));
    stats.declare('users');
    for (let i = 0; i < 100; i++) stats.read(`user-${i}`, 'k', 'HIT', 1);
    stats.read('users', 'k', 'MISS', 1);
    const snapshot = stats.namespaceStats();
    expect(Object.keys(snapshot).sort()).toEqual([OTHER_NAMESPACES, 'users']);
    expect(snapshot[OTHER_NAMESPACES].hits).toBe(100);
    expect(snapshot.users.misses).toBe(1);
  });

  it('is bounded in bytes too: long names keep fewer namespaces apart', () => {
    const stats = new CacheStats(limits({ namespaces: 1000 }));
    const long = 'n'.repeat(190);
    for (let i = 0; i < 10_000; i++) stats.read(`${long}${i}`, 'k', 'HIT', 1);
    const kept = Object.keys(stats.namespaceStats()).length - 1;
    // the byte bound: namespaces x (entry + a 64-character name), each long name charged at its length
    const budget = 1000 * (NAMESPACE_ENTRY_BYTES + 128);
    expect(kept).toBeLessThan(1000);
    expect(kept).toBeLessThanOrEqual(Math.floor(budget / (NAMESPACE_ENTRY_BYTES + 2 * 194)));
    expect(stats.namespaceStats()[OTHER_NAMESPACES].hits + kept).toBe(10_000);
  });

  it('a namespace declared after it was counted is never folded again', () => {
    const stats = new CacheStats(limits({ namespaces: 10 }));
    stats.read('catalog', 'k', 'HIT', 1);
    stats.declare('catalog');
    stats.read('catalog', 'k', 'MISS', 1);
    for (let i = 0; i < 100; i++) stats.read(`t${i}`, 'k', 'HIT', 1);
    expect(stats.namespaceStats().catalog.misses).toBe(1);
    expect(Object.fromEntries(stats.families()).catalog.misses).toBe(1);
  });

  it('whatever the reads and bounds, totals per namespace and per label equal the client totals', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.stringMatching(/^[a-c]{1,2}[0-9]{0,2}$/), fc.constantFrom('HIT', 'MISS', 'STALE')), {
          maxLength: 300,
        }),
        (namespaces, families, reads) => {
          const stats = new CacheStats(limits({ namespaces, families }));
          stats.declare('a');
          for (const [name, outcome] of reads) stats.read(name, 'k', outcome as 'HIT', 1);
          const totals = stats.snapshot();
          expect(sum(stats.namespaces(), 'hits')).toBe(totals.hits);
          expect(sum(stats.families(), 'hits')).toBe(totals.hits);
          expect(sum(stats.families(), 'misses')).toBe(totals.misses);
          expect([...stats.namespaces()].length).toBeLessThanOrEqual(namespaces + 2);
          expect([...stats.families()].length).toBeLessThanOrEqual(families + 2);
        },
      ),
    );
  });
  it('a name no read could use (not a string, past 200 characters) counts under (other) and leaves the bounds alone', () => {
    const stats = new CacheStats(limits({ namespaces: 10 }));
    for (let i = 0; i < 10; i++) stats.read(`t${i}`, 'k', 'HIT', 1);
    stats.failed(5 as never, 'getOrSet', new Error('bad namespace'));
    stats.failed('n'.repeat(3000), 'getOrSet', new Error('bad namespace'));
    stats.read(undefined as never, 'k', 'HIT', 1);
    const snapshot = stats.namespaceStats();
    // the ten kept are still there, and one more still folds the oldest (the byte count is a number)
    for (let i = 0; i < 10; i++) expect(snapshot[`t${i}`].hits).toBe(1);
    expect(snapshot[OTHER_NAMESPACES].errors).toBe(2);
    stats.read('t10', 'k', 'HIT', 1);
    expect(Object.keys(stats.namespaceStats())).not.toContain('t0');
  });

  it('a namespace declared after it was counted keeps what it counted in its family: no reported count goes down', () => {
    const stats = new CacheStats();
    for (let i = 0; i < 5; i++) stats.read('user', 'k', 'HIT', 1);
    const label = () => Object.fromEntries(stats.families());
    expect(label().user.hits).toBe(5);
    stats.declare('user');
    stats.read('user', 'k', 'HIT', 1);
    const after = label();
    expect(after['user*'].hits).toBe(5);
    expect(after.user.hits).toBe(1);
    expect(Object.values(stats.namespaceStats()).reduce((t, s) => t + s.hits, 0)).toBe(6);
  });

  it('a family named like a declared namespace gets a label of its own', () => {
    const stats = new CacheStats();
    stats.declare('users');
    stats.read('users', 'k', 'HIT', 1);
    for (let i = 0; i < 3; i++) stats.read(`users-${i}`, 'k', 'MISS', 1);
    const labels = Object.fromEntries(stats.families());
    expect(labels.users.hits).toBe(1);
    expect(labels.users.misses).toBe(0);
    expect(labels['users*'].misses).toBe(3);
    // a rule answering (none) does not merge into the reads of keys without a namespace
    const none = new CacheStats(limits({ family: () => '(none)' }));
    none.read(undefined, 'k', 'HIT', 1);
    none.read('x1', 'k', 'MISS', 1);
    expect(Object.fromEntries(none.families())['(none)'].misses).toBe(0);
  });
});
