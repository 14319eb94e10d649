import {
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  Injectable,
  type INestApplication,
  Logger,
  type NestInterceptor,
  Param,
  ParseIntPipe,
  Post,
  type Provider,
  SetMetadata,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { APP_INTERCEPTOR, Reflector } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { map, type Observable, of } from 'rxjs';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CacheEvict,
  Cacheable,
  CacheInterceptor,
  MemcachedClient,
  MemcachedModule,
  type MemcachedModuleExtras,
} from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { rawEntry } from '../support/text-protocol.js';
import { SERVE_DECORATED } from '../../lib/memcached.constants.js';
import { nestContract } from '../../lib/nest/nest-internals.js';

const ROLES = 'test:roles';

/** Lets a request in when the route names no roles, or the `x-role` header is one of them. */
@Injectable()
class RoleGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const roles = this.reflector.get<string[] | undefined>(ROLES, context.getHandler());
    return roles === undefined || roles.includes(context.switchToHttp().getRequest().headers['x-role']);
  }
}

@Controller('routes')
@UseGuards(RoleGuard)
class RoutesController {
  calls = 0;
  readonly seen: unknown[][] = [];

  @Get('plain/:id')
  @Cacheable({ namespace: 'routes' })
  plain(@Param('id', ParseIntPipe) id: number) {
    this.calls++;
    return { id, call: this.calls };
  }

  @Post('plain/:id')
  @CacheEvict({ namespace: 'routes' })
  touch(@Param('id', ParseIntPipe) id: number) {
    return { touched: id };
  }

  @Get('rest/:id')
  @Cacheable({
    namespace: 'routes',
    key: (context: ExecutionContext) => `rest-${context.switchToHttp().getRequest().params.id}`,
  })
  rest(...args: unknown[]) {
    this.seen.push(args);
    return { args: args.length };
  }

  @Get('admin')
  @SetMetadata(ROLES, ['admin'])
  @Cacheable({ namespace: 'routes', public: true })
  admin() {
    this.calls++;
    return { secret: 'for admins' };
  }

  @Get('numbers')
  @Cacheable({ namespace: 'routes' })
  numbers(): Observable<number[]> {
    this.calls++;
    return of([1], [1, 2]);
  }
}

/** Leaves `?preview` requests out of the cache (a subclass: the module keeps it in Nest's chain). */
@Injectable()
class PreviewAwareInterceptor extends CacheInterceptor {
  protected override isRequestCacheable(context: ExecutionContext): boolean {
    return super.isRequestCacheable(context) && context.switchToHttp().getRequest().query.preview === undefined;
  }
}

/** The response envelope interceptor of Nest's documentation: `{ data }` around whatever the route returns. */
@Injectable()
class EnvelopeInterceptor implements NestInterceptor {
  intercept(_: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data) => ({ data })));
  }
}

@Controller('enveloped')
@UseInterceptors(EnvelopeInterceptor)
class EnvelopedController {
  @Get(':id')
  @Cacheable({ namespace: 'enveloped' })
  get(@Param('id') id: string) {
    return { id };
  }
}

@Controller('inner')
class InnerController {
  // listed below the cache decorator: runs around the cache
  @Get('around/:id')
  @Cacheable({ namespace: 'inner' })
  @UseInterceptors(EnvelopeInterceptor)
  around(@Param('id') id: string) {
    return { id };
  }
}

async function start(
  daemon: MemcachedDaemon,
  adapter: ExpressAdapter | FastifyAdapter,
  extras: MemcachedModuleExtras = {},
  setup: {
    controllers?: Array<new (...args: never[]) => unknown>;
    providers?: Provider[];
    global?: NestInterceptor;
  } = {},
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [MemcachedModule.forRoot({ isGlobal: true, logger: false, servers: daemon.address, ...extras })],
    controllers: setup.controllers ?? [RoutesController],
    providers: setup.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication(adapter, { logger: false });
  if (setup.global) app.useGlobalInterceptors(setup.global);
  await app.init();
  if (adapter instanceof FastifyAdapter) await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

const settle = () => sleep(15);

/** What the decorators' delegate calls when a route runs in Nest's interceptor chain. */
const intercepted = vi.spyOn(
  CacheInterceptor.prototype as unknown as Record<typeof SERVE_DECORATED, CacheInterceptor['intercept']>,
  SERVE_DECORATED,
);

const PLATFORMS = [
  ['Express', () => new ExpressAdapter()],
  ['Fastify', () => new FastifyAdapter()],
] as const;

describe.each([
  [...PLATFORMS[0], PLATFORMS[1]],
  [...PLATFORMS[1], PLATFORMS[0]],
])('cached %s routes are served from the route handler, with no interceptor chain', (_, createAdapter, other) => {
  let daemon: MemcachedDaemon;
  let app: INestApplication;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    app = await start(daemon, createAdapter());
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });
  afterEach(async () => {
    await app.get(MemcachedClient).flush();
    intercepted.mockClear();
  });

  it('a miss, a hit and an eviction behave as through the interceptor, which Nest never calls', async () => {
    const controller = app.get(RoutesController);
    const before = controller.calls;
    const miss = await http().get('/routes/plain/1').expect(200);
    await settle();
    const hit = await http().get('/routes/plain/1').expect(200);
    expect([miss.headers['x-cache'], hit.headers['x-cache']]).toStrictEqual(['MISS', 'HIT']);
    expect(hit.headers['content-type']).toBe(miss.headers['content-type']);
    expect(hit.headers['content-type']).toMatch(/^application\/json/);
    // the pipe ran: the id is a number, in the entry as in the response
    expect(hit.body).toStrictEqual({ id: 1, call: before + 1 });
    expect(hit.text).toBe(miss.text);
    expect(hit.headers.etag).toBe(miss.headers.etag);
    await http().post('/routes/plain/1').expect(201, { touched: 1 });
    expect((await http().get('/routes/plain/1')).headers['x-cache']).toBe('MISS');
    expect(controller.calls).toBe(before + 2);
    // pipes run before a hit too: a bad id never reaches the cache
    await http().get('/routes/plain/x').expect(400);
    expect(intercepted).not.toHaveBeenCalled();
  });

  it("guards run before a hit and see the route's metadata", async () => {
    await http().get('/routes/admin').set('x-role', 'admin').expect(200);
    await settle();
    const hit = await http().get('/routes/admin').set('x-role', 'admin').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    await http().get('/routes/admin').set('x-role', 'guest').expect(403);
    await http().get('/routes/admin').expect(403);
  });

  it('the handler gets exactly its own arguments, and key functions an ExecutionContext', async () => {
    const controller = app.get(RoutesController);
    controller.seen.length = 0;
    await http().get('/routes/rest/7').expect(200, { args: 0 });
    expect(controller.seen).toStrictEqual([[]]);
    await settle();
    expect((await http().get('/routes/rest/7')).headers['x-cache']).toBe('HIT');
    expect(JSON.parse((await rawEntry(daemon.port, '', 'routes', 'rest-7'))!.bytes.toString())).toStrictEqual({
      args: 0,
    });
  });

  it("a handler's Observable is cached by its last value", async () => {
    await http().get('/routes/numbers').expect(200, [1, 2]);
    await settle();
    const hit = await http().get('/routes/numbers').expect(200, [1, 2]);
    expect(hit.headers['x-cache']).toBe('HIT');
  });

  it('a direct call of the method (not through the router) is the method as written', () => {
    const controller = app.get(RoutesController);
    const before = controller.calls;
    expect(controller.plain(5)).toStrictEqual({ id: 5, call: before + 1 });
    expect(controller.rest('a', 'b')).toStrictEqual({ args: 2 });
  });

  it(`the same controller in a ${other[0]} app built afterwards is served from its handler too, with its own arguments`, async () => {
    const second = await start(daemon, other[1]());
    try {
      const controller = second.get(RoutesController);
      const miss = await request(second.getHttpServer()).get('/routes/rest/8').expect(200, { args: 0 });
      await settle();
      const hit = await request(second.getHttpServer()).get('/routes/rest/8').expect(200, { args: 0 });
      expect([miss.headers['x-cache'], hit.headers['x-cache']]).toStrictEqual(['MISS', 'HIT']);
      expect(controller.seen).toStrictEqual([[]]);
      expect(intercepted).not.toHaveBeenCalled();
    } finally {
      await second.close();
    }
  });

  it("a module with a subclassed interceptor keeps it in Nest's chain, so its hooks apply", async () => {
    const custom = await start(daemon, new ExpressAdapter(), { interceptor: PreviewAwareInterceptor });
    try {
      const get = (path: string) => request(custom.getHttpServer()).get(path).expect(200);
      expect((await get('/routes/plain/2')).headers['x-cache']).toBe('MISS');
      await settle();
      expect((await get('/routes/plain/2')).headers['x-cache']).toBe('HIT');
      expect((await get('/routes/plain/2?preview=1')).headers['x-cache']).toBe('BYPASS');
      expect(intercepted).toHaveBeenCalledTimes(3);
    } finally {
      await custom.close();
    }
  });
});

describe("Fastify's inject(): the request it makes is served from the route handler too", () => {
  let daemon: MemcachedDaemon;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    app = (await start(daemon, new FastifyAdapter())) as NestFastifyApplication;
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });

  it('a miss then a hit, with its headers, and the handler never gets the extra argument', async () => {
    intercepted.mockClear();
    const controller = app.get(RoutesController);
    controller.seen.length = 0;
    const miss = await app.inject({ method: 'GET', url: '/routes/rest/9' });
    await settle();
    const hit = await app.inject({ method: 'GET', url: '/routes/rest/9' });
    expect([miss.statusCode, hit.statusCode]).toStrictEqual([200, 200]);
    expect([miss.headers['x-cache'], hit.headers['x-cache']]).toStrictEqual(['MISS', 'HIT']);
    expect(hit.headers['content-type']).toMatch(/^application\/json/);
    expect(hit.json()).toStrictEqual({ args: 0 });
    expect(controller.seen).toStrictEqual([[]]);
    expect(intercepted).not.toHaveBeenCalled();
  });
});

describe.each([
  ['Express', () => new ExpressAdapter()],
  ['Fastify', () => new FastifyAdapter()],
])('an interceptor around the cache sees the same value on a hit as on a miss (%s)', (_, createAdapter) => {
  let daemon: MemcachedDaemon;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
  });
  afterAll(async () => {
    await daemon?.kill();
  });

  async function missThenHit(app: INestApplication, path: string) {
    try {
      const miss = await request(app.getHttpServer()).get(path).expect(200);
      await settle();
      const hit = await request(app.getHttpServer()).get(path).expect(200);
      expect([miss.headers['x-cache'], hit.headers['x-cache']]).toStrictEqual(['MISS', 'HIT']);
      return [miss.body, hit.body];
    } finally {
      await app.close();
    }
  }

  it('a global interceptor (useGlobalInterceptors)', async () => {
    const app = await start(
      daemon,
      createAdapter(),
      {},
      { controllers: [InnerController, RoutesController], global: new EnvelopeInterceptor() },
    );
    expect(await missThenHit(app, '/routes/plain/3')).toStrictEqual([
      { data: { id: 3, call: 1 } },
      { data: { id: 3, call: 1 } },
    ]);
  });

  it('a global interceptor (APP_INTERCEPTOR)', async () => {
    const app = await start(
      daemon,
      createAdapter(),
      {},
      { controllers: [RoutesController], providers: [{ provide: APP_INTERCEPTOR, useClass: EnvelopeInterceptor }] },
    );
    expect(await missThenHit(app, '/routes/plain/4')).toStrictEqual([
      { data: { id: 4, call: 1 } },
      { data: { id: 4, call: 1 } },
    ]);
  });

  it("the controller's interceptor, and the route's own listed below the cache decorator", async () => {
    const app = await start(daemon, createAdapter(), {}, { controllers: [EnvelopedController, InnerController] });
    expect(await missThenHit(app, '/enveloped/5')).toStrictEqual([{ data: { id: '5' } }, { data: { id: '5' } }]);
    const again = await start(daemon, createAdapter(), {}, { controllers: [EnvelopedController, InnerController] });
    expect(await missThenHit(again, '/inner/around/6')).toStrictEqual([{ data: { id: '6' } }, { data: { id: '6' } }]);
  });
});

describe('when the route-handler path must not or cannot be used, routes stay in the chain and are cached alike', () => {
  let daemon: MemcachedDaemon;
  const apps: INestApplication[] = [];
  const warned = vi.spyOn(Logger.prototype, 'warn');
  const check = nestContract.check;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    intercepted.mockClear();
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await daemon?.kill();
  });
  afterEach(() => {
    nestContract.check = check;
    intercepted.mockClear();
    warned.mockClear();
  });

  async function missThenHit(extras: MemcachedModuleExtras & { routeHandlers?: boolean }, id: number) {
    const app = await start(daemon, new ExpressAdapter(), extras);
    apps.push(app);
    const first = await request(app.getHttpServer()).get(`/routes/plain/${id}`).expect(200);
    await settle();
    const second = await request(app.getHttpServer()).get(`/routes/plain/${id}`).expect(200);
    expect(second.body).toStrictEqual(first.body);
    return [first.headers['x-cache'], second.headers['x-cache']];
  }

  it('a Nest that no longer writes what the path reads (simulated): one warning naming it, then the chain', async () => {
    expect(check()).toBeUndefined(); // this Nest keeps the contract
    nestContract.check = () => '@Get() path (path)';
    expect(await missThenHit({}, 11)).toStrictEqual(['MISS', 'HIT']);
    expect(intercepted).toHaveBeenCalledTimes(2);
    const warnings = warned.mock.calls.map(([message]) => String(message));
    expect(warnings.filter((m) => m.includes("Nest's interceptor chain"))).toHaveLength(1);
    expect(warnings.find((m) => m.includes("Nest's interceptor chain"))).toContain('@Get() path (path)');
  });

  it('routeHandlers: false keeps every route in the chain, without a warning', async () => {
    expect(await missThenHit({ routeHandlers: false }, 12)).toStrictEqual(['MISS', 'HIT']);
    expect(intercepted).toHaveBeenCalledTimes(2);
    expect(warned.mock.calls.some(([m]) => String(m).includes('interceptor chain'))).toBe(false);
  });
});
