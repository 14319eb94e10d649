import { type DynamicModule, type INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedCache, MemcachedModule, type MemcachedModuleOptions } from '../../lib/index.js';
import { MemcachedPrometheusModule } from '../../lib/prometheus/index.js';
import { Registry } from 'prom-client';
import { startMemcachedApp } from '../support/nest-app.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { ItemsController, ItemsDb } from './src/items.fixtures.js';
import { UsersDb, UsersService } from './src/users.fixtures.js';

const TIMEOUT = 150;

@Module({ providers: [UsersDb, UsersService, ItemsDb], controllers: [ItemsController] })
class AppModule {}

describe('decorated methods when memcached dies mid-suite', () => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  let users: UsersService;
  const warnings: string[] = [];

  /** The app against the suite's memcached, with short deadlines, and `extra` modules beside it. */
  async function startApp(logger: MemcachedModuleOptions['logger'], extra: DynamicModule[] = []) {
    const moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          isGlobal: true,
          servers: daemon.address,
          timeout: TIMEOUT,
          breakerCooldown: 100,
          logger,
        }),
        ...extra,
        AppModule,
      ],
    }).compile();
    const started = moduleRef.createNestApplication({ logger: false });
    await started.init();
    return started;
  }

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    app = await startApp({ log() {}, error() {}, debug() {}, warn: (m: string) => warnings.push(m) });
    users = app.get(UsersService);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });

  async function exerciseEverything() {
    expect(await users.findById('1')).toMatchObject({ id: '1' });
    expect(await users.rename('2', 'Grace H.')).toStrictEqual({ id: '2', name: 'Grace H.' });
    expect(await users.findById('2')).toStrictEqual({ id: '2', name: 'Grace H.' });
    expect(await users.list(1, {})).toStrictEqual([...app.get(UsersDb).rows.values()]);
    expect(await users.save({ id: '3', name: 'Put' })).toStrictEqual({ id: '3', name: 'Put' });
    await users.importAll();
    expect(await users.falsy('zero')).toBe(0);
    expect(await users.falsy('null')).toBeNull();
    expect(await users.syncTotal(1, 2)).toBe(3);
    await expect(users.throws('x')).rejects.toThrow('no x');
    await expect(users.failingUpdate('1')).rejects.toThrow('constraint violated');
    const page = await request(app.getHttpServer()).get('/items/7').expect(200);
    expect(page.body).toStrictEqual({ id: '7', name: expect.any(String) });
    await request(app.getHttpServer()).put('/items/7').send({ name: 'renamed' }).expect(200);
    expect((await request(app.getHttpServer()).get('/items/7').expect(200)).body.name).toBe('renamed');
    await request(app.getHttpServer()).get('/items/404').expect(404);
  }

  it('works with memcached up', async () => {
    await exerciseEverything();
  });

  it('returns correct results with no error reaching the caller once memcached is killed', async () => {
    await daemon.kill();
    const started = performance.now();
    await exerciseEverything();
    expect(performance.now() - started).toBeLessThan(30 * TIMEOUT);
    const stats = app.get(MemcachedCache).stats();
    expect(Object.values(stats).reduce((sum, s) => sum + s.errors, 0)).toBeGreaterThan(0);
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThan(30);
  });

  it('serves a cached route straight from the handler while the node is down: MISS, BYPASS with credentials, counted', async () => {
    const db = app.get(ItemsDb);
    const engine = app.get(MemcachedCache);
    const before = {
      calls: db.count('findOne'),
      misses: engine.stats().items?.misses ?? 0,
      bypasses: engine.stats().items?.bypasses ?? 0,
    };
    const server = app.getHttpServer();
    for (let i = 0; i < 3; i++) {
      const res = await request(server).get('/items/8').expect(200);
      expect(res.body).toStrictEqual({ id: '8', name: 'eight' });
      expect(res.headers['x-cache']).toBe('MISS');
    }
    expect(
      (await request(server).get('/items/8').set('Authorization', 'Bearer x').expect(200)).headers['x-cache'],
    ).toBe('BYPASS');
    await request(server).get('/items/404').expect(404);
    expect(db.count('findOne') - before.calls).toBe(5);
    expect(engine.stats().items.misses - before.misses).toBe(4);
    expect(engine.stats().items.bypasses - before.bypasses).toBe(1);
  });

  it('serves the route the same way with a miss listener (as metrics or tracing add): same loads, each miss heard with its key', async () => {
    const db = app.get(ItemsDb);
    const engine = app.get(MemcachedCache);
    const server = app.getHttpServer();
    const heard: string[] = [];
    const listener = (event: { namespace: string; key: string }) => heard.push(`${event.namespace} ${event.key}`);
    const loads = async () => {
      const before = db.count('findOne');
      for (let i = 0; i < 3; i++) {
        const res = await request(server).get('/items/7').expect(200);
        expect(res.headers['x-cache']).toBe('MISS');
      }
      return db.count('findOne') - before;
    };
    const unheard = await loads();
    const off = engine.events.on('miss', listener);
    try {
      expect(await loads()).toBe(unheard);
    } finally {
      off();
    }
    expect(unheard).toBe(3);
    expect(heard).toStrictEqual(Array(3).fill('items /items/7'));
  });

  it('loads the database the same way whether the Prometheus module is installed or not', async () => {
    const registry = new Registry();
    const withMetrics = await startApp(false, [MemcachedPrometheusModule.forRoot({ registry })]);
    try {
      const loads = async (target: INestApplication, id: string) => {
        const db = target.get(ItemsDb);
        const before = db.count('findOne');
        const outcomes: string[] = [];
        for (let i = 0; i < 3; i++) {
          const res = await request(target.getHttpServer()).get(`/items/${id}`).expect(200);
          outcomes.push(res.headers['x-cache']);
        }
        return { loads: db.count('findOne') - before, outcomes };
      };
      // memcached is down (killed above): each app loads every call, and says MISS
      const plain = await loads(app, '8');
      const metered = await loads(withMetrics, '8');
      expect(metered).toStrictEqual(plain);
      expect(plain).toStrictEqual({ loads: 3, outcomes: ['MISS', 'MISS', 'MISS'] });
      // and the metrics counted those misses
      expect(await registry.metrics()).toContain('memcached_cache_requests_total{namespace="items",outcome="miss"} 3');
    } finally {
      await withMetrics.close();
    }
  });

  it('returns correct results while memcached is frozen (SIGSTOP), each call bounded by the timeout', async () => {
    await daemon.restart();
    await users.findById('1');
    await daemon.pause();
    try {
      const started = performance.now();
      expect(await users.findById('1')).toMatchObject({ id: '1' });
      expect(performance.now() - started).toBeLessThan(TIMEOUT * 3 + 200);
      await exerciseEverything();
    } finally {
      daemon.resume();
    }
  });

  it('caches again after memcached comes back', async () => {
    await sleep(TIMEOUT * 2 + 100 * 3);
    const db = app.get(UsersDb);
    const before = db.count('findById');
    await users.findById('2');
    await sleep(20);
    await users.findById('2');
    await users.findById('2');
    expect(db.count('findById') - before).toBeLessThanOrEqual(1);
  });
});

describe('recovery after memcached restarts, with the default breaker settings', () => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp({ imports: [AppModule] }));
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });

  it('after an outage of 3 s, caches again within a few hundred milliseconds of memcached answering', async () => {
    const users = app.get(UsersService);
    const db = app.get(UsersDb);
    await users.findById('1');
    await daemon.kill();
    // enough calls to open the breaker; then a long outage, so the probes have backed off fully
    for (let i = 0; i < 5; i++) await users.findById('1');
    await sleep(3000);
    await daemon.restart();
    const back = performance.now();
    let recoveredAfter = Number.POSITIVE_INFINITY;
    while (performance.now() - back < 3000) {
      const before = db.count('findById');
      await users.findById('1');
      await sleep(5);
      await users.findById('1');
      // recovered once the second read is a hit (on a slow machine the first read's fill can
      // still be in flight 5 ms later, and the next round's reads are both hits: 0 calls)
      if (db.count('findById') - before <= 1) {
        recoveredAfter = performance.now() - back;
        break;
      }
      await sleep(10);
    }
    expect(recoveredAfter).toBeLessThan(500);
  }, 15_000);
});
