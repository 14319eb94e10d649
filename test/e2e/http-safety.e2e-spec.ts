import type { INestApplication } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { startMemcachedApp } from '../support/nest-app.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { DocsController, DocsDb } from './src/docs.fixtures.js';

const settle = () => sleep(15); // fills are written behind the response

const CREDENTIAL_HEADERS = [
  'Authorization',
  'Proxy-Authorization',
  'X-API-Key',
  'Api-Key',
  'X-Auth-Token',
  'X-Access-Token',
  'X-Session-Token',
  'X-Session-Id',
  'X-Tenant-Id',
  'X-User-Id',
  'X-User',
  'X-Forwarded-User',
  'X-Remote-User',
  'X-Amzn-Oidc-Data',
  'Cf-Access-Jwt-Assertion',
  'X-Myapp-Token',
  'X-Acme-Session',
  'X-Customer-Id',
  'X-Tenant',
  'X-Api_Key',
];

const COOKIE_NAMES = [
  'uid',
  'user',
  'user_id',
  'remember_me',
  'passport',
  'tenant',
  'account',
  'connect.sid',
  'PHPSESSID',
  'JSESSIONID',
  'sessionid',
  'session',
  'sid',
  'token',
  'auth',
  'jwt',
  'access_token',
  'laravel_session',
  'csrftoken',
  '_session_id',
  'a',
  'x',
  'prefs',
  'cart',
];

describe.each([
  ['Express', () => new ExpressAdapter()],
  ['Fastify', () => new FastifyAdapter()],
])('HTTP caching is safe by default (%s)', (_, createAdapter) => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  let db: DocsDb;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false })],
      controllers: [DocsController],
      providers: [DocsDb],
    }).compile();
    app = moduleRef.createNestApplication(createAdapter(), { logger: false });
    await app.init();
    if (app.getHttpAdapter().getType() === 'fastify')
      await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
    db = app.get(DocsDb);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });
  beforeEach(async () => {
    await app.get(MemcachedClient).flush();
    db.calls = 0;
  });

  describe("principal routes: no request can reach another caller's entry", () => {
    it("alice's entry is hers; bob and anonymous callers get their own", async () => {
      await http().get('/docs/7').set('Authorization', 'Bearer alice').expect(200);
      await settle();
      const alice = await http().get('/docs/7').set('Authorization', 'Bearer alice').expect(200);
      expect(alice.headers['x-cache']).toBe('HIT');
      expect(alice.body.owner).toBe('alice');
      const bob = await http().get('/docs/7').set('Authorization', 'Bearer bob').expect(200);
      expect(bob.body.owner).toBe('bob');
      const anonymous = await http().get('/docs/7').expect(200);
      expect(anonymous.body.owner).toBe('anonymous');
    });

    it("crafted paths, queries and encodings never return alice's entry to anyone else", async () => {
      await http().get('/docs/7').set('Authorization', 'Bearer alice').expect(200);
      await http().get('/docs/7?draft=1').set('Authorization', 'Bearer alice').expect(200);
      await settle();
      const crafted = [
        '/docs/7~principal=alice',
        '/docs/7%7Eprincipal%3Dalice',
        '/docs/7/~principal=alice',
        '/docs/7?~principal=alice',
        '/docs/7;principal=alice',
        '/docs/7%00alice',
        '/docs/7?principal=alice',
        '/docs/7?draft=1&principal=alice',
        '/docs/7%3Fdraft%3D1',
        '/docs/7?draft=1%26principal%3Dalice',
        '/docs/7%22,%22alice',
        '/docs/7%5B%22alice%22%5D',
        '/docs/7",null,"alice"]',
        '/DOCS/7',
        '/docs//7/',
        '/docs/%37',
      ];
      // the handler echoes the id it was given; what must never show up is alice's copy
      const hers = (body: { owner?: string; body?: string }) =>
        body.owner === 'alice' || String(body.body).startsWith("alice's");
      for (const path of crafted) {
        const res = await http().get(path);
        if (res.status === 200) expect(hers(res.body), path).toBe(false);
      }
      // random suffixes built from the characters that separate key parts
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.constantFrom(
              '~',
              '=',
              '%7E',
              '%3D',
              ';',
              ',',
              '"',
              '[',
              ']',
              '%22',
              'alice',
              'principal',
              '?',
              '&',
              '%00',
              '%5C',
              '\\',
            ),
            { maxLength: 6 },
          ),
          async (parts) => {
            const res = await http().get(`/docs/7${parts.join('')}`);
            if (res.status === 200) expect(hers(res.body)).toBe(false);
          },
        ),
        { numRuns: 60 },
      );
    });
  });

  describe('credentials and cookies bypass routes that did not opt in', () => {
    it.each(CREDENTIAL_HEADERS)('a request with %s is answered around the cache, both ways', async (header) => {
      await http().get('/echo/1').expect(200);
      await settle();
      expect((await http().get('/echo/1')).headers['x-cache']).toBe('HIT');
      const withCredential = await http().get('/echo/1').set(header, 'alice-secret').expect(200);
      expect(withCredential.headers['x-cache']).toBe('BYPASS');
      expect(JSON.stringify(withCredential.body)).toContain('alice-secret');
      await settle();
      const anonymous = await http().get('/echo/1').expect(200);
      expect(JSON.stringify(anonymous.body)).not.toContain('alice-secret');
    });

    it.each(COOKIE_NAMES)('a request with the cookie %s is answered around the cache', async (name) => {
      const res = await http().get('/echo/2').set('Cookie', `${name}=alice-secret`).expect(200);
      expect(res.headers['x-cache']).toBe('BYPASS');
      await settle();
      const anonymous = await http().get('/echo/2').expect(200);
      expect(JSON.stringify(anonymous.body)).not.toContain('alice-secret');
    });

    it('browser metadata headers do not count as credentials', async () => {
      const browser = {
        'User-Agent': 'Mozilla/5.0',
        'Sec-Fetch-User': '?1',
        'Sec-Fetch-Mode': 'navigate',
        'Accept-Language': 'en',
      };
      await http().get('/echo/3').set(browser).expect(200);
      await settle();
      expect((await http().get('/echo/3').set(browser)).headers['x-cache']).toBe('HIT');
    });

    it('ignoreCookies: a request whose cookies are all ignored is cached; one more cookie bypasses', async () => {
      await http().get('/tracked/1').set('Cookie', '_ga=GA1.2.3; _pk_id.1=abc').expect(200);
      await settle();
      expect((await http().get('/tracked/1').set('Cookie', '_ga=other')).headers['x-cache']).toBe('HIT');
      expect((await http().get('/tracked/1').set('Cookie', '_ga=x; sid=alice')).headers['x-cache']).toBe('BYPASS');
    });

    it('public: true shares the entry whatever the request carries', async () => {
      await http().get('/shared/1').set('Authorization', 'Bearer alice').expect(200);
      await settle();
      const res = await http().get('/shared/1').set('Cookie', 'sid=bob').expect(200);
      expect(res.headers['x-cache']).toBe('HIT');
      expect(db.calls).toBe(1);
    });
  });

  describe('Vary and Cache-Control', () => {
    it('Vary: Accept-Language keeps one entry per language, and a hit says what it varies on', async () => {
      const fr = await http().get('/i18n/1').set('Accept-Language', 'fr').expect(200);
      expect(fr.body.text).toBe('Bonjour');
      await settle();
      const en = await http().get('/i18n/1').set('Accept-Language', 'en').expect(200);
      expect(en.body.text).toBe('Hello');
      await settle();
      const de = await http().get('/i18n/1').set('Accept-Language', 'de').expect(200);
      expect(de.body.text).toBe('Hallo');
      await settle();
      for (const [lang, text] of [
        ['fr', 'Bonjour'],
        ['en', 'Hello'],
        ['de', 'Hallo'],
        ['fr', 'Bonjour'],
      ]) {
        const res = await http().get('/i18n/1').set('Accept-Language', lang).expect(200);
        expect(res.body.text).toBe(text);
        expect(res.headers['x-cache']).toBe('HIT');
        expect(res.headers.vary).toMatch(/accept-language/i);
      }
      expect(db.calls).toBe(3);
    });

    it.each([
      ['/vary-star', 'Vary: *'],
      ['/cc-private', 'Cache-Control: private'],
      ['/cc-no-store', 'Cache-Control: no-store'],
      ['/sets-cookie', 'Set-Cookie'],
    ])('%s (%s) is never stored', async (path) => {
      for (let i = 0; i < 3; i++) {
        const res = await http().get(path).expect(200);
        expect(res.headers['x-cache']).not.toBe('HIT');
        await settle();
      }
      expect(db.calls).toBe(3);
    });
  });

  it('evicting a resource evicts every variant: callers, queries, case, slashes, encodings', async () => {
    const variants: Array<[string, Record<string, string>]> = [
      ['/docs/7', { Authorization: 'Bearer alice' }],
      ['/docs/7', { Authorization: 'Bearer bob' }],
      ['/docs/7', {}],
      ['/docs/7?x=1', {}],
      ['/docs/7?x=2', { Authorization: 'Bearer alice' }],
      ['/DOCS/7', {}],
      ['/docs//7/', {}],
      ['/docs/%37', {}],
    ];
    // routers differ on case, duplicate and trailing slashes: check every variant this one serves
    const served: typeof variants = [];
    for (const [path, headers] of variants)
      if ((await http().get(path).set(headers)).status === 200) served.push([path, headers]);
    expect(served.length).toBeGreaterThanOrEqual(6);
    await settle();
    for (const [path, headers] of served)
      expect((await http().get(path).set(headers)).headers['x-cache'], path).toBe('HIT');
    const version = db.version;
    await http().put('/docs/7').set('Authorization', 'Bearer carol').expect(200);
    // every variant now answers with the new version (equivalent spellings of one variant, such
    // as /docs/%37 and /docs/7, may already hit the entry the first of them refilled)
    const outcomes: string[] = [];
    for (const [path, headers] of served) {
      const res = await http().get(path).set(headers).expect(200);
      expect(res.body.version, path).toBe(version + 1);
      outcomes.push(res.headers['x-cache']);
    }
    expect(outcomes.slice(0, 5)).toStrictEqual(['MISS', 'MISS', 'MISS', 'MISS', 'MISS']);
  });
});

describe("the module's http options", () => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp(
      { controllers: [DocsController], providers: [DocsDb] },
      { http: { credentialHeaders: ['x-partner'], ignoreCookies: ['consent'] } },
    ));
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });

  it('credentialHeaders replaces the built-in list (Authorization and cookies still count); ignoreCookies applies to every route', async () => {
    expect((await http().get('/echo/9').set('X-Partner', 'p1')).headers['x-cache']).toBe('BYPASS');
    expect((await http().get('/echo/9').set('Authorization', 'Basic x')).headers['x-cache']).toBe('BYPASS');
    expect((await http().get('/echo/9').set('Cookie', 'sid=1')).headers['x-cache']).toBe('BYPASS');
    expect((await http().get('/echo/9').set('Cookie', 'consent=yes')).headers['x-cache']).toBe('MISS');
    await settle();
    expect((await http().get('/echo/9').set('X-Api-Key', 'not-a-credential-here')).headers['x-cache']).toBe('HIT');
  });
});
