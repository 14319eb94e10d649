import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient } from '../../lib/index.js';
import { AppModule } from '../../sample-app/app.module.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startNats, type TestServer } from '../support/servers.js';

// The sample's two services on one memcached pool and a NATS of the test's own: the users service (the
// sample app, its bus from MEMCACHED_BUS_URL) and the orders service, which caches user names and
// follows the users service's `users` namespace (bus.follow). Renaming a user in one shows in the other.
describe('sample app: the orders service follows the users service over NATS', () => {
  let daemon: MemcachedDaemon;
  let nats: TestServer;
  let users: INestApplication;
  let orders: INestApplication;
  const saved = { ...process.env };

  beforeAll(async () => {
    await Promise.all([
      MemcachedDaemon.start().then((started) => (daemon = started)),
      startNats().then((started) => (nats = started)),
    ]);
    process.env.MEMCACHED_SERVERS = daemon.address;
    process.env.MEMCACHED_KEY_PREFIX = 'sample:';
    process.env.MEMCACHED_BUS_URL = nats.url;
    process.env.SAMPLE_SEED_USERS = '50';
    delete process.env.DATABASE_URL;
    users = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({
      logger: false,
    });
    await users.listen(0, '127.0.0.1');
    process.env.SAMPLE_USERS_URL = await users.getUrl();
    // the orders module reads its settings when it is imported
    const { OrdersModule } = await import('../../sample-app/orders/orders.module.js');
    orders = (await Test.createTestingModule({ imports: [OrdersModule] }).compile()).createNestApplication({
      logger: false,
    });
    await orders.init();
    const healthy = (app: INestApplication) => app.get(MemcachedClient).stats().bus?.healthy === true;
    for (let i = 0; i < 200 && !(healthy(users) && healthy(orders)); i++) await new Promise((r) => setTimeout(r, 10));
  }, 60_000);
  afterAll(async () => {
    await orders?.close();
    await users?.close();
    await Promise.all([daemon?.kill(), nats?.stop()]);
    process.env = saved;
  });

  it("shows a user's new name in the orders service right after the users service renames them", async () => {
    const ordersHttp = () => request(orders.getHttpServer());
    const first = await ordersHttp().get('/orders/7').expect(200);
    expect(first.body).toMatchObject({ id: 7, userId: 7, userName: 'User 7' });
    // cached: the users service is not asked again
    const hitsBefore = orders.get(MemcachedClient).stats().nearCache!.hits;
    await ordersHttp().get('/orders/27').expect(200); // the same user
    await ordersHttp().get('/orders/27').expect(200);
    expect(orders.get(MemcachedClient).stats().nearCache!.hits).toBeGreaterThan(hitsBefore);

    await request(users.getHttpServer()).put('/users/7').send({ name: 'Renamed in users' }).expect(200);
    let name = '';
    for (let i = 0; i < 100 && name !== 'Renamed in users'; i++) {
      name = (await ordersHttp().get('/orders/7').expect(200)).body.userName;
      if (name !== 'Renamed in users') await new Promise((r) => setTimeout(r, 20));
    }
    expect(name).toBe('Renamed in users');
    expect(orders.get(MemcachedClient).stats().bus!.followed.evictions).toBeGreaterThanOrEqual(1);
  });
});
