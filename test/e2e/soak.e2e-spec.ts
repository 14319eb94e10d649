import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startWorker } from '../support/workers.js';

const worker = new URL('./workers/soak-worker.ts', import.meta.url);
const PROCESSES = 4;
const ROWS = 20;
/** SOAK_SECONDS=60 for the long run; the default keeps npm test quick. */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 12);

interface Result {
  reads: Array<[number, number, number]>;
  writes: Array<[number, number, number]>;
  stats: Record<string, number>;
}

/** Reads that started after an eviction of their row returned, yet saw an older version. */
export function staleReads(results: Result[]): Array<{ row: number; startedAt: number; saw: number; evictedVersion: number }> {
  const writesByRow = new Map<number, Array<[number, number]>>();
  for (const r of results) for (const [at, row, version] of r.writes) (writesByRow.get(row) ?? writesByRow.set(row, []).get(row)!).push([at, version]);
  for (const list of writesByRow.values()) list.sort((a, b) => a[0] - b[0]);
  const stale = [];
  for (const r of results) {
    for (const [startedAt, row, saw] of r.reads) {
      let evictedVersion = 0;
      for (const [at, version] of writesByRow.get(row) ?? []) {
        if (at >= startedAt) break;
        evictedVersion = Math.max(evictedVersion, version);
      }
      if (saw < evictedVersion) stale.push({ row, startedAt, saw, evictedVersion });
    }
  }
  return stale;
}

describe('soak: 4 processes read and write PostgreSQL rows through @Cacheable / @CacheEvict, leases on', () => {
  let daemon: MemcachedDaemon;
  const table = `nm_soak_${process.pid}`;
  const db = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    await db.connect();
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, version int NOT NULL)`);
    await db.query(`INSERT INTO ${table} SELECT g, 1 FROM generate_series(1, ${ROWS}) g`);
  });
  afterAll(async () => {
    await db.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await db.end();
    await daemon?.kill();
  });

  it(`no read that starts after an eviction returns gets the old value (${SECONDS} s)`, async () => {
    const workers = Array.from({ length: PROCESSES }, () =>
      startWorker(worker, { servers: daemon.address, table, rows: ROWS, durationMs: SECONDS * 1000, concurrency: 8, writeShare: 0.1, readSeconds: 0.005 }),
    );
    const results = (await Promise.all(workers.map((w) => w.result))) as Result[];
    const reads = results.reduce((n, r) => n + r.reads.length, 0);
    const writes = results.reduce((n, r) => n + r.writes.length, 0);
    const stale = staleReads(results);
    const hits = results.reduce((n, r) => n + r.stats.cacheHits, 0);
    process.stdout.write(`[soak] ${SECONDS} s, ${PROCESSES} processes: ${reads} reads, ${writes} writes, ${stale.length} stale reads; ` +
      `rejected fills ${results.reduce((n, r) => n + r.stats.rejectedFills, 0)}, split loads ${results.reduce((n, r) => n + r.stats.splitFlights, 0)}, ` +
      `lease waits ${results.reduce((n, r) => n + r.stats.leaseWaits, 0)}, cache hits ${hits}\n`);
    expect(reads).toBeGreaterThan(SECONDS * 100);
    expect(writes).toBeGreaterThan(SECONDS * 10);
    expect(stale).toStrictEqual([]);
    // the final state: every row's cached value (if any) is its latest version
    const { rows } = await db.query(`SELECT id, version FROM ${table}`);
    const latest = new Map(rows.map((r: { id: number; version: number }) => [r.id, r.version]));
    for (const r of results) for (const [, row, version] of r.writes) expect(version).toBeLessThanOrEqual(latest.get(row)!);
  }, 60_000 + SECONDS * 2000);
});
