import type { INestApplication } from '@nestjs/common';
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient } from '../../lib/index.js';
import { AppModule } from '../../sample-app/app.module.js';
import { DEMO_BUS_KEYS } from '../../sample-app/demo-bus-keys.js';
import { freePort, MemcachedDaemon } from '../support/memcached-daemon.js';
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
    process.env.MEMCACHED_BUS_KEYS = DEMO_BUS_KEYS;
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

/** A sample service as a user starts it: its entry point in its own process, configured by environment. */
function service(entry: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', register, fileURLToPath(new URL(entry, root))], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  return { child, output: () => output };
}

async function waitFor(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const root = new URL('../../', import.meta.url);
const register = fileURLToPath(new URL('scripts/ts-register.mjs', root));

describe('sample app: both services on ports of your choice, from the variables the docs name', () => {
  let daemon: MemcachedDaemon;
  let nats: TestServer;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    [daemon, nats] = await Promise.all([MemcachedDaemon.start(), startNats()]);
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all([daemon?.kill(), nats?.stop()]);
  });

  it('PORT, ORDERS_PORT and SAMPLE_USERS_URL move them; a taken port is refused before seeding, naming the variable', async () => {
    const [usersPort, ordersPort] = [await freePort(), await freePort()];
    const common = { MEMCACHED_SERVERS: daemon.address, MEMCACHED_BUS_URL: nats.url, SAMPLE_SEED_USERS: '50' };
    const users = service('sample-app/main.ts', {
      ...common,
      PORT: String(usersPort),
      MEMCACHED_KEY_PREFIX: 'sample:',
    });
    children.push(users.child);
    await waitFor(() => users.output().includes(`listening on http://127.0.0.1:${usersPort}`), 'users service');
    const orders = service('sample-app/orders/main.ts', {
      ...common,
      ORDERS_PORT: String(ordersPort),
      SAMPLE_USERS_URL: `http://127.0.0.1:${usersPort}`,
    });
    children.push(orders.child);
    await waitFor(() => orders.output().includes(`listening on http://127.0.0.1:${ordersPort}`), 'orders service');
    const order = await request(`http://127.0.0.1:${ordersPort}`).get('/orders/7').expect(200);
    expect(order.body).toMatchObject({ id: 7, userId: 7, userName: 'User 7' });

    // a second users service on the same port stops at once, before its database starts
    const second = service('sample-app/main.ts', { ...common, PORT: String(usersPort) });
    children.push(second.child);
    const code = await new Promise<number | null>((resolve) => second.child.once('exit', resolve));
    expect(code).toBe(1);
    expect(second.output()).toContain(`Port ${usersPort} on 127.0.0.1 is in use`);
    expect(second.output()).toContain('set PORT to a free port');
    expect(second.output()).not.toContain('seeding');
  }, 120_000);
});
