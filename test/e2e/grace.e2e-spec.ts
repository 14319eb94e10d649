import { Controller, Get, type INestApplication, Injectable, Module, Param } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Cacheable, MemcachedCache, MemcachedClient } from '../../lib/index.js';
import { MemcachedHealthIndicator } from '../../lib/terminus/index.js';
import { type MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startMemcachedApp } from '../support/nest-app.js';

const DEADLINE = 200;
const BACKOFF = 400;

/** A source that can fail or hang on demand, and counts its calls. */
@Injectable()
class PricesDb {
  mode: 'ok' | 'throw' | 'hang' = 'ok';
  version = 1;
  calls = 0;

  async price(id: string): Promise<{ id: string; v: number }> {
    this.calls++;
    if (this.mode === 'throw') throw new Error('database is down');
    if (this.mode === 'hang') await sleep(3000);
    return { id, v: this.version };
  }
}

@Injectable()
class PricesService {
  constructor(private readonly db: PricesDb) {}

  // fresh for 1 s, kept 60 s more for when the database fails
  @Cacheable({ namespace: 'prices', key: (id: string) => id, ttl: 1, grace: 60 })
  price(id: string) {
    return this.db.price(id);
  }

  // grace of 1 s only: past it, the database's error reaches the caller
  @Cacheable({ namespace: 'short-grace', key: (id: string) => id, ttl: 1, grace: 1 })
  shortGrace(id: string) {
    return this.db.price(id);
  }
}

@Controller()
class PricesController {
  constructor(
    private readonly db: PricesDb,
    private readonly health: HealthCheckService,
    private readonly memcached: MemcachedHealthIndicator,
  ) {}

  @Get('prices/:id')
  @Cacheable({ namespace: 'price-pages', ttl: 1, grace: 60 })
  page(@Param('id') id: string) {
    return this.db.price(id);
  }

  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.memcached.isHealthy('memcached')]);
  }
}

@Module({
  imports: [TerminusModule],
  providers: [PricesDb, PricesService, MemcachedHealthIndicator],
  controllers: [PricesController],
})
class PricesModule {}

describe('grace: the last good value when the source fails', () => {
  let app: INestApplication;
  let daemon: MemcachedDaemon;
  let db: PricesDb;
  let prices: PricesService;
  let client: MemcachedClient;
  const graced: string[] = [];
  const warnings: string[] = [];

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp(
      { imports: [PricesModule] },
      {
        graceDeadline: DEADLINE,
        graceBackoff: BACKOFF,
        logger: { log() {}, error() {}, warn: (m: string) => warnings.push(m) },
      },
    ));
    db = app.get(PricesDb);
    prices = app.get(PricesService);
    client = app.get(MemcachedClient);
    app.get(MemcachedCache).events.on('graced', ({ namespace }) => graced.push(namespace));
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });
  beforeEach(() => {
    db.mode = 'ok';
  });

  /** Reads until the entry is cached (a read that calls nothing), then waits past its TTL. */
  async function expired(read: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const calls = db.calls;
      await read();
      if (db.calls === calls) break;
      if (attempt > 20) throw new Error('never cached');
      await sleep(20);
    }
    await sleep(1100);
  }

  it('a loader that throws past the TTL: the last value, counted as graced, not as a hit; its reloads bounded by the back-off', async () => {
    await expired(() => prices.price('a'));
    const hits = client.stats().hits;
    db.mode = 'throw';
    const calls = db.calls;
    expect(await prices.price('a')).toStrictEqual({ id: 'a', v: 1 });
    expect(db.calls - calls).toBe(1);
    // within the back-off, callers get the entry without calling the database
    const many = await Promise.all(Array.from({ length: 20 }, () => prices.price('a')));
    expect(many.every((p) => p.v === 1)).toBe(true);
    expect(db.calls - calls).toBe(1);
    expect(client.stats()).toMatchObject({ graced: 21, hits });
    expect(app.get(MemcachedCache).stats().prices).toMatchObject({ graced: 21 });
    expect(graced.filter((n) => n === 'prices')).toHaveLength(21);
    expect(
      warnings.filter((w) => /Serving graced entries of namespace "prices".*database is down/.test(w)),
    ).toHaveLength(1);
    // past the back-off, one caller tries again
    await sleep(BACKOFF + 50);
    await Promise.all(Array.from({ length: 5 }, () => prices.price('a')));
    expect(db.calls - calls).toBe(2);
    // the database is back: the next reload after the back-off refreshes the entry
    db.mode = 'ok';
    db.version = 2;
    await sleep(BACKOFF + 50);
    expect(await prices.price('a')).toStrictEqual({ id: 'a', v: 2 });
    await sleep(50);
    const afterRefresh = db.calls;
    expect(await prices.price('a')).toStrictEqual({ id: 'a', v: 2 });
    expect(db.calls).toBe(afterRefresh);
    db.version = 1;
  });

  it('a loader that hangs past graceDeadline: the last value within the deadline; the late result still refreshes the entry', async () => {
    await expired(() => prices.price('h'));
    db.mode = 'hang';
    db.version = 5;
    const started = performance.now();
    expect(await prices.price('h')).toStrictEqual({ id: 'h', v: 1 });
    expect(performance.now() - started).toBeLessThan(DEADLINE + 300);
    // the slow load ends (3 s) and replaces the entry
    db.mode = 'ok';
    await sleep(3200);
    const calls = db.calls;
    expect(await prices.price('h')).toStrictEqual({ id: 'h', v: 5 });
    expect(db.calls).toBe(calls);
    db.version = 1;
  });

  it('getOrSet takes a grace of its own; a grace that is not a number of seconds is refused', async () => {
    const load = () => client.getOrSet('g', () => db.price('g'), { namespace: 'g', ttl: 1, grace: 60 });
    await expired(load);
    db.mode = 'throw';
    const before = client.stats().graced;
    expect(await load()).toStrictEqual({ id: 'g', v: 1 });
    expect(client.stats().graced - before).toBe(1);
    await expect(client.getOrSet('g2', () => db.price('g2'), { ttl: 1, grace: -1 })).rejects.toMatchObject({
      name: 'MemcachedUsageError',
      message: expect.stringContaining('"grace": -1'),
    });
  });

  it('past the grace, the loader error reaches the caller', async () => {
    await expired(() => prices.shortGrace('s'));
    await sleep(1100);
    db.mode = 'throw';
    await expect(prices.shortGrace('s')).rejects.toThrow('database is down');
  });

  it('an HTTP route answers X-Cache: STALE with an Age, and /health says degraded while graced values are served', async () => {
    const server = app.getHttpServer();
    await expired(() => request(server).get('/prices/p').expect(200));
    db.mode = 'throw';
    const res = await request(server).get('/prices/p').expect(200);
    expect(res.body).toStrictEqual({ id: 'p', v: 1 });
    expect(res.headers['x-cache']).toBe('STALE');
    // filled a little over a second ago (its TTL of 1 s, and the time since)
    expect(Number(res.headers.age)).toBeGreaterThanOrEqual(1);
    expect(Number(res.headers.age)).toBeLessThanOrEqual(3);
    const health = await request(server).get('/health').expect(200);
    expect(health.body.details.memcached).toMatchObject({ status: 'up', degraded: 'serving graced values' });
  });
});
