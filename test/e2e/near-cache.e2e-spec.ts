import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { MemcachedClient } from '../../lib/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { freePort, MemcachedDaemon } from '../support/memcached-daemon.js';
import { startNats, startRabbitMq, startRedis, type TestServer } from '../support/servers.js';

// The near cache and its bus against real memcached and real brokers this file starts on free
// ports: NATS, Redis, RabbitMQ. Each client stands for one process: its own bus connection
// (through its own proxy, so one process's link can be cut or silenced) and source id.
let daemon: MemcachedDaemon;
let nats: TestServer;
let redis: TestServer;
let rabbitmq: TestServer;
const BROKERS = [
  { transport: 'nats' as const, broker: () => nats, url: (port: number) => `nats://127.0.0.1:${port}` },
  { transport: 'redis' as const, broker: () => redis, url: (port: number) => `redis://127.0.0.1:${port}` },
  {
    transport: 'rabbitmq' as const,
    broker: () => rabbitmq,
    url: (port: number) => `amqp://guest:guest@127.0.0.1:${port}`,
  },
];
const HEARTBEAT = 200;

beforeAll(async () => {
  // together: RabbitMQ alone takes seconds to boot; each assigned as it starts, so that afterAll
  // stops what did start when another failed
  await Promise.all([
    MemcachedDaemon.start().then((started) => (daemon = started)),
    startNats().then((started) => (nats = started)),
    startRedis().then((started) => (redis = started)),
    startRabbitMq().then((started) => (rabbitmq = started)),
  ]);
}, 120_000);
afterAll(async () => {
  await Promise.all([daemon?.stop(), nats?.stop(), redis?.stop(), rabbitmq?.stop()]);
});

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - started;
}

const near = (client: MemcachedClient) => client.stats().nearCache!;
const bus = (client: MemcachedClient) => client.stats().bus!;

describe.each(BROKERS)('near cache over $transport', ({ transport, broker, url }) => {
  const channel = `nmc-test-${randomUUID()}`;
  const proxies: FaultProxy[] = [];
  const clients: MemcachedClient[] = [];

  async function spawn(): Promise<{ client: MemcachedClient; proxy: FaultProxy }> {
    const proxy = await new FaultProxy(broker().port).start();
    const client = new MemcachedClient({
      servers: daemon.address,
      logger: false,
      nearCache: { ttl: 60 },
      bus: { transport, url: url(proxy.port), channel, heartbeat: HEARTBEAT },
    });
    proxies.push(proxy);
    clients.push(client);
    await until(() => bus(client).healthy === true);
    return { client, proxy };
  }

  afterAll(async () => {
    for (const client of clients) client.close();
    await new Promise((r) => setTimeout(r, 50));
    for (const proxy of proxies) await proxy.stop();
  });

  it('every process receives every invalidation: 3 processes, 40 keys held in two near caches, evicted by the third', async () => {
    const [a, b, c] = [await spawn(), await spawn(), await spawn()];
    const ns = `n${randomUUID().slice(0, 8)}`;
    let version = 0;
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const read = (client: MemcachedClient, key: string) =>
      client.getOrSet(key, () => ({ key, version }), { namespace: ns });
    for (const key of keys) await read(a.client, key);
    for (const p of [b, c]) for (const key of keys) await read(p.client, key); // memcached hits, kept in L1
    const held = [near(b.client).hits, near(c.client).hits];
    for (const p of [b, c])
      for (const key of keys) expect(await read(p.client, key)).toStrictEqual({ key, version: 0 });
    // served from memory: the near caches counted a hit each
    expect(near(b.client).hits - held[0]).toBe(keys.length);
    expect(near(c.client).hits - held[1]).toBe(keys.length);

    version = 1;
    for (const key of keys) await a.client.delete(key, { namespace: ns });
    const waited = await until(async () => {
      for (const p of [b, c]) for (const key of keys) if ((await read(p.client, key)).version !== 1) return false;
      return true;
    }, 2000);
    expect(near(b.client).invalidations).toBeGreaterThanOrEqual(keys.length);
    expect(near(c.client).invalidations).toBeGreaterThanOrEqual(keys.length);
    expect(bus(b.client).gaps + bus(c.client).gaps).toBe(0);
    console.log(
      `[near ${transport}] all 80 near entries fresh ${waited.toFixed(1)} ms after the last eviction returned; heartbeat lag ${bus(b.client).lagMs} ms`,
    );
  });

  it('a namespace eviction (allEntries) and an overwrite reach the other processes', async () => {
    const [a, b] = [await spawn(), await spawn()];
    const ns = `n${randomUUID().slice(0, 8)}`;
    let version = 0;
    const read = (client: MemcachedClient, key: string) => client.getOrSet(key, () => version, { namespace: ns });
    await read(b.client, 'x');
    await read(b.client, 'x');
    version = 1;
    await a.client.deleteNamespace(ns);
    await until(async () => (await read(b.client, 'x')) === 1, 2000);
    await a.client.set('x', 7, { namespace: ns });
    await until(async () => (await read(b.client, 'x')) === 7, 2000);
  });

  it('a silent link is noticed within the heartbeat: the near cache is dropped and bypassed, then resumes', async () => {
    const [a, b] = [await spawn(), await spawn()];
    const ns = `n${randomUUID().slice(0, 8)}`;
    let version = 0;
    const read = (client: MemcachedClient) => client.getOrSet('x', () => version, { namespace: ns });
    await read(b.client);
    await read(b.client);
    b.proxy.silent = true;
    version = 1;
    await a.client.delete('x', { namespace: ns }); // b cannot hear this
    const noticed = await until(() => bus(b.client).healthy === false, 3 * HEARTBEAT);
    expect(near(b.client).active).toBe(false);
    expect(await read(b.client)).toBe(1); // from memcached
    b.proxy.silent = false;
    await until(() => near(b.client).active, 5000);
    const hits = near(b.client).hits;
    // the messages lost while silent show as a gap when the other process is heard again, which
    // flushes once more (a read that began before it is not kept): hits resume on a later read
    await until(async () => {
      expect(await read(b.client)).toBe(1);
      return near(b.client).hits > hits;
    }, 2000);
    console.log(
      `[near ${transport}] silent link noticed ${noticed.toFixed(0)} ms after the eviction (heartbeat ${HEARTBEAT} ms)`,
    );
  });

  it('a cut connection drops the near cache; reads go to memcached until the bus is back', async () => {
    const [a, b] = [await spawn(), await spawn()];
    const ns = `n${randomUUID().slice(0, 8)}`;
    let version = 0;
    const read = (client: MemcachedClient) => client.getOrSet('x', () => version, { namespace: ns });
    await read(b.client);
    await read(b.client);
    b.proxy.cutAll();
    version = 1;
    await a.client.delete('x', { namespace: ns });
    await until(() => near(b.client).active === false || near(b.client).entries === 0, 3 * HEARTBEAT);
    expect(await read(b.client)).toBe(1);
    await until(() => near(b.client).active, 10_000);
  });
});

describe('near cache with its broker away', () => {
  it('never breaks a call: reads go to memcached and the near cache stays off', async () => {
    const dead = await freePort();
    const client = new MemcachedClient({
      servers: daemon.address,
      logger: false,
      nearCache: {},
      bus: { transport: 'nats', url: `nats://127.0.0.1:${dead}`, heartbeat: 100 },
    });
    try {
      let loads = 0;
      const ns = `n${randomUUID().slice(0, 8)}`;
      for (let i = 0; i < 3; i++) expect(await client.getOrSet('k', () => ++loads, { namespace: ns })).toBe(1);
      expect(loads).toBe(1);
      expect(near(client).active).toBe(false);
      expect(near(client).hits).toBe(0);
    } finally {
      client.close();
    }
  });
});

describe('near cache observability', () => {
  it('Prometheus shows the near cache and its bus; stats() report them', async () => {
    const { Registry } = await import('prom-client');
    const { registerMemcachedMetrics } = await import('../../lib/prometheus/index.js');
    const client = new MemcachedClient({
      servers: daemon.address,
      logger: false,
      nearCache: {},
      bus: { transport: 'nats', url: nats.url, channel: `nmc-test-${randomUUID()}`, heartbeat: HEARTBEAT },
    });
    const registry = new Registry();
    const stop = registerMemcachedMetrics(client, { registry });
    try {
      await until(() => bus(client).healthy === true);
      const ns = `n${randomUUID().slice(0, 8)}`;
      for (let i = 0; i < 3; i++) await client.getOrSet('k', () => 1, { namespace: ns });
      const text = await registry.metrics();
      expect(text).toMatch(/memcached_near_cache_events_total\{event="hits"\} 1\b/);
      expect(text).toMatch(/memcached_near_cache\{measure="bus_healthy"\} 1\b/);
      expect(text).toMatch(/memcached_near_cache\{measure="bus_quiet_sources"\} 0\b/);
      expect(text).toMatch(/memcached_near_cache\{measure="entries"\} 1\b/);
      expect(text).toMatch(/memcached_near_cache\{measure="active"\} 1\b/);
      expect(text).toMatch(/memcached_near_cache_events_total\{event="followed_evictions"\} 0\b/);
      expect(near(client)).toMatchObject({ hits: 1, entries: 1, active: true });
    } finally {
      stop();
      client.close();
    }
  });
});

const FOLLOW_KEY = { id: 1, key: Buffer.alloc(32, 0x42) };

describe('cross-service invalidation (bus.follow) over NATS', () => {
  const clients: MemcachedClient[] = [];
  afterAll(() => clients.forEach((c) => c.close()));
  const service = (
    keyPrefix: string,
    channel: string,
    follow: Array<{ keyPrefix?: string; namespace: string; evict: string; allEntries?: boolean }> = [],
    nearCache = false,
  ) => {
    const client = new MemcachedClient({
      servers: daemon.address,
      logger: false,
      keyPrefix,
      ...(nearCache ? { nearCache: {} } : {}),
      // follow needs keys: only these services can make each other evict
      bus: { transport: 'nats', url: nats.url, channel, heartbeat: HEARTBEAT, follow, keys: [FOLLOW_KEY] },
    });
    clients.push(client);
    return client;
  };

  it("a service evicts what it derived from another service's data when that service changes it", async () => {
    const channel = `nmc-test-${randomUUID()}`;
    const users = service('users-svc:', channel);
    // orders caches user names (near cache on), and a per-country count derived from all users
    const orders = service(
      'orders-svc:',
      channel,
      [
        { keyPrefix: 'users-svc:', namespace: 'users', evict: 'user-names' },
        { keyPrefix: 'users-svc:', namespace: 'users', evict: 'user-counts', allEntries: true },
      ],
      true,
    );
    await until(() => bus(users).healthy === true && bus(orders).healthy === true);
    let name = 'Ann';
    let count = 1;
    const readName = () => orders.getOrSet('7', () => name, { namespace: 'user-names' });
    const readCount = () => orders.getOrSet('FR', () => count, { namespace: 'user-counts' });
    expect(await readName()).toBe('Ann');
    expect(await readCount()).toBe(1);
    expect(await readName()).toBe('Ann');
    name = 'Anna';
    count = 2;
    await users.delete('7', { namespace: 'users' }); // the users service evicts its own entry
    await until(async () => (await readName()) === 'Anna' && (await readCount()) === 2, 2000);
    expect(bus(orders).followed).toStrictEqual({ evictions: 2, failures: 0 });
    // a namespace eviction at the source evicts the derived namespace whole
    name = 'Annie';
    await users.deleteNamespace('users');
    await until(async () => (await readName()) === 'Annie', 2000);
  });

  it('two services that follow each other do not loop', async () => {
    const channel = `nmc-test-${randomUUID()}`;
    const a = service('a-svc:', channel, [{ keyPrefix: 'b-svc:', namespace: 'things', evict: 'things' }]);
    const b = service('b-svc:', channel, [{ keyPrefix: 'a-svc:', namespace: 'things', evict: 'things' }]);
    await until(() => bus(a).healthy === true && bus(b).healthy === true);
    await a.delete('1', { namespace: 'things' });
    await new Promise((r) => setTimeout(r, 300));
    expect(bus(b).followed.evictions).toBe(1);
    expect(bus(a).followed.evictions).toBe(0);
  });
});

describe('near cache on a controller route (HTTP entries), two processes over NATS', () => {
  it('serves the stored response from memory (X-Cache: HIT, same body and Vary), and another process evicting the path reaches it', async () => {
    const { Controller, Get, Header, Module, Param } = await import('@nestjs/common');
    const { Test } = await import('@nestjs/testing');
    const { default: request } = await import('supertest');
    const { Cacheable, MemcachedModule } = await import('../../lib/index.js');
    let version = 0;
    @Controller('docs')
    class DocsController {
      @Get(':id')
      @Cacheable({ namespace: 'docs' })
      @Header('Vary', 'Accept-Language')
      find(@Param('id') id: string) {
        return { id, version };
      }
    }
    const channel = `nmc-test-${randomUUID()}`;
    @Module({
      imports: [
        MemcachedModule.forRoot({
          servers: daemon.address,
          logger: false,
          nearCache: {},
          bus: { transport: 'nats', url: nats.url, channel, heartbeat: HEARTBEAT },
        }),
      ],
      controllers: [DocsController],
    })
    class AppModule {}
    const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({
      logger: false,
    });
    // the app's own ETag function: a near-cache entry's is computed once, however many hits it serves
    let etagCalls = 0;
    app
      .getHttpAdapter()
      .getInstance()
      .set('etag', (body: Buffer | string) => {
        etagCalls++;
        return `W/"${Buffer.from(body).toString('hex')}"`;
      });
    await app.init();
    const other = new MemcachedClient({
      servers: daemon.address,
      logger: false,
      bus: { transport: 'nats', url: nats.url, channel, heartbeat: HEARTBEAT },
    });
    try {
      const client = app.get(MemcachedClient);
      await until(() => bus(client).healthy === true && bus(other).healthy === true);
      const get = () => request(app.getHttpServer()).get('/docs/1').set('accept-language', 'fr');
      const miss = await get();
      expect(miss.headers['x-cache']).toBe('MISS');
      expect(miss.headers.etag).toBe(`W/"${Buffer.from('{"id":"1","version":0}').toString('hex')}"`);
      const fromMemcached = await get();
      const hitsBefore = near(client).hits;
      const fromMemory = await get();
      const fromMemoryAgain = await get();
      expect(near(client).hits).toBe(hitsBefore + 2);
      // the miss and the memcached hit each hash their body; the two near hits share one
      expect(etagCalls).toBe(3);
      for (const res of [fromMemcached, fromMemory, fromMemoryAgain]) {
        expect(res.headers['x-cache']).toBe('HIT');
        expect(res.headers.vary).toMatch(/accept-language/i);
        expect(res.headers['content-type']).toMatch(/application\/json/);
        expect(res.text).toBe('{"id":"1","version":0}');
        // the ETag Express computed for the response it stored
        expect(res.headers.etag).toBe(miss.headers.etag);
      }
      const revalidated = await get().set('if-none-match', miss.headers.etag);
      expect(revalidated.status).toBe(304);
      expect(revalidated.text).toBe('');
      version = 1;
      await other.delete('/docs/1', { namespace: 'docs' }); // the path's entry, every variant
      await until(async () => (await get()).text === '{"id":"1","version":1}', 2000);
      const changed = await get();
      expect(changed.headers.etag).not.toBe(miss.headers.etag);
      expect((await get().set('if-none-match', miss.headers.etag)).status).toBe(200);
    } finally {
      other.close();
      await app.close();
    }
  });

  it('keeps serving the route from the near cache while memcached is down', async () => {
    const { Controller, Get, Module, Param } = await import('@nestjs/common');
    const { Test } = await import('@nestjs/testing');
    const { default: request } = await import('supertest');
    const { Cacheable, MemcachedModule } = await import('../../lib/index.js');
    let loads = 0;
    @Controller('pages')
    class PagesController {
      @Get(':id')
      @Cacheable({ namespace: 'pages' })
      find(@Param('id') id: string) {
        loads++;
        return { id };
      }
    }
    const own = await MemcachedDaemon.start();
    @Module({
      imports: [
        MemcachedModule.forRoot({
          servers: own.address,
          logger: false,
          timeout: 100,
          breakerThreshold: 1,
          nearCache: { ttl: 60 },
          bus: { transport: 'nats', url: nats.url, channel: `nmc-test-${randomUUID()}`, heartbeat: HEARTBEAT },
        }),
      ],
      controllers: [PagesController],
    })
    class AppModule {}
    const app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({
      logger: false,
    });
    await app.init();
    try {
      const client = app.get(MemcachedClient);
      await until(() => bus(client).healthy === true);
      const get = (id: string) => request(app.getHttpServer()).get(`/pages/${id}`).expect(200);
      for (const id of ['1', '2', '3']) {
        await get(id);
        await get(id); // a memcached hit: now held in the near cache
      }
      expect(loads).toBe(3);
      await own.kill();
      await until(async () => {
        await client.get('probe', { namespace: 'pages' }).catch(() => undefined);
        return client.nodeStatus().every((node) => node.state === 'down');
      });
      for (let round = 0; round < 3; round++) {
        for (const id of ['1', '2', '3']) {
          const res = await get(id);
          expect(res.headers['x-cache']).toBe('HIT');
          expect(res.body).toStrictEqual({ id });
        }
      }
      expect(loads).toBe(3);
      // an entry the near cache does not hold goes to the handler
      expect((await get('4')).headers['x-cache']).toBe('MISS');
      expect(loads).toBe(4);
    } finally {
      await app.close();
      await own.kill();
    }
  });
});
