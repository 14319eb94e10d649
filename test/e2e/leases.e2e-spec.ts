import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedCache, Cacheable, CacheEvict, MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startWorker } from '../support/workers.js';

const worker = new URL('./workers/lease-worker.ts', import.meta.url);

/** A gate a test opens by hand, to interleave a reader and a writer deterministically. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('leases against real memcached', () => {
  let daemon: MemcachedDaemon;
  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
  });
  afterAll(async () => {
    await daemon?.kill();
  });

  it('herd: 4 OS processes x 50 concurrent calls on one cold key call a 200 ms source once in total', async () => {
    const workers = Array.from({ length: 4 }, () =>
      startWorker(worker, { mode: 'herd', servers: daemon.address, key: 'herd:hot', concurrency: 50, sourceMs: 200 }),
    );
    await Promise.all(workers.map((w) => w.waitFor('READY')));
    for (const w of workers) w.send('go');
    const results = await Promise.all(workers.map((w) => w.result));
    expect(results.reduce((sum, r) => sum + r.sourceCalls, 0)).toBe(1);
    const values = results.flatMap((r) => r.results);
    expect(values).toHaveLength(200);
    expect(new Set(values.map((v: { by: number }) => v.by)).size).toBe(1);
    expect(values.every((v: { value: string }) => v.value === 'computed')).toBe(true);
  }, 30_000);

  it('herd without leases (the control): each process calls the source', async () => {
    const workers = Array.from({ length: 4 }, () =>
      startWorker(worker, {
        mode: 'herd',
        servers: daemon.address,
        key: 'herd:control',
        concurrency: 50,
        sourceMs: 200,
        leases: false,
      }),
    );
    await Promise.all(workers.map((w) => w.waitFor('READY')));
    for (const w of workers) w.send('go');
    const results = await Promise.all(workers.map((w) => w.result));
    expect(results.reduce((sum, r) => sum + r.sourceCalls, 0)).toBeGreaterThan(1);
  }, 30_000);

  describe.each([true, false])('stale-set race, leases %s', (leases) => {
    it(
      leases
        ? 'ends with the fresh value or a miss, never the stale one'
        : 'leaves the stale value (the test detects the race)',
      async () => {
        const reader = new MemcachedClient({ servers: daemon.address, leases, logger: false });
        const writer = new MemcachedClient({ servers: daemon.address, leases, logger: false });
        try {
          const key = `race:${leases}`;
          let db = 'v1';
          const readDone = gate();
          const writeDone = gate();
          const read = reader.getOrSet(key, async () => {
            const seen = db; // the reader's database read
            readDone.open();
            await writeDone.opened; // paused between its database read and its fill
            return seen;
          });
          await readDone.opened;
          db = 'v2'; // the writer commits...
          await writer.delete(key); // ...and evicts
          writeDone.open();
          expect(await read).toBe('v1');
          await sleep(50);
          const cached = await writer.get(key);
          if (leases) {
            expect(cached === undefined || cached === 'v2').toBe(true);
            expect(reader.stats().rejectedFills).toBe(1);
            expect(await writer.getOrSet(key, async () => db)).toBe('v2');
          } else {
            expect(cached).toBe('v1');
          }
        } finally {
          reader.close();
          writer.close();
        }
      },
    );
  });

  it('stale-set race through @Cacheable / @CacheEvict in two apps', async () => {
    const db = { value: 'v1' };
    const readDone = gate();
    const writeDone = gate();
    let pauseReads = true;

    @Injectable()
    class Profiles {
      @Cacheable({ namespace: 'profiles', key: (id: string) => id })
      async find(id: string): Promise<string> {
        const seen = db.value;
        if (pauseReads) {
          readDone.open();
          await writeDone.opened;
        }
        return seen;
      }

      @CacheEvict({ namespace: 'profiles', key: (id: string) => id })
      async update(id: string, value: string): Promise<void> {
        db.value = value;
      }
    }
    @Module({ providers: [Profiles] })
    class ProfilesModule {}

    const app = () =>
      Test.createTestingModule({
        imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false }), ProfilesModule],
      })
        .compile()
        .then(async (m: TestingModule) => (await m.init(), m));
    const [readerApp, writerApp] = await Promise.all([app(), app()]);
    try {
      const read = readerApp.get(Profiles).find('1');
      await readDone.opened;
      await writerApp.get(Profiles).update('1', 'v2');
      writeDone.open();
      expect(await read).toBe('v1');
      await sleep(50);
      pauseReads = false;
      expect(await writerApp.get(Profiles).find('1')).toBe('v2');
      expect(await readerApp.get(Profiles).find('1')).toBe('v2');
      expect(readerApp.get(MemcachedClient).stats().rejectedFills).toBe(1);
    } finally {
      await readerApp.close();
      await writerApp.close();
    }
  });

  it('soak: readers in 3 processes and a writer for ~20 s: no stale value survives an eviction', async () => {
    const keys = ['s0', 's1', 's2', 's3'];
    const versions = new Map(keys.map((k) => [k, 0]));
    const server = http.createServer((req, res) => {
      const key = decodeURIComponent(req.url!.slice(1));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ version: versions.get(key) }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const dbUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const writer = new MemcachedClient({ servers: daemon.address, logger: false });
    const audits: Array<{ key: string; expected: number; cached: unknown }> = [];
    try {
      const durationMs = 20_000;
      const readers = Array.from({ length: 3 }, () =>
        startWorker(worker, { mode: 'soak', servers: daemon.address, keys, dbUrl, durationMs, concurrency: 6 }),
      );
      const until = Date.now() + durationMs - 500;
      let frozen: string | undefined;
      let nextAudit = Date.now() + 300;
      let writes = 0;
      while (Date.now() < until) {
        if (Date.now() >= nextAudit && frozen === undefined) {
          // stop writing one key; once in-flight loads have settled, the cache must hold its
          // latest version or nothing: a stale set would leave an older one there
          const key = keys[Math.floor(Math.random() * keys.length)];
          frozen = key;
          setTimeout(async () => {
            audits.push({ key, expected: versions.get(key)!, cached: await writer.get(key) });
            frozen = undefined;
            nextAudit = Date.now() + 200;
          }, 150);
        }
        const key = keys.filter((k) => k !== frozen)[Math.floor(Math.random() * (keys.length - 1))];
        versions.set(key, versions.get(key)! + 1); // commit...
        await writer.delete(key); // ...then evict
        writes++;
        await sleep(Math.random() * 10);
      }
      const results = await Promise.all(readers.map((r) => r.result));
      const reads = results.flatMap((r) => r.reads as Array<[number, string, number]>);
      expect(reads.length).toBeGreaterThan(1000);
      expect(writes).toBeGreaterThan(300);
      expect(audits.length).toBeGreaterThan(20);
      const stale = audits.filter(
        (a) => a.cached !== undefined && (a.cached as { version: number }).version !== a.expected,
      );
      expect(stale).toStrictEqual([]);
      // after the last write's eviction returned, every read is fresh
      for (const key of keys) {
        for (let i = 0; i < 3; i++) {
          expect(await writer.getOrSet(key, async () => ({ version: versions.get(key) }))).toStrictEqual({
            version: versions.get(key),
          });
        }
      }
    } finally {
      writer.close();
      server.close();
    }
  }, 60_000);

  it('a lease holder killed mid-load blocks the key no longer than the lease TTL', async () => {
    const crashed = startWorker(worker, { mode: 'crash', servers: daemon.address, key: 'crash:k' });
    await crashed.waitFor('LEASED');
    crashed.child.kill('SIGKILL');
    const client = new MemcachedClient({ servers: daemon.address, leaseWait: 300, logger: false });
    try {
      let calls = 0;
      const started = performance.now();
      expect(await client.getOrSet('crash:k', () => (calls++, 'fresh'))).toBe('fresh');
      expect(performance.now() - started).toBeLessThan(300 + 200);
      expect(client.stats().leaseWaitTimeouts).toBe(1);
      expect(await client.get('crash:k')).toBeUndefined();
      // the worker's lease TTL is the default 5 s; memcached expires on whole seconds
      await sleep(5000 + 1100 - (performance.now() - started));
      expect(await client.getOrSet('crash:k', () => (calls++, 'refilled'))).toBe('refilled');
      await sleep(30);
      expect(await client.get('crash:k')).toBe('refilled');
      expect(calls).toBe(2);
    } finally {
      client.close();
    }
  }, 20_000);

  it('stale-while-revalidate: after the freshness deadline, callers get the old value at once while the source runs once', async () => {
    let version = 1;
    let calls = 0;

    @Injectable()
    class Rates {
      @Cacheable({ namespace: 'rates', key: () => 'eur', ttl: 1, staleWhileRevalidate: 30 })
      async rate(): Promise<number> {
        calls++;
        await sleep(300);
        return version;
      }
    }
    @Module({ providers: [Rates] })
    class RatesModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false }), RatesModule],
    }).compile();
    await moduleRef.init();
    try {
      const rates = moduleRef.get(Rates);
      expect(await rates.rate()).toBe(1);
      version = 2;
      await sleep(1100);
      const started = performance.now();
      const stale = await Promise.all(Array.from({ length: 20 }, () => rates.rate()));
      expect(performance.now() - started).toBeLessThan(200); // the source takes 300 ms
      expect(stale.every((v) => v === 1)).toBe(true);
      await sleep(450);
      expect(calls).toBe(2);
      expect(await rates.rate()).toBe(2);
      expect(moduleRef.get(MemcachedCache).stats().rates.stale).toBeGreaterThanOrEqual(1);
    } finally {
      await moduleRef.close();
    }
  });
});
