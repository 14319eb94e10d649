import 'reflect-metadata';
import { type CallHandler, Controller, Get, Injectable, type NestInterceptor, UseInterceptors } from '@nestjs/common';
import { lastValueFrom, of } from 'rxjs';
import { beforeEach, describe, expect, it } from 'vitest';
import { CacheAsideEngine, type CallReport, type CallSite } from '../../lib/cache/cache-aside.engine.js';
import { RawJson } from '../../lib/codec/value.codec.js';
import { CacheInterceptorDelegate } from '../../lib/decorators/cache-interceptor.delegate.js';
import { hasOuterInterceptors, noteGlobalInterceptors } from '../../lib/interceptors/cache.interceptor.js';
import { Cacheable, CacheInterceptor } from '../../lib/index.js';
import { InMemoryClientCore } from '../../lib/testing/in-memory-memcached.client.js';
import type { CachePlan, CacheableOptions } from '../../lib/interfaces/cache-decorator-options.interface.js';

const settle = () => new Promise((r) => setTimeout(r, 5));
const INTERCEPTORS_METADATA = '__interceptors__';

@Injectable()
class Outer implements NestInterceptor {
  intercept(_: unknown, next: CallHandler) {
    return next.handle();
  }
}

function planOf(cacheable?: CacheableOptions, extra: Partial<CachePlan> = {}): CachePlan {
  return { className: 'Svc', methodName: 'm', cacheable, evicts: [], defaults: {}, ...extra };
}

function siteOf(...args: unknown[]): CallSite {
  return { keyArgs: args, defaultKey: () => `m:${JSON.stringify(args)}` };
}

describe('CacheAsideEngine (policy), over the in-memory client', () => {
  let engine: CacheAsideEngine;
  let calls: number;
  const produce =
    <T>(value: T) =>
    async () => (calls++, { value });

  beforeEach(() => {
    engine = new CacheAsideEngine(new InMemoryClientCore(), false);
    calls = 0;
  });

  it('a miss runs the method and fills; a hit does not run it; the report and the counters say which', async () => {
    const plan = planOf({ namespace: 'n' });
    const miss: CallReport = {};
    expect(await engine.execute(plan, siteOf(1), produce('a'), miss)).toBe('a');
    await settle();
    const hit: CallReport = {};
    expect(await engine.execute(plan, siteOf(1), produce('b'), hit)).toBe('a');
    expect([miss.outcome, hit.outcome, calls]).toStrictEqual(['MISS', 'HIT', 1]);
    expect(engine.stats().n).toMatchObject({ hits: 1, misses: 1, fills: 1 });
  });

  it('unless, undefined and unstorable results are returned but not stored; condition false bypasses', async () => {
    await engine.execute(planOf({ namespace: 'n', unless: (v: string) => v === 'skip' }), siteOf(2), produce('skip'));
    await engine.execute(planOf({ namespace: 'n' }), siteOf(3), produce(undefined));
    await engine.execute(planOf({ namespace: 'n' }), siteOf(4), async () => (calls++, { value: 'x', storable: false }));
    const bypass: CallReport = {};
    await engine.execute(planOf({ namespace: 'n', condition: () => false }), siteOf(5), produce('y'), bypass);
    await settle();
    for (const n of [2, 3, 4]) await engine.execute(planOf({ namespace: 'n' }), siteOf(n), produce('again'));
    expect(calls).toBe(7);
    expect(bypass.outcome).toBe('BYPASS');
    expect(engine.stats().n.bypasses).toBe(1);
  });

  it('a key function that throws: the call goes around the cache and the error is counted, not thrown', async () => {
    const report: CallReport = {};
    const plan = planOf({
      namespace: 'n',
      key: () => {
        throw new Error('bad key');
      },
    });
    expect(await engine.execute(plan, siteOf(1), produce('v'), report)).toBe('v');
    expect(report.outcome).toBe('BYPASS');
    expect(engine.stats().n.errors).toBe(1);
  });

  it('evictions run after success only, or before the call with beforeInvocation', async () => {
    const cached = planOf({ namespace: 'n', key: 'k' });
    await engine.execute(cached, siteOf(), produce(1));
    await settle();
    const failing = async () => Promise.reject(new Error('write failed'));
    await expect(
      engine.execute(planOf(undefined, { evicts: [{ namespace: 'n', key: 'k' }] }), siteOf(), failing),
    ).rejects.toThrow('write failed');
    expect(await engine.execute(cached, siteOf(), produce(2))).toBe(1);
    await expect(
      engine.execute(
        planOf(undefined, { evicts: [{ namespace: 'n', key: 'k', beforeInvocation: true }] }),
        siteOf(),
        failing,
      ),
    ).rejects.toThrow();
    expect(await engine.execute(cached, siteOf(), produce(3))).toBe(3);
  });

  it('a put writes through, and an entry read before it misses after', async () => {
    await engine.execute(planOf({ namespace: 'n', key: 'k' }), siteOf(), produce('old'));
    await engine.execute(planOf(undefined, { put: { namespace: 'n', key: 'k' } }), siteOf(), produce('new'));
    expect(await engine.execute(planOf({ namespace: 'n', key: 'k' }), siteOf(), produce('loaded'))).toBe('new');
  });

  it('stale-while-revalidate: after the freshness deadline the old value is served at once and refreshed once', async () => {
    const plan = planOf({ namespace: 'n', key: 'rate', ttl: 0.001, staleWhileRevalidate: 60 });
    await engine.execute(plan, siteOf(), produce(1));
    await new Promise((r) => setTimeout(r, 1100));
    const report: CallReport = {};
    const served = await Promise.all([
      engine.execute(plan, siteOf(), produce(2), report),
      engine.execute(plan, siteOf(), produce(2)),
    ]);
    expect(served).toStrictEqual([1, 1]);
    expect(report.outcome).toBe('STALE');
    await settle();
    expect(await engine.execute(plan, siteOf(), produce(3))).toBe(2);
    expect(calls).toBe(2);
  });

  it('HTTP: an entry stored for other Vary values never answers; the names become part of the variants', async () => {
    const plan = planOf({ namespace: 'h' });
    const http = (lang: string): CallSite => ({
      keyArgs: [],
      defaultKey: () => '/greeting',
      http: { path: '/greeting', query: '', header: (name) => (name === 'accept-language' ? lang : '') },
    });
    const respond = (text: string) => async () => (
      calls++,
      {
        value: { text },
        meta: { vary: [['accept-language', text === 'Bonjour' ? 'fr' : 'en']] as Array<[string, string]> },
      }
    );
    await engine.execute(plan, http('fr'), respond('Bonjour'));
    await settle();
    const en = await engine.execute(plan, http('en'), respond('Hello'));
    await settle();
    const fr = (await engine.execute(plan, http('fr'), respond('wrong'))) as unknown as RawJson;
    const enAgain = (await engine.execute(plan, http('en'), respond('wrong'))) as unknown as RawJson;
    expect(en).toStrictEqual({ text: 'Hello' });
    expect(JSON.parse(fr.json)).toStrictEqual({ text: 'Bonjour' });
    expect(JSON.parse(enAgain.json)).toStrictEqual({ text: 'Hello' });
    expect(calls).toBe(2);
  });
});

@Controller('users')
class UsersController {
  @Get(':id')
  @Cacheable({ namespace: 'users' })
  findOne() {
    return { id: '7' };
  }

  @Get('me')
  @Cacheable({ namespace: 'me', principal: (req: { headers: Record<string, string> }) => req.headers['x-user'] })
  me() {
    return { id: 'me' };
  }
}

describe('CacheInterceptor (HTTP rules), with a fake ExecutionContext over the in-memory client', () => {
  let interceptor: CacheInterceptor;

  beforeEach(() => {
    interceptor = new CacheInterceptor(new CacheAsideEngine(new InMemoryClientCore(), false));
    noteGlobalInterceptors(interceptor, false);
  });

  async function call(
    method: string,
    url: string,
    handler: 'findOne' | 'me',
    options: {
      headers?: Record<string, string>;
      status?: number;
      responseHeaders?: Record<string, string>;
      body?: unknown;
    } = {},
  ) {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.responseHeaders ?? {})) headers[k.toLowerCase()] = v;
    const res = {
      statusCode: options.status ?? 200,
      setHeader(k: string, v: string) {
        headers[k.toLowerCase()] = v;
      },
      getHeader(k: string) {
        return headers[k.toLowerCase()];
      },
    };
    const req = { method, url, originalUrl: url, headers: options.headers ?? {} };
    const context = {
      getType: () => 'http',
      getHandler: () => UsersController.prototype[handler],
      getClass: () => UsersController,
      getArgByIndex: (i: number) => (i === 0 ? req : res),
      switchToHttp: () => ({ getRequest: () => req, getResponse: () => res }),
    };
    let ran = false;
    const next = { handle: () => ((ran = true), of(options.body ?? { id: '7' })) };
    // as Nest runs a decorated route: through the delegate the decorators attach
    const delegate = new CacheInterceptorDelegate(interceptor);
    const body = await lastValueFrom(delegate.intercept(context as never, next as never));
    await settle();
    return { body, ran, xCache: headers['x-cache'], vary: headers.vary, contentType: headers['content-type'] };
  }

  it('GET: MISS then HIT, the hit sent as the stored JSON text', async () => {
    expect(await call('GET', '/users/7', 'findOne')).toMatchObject({ ran: true, xCache: 'MISS' });
    expect(await call('GET', '/users/7', 'findOne')).toMatchObject({
      ran: false,
      xCache: 'HIT',
      body: '{"id":"7"}',
      contentType: 'application/json; charset=utf-8',
    });
  });

  it("with an interceptor around the cache (global, or unknown), a hit is the parsed value, as a miss returns the handler's", async () => {
    for (const globals of [true, undefined]) {
      interceptor = new CacheInterceptor(new CacheAsideEngine(new InMemoryClientCore(), false));
      if (globals !== undefined) noteGlobalInterceptors(interceptor, globals);
      const miss = await call('GET', '/users/7', 'findOne');
      const hit = await call('GET', '/users/7', 'findOne');
      expect([miss.xCache, hit.xCache, hit.ran]).toStrictEqual(['MISS', 'HIT', false]);
      expect(hit.body).toStrictEqual(miss.body);
      expect(hit.body).toStrictEqual({ id: '7' });
    }
  });

  it("which interceptors run around the cache: global ones, the class's, and the route's own before the delegate", () => {
    class Plain {}
    @UseInterceptors(Outer)
    class Wrapped {}
    const before = () => undefined;
    const after = () => undefined;
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [Outer, CacheInterceptorDelegate], before);
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [CacheInterceptorDelegate, Outer], after);
    expect(hasOuterInterceptors(Plain, after, false)).toBe(false);
    expect(hasOuterInterceptors(Plain, before, false)).toBe(true);
    expect(hasOuterInterceptors(Plain, after, true)).toBe(true);
    expect(hasOuterInterceptors(Wrapped, after, false)).toBe(true);
    // a route served from its handler has no delegate: every interceptor it has runs around it
    const served = () => undefined;
    expect(hasOuterInterceptors(Plain, served, false)).toBe(false);
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [Outer], served);
    expect(hasOuterInterceptors(Plain, served, false)).toBe(true);
  });

  it('POST is never read from the cache; a request with credentials bypasses unless the route has a principal', async () => {
    expect(await call('POST', '/users/7', 'findOne')).toMatchObject({ ran: true, xCache: 'BYPASS' });
    await call('GET', '/users/7', 'findOne');
    expect(await call('GET', '/users/7', 'findOne', { headers: { authorization: 'Bearer a' } })).toMatchObject({
      ran: true,
      xCache: 'BYPASS',
    });
    expect(await call('GET', '/users/7', 'findOne', { headers: { cookie: 'sid=1' } })).toMatchObject({
      ran: true,
      xCache: 'BYPASS',
    });
    await call('GET', '/users/me', 'me', {
      headers: { 'x-user': 'ann', authorization: 'Bearer ann' },
      body: { id: 'ann' },
    });
    expect(
      await call('GET', '/users/me', 'me', {
        headers: { 'x-user': 'bob', authorization: 'Bearer bob' },
        body: { id: 'bob' },
      }),
    ).toMatchObject({ ran: true, xCache: 'MISS' });
    expect(
      await call('GET', '/users/me', 'me', { headers: { 'x-user': 'ann', authorization: 'Bearer ann' } }),
    ).toMatchObject({ ran: false, body: '{"id":"ann"}' });
  });

  it('non-2xx, Cache-Control private and Set-Cookie responses are answered but not stored (X-Cache: BYPASS)', async () => {
    const responses: Array<{ status?: number; responseHeaders?: Record<string, string> }> = [
      { status: 404 },
      { responseHeaders: { 'Cache-Control': 'private' } },
      { responseHeaders: { 'Set-Cookie': 'a=b' } },
    ];
    for (const [i, options] of responses.entries()) {
      expect(await call('GET', `/users/${i}`, 'findOne', options)).toMatchObject({ ran: true, xCache: 'BYPASS' });
      expect(await call('GET', `/users/${i}`, 'findOne')).toMatchObject({ ran: true });
    }
  });

  it("a hit carries the stored response's Vary header", async () => {
    await call('GET', '/users/9', 'findOne', {
      responseHeaders: { Vary: 'Accept-Language' },
      headers: { 'accept-language': 'fr' },
    });
    expect(await call('GET', '/users/9', 'findOne', { headers: { 'accept-language': 'fr' } })).toMatchObject({
      ran: false,
      xCache: 'HIT',
      vary: 'accept-language',
    });
  });
});
