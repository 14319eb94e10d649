import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startNats, startPostgres, type TestServer } from '../support/servers.js';
import { type Result, staleReads } from '../support/soak.js';
import { startWorker } from '../support/workers.js';

const worker = new URL('./workers/tags-soak-worker.ts', import.meta.url);
const PROCESSES = 4;
const ROWS = 20;
/** SOAK_SECONDS=60 for the long run; the default keeps npm test quick. */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 12);

let postgres: TestServer;
let nats: TestServer;
let daemon: MemcachedDaemon;
beforeAll(async () => {
  [postgres, nats, daemon] = await Promise.all([startPostgres(), startNats(), MemcachedDaemon.start()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([postgres?.stop(), nats?.stop(), daemon?.kill()]);
});

/**
 * 4 processes (4 services: each its own key prefix, one shared tag keyspace) read rows and
 * queries over three rows, each tagged with the rows it shows, and bump rows with
 * `@CacheEvict({ tags })`. A query read counts as a read of each row it shows.
 */
async function soak(
  table: string,
  job: { leases: boolean; near?: { url: string; channel: string; heartbeat: number } },
) {
  const db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
  try {
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, version int NOT NULL)`);
    await db.query(`INSERT INTO ${table} SELECT g, 1 FROM generate_series(1, ${ROWS}) g`);
    const workers = Array.from({ length: PROCESSES }, (_, i) =>
      startWorker(worker, {
        servers: daemon.address,
        databaseUrl: postgres.url,
        table,
        rows: ROWS,
        durationMs: SECONDS * 1000,
        concurrency: 8,
        writeShare: 0.1,
        readSeconds: 0.005,
        keyPrefix: `svc${i}:`,
        ...job,
      }),
    );
    return (await Promise.all(workers.map((w) => w.result))) as Result[];
  } finally {
    await db.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await db.end();
  }
}

describe('tag soak: 4 services on PostgreSQL rows, queries tagged with the rows they show', () => {
  it(
    `leases on: 0 reads that start after an invalidation returns get a value from before it (${SECONDS} s)`,
    async () => {
      const results = await soak(`nm_tags_soak_${process.pid}`, { leases: true });
      const reads = results.reduce((n, r) => n + r.reads.length, 0);
      const writes = results.reduce((n, r) => n + r.writes.length, 0);
      const sum = (name: string) => results.reduce((n, r) => n + (r.stats[name] ?? 0), 0);
      const stale = staleReads(results);
      process.stdout.write(
        `[tag soak] ${SECONDS} s, ${PROCESSES} services: ${reads} row reads, ${writes} writes, ${stale.length} stale reads; ` +
          `hits ${sum('hits')}, tag misses ${sum('tagMisses')}, tag invalidations ${sum('tagInvalidations')}, lease waits ${sum('leaseWaits')}\n`,
      );
      expect(reads).toBeGreaterThan(SECONDS * 100);
      expect(writes).toBeGreaterThan(SECONDS * 10);
      expect(sum('hits')).toBeGreaterThan(0);
      expect(sum('tagMisses')).toBeGreaterThan(0);
      expect(stale).toStrictEqual([]);
    },
    60_000 + SECONDS * 2000,
  );

  it(
    `near caches over NATS: every stale read within the bus bound (${SECONDS} s)`,
    async () => {
      const HEARTBEAT = 200;
      const BOUND_MS = HEARTBEAT * 1.25 + 150;
      const results = await soak(`nm_tags_soak_near_${process.pid}`, {
        leases: true,
        near: { url: nats.url, channel: `nmc-tags-soak-${randomUUID()}`, heartbeat: HEARTBEAT },
      });
      const reads = results.reduce((n, r) => n + r.reads.length, 0);
      const sum = (name: string) => results.reduce((n, r) => n + (r.stats[name] ?? 0), 0);
      const lags = staleReads(results)
        .map((s) => s.lag)
        .sort((a, b) => a - b);
      const p99 = lags.length === 0 ? 0 : lags[Math.min(lags.length - 1, Math.floor(lags.length * 0.99))];
      process.stdout.write(
        `[tag soak near] ${SECONDS} s, ${PROCESSES} services: ${reads} row reads (${sum('nearHits')} near hits), ` +
          `${lags.length} stale reads, lag p99 ${p99.toFixed(1)} ms, max ${(lags.at(-1) ?? 0).toFixed(1)} ms; near invalidations ${sum('nearInvalidations')}\n`,
      );
      expect(reads).toBeGreaterThan(SECONDS * 100);
      expect(sum('nearHits')).toBeGreaterThan(0);
      expect(lags.filter((lag) => lag > BOUND_MS)).toStrictEqual([]);
    },
    60_000 + SECONDS * 2000,
  );
});
