import { describe, expect, it } from 'vitest';
import { CacheStats, MAX_NAMESPACES, OTHER_NAMESPACES } from '../../lib/stats/cache-stats.js';

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
    const sum = (field: 'hits' | 'misses') => Object.values(snapshot).reduce((total, s) => total + s[field], 0);
    expect(sum('hits') + sum('misses')).toBe(3 * reads);
    expect(sum('hits')).toBe(stats.snapshot().hits);
    expect(snapshot[OTHER_NAMESPACES].latency.count).toBe(
      snapshot[OTHER_NAMESPACES].hits + snapshot[OTHER_NAMESPACES].misses,
    );
    expect(snapshot.users.hits).toBe(reads);
  });
});
