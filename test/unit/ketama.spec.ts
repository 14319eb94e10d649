import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KetamaRing, ketamaHash } from '../../lib/cluster/ketama.js';

interface Vector {
  key: string;
  hash1: number;
  hash2: number;
  server: string;
}
const vectors = JSON.parse(readFileSync(new URL('../fixtures/ketama-vectors.json', import.meta.url), 'utf8')) as {
  pool: Array<[string, number, number]>;
  ketama_test_cases: Vector[];
  ketama_test_cases_spy: Vector[];
};
const pool = vectors.pool.map(([host, port, weight]) => ({ host, port, weight }));

describe('KetamaRing (libmemcached weighted ketama)', () => {
  it.each([
    ['weighted', vectors.ketama_test_cases, false],
    ['KETAMA_SPY', vectors.ketama_test_cases_spy, true],
  ] as const)('maps all %s vectors to the listed server, with the listed hashes', (_, cases, spy) => {
    const ring = new KetamaRing(pool, { spy });
    expect(cases).toHaveLength(99);
    for (const v of cases) {
      expect(ketamaHash(v.key), v.key).toBe(v.hash1);
      // libmemcached's fixture repeats the weighted continuum point in the SPY table, so hash2 is
      // only meaningful for the weighted ring
      if (!spy) expect(ring.pointAt(ring.pointIndex(v.hash1)), v.key).toBe(v.hash2);
      expect(pool[ring.locate(v.key)].host, v.key).toBe(v.server);
    }
  });

  it('hashes any key (non-ASCII, long, empty) as the first four MD5 bytes, little-endian', () => {
    const keys = [
      '',
      'é',
      '日本語:キー',
      'a'.repeat(300),
      ...Array.from({ length: 500 }, () => randomBytes(1 + (randomBytes(1)[0] % 40)).toString('latin1')),
    ];
    for (const key of keys) {
      expect(ketamaHash(key), JSON.stringify(key)).toBe(createHash('md5').update(key).digest().readUInt32LE(0));
    }
  });

  it("builds libmemcached's point counts for the test pool", () => {
    expect(new KetamaRing(pool).size).toBe(1264);
  });

  const keys = Array.from({ length: 100_000 }, (_, i) => `key:${i}`);
  const nodes = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ host: `10.0.0.${i + 1}`, port: 11211, weight: 1 }));
  const moved = (a: KetamaRing, b: KetamaRing, map: (i: number) => number = (i) => i) =>
    keys.filter((k) => map(a.locate(k)) !== b.locate(k)).length / keys.length;

  it('remaps 5-15% of keys when one of 10 nodes is removed or an 11th is added', () => {
    const ten = new KetamaRing(nodes(10));
    const nine = new KetamaRing(nodes(10).filter((_, i) => i !== 4));
    expect(moved(ten, nine, (i) => (i > 4 ? i - 1 : i))).toBeGreaterThan(0.05);
    expect(moved(ten, nine, (i) => (i > 4 ? i - 1 : i))).toBeLessThan(0.15);
    const eleven = new KetamaRing(nodes(11));
    const share = moved(ten, eleven);
    expect(share).toBeGreaterThan(0.05);
    expect(share).toBeLessThan(0.15);
  });

  it('gives weights 2:1 shares within 10% of 2:1', () => {
    const ring = new KetamaRing([
      { host: '10.0.0.1', port: 11211, weight: 2 },
      { host: '10.0.0.2', port: 11211, weight: 1 },
    ]);
    const first = keys.filter((k) => ring.locate(k) === 0).length;
    const ratio = first / (keys.length - first);
    expect(ratio).toBeGreaterThan(1.8);
    expect(ratio).toBeLessThan(2.2);
  });
});

describe('KetamaRing.locate with skipped nodes (rehash)', () => {
  const ring = new KetamaRing([
    { host: 'a', port: 11211, weight: 1 },
    { host: 'b', port: 11211, weight: 1 },
    { host: 'c', port: 11211, weight: 1 },
  ]);
  const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);

  it("moves only the skipped node's keys, to the next node clockwise", () => {
    for (const key of keys) {
      const owner = ring.locate(key);
      const rehashed = ring.locate(key, (i) => i === 1);
      if (owner === 1) expect(rehashed).not.toBe(1);
      else expect(rehashed).toBe(owner);
    }
  });

  it('returns -1 when every node is skipped', () => {
    expect(ring.locate('k', () => true)).toBe(-1);
  });
});

// generated from libmemcached itself by test/fixtures/pylibmc-ketama-vectors.py (Debian's python3-pylibmc)
const pylibmc = JSON.parse(
  readFileSync(new URL('../fixtures/pylibmc-ketama-vectors.json', import.meta.url), 'utf8'),
) as {
  servers: string[];
  ketama: Array<[string, number]>;
  ketama_weighted: Array<[string, number]>;
};
const pylibmcPool = pylibmc.servers.map((s) => ({ host: s.split(':')[0], port: Number(s.split(':')[1]), weight: 1 }));

describe('KetamaRing against placements libmemcached made (pylibmc, one node on 11211)', () => {
  it.each([
    ['{"ketama": True}: plain ketama, one-at-a-time', pylibmc.ketama, true],
    ['{"ketama_weighted": True}: weighted MD5 ketama', pylibmc.ketama_weighted, false],
  ] as const)('%s places all 1000 keys on the same server', (_, cases, plain) => {
    const ring = new KetamaRing(pylibmcPool, { plain });
    expect(cases).toHaveLength(1000);
    const wrong = cases.filter(([key, index]) => ring.locate(key) !== index);
    expect(wrong).toEqual([]);
  });

  it('plain ketama has 100 points per server and ignores weights', () => {
    const weighted = pylibmcPool.map((n, i) => ({ ...n, weight: i + 1 }));
    const ring = new KetamaRing(weighted, { plain: true });
    expect(ring.size).toBe(300);
    const same = new KetamaRing(pylibmcPool, { plain: true });
    for (const [key] of pylibmc.ketama.slice(0, 200)) expect(ring.locate(key)).toBe(same.locate(key));
  });
});
