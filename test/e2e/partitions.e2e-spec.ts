import { type INestApplication, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  Cacheable,
  CacheEvict,
  CachePut,
  MemcachedClient,
  MemcachedModule,
  type MemcachedModuleOptions,
} from '../../lib/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startNats, type TestServer } from '../support/servers.js';
import { startWorker } from '../support/workers.js';

const TIMEOUT = 150;
const ROWS = 30;
const quiet = { log() {}, error() {}, warn() {}, debug() {} };
/** Owed evictions are held by other processes only from authenticated messages. */
const BUS_KEYS = [{ id: 1, key: Buffer.alloc(32, 7) }];

/** Rows with a version each: a read that returns an older version than the last update returned is stale. */
@Injectable()
class RowsDb {
  readonly versions = new Map<string, number>();
  loads = 0;

  version(id: string): number {
    return this.versions.get(id) ?? 0;
  }

  bump(id: string): number {
    const next = this.version(id) + 1;
    this.versions.set(id, next);
    return next;
  }
}

@Injectable()
class RowsService {
  constructor(readonly db: RowsDb) {}

  @Cacheable({ namespace: 'rows', key: (id: string) => id, ttl: 300 })
  async get(id: string): Promise<{ id: string; v: number }> {
    this.db.loads++;
    return { id, v: this.db.version(id) };
  }

  @CacheEvict({ namespace: 'rows', key: (id: string) => id })
  async update(id: string): Promise<number> {
    return this.db.bump(id);
  }

  @CachePut({ namespace: 'rows', key: (id: string) => id, ttl: 300 })
  async put(id: string): Promise<{ id: string; v: number }> {
    return { id, v: this.db.bump(id) };
  }

  @Cacheable({ namespace: 'pages', key: (id: string) => id, ttl: 300 })
  async page(id: string): Promise<{ id: string; v: number }> {
    this.db.loads++;
    return { id, v: this.db.version(`page:${id}`) };
  }

  @CacheEvict({ namespace: 'pages', allEntries: true })
  async updatePages(): Promise<void> {
    for (let i = 0; i < ROWS; i++) this.db.bump(`page:${i}`);
  }
}

@Module({ providers: [RowsDb, RowsService] })
class RowsModule {}

const ids = Array.from({ length: ROWS }, (_, i) => String(i));

async function until(check: () => boolean, ms = 5000, every = 10): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(every);
  }
}

describe('invalidations made while memcached is partitioned (frozen) are not forgotten', () => {
  let daemon: MemcachedDaemon;
  let nats: TestServer;
  let client: MemcachedClient | undefined;
  let others: MemcachedClient[] = [];

  beforeAll(async () => {
    [daemon, nats] = await Promise.all([MemcachedDaemon.start(), startNats()]);
  });
  afterEach(() => {
    client?.close();
    for (const other of others) other.close();
    others = [];
    daemon.resume();
  });
  afterAll(async () => {
    await daemon?.kill();
    await nats?.stop();
  });

  /** A client that never held a debt: what memcached itself holds. */
  function bystander(): MemcachedClient {
    const fresh = new MemcachedClient({ servers: daemon.address, timeout: 1000, logger: false });
    others.push(fresh);
    return fresh;
  }

  /** Runs `write` with memcached frozen; resumes it even when `write` throws. */
  async function partitioned<T>(write: () => Promise<T>): Promise<T> {
    await daemon.pause();
    try {
      return await write();
    } finally {
      daemon.resume();
    }
  }

  it('client.delete: rejects while frozen, no old value is read after the thaw, and memcached is repaired', async () => {
    const logs: string[] = [];
    client = new MemcachedClient({
      servers: daemon.address,
      timeout: TIMEOUT,
      breakerCooldown: 100,
      logger: { ...quiet, log: (m: string) => logs.push(m), warn: (m: string) => logs.push(m) },
    });
    const keys = Array.from({ length: 50 }, (_, i) => `del:${i}`);
    await Promise.all(keys.map((k) => client!.set(k, `old ${k}`)));
    const results = await partitioned(() => Promise.allSettled(keys.map((k) => client!.delete(k))));
    const thawed = performance.now();
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(client.stats().owed.keys).toBe(50);
    // at once after the thaw, before any debt can have been paid: nothing old comes back
    const first = await Promise.all(keys.map((k) => client!.get(k)));
    expect(first.filter((v) => v !== undefined)).toEqual([]);
    await until(() => client!.stats().owed.keys === 0, 5000, 1);
    process.stdout.write(
      `[partition] 50 owed deletes paid ${(performance.now() - thawed).toFixed(0)} ms after memcached was thawed (breakerCooldown 100 ms)\n`,
    );
    expect(client.stats()).toMatchObject({ invalidationsOwed: 50, invalidationsRepaid: 50 });
    expect(await bystander().getMulti(keys)).toEqual(new Map());
    expect(logs.filter((m) => /did not confirm an invalidation/.test(m))).toHaveLength(1);
    expect(logs.some((m) => /Paid 50 owed invalidation/.test(m))).toBe(true);
  });

  it('client.deleteNamespace and client.set: neither the namespace nor the overwritten value comes back', async () => {
    client = new MemcachedClient({ servers: daemon.address, timeout: TIMEOUT, breakerCooldown: 100, logger: false });
    await Promise.all(ids.map((id) => client!.set(id, `old ${id}`, { namespace: 'ns' })));
    await client.set('plain', 'v1');
    await partitioned(async () => {
      await expect(client!.deleteNamespace('ns')).rejects.toMatchObject({ code: 'TIMEOUT' });
      await expect(client!.set('plain', 'v2')).rejects.toMatchObject({ name: 'MemcachedError' });
    });
    expect(await client.get('plain')).toBeUndefined();
    expect((await Promise.all(ids.map((id) => client!.get(id, { namespace: 'ns' })))).filter(Boolean)).toEqual([]);
    await until(() => client!.stats().owed.keys + client!.stats().owed.namespaces === 0);
    const fresh = bystander();
    expect(await fresh.get('plain')).toBeUndefined();
    expect((await Promise.all(ids.map((id) => fresh.get(id, { namespace: 'ns' })))).filter(Boolean)).toEqual([]);
  });

  // frozen: memcached stops (requests already sent are applied after the thaw); silent: a link
  // that drops every byte both ways (nothing sent meanwhile ever arrives). Each variant has a key
  // prefix of its own, so one's entries are not another's (their databases start over).
  const near = { nearCache: { maxBytes: 1 << 20, ttl: 30, namespaces: '*' as const } };
  describe.each([
    ['without a near cache, memcached frozen', 'frozen', { keyPrefix: 'plain-frozen:' }],
    ['without a near cache, the link silent', 'silent', { keyPrefix: 'plain-silent:' }],
    ['with the near cache, memcached frozen', 'frozen', { keyPrefix: 'near-frozen:', ...near }],
    ['with the near cache, the link silent', 'silent', { keyPrefix: 'near-silent:', ...near }],
  ] as const)('decorators %s', (_name, how, extra) => {
    let app: INestApplication;
    let rows: RowsService;
    let proxy: FaultProxy | undefined;

    /** Runs `write` during the partition; ends the partition even when `write` throws. */
    async function partitioned<T>(write: () => Promise<T>): Promise<T> {
      if (how === 'frozen') await daemon.pause();
      else proxy!.silent = true;
      try {
        return await write();
      } finally {
        if (how === 'frozen') daemon.resume();
        else proxy!.silent = false;
      }
    }

    beforeAll(async () => {
      if (how === 'silent') proxy = await new FaultProxy(daemon.port).start();
      const options: MemcachedModuleOptions = {
        servers: proxy?.address ?? daemon.address,
        timeout: TIMEOUT,
        breakerCooldown: 100,
        bus: { transport: 'nats', url: nats.url, heartbeat: 200 },
        logger: false,
        ...extra,
      };
      const moduleRef = await Test.createTestingModule({
        imports: [MemcachedModule.forRoot({ isGlobal: true, ...options }), RowsModule],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      rows = app.get(RowsService);
      await until(() => app.get(MemcachedClient).stats().bus!.healthy);
    });
    afterAll(async () => {
      await app?.close();
      await proxy?.stop();
    });

    /** The rows read through `get` whose version is older than the database's. */
    const staleRowReads = () =>
      staleRows(
        (id) => rows.get(id),
        (id) => rows.db.version(id),
      );

    /** Reads every row until all are cached (fills land after the call returns). */
    async function cached(read: (id: string) => Promise<unknown>): Promise<void> {
      for (let attempt = 0; ; attempt++) {
        const loads = rows.db.loads;
        for (const id of ids) await read(id);
        if (rows.db.loads === loads) return;
        if (attempt > 20) throw new Error('the rows were not cached');
        await sleep(20);
      }
    }

    /** Waits until every debt is paid and memcached serves reads again. */
    async function repaired(): Promise<void> {
      const cache = app.get(MemcachedClient);
      await until(() => cache.stats().owed.keys + cache.stats().owed.namespaces === 0);
      await until(() => cache.nodeStatus().every((node) => node.state === 'up'));
    }

    /** Reads every row twice (memcached, then the near cache when on) and returns the stale ones. */
    async function staleRows(read: (id: string) => Promise<{ v: number }>, version: (id: string) => number) {
      const stale: string[] = [];
      for (let round = 0; round < 2; round++)
        for (const id of ids) if ((await read(id)).v !== version(id)) stale.push(id);
      return stale;
    }

    it('@CacheEvict by key: 0 stale reads after the thaw', async () => {
      const db = rows.db;
      await cached((id) => rows.get(id));
      expect(await staleRowReads()).toEqual([]);
      await partitioned(() => Promise.all(ids.map((id) => rows.update(id))));
      expect(await staleRowReads()).toEqual([]);
      await repaired();
      const loads = db.loads;
      expect(await staleRowReads()).toEqual([]);
      // memcached (and the near cache) serve again: one load per row at most, not one per read
      expect(db.loads - loads).toBeLessThanOrEqual(ROWS);
    });

    it('@CacheEvict({ allEntries }): 0 stale reads after the thaw', async () => {
      const db = rows.db;
      await cached((id) => rows.page(id));
      await partitioned(() => rows.updatePages());
      const version = (id: string) => db.version(`page:${id}`);
      expect(await staleRows((id) => rows.page(id), version)).toEqual([]);
      await repaired();
      expect(await staleRows((id) => rows.page(id), version)).toEqual([]);
    });

    it('@CachePut: 0 stale reads after the thaw', async () => {
      await cached((id) => rows.get(id));
      await partitioned(() => Promise.all(ids.map((id) => rows.put(id))));
      expect(await staleRowReads()).toEqual([]);
      await repaired();
      expect(await staleRowReads()).toEqual([]);
    });
  });

  it('two processes on a bus: the writer exits during the partition, the reader still reads 0 stale', async () => {
    client = new MemcachedClient({
      servers: daemon.address,
      timeout: TIMEOUT,
      breakerCooldown: 100,
      bus: { transport: 'nats', url: nats.url, heartbeat: 200, keys: BUS_KEYS },
      logger: false,
    });
    const keys = ids.map((id) => `row:${id}`);
    await Promise.all(keys.map((k) => client!.set(k, 'old', { namespace: 'shared' })));
    const writer = startWorker(new URL('./workers/partition-writer.ts', import.meta.url), {
      servers: daemon.address,
      bus: nats.url,
      keys,
    });
    await writer.waitFor('ready');
    await until(() => client!.stats().bus!.sources >= 1);
    await daemon.pause();
    try {
      writer.send('go');
      const done = await writer.result;
      expect(done).toEqual({ rejected: keys.length });
      await until(() => client!.stats().owed.keys === keys.length);
    } finally {
      daemon.resume();
    }
    const thawed = performance.now();
    const reads = await Promise.all(keys.map((k) => client!.get(k, { namespace: 'shared' })));
    expect(reads.filter((v) => v !== undefined)).toEqual([]);
    await until(() => client!.stats().owed.keys === 0, 5000, 1);
    process.stdout.write(
      `[partition] the writer exited; the reader paid its ${keys.length} owed deletes ${(performance.now() - thawed).toFixed(0)} ms after the thaw\n`,
    );
    await sleep(3000 - 2 * TIMEOUT);
    const later = await Promise.all(keys.map((k) => bystander().get(k, { namespace: 'shared' })));
    expect(later.filter((v) => v !== undefined)).toEqual([]);
  });

  it("deadNodePolicy 'rehash': what was invalidated on the stand-in node is invalidated on the owner when it returns", async () => {
    const second = await MemcachedDaemon.start();
    try {
      client = new MemcachedClient({
        servers: [daemon.address, second.address],
        deadNodePolicy: 'rehash',
        breakerThreshold: 1,
        breakerCooldown: 100,
        timeout: TIMEOUT,
        logger: false,
      });
      const keys = Array.from({ length: 200 }, (_, i) => `r:${i}`).filter((k) => client!.nodeOf(k) === daemon.address);
      expect(keys.length).toBeGreaterThan(20);
      await Promise.all(keys.map((k) => client!.set(k, 'old')));
      await partitioned(async () => {
        await expect(client!.get(keys[0])).rejects.toThrow();
        expect(client!.nodeStatus()[0].state).toBe('down');
        // the owner is down: these go to the other node, which takes them
        await Promise.all(keys.slice(0, 10).map((k) => client!.delete(k)));
        await Promise.all(keys.slice(10, 20).map((k) => client!.set(k, 'new')));
        // the stand-in serves them while the owner is away
        expect(await client!.get(keys[10])).toBe('new');
        expect(client!.stats().owed.onReturn.keys).toBe(20);
      });
      await until(() => client!.nodeStatus()[0].state === 'up');
      expect(await Promise.all(keys.slice(0, 20).map((k) => client!.get(k)))).toStrictEqual(
        Array.from({ length: 20 }, () => undefined),
      );
      await until(() => client!.stats().owed.onReturn.keys === 0);
      const fresh = bystander();
      expect((await Promise.all(keys.slice(0, 20).map((k) => fresh.get(k)))).filter(Boolean)).toEqual([]);
      // what was not invalidated meanwhile is still served by its owner
      expect(await client.get(keys[20])).toBe('old');
    } finally {
      await second.kill();
    }
  });

  it('a debt taken while the bus was away is told to the others once it is back', async () => {
    const busLink = await new FaultProxy(nats.port).start();
    const channel = 'retold';
    try {
      const writer = new MemcachedClient({
        servers: daemon.address,
        timeout: TIMEOUT,
        breakerCooldown: 100,
        bus: { transport: 'nats', url: `nats://127.0.0.1:${busLink.port}`, heartbeat: 200, keys: BUS_KEYS, channel },
        logger: false,
      });
      others.push(writer);
      client = new MemcachedClient({
        servers: daemon.address,
        timeout: TIMEOUT,
        bus: { transport: 'nats', url: nats.url, heartbeat: 200, keys: BUS_KEYS, channel },
        logger: false,
      });
      await until(() => writer.stats().bus!.healthy && client!.stats().bus!.healthy);
      await writer.set('retold', 'old');
      // the writer's broker link is gone (its client reconnecting), so the owed message goes nowhere
      busLink.refusing = true;
      busLink.cutAll();
      await until(() => !writer.stats().bus!.connected);
      await daemon.pause();
      const failures = writer.stats().bus!.publishFailures;
      await expect(writer.delete('retold')).rejects.toThrow();
      expect(writer.stats().bus!.publishFailures).toBe(failures + 1);
      await sleep(300);
      expect(client.stats().owed.keys).toBe(0);
      // memcached stays frozen until the bus is back: only the message can tell the reader
      busLink.refusing = false;
      await until(() => client!.stats().owed.keys === 1);
      daemon.resume();
      expect(await client.get('retold')).toBeUndefined();
      await until(() => client!.stats().owed.keys === 0);
      expect(await bystander().get('retold')).toBeUndefined();
    } finally {
      busLink.refusing = false;
      daemon.resume();
      await busLink.stop();
    }
  });

  it('without bus.keys, an owed message is read as a plain change: nobody can make other processes hold debts', async () => {
    const proxy = await new FaultProxy(daemon.port).start();
    try {
      const bus = { transport: 'nats' as const, url: nats.url, heartbeat: 200, channel: 'unsigned-owed' };
      const writer = new MemcachedClient({ servers: proxy.address, timeout: TIMEOUT, bus, logger: false });
      client = new MemcachedClient({ servers: daemon.address, timeout: TIMEOUT, bus, logger: false });
      others.push(writer);
      await until(() => writer.stats().bus!.healthy && client!.stats().bus!.healthy);
      await until(() => client!.stats().bus!.sources >= 1);
      proxy.silent = true;
      await expect(writer.delete('k')).rejects.toThrow();
      expect(writer.stats().owed.keys).toBe(1);
      const received = client.stats().bus!.received;
      await until(() => client!.stats().bus!.received > received);
      expect(client.stats().owed).toMatchObject({ keys: 0, namespaces: 0 });
    } finally {
      proxy.silent = false;
      await proxy.stop();
    }
  });

  it('without a bus, the invalidationSpool file keeps what a dead process owed, for the next one to pay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nmc-spool-'));
    const spool = join(dir, 'owed.jsonl');
    try {
      const options = {
        servers: daemon.address,
        timeout: TIMEOUT,
        breakerCooldown: 100,
        invalidationSpool: spool,
        logger: false as const,
      };
      const dying = new MemcachedClient(options);
      await dying.set('spooled', 'old', { namespace: 'sp' });
      await dying.set('plain-spooled', 'old');
      await partitioned(async () => {
        await expect(dying.delete('spooled', { namespace: 'sp' })).rejects.toThrow();
        await expect(dying.delete('plain-spooled')).rejects.toThrow();
        await expect(dying.deleteNamespace('sp-all')).rejects.toThrow();
        // the process dies with its debts (close stops it from paying them)
        dying.close();
      });
      expect(readFileSync(spool, 'utf8').trim().split('\n')).toHaveLength(3);
      expect(await bystander().get('spooled', { namespace: 'sp' })).toBe('old');
      client = new MemcachedClient(options);
      expect(await client.get('spooled', { namespace: 'sp' })).toBeUndefined();
      await until(() => client!.stats().owed.keys + client!.stats().owed.namespaces === 0);
      expect(await bystander().get('spooled', { namespace: 'sp' })).toBeUndefined();
      expect(await bystander().get('plain-spooled')).toBeUndefined();
      expect(readFileSync(spool, 'utf8')).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
