import { Controller, Get, type INestApplication, Injectable, Module, Param } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cacheable, MemcachedClient } from '../../lib/index.js';
import { type MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startMemcachedApp } from '../support/nest-app.js';
import { startNats, type TestServer } from '../support/servers.js';

const ITEMS = 100;
const ids = Array.from({ length: ITEMS }, (_, i) => String(i));

@Injectable()
class Source {
  loads = { route: 0, service: 0, getOrSet: 0 };
}

@Injectable()
class ItemsService {
  constructor(private readonly source: Source) {}

  @Cacheable({ namespace: 'svc-items', key: (id: string) => id, ttl: 300 })
  async find(id: string): Promise<{ id: string }> {
    this.source.loads.service++;
    return { id };
  }
}

@Controller('items')
class ItemsController {
  constructor(private readonly source: Source) {}

  @Get(':id')
  @Cacheable({ namespace: 'route-items', ttl: 300 })
  find(@Param('id') id: string): { id: string } {
    this.source.loads.route++;
    return { id };
  }
}

@Module({ providers: [Source, ItemsService], controllers: [ItemsController] })
class ItemsModule {}

describe('the near cache while memcached is down (its bus healthy)', () => {
  let nats: TestServer;
  let app: INestApplication;
  let daemon: MemcachedDaemon;
  let source: Source;
  let client: MemcachedClient;

  const readAll = async () => {
    const server = app.getHttpServer();
    const items = app.get(ItemsService);
    const headers: string[] = [];
    for (const id of ids) {
      headers.push((await request(server).get(`/items/${id}`).expect(200)).headers['x-cache']);
      await items.find(id);
      await client.getOrSet(`g:${id}`, async () => (source.loads.getOrSet++, { id }), { namespace: 'g', ttl: 300 });
    }
    return headers;
  };

  beforeAll(async () => {
    nats = await startNats();
    ({ app, daemon } = await startMemcachedApp(
      { imports: [ItemsModule] },
      {
        timeout: 150,
        breakerCooldown: 100,
        nearCache: { maxBytes: 8 << 20, ttl: 30, namespaces: '*' },
        bus: { transport: 'nats', url: nats.url, heartbeat: 200 },
      },
    ));
    source = app.get(Source);
    client = app.get(MemcachedClient);
    const deadline = Date.now() + 5000;
    while (!client.stats().bus?.healthy && Date.now() < deadline) await sleep(10);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
    await nats?.stop();
  });

  it('serves warm entries on a route, a service method and getOrSet with 0 loads while memcached is killed', async () => {
    // a miss and fill, then a memcached hit the near cache keeps
    await readAll();
    await sleep(50);
    await readAll();
    const before = { ...source.loads };
    await daemon.kill();
    // the client sees it: the breaker opens
    for (let i = 0; i < 5 && client.nodeStatus()[0].state !== 'down'; i++)
      await client.get('probe').catch(() => undefined);
    expect(client.nodeStatus()[0].state).toBe('down');
    const hits = client.stats().nearCache!.hits;
    for (let round = 0; round < 3; round++) {
      const headers = await readAll();
      expect(headers.filter((h) => h !== 'HIT')).toStrictEqual([]);
    }
    expect(source.loads).toStrictEqual(before);
    expect(client.stats().nearCache!.hits - hits).toBe(3 * 3 * ITEMS);
  });
});
