import { Controller, Get, Header, type INestApplication, Query } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LRUCache } from 'lru-cache';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cacheable, MemcachedCache, MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startNats, type TestServer } from '../support/servers.js';

// Every structure a client keeps, found by walking its object graph, must stop growing once the
// work passes its bound: per namespace, per key, per HTTP variant. The workload runs twice, each
// time past every documented per-item bound (10,000 namespaces, 10,000 keys), on new names each
// time; a structure that grows with the names grows again by thousands in the second run.
const PER_RUN = 12_000;
/** Growth tolerated in the second run: items still in flight, a handful of timers. */
const SLACK = 200;

@Controller('bounded')
class BoundedController {
  @Get()
  @Header('Vary', 'Accept-Language')
  @Cacheable({ namespace: 'bounded', principal: (req: { headers: Record<string, string> }) => req.headers['x-user'] })
  get(@Query('page') page: string) {
    return { page };
  }
}

/** Where a collection was found (the property path from the root) and its size. */
type Sizes = Map<string, number>;

/**
 * Collections reachable from `roots`, by path: Maps, Sets and arrays with their sizes; LRU caches
 * (bounded by construction when given a `max` or `maxSize`) apart, with those given neither.
 */
function collections(roots: Record<string, unknown>): { sizes: Sizes; caches: Sizes; unboundedCaches: string[] } {
  const sizes: Sizes = new Map();
  const caches: Sizes = new Map();
  const unboundedCaches: string[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown, path: string, depth: number) => {
    if (value === null || typeof value !== 'object' || seen.has(value) || depth > 12) return;
    seen.add(value);
    const name = value.constructor?.name ?? '';
    // node's own objects (sockets, timers, streams) and bytes are not the library's state
    if (
      Buffer.isBuffer(value) ||
      ArrayBuffer.isView(value) ||
      /^(Socket|TLSSocket|Timeout|Immediate|Server|Promise)$/.test(name)
    )
      return;
    if (value instanceof LRUCache) {
      const cache = value as unknown as { size: number; max: number; maxSize: number };
      caches.set(path, cache.size);
      if (!(cache.max > 0) && !(cache.maxSize > 0)) unboundedCaches.push(path);
      return;
    }
    if (value instanceof Map || value instanceof Set) {
      sizes.set(path, value.size);
      // the first few entries' values, for collections held inside them
      let i = 0;
      for (const entry of value.values()) if (i++ < 20) visit(entry, `${path}[]`, depth + 1);
      return;
    }
    if (Array.isArray(value)) {
      sizes.set(path, value.length);
      for (let i = 0; i < Math.min(value.length, 20); i++) visit(value[i], `${path}[]`, depth + 1);
      return;
    }
    for (const key of Object.keys(value)) {
      let child: unknown;
      try {
        child = (value as Record<string, unknown>)[key];
      } catch {
        continue;
      }
      visit(child, `${path}.${key}`, depth + 1);
    }
  };
  for (const [name, root] of Object.entries(roots)) visit(root, name, 0);
  return { sizes, caches, unboundedCaches };
}

describe('state that grows with the work stays within its bounds', () => {
  let daemon: MemcachedDaemon;
  let nats: TestServer;
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    [daemon, nats] = await Promise.all([MemcachedDaemon.start({ memoryMb: 256 }), startNats()]);
    const moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          isGlobal: true,
          logger: false,
          servers: daemon.address,
          // small enough that its entries (and what is indexed by them) reach their bound in one run
          nearCache: { ttl: 30, maxBytes: 256 * 1024 },
          bus: { url: nats.url, heartbeat: 200 },
        }),
      ],
      controllers: [BoundedController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    base = await app.getUrl();
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await Promise.all([daemon?.stop(), nats?.stop()]);
  });

  async function work(from: number, to: number): Promise<void> {
    const client = app.get(MemcachedClient);
    const cache = app.get(MemcachedCache);
    let next = from;
    const worker = async () => {
      while (next < to) {
        const i = next++;
        const namespace = `user-${i}`;
        await client.getOrSet('profile', () => ({ i }), { namespace });
        await client.getOrSet('profile', () => ({ i }), { namespace });
        await client.set(`key-${i}`, { i });
        await client.get(`key-${i}`);
        await client.delete(`key-${i}`);
        await cache.evictAll(namespace);
        if (i % 3 === 0) {
          const response = await fetch(`${base}/bounded?page=${i}`, {
            headers: { 'x-user': `u${i}`, authorization: `Bearer ${i}`, 'accept-language': `l${i}` },
          });
          expect(response.status).toBe(200);
          await response.arrayBuffer();
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  }

  it('past every bound, a second run of new namespaces, keys and variants grows nothing', async () => {
    const roots = () => ({ client: app.get(MemcachedClient), cache: app.get(MemcachedCache) });
    await work(0, PER_RUN);
    const first = collections(roots());
    await work(PER_RUN, 2 * PER_RUN);
    const second = collections(roots());
    // the walk finds the per-namespace table and the generations cache, so it can see growth
    expect([...second.sizes.keys()].some((path) => path.includes('table.counters'))).toBe(true);
    expect([...second.caches.keys()].some((path) => path.includes('generations'))).toBe(true);
    // the generations a read checks stop at their bound, below the namespaces met
    const generations = [...second.caches].find(([path]) => path.endsWith('namespaces.generations'))!;
    expect(generations[1]).toBeLessThan(PER_RUN);
    expect(second.unboundedCaches).toStrictEqual([]);
    const grew = [...second.sizes]
      .filter(([path, size]) => size > (first.sizes.get(path) ?? 0) + SLACK)
      .map(([path, size]) => `${path}: ${first.sizes.get(path) ?? 0} -> ${size}`);
    expect(grew).toStrictEqual([]);
  }, 180_000);
});
