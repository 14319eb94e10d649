import {
  type CallHandler,
  Controller,
  type ExecutionContext,
  Get,
  Header,
  Injectable,
  type INestApplication,
  type NestInterceptor,
  Param,
  Put,
  Query,
  UseInterceptors,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { map, type Observable } from 'rxjs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CacheEvict,
  Cacheable,
  CacheInterceptor,
  MemcachedCache,
  MemcachedModule,
  type MemcachedModuleExtras,
  MemcachedTestingModule,
} from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

// A @nestjs/cache-manager user's habit: binding CacheInterceptor themselves, globally or on a
// controller. It caches that scope's GET routes by URL; a route with its own decorators is served
// once, by them. Every request has a short deadline: a hang fails the test instead of timing out.
const DEADLINE = 3000;

/** No cache decorators: cached by URL wherever a CacheInterceptor is bound. */
@Controller('plain')
class PlainController {
  calls = 0;

  @Get(':id')
  get(@Param('id') id: string, @Query() query: Record<string, string>) {
    this.calls++;
    return { id, query, call: this.calls };
  }

  @Put(':id')
  put(@Param('id') id: string) {
    this.calls++;
    return { put: id };
  }

  @Get(':id/private')
  @Header('Cache-Control', 'private')
  personal(@Param('id') id: string) {
    this.calls++;
    return { id, call: this.calls };
  }
}

/** Its own decorators, with their own namespace and TTL. */
@Controller('decorated')
class DecoratedController {
  calls = 0;

  @Get(':id')
  @Cacheable({ namespace: 'decorated', ttl: 120 })
  get(@Param('id') id: string) {
    this.calls++;
    return { id, call: this.calls };
  }

  @Put(':id')
  @CacheEvict({ namespace: 'decorated' })
  put(@Param('id') id: string) {
    return { put: id };
  }
}

/** Bound on the controller (and, in the global app, globally too). */
@Controller('scoped')
@UseInterceptors(CacheInterceptor)
class ScopedController {
  calls = 0;

  @Get(':id')
  get(@Param('id') id: string) {
    this.calls++;
    return { id, call: this.calls };
  }

  @Put(':id')
  @CacheEvict() // the path's entry in the controller's namespace: what the bound interceptor cached
  put(@Param('id') id: string) {
    return { put: id };
  }
}

/** One route inherited by two controllers: each keeps its own entries, in its own namespace. */
class CrudController {
  @Get(':id')
  get(@Param('id') id: string) {
    return { kind: this.constructor.name, id };
  }
}

@Controller('crud-users')
class CrudUsersController extends CrudController {}

@Controller('crud-orders')
class CrudOrdersController extends CrudController {}

/** An interceptor of the app around everything, as response envelopes are. */
@Injectable()
class EnvelopeInterceptor implements NestInterceptor {
  intercept(_: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data) => ({ data })));
  }
}

/** A subclass given to the module: decorated routes stay in Nest's chain (no route-handler path). */
@Injectable()
class ChainInterceptor extends CacheInterceptor {}

type Adapter = () => ExpressAdapter | FastifyAdapter;

async function start(
  adapter: ExpressAdapter | FastifyAdapter,
  memcached: { daemon?: MemcachedDaemon; extras?: MemcachedModuleExtras },
  global: boolean,
  envelope = false,
): Promise<INestApplication> {
  const providers = [
    ...(global ? [{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }] : []),
    ...(envelope ? [{ provide: APP_INTERCEPTOR, useClass: EnvelopeInterceptor }] : []),
  ];
  const cacheModule = memcached.daemon
    ? MemcachedModule.forRoot({
        isGlobal: true,
        logger: false,
        ttl: 60,
        servers: memcached.daemon.address,
        ...memcached.extras,
      })
    : MemcachedTestingModule.forRoot({ ttl: 60 });
  const moduleRef = await Test.createTestingModule({
    imports: [cacheModule],
    controllers: global
      ? [PlainController, DecoratedController, ScopedController, CrudUsersController, CrudOrdersController]
      : [ScopedController],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication(adapter, { logger: false });
  await app.init();
  if (adapter instanceof FastifyAdapter) await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

const settle = () => sleep(20);

describe.each<[string, Adapter, MemcachedModuleExtras]>([
  ['Express, route-handler path', () => new ExpressAdapter(), {}],
  [
    'Express, interceptor chain (a module interceptor subclass)',
    () => new ExpressAdapter(),
    { interceptor: ChainInterceptor },
  ],
  ['Fastify', () => new FastifyAdapter(), {}],
])('CacheInterceptor bound by the app, %s', (_, adapter, extras) => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  const get = (path: string) => request(app.getHttpServer()).get(path).timeout(DEADLINE);

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    app = await start(adapter(), { daemon, extras }, true);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.stop();
  });

  it('caches a GET route without decorators by URL: MISS, then HIT without calling the handler', async () => {
    const plain = app.get(PlainController);
    const first = await get('/plain/1');
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    await settle();
    const second = await get('/plain/1');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toStrictEqual(first.body);
    expect(plain.calls).toBe(1);
  });

  it('the sorted query string selects a variant; another query is another entry', async () => {
    const plain = app.get(PlainController);
    const before = plain.calls;
    expect((await get('/plain/2?b=2&a=1')).headers['x-cache']).toBe('MISS');
    await settle();
    const same = await get('/plain/2?a=1&b=2');
    expect(same.headers['x-cache']).toBe('HIT');
    expect(same.body.query).toStrictEqual({ a: '1', b: '2' });
    expect((await get('/plain/2?a=9')).headers['x-cache']).toBe('MISS');
    expect(plain.calls).toBe(before + 2);
  });

  it('the HTTP safety rules hold: credentials and cookies bypass, private responses are not stored', async () => {
    const plain = app.get(PlainController);
    const before = plain.calls;
    const authorized = await request(app.getHttpServer())
      .get('/plain/3')
      .set('Authorization', 'Bearer x')
      .timeout(DEADLINE);
    expect(authorized.headers['x-cache']).toBe('BYPASS');
    const cookie = await request(app.getHttpServer()).get('/plain/3').set('Cookie', 'sid=1').timeout(DEADLINE);
    expect(cookie.headers['x-cache']).toBe('BYPASS');
    await get('/plain/3/private');
    await settle();
    expect((await get('/plain/3/private')).headers['x-cache']).not.toBe('HIT');
    expect(plain.calls).toBe(before + 4);
  });

  it('a route marked private or no-store before its handler runs (@Header) is neither read nor stored: a bypass', async () => {
    const cache = app.get(MemcachedCache);
    const before = cache.stats().PlainController;
    for (let i = 0; i < 2; i++) expect((await get('/plain/6/private')).headers['x-cache']).toBe('BYPASS');
    const after = cache.stats().PlainController;
    expect(after.bypasses - before.bypasses).toBe(2);
    expect([after.misses - before.misses, after.hits - before.hits]).toStrictEqual([0, 0]);
  });

  it('a PUT route without decorators answers and is never cached', async () => {
    const plain = app.get(PlainController);
    const before = plain.calls;
    const put = () => request(app.getHttpServer()).put('/plain/4').timeout(DEADLINE);
    expect((await put()).body).toStrictEqual({ put: '4' });
    expect((await put()).headers['x-cache']).toBeUndefined();
    expect(plain.calls).toBe(before + 2);
  });

  it('a @Cacheable route is served once, by its own namespace and TTL; @CacheEvict evicts it', async () => {
    const decorated = app.get(DecoratedController);
    const cache = app.get(MemcachedCache);
    expect((await get('/decorated/1')).headers['x-cache']).toBe('MISS');
    await settle();
    expect((await get('/decorated/1')).headers['x-cache']).toBe('HIT');
    expect(decorated.calls).toBe(1);
    const stats = cache.stats();
    expect(stats.decorated).toMatchObject({ hits: 1, misses: 1, fills: 1 });
    expect(stats.DecoratedController).toBeUndefined();
    await request(app.getHttpServer()).put('/decorated/1').timeout(DEADLINE);
    expect((await get('/decorated/1')).headers['x-cache']).toBe('MISS');
    expect(decorated.calls).toBe(2);
  });

  it("a route inherited by two controllers is cached in each controller's own namespace", async () => {
    const cache = app.get(MemcachedCache);
    expect((await get('/crud-users/1')).body).toStrictEqual({ kind: 'CrudUsersController', id: '1' });
    expect((await get('/crud-orders/1')).body).toStrictEqual({ kind: 'CrudOrdersController', id: '1' });
    await settle();
    expect((await get('/crud-orders/1')).headers['x-cache']).toBe('HIT');
    expect(cache.stats().CrudUsersController).toMatchObject({ misses: 1, hits: 0 });
    expect(cache.stats().CrudOrdersController).toMatchObject({ misses: 1, hits: 1 });
  });

  it('bound both globally and on the controller, a route is cached once; evicting its path evicts it', async () => {
    const scoped = app.get(ScopedController);
    const cache = app.get(MemcachedCache);
    expect((await get('/scoped/1')).headers['x-cache']).toBe('MISS');
    await settle();
    expect((await get('/scoped/1')).headers['x-cache']).toBe('HIT');
    expect(scoped.calls).toBe(1);
    expect(cache.stats().ScopedController).toMatchObject({ hits: 1, misses: 1, fills: 1 });
    await request(app.getHttpServer()).put('/scoped/1').timeout(DEADLINE);
    expect((await get('/scoped/1')).headers['x-cache']).toBe('MISS');
    expect(scoped.calls).toBe(2);
  });
});

describe('CacheInterceptor bound on one controller only (@UseInterceptors)', () => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    app = await start(new ExpressAdapter(), { daemon }, false);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.stop();
  });

  it("caches the controller's GET routes by URL", async () => {
    const get = () => request(app.getHttpServer()).get('/scoped/9').timeout(DEADLINE);
    expect((await get()).headers['x-cache']).toBe('MISS');
    await settle();
    expect((await get()).headers['x-cache']).toBe('HIT');
    expect(app.get(ScopedController).calls).toBe(1);
  });
});

describe('CacheInterceptor bound globally under MemcachedTestingModule, with an envelope interceptor', () => {
  let app: INestApplication;
  const get = (path: string) => request(app.getHttpServer()).get(path).timeout(DEADLINE);

  beforeAll(async () => {
    app = await start(new ExpressAdapter(), {}, true, true);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('every route answers; a hit is what the miss was, inside the envelope', async () => {
    const miss = await get('/plain/5');
    expect(miss.headers['x-cache']).toBe('MISS');
    await settle();
    const hit = await get('/plain/5');
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.body).toStrictEqual(miss.body);
    const decorated = await get('/decorated/5');
    expect(decorated.body.data).toMatchObject({ id: '5', call: 1 });
    await settle();
    expect((await get('/decorated/5')).body).toStrictEqual(decorated.body);
    expect(app.get(DecoratedController).calls).toBe(1);
    expect((await request(app.getHttpServer()).put('/plain/5').timeout(DEADLINE)).status).toBe(200);
  });
});
