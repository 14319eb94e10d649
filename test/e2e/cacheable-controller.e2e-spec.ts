import type { INestApplication } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { rawEntry } from '../support/text-protocol.js';
import { ItemsController, ItemsDb } from './src/items.fixtures.js';

const silent = { log() {}, error() {}, warn() {}, debug() {} };
const settle = () => sleep(15);

describe.each([
  ['Express', () => new ExpressAdapter()],
  ['Fastify', () => new FastifyAdapter()],
])('@Cacheable on controller routes (%s)', (_, createAdapter) => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  let db: ItemsDb;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: silent })],
      controllers: [ItemsController],
      providers: [ItemsDb],
    }).compile();
    app = moduleRef.createNestApplication(createAdapter(), { logger: false });
    await app.init();
    if (app.getHttpAdapter().getType() === 'fastify')
      await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
    db = app.get(ItemsDb);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });
  beforeEach(async () => {
    await app.get(MemcachedClient).flush();
    db.calls = {};
  });

  it('caches a GET: X-Cache MISS then HIT, handler called once, same body', async () => {
    const first = await http().get('/items/7').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    await settle();
    const second = await http().get('/items/7').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toStrictEqual(first.body);
    expect(second.body).toStrictEqual({ id: '7', name: 'seven' });
    // a hit is sent as the stored JSON text, byte for byte what the handler's result serialised to
    expect(second.text).toBe(first.text);
    expect(second.headers['content-type']).toMatch(/^application\/json/);
    expect(db.count('findOne')).toBe(1);
    expect(JSON.parse((await rawEntry(daemon.port, '', 'items', '/items/7'))!.bytes.toString())).toStrictEqual(
      second.body,
    );
  });

  it("a hit carries the ETag the server gives the same body, under the app's etag setting", async () => {
    const express = app.getHttpAdapter().getType() === 'express' ? app.getHttpAdapter().getInstance() : undefined;
    // Express: weak by default, then strong, then none; Fastify computes none without a plugin
    const settings: Array<string | boolean | undefined> = express ? ['weak', 'strong', false] : [undefined];
    try {
      for (const [i, setting] of settings.entries()) {
        express?.set('etag', setting);
        const path = `/items/7?etag=${i}`;
        const miss = await http().get(path).expect(200);
        await settle();
        const hit = await http().get(path).expect(200);
        expect([miss.headers['x-cache'], hit.headers['x-cache']]).toStrictEqual(['MISS', 'HIT']);
        expect(hit.headers.etag).toBe(miss.headers.etag);
        if (setting === 'weak') expect(hit.headers.etag).toMatch(/^W\/"/);
        if (setting === 'strong') expect(hit.headers.etag).toMatch(/^"/);
        if (!express || setting === false) expect(hit.headers.etag).toBeUndefined();
        else expect((await http().get(path).set('if-none-match', hit.headers.etag)).status).toBe(304);
      }
    } finally {
      express?.set('etag', 'weak');
    }
  });

  it('keys by path plus the sorted query string', async () => {
    await http().get('/items?b=2&a=1').expect(200);
    await settle();
    const again = await http().get('/items?a=1&b=2').expect(200);
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.body.query).toStrictEqual({ a: '1', b: '2' });
    await http().get('/items?a=1&b=3').expect(200);
    expect(db.count('list')).toBe(2);
  });

  it('does not cache POST', async () => {
    const body = { id: '9', name: 'nine' };
    const first = await http().post('/items').send(body).expect(201);
    expect(first.headers['x-cache']).toBe('BYPASS');
    await http().post('/items').send(body).expect(201);
    expect(db.count('create')).toBe(2);
  });

  it('does not cache a 404', async () => {
    await http().get('/items/404').expect(404);
    await settle();
    await http().get('/items/404').expect(404);
    expect(db.count('findOne')).toBe(2);
  });

  it('never shows one user a response cached for another (Authorization bypasses)', async () => {
    const alice = await http().get('/items/private/data').set('Authorization', 'Bearer alice').expect(200);
    const bob = await http().get('/items/private/data').set('Authorization', 'Bearer bob').expect(200);
    expect(alice.body).toStrictEqual({ for: 'Bearer alice' });
    expect(bob.body).toStrictEqual({ for: 'Bearer bob' });
    expect(alice.headers['x-cache']).toBe('BYPASS');
    const anonymous = await http().get('/items/private/data').expect(200);
    expect(anonymous.body).toStrictEqual({ for: 'anonymous' });
    const withSession = await http().get('/items/private/data').set('Cookie', 'connect.sid=abc').expect(200);
    expect(withSession.headers['x-cache']).toBe('BYPASS');
  });

  it('caches per principal when the decorator says how the caller enters the key', async () => {
    const a1 = await http().get('/items/me/profile').set('Authorization', 'Bearer a').set('x-user-id', 'a').expect(200);
    const b1 = await http().get('/items/me/profile').set('Authorization', 'Bearer b').set('x-user-id', 'b').expect(200);
    await settle();
    const a2 = await http().get('/items/me/profile').set('Authorization', 'Bearer a').set('x-user-id', 'a').expect(200);
    const b2 = await http().get('/items/me/profile').set('Authorization', 'Bearer b').set('x-user-id', 'b').expect(200);
    expect([a1.body.user, b1.body.user, a2.body.user, b2.body.user]).toStrictEqual(['a', 'b', 'a', 'b']);
    expect([a2.headers['x-cache'], b2.headers['x-cache']]).toStrictEqual(['HIT', 'HIT']);
    expect(db.count('me')).toBe(2);
  });

  it('PUT /items/7 evicts the cached GET /items/7', async () => {
    await http().get('/items/7').expect(200);
    await http().get('/items/8').expect(200);
    await settle();
    await http().put('/items/7').send({ name: 'SEVEN' }).expect(200);
    const fresh = await http().get('/items/7').expect(200);
    expect(fresh.body).toStrictEqual({ id: '7', name: 'SEVEN' });
    expect(fresh.headers['x-cache']).toBe('MISS');
    expect((await http().get('/items/8')).headers['x-cache']).toBe('HIT');
  });

  it('serves a stale entry with X-Cache: STALE while one request refreshes it', async () => {
    expect((await http().get('/items/rates/eur').expect(200)).body).toStrictEqual({ rate: 1 });
    await sleep(1100);
    const stale = await http().get('/items/rates/eur').expect(200);
    expect(stale.headers['x-cache']).toBe('STALE');
    expect(stale.body).toStrictEqual({ rate: 1 });
    await sleep(50);
    const fresh = await http().get('/items/rates/eur').expect(200);
    expect(fresh.headers['x-cache']).toBe('HIT');
    expect(fresh.body).toStrictEqual({ rate: 2 });
    expect(db.count('rate')).toBe(2);
  });

  it('bypasses StreamableFile results and @Res() handlers', async () => {
    const file = await http().get('/items/files/report').expect(200);
    expect(file.headers['x-cache']).toBe('BYPASS');
    await settle();
    await http().get('/items/files/report').expect(200);
    expect(db.count('file')).toBe(2);
    const raw = await http().get('/items/raw/response').expect(200);
    expect(raw.text).toBe('raw body');
    await http().get('/items/raw/response').expect(200);
    expect(db.count('raw')).toBe(2);
  });
});
