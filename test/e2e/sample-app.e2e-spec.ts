import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../../sample-app/app.module.js';
import { DatabaseService } from '../../sample-app/database/database.service.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startPostgres, type TestServer } from '../support/servers.js';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe.each([
  ['embedded PGlite', false],
  ['PostgreSQL (DATABASE_URL)', true],
])('the sample app on %s, against real memcached', (_, usesPostgres) => {
  let daemon: MemcachedDaemon;
  // a PostgreSQL of the test's own, unless SAMPLE_TEST_DATABASE_URL names one
  let postgres: TestServer | undefined;
  let databaseUrl: string | undefined;
  let app: INestApplication;
  let db: DatabaseService;
  const saved = { ...process.env };
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    databaseUrl = usesPostgres ? process.env.SAMPLE_TEST_DATABASE_URL : undefined;
    await Promise.all([
      MemcachedDaemon.start().then((started) => (daemon = started)),
      usesPostgres && !databaseUrl && startPostgres().then((started) => (postgres = started)),
    ]);
    if (postgres) databaseUrl = postgres.url;
    process.env.MEMCACHED_SERVERS = daemon.address;
    process.env.MEMCACHED_TIMEOUT = '200';
    process.env.MEMCACHED_BREAKER_COOLDOWN = '200';
    process.env.SAMPLE_SEED_USERS = '200';
    process.env.SAMPLE_TABLE = `e2e_users_${process.pid}`;
    if (databaseUrl) process.env.DATABASE_URL = databaseUrl;
    else delete process.env.DATABASE_URL;
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    db = app.get(DatabaseService);
  }, 60_000);
  afterAll(async () => {
    if (databaseUrl) await db?.query(`DROP TABLE IF EXISTS ${db.table}`);
    await app?.close();
    await Promise.all([daemon?.kill(), postgres?.stop()]);
    process.env = saved;
  });

  it('serves the second read from the cache: the database is queried once', async () => {
    const before = db.queries;
    const first = await http().get('/users/5').expect(200);
    const second = await http().get('/users/5').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toStrictEqual(first.body);
    expect(second.body).toMatchObject({ id: 5, name: 'User 5' });
    expect(db.queries - before).toBe(1);
  });

  it('returns fresh data after an update', async () => {
    await http().get('/users/6').expect(200);
    await http().put('/users/6').send({ name: 'Renamed' }).expect(200);
    const after = await http().get('/users/6').expect(200);
    expect(after.body.name).toBe('Renamed');
    expect(after.headers['x-cache']).toBe('MISS');
  });

  it('shows a created user in the (cached) list and in the cached country counts', async () => {
    const page = await http().get('/users?page=3&limit=100').expect(200);
    expect((await http().get('/users?limit=100&page=3').expect(200)).headers['x-cache']).toBe('HIT');
    const countsBefore = (await http().get('/stats/countries').expect(200)).body;
    const created = await http()
      .post('/users')
      .send({ name: 'New', email: 'new@example.com', country: 'NZ' })
      .expect(201);
    const list = await http().get('/users?page=3&limit=100').expect(200);
    expect(list.body.map((u: { id: number }) => u.id)).toContain(created.body.id);
    expect(list.body.length).toBe(page.body.length + 1);
    const countsAfter = (await http().get('/stats/countries').expect(200)).body;
    expect(countsBefore.NZ).toBeUndefined();
    expect(countsAfter.NZ).toBe(1);
  });

  it('deletes a user and stops serving it', async () => {
    await http().get('/users/7').expect(200);
    await http().delete('/users/7').expect(204);
    await http().get('/users/7').expect(404);
  });

  it('exposes hit and miss counters that match the requests, and each node in /health', async () => {
    const before = (await http().get('/metrics').expect(200)).text;
    for (let i = 0; i < 3; i++) await http().get('/users/20').expect(200);
    await http().get('/users/21').expect(200);
    const after = (await http().get('/metrics').expect(200)).text;
    const delta = (labels: string) =>
      metric(after, 'memcached_cache_requests_total', labels) -
      metric(before, 'memcached_cache_requests_total', labels);
    expect(delta('namespace="users",outcome="miss"')).toBe(2);
    expect(delta('namespace="users",outcome="hit"')).toBe(2);
    expect(metric(after, 'memcached_node_up', `node="${daemon.address}"`)).toBe(1);
    const health = await http().get('/health').expect(200);
    expect(health.body.details.memcached.nodes[daemon.address]).toMatchObject({
      status: 'up',
      version: expect.stringMatching(/^1\./),
    });
  });

  // PGlite only: a PostgreSQL database outlives the app, so its cached entries stay valid
  it.skipIf(usesPostgres)('does not answer a fresh embedded database with entries an earlier run cached', async () => {
    await http().put('/users/8').send({ name: 'Changed in the first run' }).expect(200);
    expect((await http().get('/users/8').expect(200)).body.name).toBe('Changed in the first run');
    // a restart: one app per process, as in production (the metrics registry is per process)
    await app.close();
    const second = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = second.createNestApplication({ logger: false });
    await app.init();
    db = app.get(DatabaseService);
    const fresh = await http().get('/users/8').expect(200);
    expect(fresh.body.name).toBe('User 8');
    expect(fresh.headers['x-cache']).toBe('MISS');
  });

  it('keeps every endpoint correct when memcached is killed, and /health reports the node down', async () => {
    await daemon.kill();
    const user = await http().get('/users/30').expect(200);
    expect(user.body).toMatchObject({ id: 30 });
    await http().put('/users/30').send({ name: 'Offline edit' }).expect(200);
    expect((await http().get('/users/30').expect(200)).body.name).toBe('Offline edit');
    expect((await http().get('/users?page=1&limit=5').expect(200)).body).toHaveLength(5);
    expect(Object.keys((await http().get('/stats/countries').expect(200)).body).length).toBeGreaterThan(0);
    const created = await http()
      .post('/users')
      .send({ name: 'Offline', email: 'o@example.com', country: 'FR' })
      .expect(201);
    await http().get(`/users/${created.body.id}`).expect(200);
    const health = await http().get('/health').expect(503);
    expect(health.body.details.memcached.nodes[daemon.address].status).toBe('down');
  });
});
