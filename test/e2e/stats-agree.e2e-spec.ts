import { Controller, Get, Injectable, type INestApplication, Param } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Registry } from 'prom-client';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cacheable, MemcachedCache, MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedPrometheusModule } from '../../lib/prometheus/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { MAX_NAMESPACES } from '../../lib/stats/cache-stats.js';
import { startNats, type TestServer } from '../support/servers.js';

// Every read is counted once, in one place, whichever path served it: the client's counters, the
// facade's per-namespace counters and Prometheus (read from the same counters when scraped) agree.

@Injectable()
class ProfilesService {
  loads = 0;

  @Cacheable({ namespace: 'profiles', key: (id: string) => id })
  async find(id: string) {
    this.loads++;
    return { id };
  }

  @Cacheable({ namespace: 'failing', key: (id: string) => id })
  async failing(_id: string): Promise<string> {
    throw new Error('source down');
  }

  /** Never called: its namespace is named in code all the same, so counted by itself from the start. */
  @Cacheable({ namespace: 'archived', key: (id: string) => id })
  async archived(id: string) {
    return { id };
  }
}

@Injectable()
class NearService {
  loads = 0;

  @Cacheable({ namespace: 'near', key: (id: string) => id, nearCache: true })
  async find(id: string) {
    this.loads++;
    return { id };
  }
}

@Controller('items')
class ItemsController {
  @Get(':id')
  @Cacheable({ namespace: 'items' })
  get(@Param('id') id: string) {
    return { id };
  }
}

/** The value of one sample in Prometheus's text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    const parts = inside.split(',');
    if (wanted.every((w) => parts.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

interface Counts {
  clientHits: number;
  clientMisses: number;
  nsHits: number;
  nsMisses: number;
  nsLatencyCount: number;
  promHits: number;
  promMisses: number;
  promClientHits: number;
  promClientMisses: number;
  promDurationCount: number;
}

describe('one counter set for every read path', () => {
  let daemon: MemcachedDaemon;
  let nats: TestServer;
  let app: INestApplication;
  let client: MemcachedClient;
  let cache: MemcachedCache;
  const registry = new Registry();

  beforeAll(async () => {
    [daemon, nats] = await Promise.all([MemcachedDaemon.start(), startNats()]);
    const moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          isGlobal: true,
          logger: false,
          servers: daemon.address,
          nearCache: { ttl: 60, namespaces: ['near'] },
          bus: { url: nats.url, heartbeat: 200 },
        }),
        MemcachedPrometheusModule.forRoot({ registry }),
      ],
      controllers: [ItemsController],
      providers: [ProfilesService, NearService],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    client = app.get(MemcachedClient);
    cache = app.get(MemcachedCache);
  });
  afterAll(async () => {
    await app?.close();
    await Promise.all([daemon?.stop(), nats?.stop()]);
  });

  async function counts(namespace: string): Promise<Counts> {
    const text = await registry.metrics();
    const ns = cache.stats()[namespace];
    const promHits =
      sample(text, 'memcached_cache_requests_total', { namespace, outcome: 'hit' }) +
      sample(text, 'memcached_cache_requests_total', { namespace, outcome: 'stale' });
    const promDurationCount = ['hit', 'stale', 'miss']
      .map((outcome) => sample(text, 'memcached_cache_request_duration_seconds_count', { namespace, outcome }))
      .reduce((a, b) => a + b, 0);
    return {
      clientHits: client.stats().hits,
      clientMisses: client.stats().misses,
      nsHits: ns?.hits ?? 0,
      nsMisses: ns?.misses ?? 0,
      nsLatencyCount: ns?.latency.count ?? 0,
      promHits,
      promMisses: sample(text, 'memcached_cache_requests_total', { namespace, outcome: 'miss' }),
      promClientHits: sample(text, 'memcached_client_events_total', { event: 'hits' }),
      promClientMisses: sample(text, 'memcached_client_events_total', { event: 'misses' }),
      promDurationCount,
    };
  }

  /** Runs a path that makes `hits` hits and `misses` misses in `namespace`, and checks every view of it. */
  async function expectCounted(namespace: string, hits: number, misses: number, path: () => Promise<void>) {
    const before = await counts(namespace);
    await path();
    await sleep(20);
    const after = await counts(namespace);
    const delta = Object.fromEntries(
      Object.keys(after).map((k) => [k, after[k as keyof Counts] - before[k as keyof Counts]]),
    );
    expect(delta).toStrictEqual({
      clientHits: hits,
      clientMisses: misses,
      nsHits: hits,
      nsMisses: misses,
      nsLatencyCount: hits + misses,
      promHits: hits,
      promMisses: misses,
      promClientHits: hits,
      promClientMisses: misses,
      promDurationCount: hits + misses,
    });
  }

  it('get, a key without a namespace (counted under "(none)")', async () => {
    await client.set('plain-1', 'v');
    await expectCounted('(none)', 2, 1, async () => {
      await client.get('plain-1');
      await client.get('plain-1');
      await client.get('plain-missing');
    });
  });

  it('get with a namespace', async () => {
    await client.set('k', 'v', { namespace: 'spaced' });
    await expectCounted('spaced', 1, 1, async () => {
      expect(await client.get('k', { namespace: 'spaced' })).toBe('v');
      expect(await client.get('nope', { namespace: 'spaced' })).toBeUndefined();
    });
  });

  it('getMulti: each key is one read', async () => {
    await client.set('a', 1, { namespace: 'multi' });
    await client.set('b', 2, { namespace: 'multi' });
    await expectCounted('multi', 2, 1, async () => {
      const found = await client.getMulti(['a', 'b', 'c'], { namespace: 'multi' });
      expect([...found.keys()]).toStrictEqual(['a', 'b']);
    });
  });

  it('getOrSet', async () => {
    let loads = 0;
    const load = async () => ++loads;
    await expectCounted('wrapped', 3, 1, async () => {
      for (let i = 0; i < 4; i++) {
        await client.getOrSet('w', load, { namespace: 'wrapped' });
        await sleep(10);
      }
    });
    expect(loads).toBe(1);
  });

  it('a load that throws is a miss, on getOrSet and on a decorated method', async () => {
    const service = app.get(ProfilesService);
    await expectCounted('failing', 0, 2, async () => {
      await expect(
        client.getOrSet('x', () => Promise.reject(new Error('source down')), { namespace: 'failing' }),
      ).rejects.toThrow('source down');
      await expect(service.failing('x')).rejects.toThrow('source down');
    });
  });

  it('a @Cacheable service method', async () => {
    const service = app.get(ProfilesService);
    await expectCounted('profiles', 2, 1, async () => {
      for (let i = 0; i < 3; i++) {
        await service.find('7');
        await sleep(10);
      }
    });
    expect(service.loads).toBe(1);
  });

  it('a @Cacheable controller route', async () => {
    await expectCounted('items', 2, 1, async () => {
      for (let i = 0; i < 3; i++) {
        await request(app.getHttpServer()).get('/items/3');
        await sleep(10);
      }
    });
  });

  it('near-cache hits', async () => {
    const service = app.get(NearService);
    while (client.stats().bus?.healthy !== true) await sleep(10);
    const nearHits = client.stats().nearCache!.hits;
    // a miss, a memcached hit (kept in the near cache), then near hits
    await expectCounted('near', 3, 1, async () => {
      for (let i = 0; i < 4; i++) {
        await service.find('7');
        await sleep(10);
      }
    });
    expect(service.loads).toBe(1);
    expect(client.stats().nearCache!.hits - nearHits).toBe(2);
  });

  it("latency buckets come in order, smallest first, and events' durations are rounded to the microsecond", async () => {
    const durations: number[] = [];
    const off = cache.events.on('hit', (e) => durations.push(e.durationMs));
    await client.get('plain-1');
    off();
    const latency = cache.stats()['(none)'].latency;
    const bounds = latency.buckets.map((b) => b.le);
    expect(bounds).toStrictEqual([...bounds].sort((a, b) => a - b));
    expect(latency.buckets.map((b) => b.count)).toStrictEqual(
      [...latency.buckets.map((b) => b.count)].sort((a, b) => a - b),
    );
    expect(JSON.stringify(latency).indexOf('"le":0.1')).toBeLessThan(JSON.stringify(latency).indexOf('"le":1,'));
    expect(durations).toHaveLength(1);
    expect(Math.round(durations[0] * 1000) / 1000).toBe(durations[0]);
  });
  it('10x the namespace bound: stats() and the scrape stay bounded, per-user namespaces are one label, totals exact', async () => {
    // other tests' namespaces fold into (other) as well: the sum over all of them is what stays exact
    const tenantMisses = () => Object.values(cache.stats()).reduce((total, s) => total + s.misses, 0);
    // a namespace a decorator names, first read through getOrSet: never folded, however many follow
    await client.getOrSet('a-1', () => 1, { namespace: 'archived' });
    const missesBefore = tenantMisses();
    const before = await counts('tenant');
    const scrapeBefore = (await registry.metrics()).length;
    const users = 10 * MAX_NAMESPACES;
    for (let i = 0; i < users; i++) await client.getOrSet('profile', () => ({ i }), { namespace: `tenant-${i}` });
    const after = await counts('tenant');
    const text = await registry.metrics();
    // one label for every tenant: the scrape does not grow with the users
    expect(text.length - scrapeBefore).toBeLessThan(10_000);
    expect(after.promMisses - before.promMisses).toBe(users);
    expect(after.clientMisses - before.clientMisses).toBe(users);
    expect(text).not.toContain('tenant-');
    const stats = cache.stats();
    expect(Object.keys(stats).length).toBeLessThanOrEqual(MAX_NAMESPACES + 10);
    expect(JSON.stringify(stats).length).toBeLessThan(1024 * 1024);
    expect(tenantMisses() - missesBefore).toBe(users);
    expect(stats.archived.misses).toBe(1);
    expect(sample(text, 'memcached_cache_requests_total', { namespace: 'archived', outcome: 'miss' })).toBe(1);
  });
});
