import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { MemcachedClient } from '../../lib/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startNats, startPostgres, type TestServer } from '../support/servers.js';
import { type Result, staleReads } from '../support/soak.js';
import { startWorker } from '../support/workers.js';

const worker = new URL('./workers/soak-worker.ts', import.meta.url);
const PROCESSES = 4;
const ROWS = 20;
/** SOAK_SECONDS=60 for the long run; the default keeps npm test quick. */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 12);

// one PostgreSQL and one NATS of the file's own, for every soak below
let postgres: TestServer;
let nats: TestServer;
beforeAll(async () => {
  await Promise.all([
    startPostgres().then((started) => (postgres = started)),
    startNats().then((started) => (nats = started)),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([postgres?.stop(), nats?.stop()]);
});

/** What memcached holds at the end: each row's entry is absent or its latest version. */
async function expectNothingStaleCached(db: pg.Client, table: string, daemon: MemcachedDaemon): Promise<void> {
  const { rows } = await db.query(`SELECT id, version FROM ${table}`);
  const check = new MemcachedClient({ servers: daemon.address, logger: false });
  try {
    for (const { id, version } of rows as Array<{ id: number; version: number }>) {
      const cached = await check.get<number>(String(id), { namespace: 'soak' });
      if (cached !== undefined) expect(cached).toBe(version);
    }
  } finally {
    check.close();
  }
}

/** Connects and creates the soak's table: ROWS rows at version 1. */
async function createRows(db: pg.Client, table: string): Promise<void> {
  await db.connect();
  await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, version int NOT NULL)`);
  await db.query(`INSERT INTO ${table} SELECT g, 1 FROM generate_series(1, ${ROWS}) g`);
}

/**
 * A memcached and a soak table of `table`, for one describe: started before its tests, removed
 * after them. The proxies a describe adds are its own.
 */
function soakFixture(table: string): { daemon: MemcachedDaemon; db: pg.Client } {
  const fixture = {} as { daemon: MemcachedDaemon; db: pg.Client };
  beforeAll(async () => {
    fixture.daemon = await MemcachedDaemon.start();
    fixture.db = new pg.Client({ connectionString: postgres.url });
    await createRows(fixture.db, table);
  });
  afterAll(async () => {
    await fixture.db?.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await fixture.db?.end();
    await fixture.daemon?.kill();
  });
  return fixture;
}

describe('soak: 4 processes read and write PostgreSQL rows through @Cacheable / @CacheEvict, leases on', () => {
  const table = `nm_soak_${process.pid}`;
  const soak = soakFixture(table);

  it(
    `no read that starts after an eviction returns gets the old value (${SECONDS} s)`,
    async () => {
      const workers = Array.from({ length: PROCESSES }, () =>
        startWorker(worker, {
          servers: soak.daemon.address,
          databaseUrl: postgres.url,
          table,
          rows: ROWS,
          durationMs: SECONDS * 1000,
          concurrency: 8,
          writeShare: 0.1,
          readSeconds: 0.005,
        }),
      );
      const results = (await Promise.all(workers.map((w) => w.result))) as Result[];
      const reads = results.reduce((n, r) => n + r.reads.length, 0);
      const writes = results.reduce((n, r) => n + r.writes.length, 0);
      const stale = staleReads(results);
      const hits = results.reduce((n, r) => n + r.stats.cacheHits, 0);
      process.stdout.write(
        `[soak] ${SECONDS} s, ${PROCESSES} processes: ${reads} reads, ${writes} writes, ${stale.length} stale reads; ` +
          `rejected fills ${results.reduce((n, r) => n + r.stats.rejectedFills, 0)}, split loads ${results.reduce((n, r) => n + r.stats.splitFlights, 0)}, ` +
          `lease waits ${results.reduce((n, r) => n + r.stats.leaseWaits, 0)}, cache hits ${hits}\n`,
      );
      expect(reads).toBeGreaterThan(SECONDS * 100);
      expect(writes).toBeGreaterThan(SECONDS * 10);
      expect(stale).toStrictEqual([]);
      // the final state: every row's cached value (if any) is its latest version
      const { rows } = await soak.db.query(`SELECT id, version FROM ${table}`);
      const latest = new Map(rows.map((r: { id: number; version: number }) => [r.id, r.version]));
      for (const r of results)
        for (const [, row, version] of r.writes) expect(version).toBeLessThanOrEqual(latest.get(row)!);
    },
    60_000 + SECONDS * 2000,
  );
});

/**
 * The same soak with memcached partitioned midway: every process reaches it through one proxy that
 * drops every byte for 1.5 s, so evictions made meanwhile fail (owed, and told on the bus) while
 * the writes return. Once memcached answers again, no read may get a version older than a write
 * that had returned, except for the bus's delivery time after that write: a process that did not
 * hear of an owed eviction yet (the same bound as the near cache's).
 */
describe('soak with memcached partitioned midway: owed evictions keep reads fresh', () => {
  let proxy: FaultProxy;
  const table = `nm_soak_partition_${process.pid}`;
  const soak = soakFixture(table);
  /** What a process may lag behind an owed eviction: the bus's delivery. */
  const BOUND_MS = 100;

  beforeAll(async () => {
    proxy = await new FaultProxy(soak.daemon.port).start();
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  it(
    `0 reads older than a write that returned once the partition heals, beyond the bus's delivery (${SECONDS} s)`,
    async () => {
      const channel = `nmc-soak-partition-${randomUUID()}`;
      const workers = Array.from({ length: PROCESSES }, () =>
        startWorker(worker, {
          servers: proxy.address,
          databaseUrl: postgres.url,
          table,
          rows: ROWS,
          durationMs: SECONDS * 1000,
          concurrency: 8,
          writeShare: 0.1,
          readSeconds: 0.005,
          timeout: 150,
          bus: { url: nats.url, channel },
        }),
      );
      const partition = (async () => {
        await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
        proxy.silent = true;
        await new Promise((r) => setTimeout(r, 1500));
        proxy.silent = false;
      })();
      const results = (await Promise.all(workers.map((w) => w.result))) as Result[];
      await partition;
      const reads = results.reduce((n, r) => n + r.reads.length, 0);
      const writes = results.reduce((n, r) => n + r.writes.length, 0);
      const stale = staleReads(results);
      const lags = stale.map((s) => s.lag).sort((a, b) => a - b);
      const sum = (name: string) => results.reduce((n, r) => n + (r.stats[name] ?? 0), 0);
      process.stdout.write(
        `[soak partition] ${SECONDS} s, ${PROCESSES} processes, memcached silent 1.5 s midway: ${reads} reads, ${writes} writes; ` +
          `${stale.length} reads older than a write that had returned (lag max ${(lags.at(-1) ?? 0).toFixed(1)} ms); ` +
          `invalidations owed ${sum('invalidationsOwed')}, repaid ${sum('invalidationsRepaid')}\n`,
      );
      expect(reads).toBeGreaterThan(SECONDS * 100);
      expect(sum('invalidationsOwed')).toBeGreaterThan(0);
      expect(lags.filter((lag) => lag > BOUND_MS)).toStrictEqual([]);
      // nothing stale is left in memcached: each row's entry is absent or its latest version
      await expectNothingStaleCached(soak.db, table, soak.daemon);
    },
    60_000 + SECONDS * 2000,
  );
});

/**
 * The same soak with a near cache in every process and a NATS bus, each process's bus through its
 * own proxy. A read may return a value from its near cache until the eviction's message arrives:
 * the bound. Midway, one process's link goes silent for 1 s (5 heartbeats; a process unheard
 * for 10 is presumed gone) and another's is cut: what they miss meanwhile, and what the silent
 * one evicts meanwhile, must stop being served within the heartbeat (plus a quarter of it).
 */
describe.each([
  { title: 'links silenced and cut midway', dropShare: 0 },
  { title: '10% of the invalidations each process receives lost (sequence gaps)', dropShare: 0.1 },
])('soak with near caches over NATS, $title: stale only within the bus bound', ({ dropShare }) => {
  const HEARTBEAT = 200;
  /** What a near-cache read may lag behind an eviction: delivery, or noticing a silent link. */
  const BOUND_MS = HEARTBEAT * 1.25 + 150;
  const proxies: FaultProxy[] = [];
  const table = `nm_soak_near_${process.pid}_${Math.round(dropShare * 100)}`;
  const soak = soakFixture(table);

  beforeAll(async () => {
    for (let i = 0; i < PROCESSES; i++) proxies.push(await new FaultProxy(nats.port).start());
  });
  afterAll(async () => {
    for (const proxy of proxies) await proxy.stop();
  });

  it(
    `near-cache reads lag an eviction by at most ${BOUND_MS} ms; none is left stale in memcached (${SECONDS} s)`,
    async () => {
      const channel = `nmc-soak-${randomUUID()}`;
      const workers = proxies.map((proxy) =>
        startWorker(worker, {
          servers: soak.daemon.address,
          databaseUrl: postgres.url,
          table,
          rows: ROWS,
          durationMs: SECONDS * 1000,
          concurrency: 8,
          writeShare: 0.1,
          readSeconds: 0.005,
          near: { url: `nats://127.0.0.1:${proxy.port}`, channel, heartbeat: HEARTBEAT, dropShare },
        }),
      );
      // midway: process 1's link goes silent for 1 s, process 2's is cut (it reconnects)
      const faults = (async () => {
        if (dropShare > 0) return;
        await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
        proxies[1].silent = true;
        proxies[2].cutAll();
        await new Promise((r) => setTimeout(r, 1000));
        proxies[1].silent = false;
      })();
      const results = (await Promise.all(workers.map((w) => w.result))) as Result[];
      await faults;
      const reads = results.reduce((n, r) => n + r.reads.length, 0);
      const writes = results.reduce((n, r) => n + r.writes.length, 0);
      const stale = staleReads(results);
      const lags = stale.map((s) => s.lag).sort((a, b) => a - b);
      const p99 = lags.length === 0 ? 0 : lags[Math.min(lags.length - 1, Math.floor(lags.length * 0.99))];
      const sum = (name: string) => results.reduce((n, r) => n + (r.stats[name] ?? 0), 0);
      process.stdout.write(
        `[soak near${dropShare > 0 ? `, ${Math.round(dropShare * 100)}% of invalidations lost: ${sum('droppedMessages')} dropped, ${sum('busGaps')} gaps seen` : ''}] ${SECONDS} s, ${PROCESSES} processes, NATS: ${reads} reads (${sum('nearHits')} from near caches), ${writes} writes; ` +
          `${stale.length} reads older than an eviction that had returned, lag p99 ${p99.toFixed(1)} ms, max ${(lags.at(-1) ?? 0).toFixed(1)} ms; ` +
          `near-cache flushes ${sum('nearFlushes')}, refused near fills ${sum('nearRefusedFills')}, rejected fills ${sum('rejectedFills')}\n`,
      );
      expect(reads).toBeGreaterThan(SECONDS * 100);
      expect(sum('nearHits')).toBeGreaterThan(0);
      if (dropShare > 0) expect(sum('busGaps')).toBeGreaterThan(0);
      expect(lags.filter((lag) => lag > BOUND_MS)).toStrictEqual([]);
      // with leases on, nothing stale is left in memcached: each row's entry is absent or its latest version
      await expectNothingStaleCached(soak.db, table, soak.daemon);
    },
    60_000 + SECONDS * 2000,
  );
});
