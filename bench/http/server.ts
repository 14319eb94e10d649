// One HTTP server variant for the benchmarks: GET /users/:id over a 5 ms timer "database".
// VARIANT: trivial | trivial-intercepted | nocache | nocache-intercepted | handwritten | handwritten-intercepted | nest-cache-manager | ours-controller | ours-service | ours-getorset
//   | ours-controller-near | ours-service-near (near cache on, NATS bus at BUS_URL, default nats://127.0.0.1:4222)
//   | ours-controller-prometheus | ours-service-prometheus (MemcachedPrometheusModule registered, as production runs it)
//   | trivial-deferred (the trivial route answered on the next turn: what batching answers is worth)
//   | ours-controller-cluster (3 memcached nodes at MEMCACHED_CLUSTER, host:port,host:port,...)
//   | ours-controller-tags1 | ours-controller-tags3 | ours-controller-near-tags3 (the route's entries carry 1 or 3 tags)
//   | <variant>-otel (the OpenTelemetry SDK with HTTP spans and nestjs-memcached/otel, spans batched to
//   an exporter that drops them) | <variant>-otelsdk (the same SDK and HTTP spans, without nestjs-memcached/otel)
//   Any variant with `@fastify` after it runs on Fastify (FastifyAdapter) instead of Express.
// SIZE: 1k | 100k; PORT; MEMCACHED (host:port). GET /__stats reports database calls and CPU time.
import 'reflect-metadata';
import { createRequire } from 'node:module';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import {
  type CallHandler,
  Controller,
  type DynamicModule,
  type ExecutionContext,
  Get,
  Injectable,
  Module,
  type NestInterceptor,
  Param,
  UseInterceptors,
} from '@nestjs/common';
import type { Observable } from 'rxjs';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { KeyvMemcache } from '@keyv/memcache';
import { Keyv } from 'keyv';
import memjs from 'memjs';
import { Registry } from 'prom-client';
import { Cacheable, MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedPrometheusModule } from '../../lib/prometheus/index.js';
import { catalog100k, user1k } from '../support/payloads.js';

const [named, platform = 'express'] = (process.env.VARIANT ?? 'trivial').split('@');
const otel = /-otel(sdk)?$/.exec(named)?.[0].slice(1);
const variant = otel === undefined ? named : named.slice(0, -otel.length - 1);
const size = process.env.SIZE ?? '1k';
const memcached = process.env.MEMCACHED ?? '127.0.0.1:11211';
const dbDelay = Number(process.env.DB_DELAY_MS ?? 5);
const catalog = catalog100k();
const payload = (id: string) => (size === '100k' ? { ...catalog, id } : user1k(Number(id)));
const stats = { dbCalls: 0 };

async function db(id: string) {
  stats.dbCalls++;
  await new Promise((resolve) => setTimeout(resolve, dbDelay));
  return payload(id);
}

@Controller()
class StatsController {
  @Get('__stats')
  stats() {
    const cpu = process.cpuUsage();
    return { ...stats, cpuMicros: cpu.user + cpu.system, logLines: logLines, client: ourClient?.stats() };
  }
}

@Controller('users')
class TrivialController {
  private readonly constant = payload('1');
  @Get(':id')
  find() {
    return this.constant;
  }
}

@Controller('users')
class TrivialDeferredController {
  private readonly constant = payload('1');
  @Get(':id')
  async find() {
    await new Promise((resolve) => setImmediate(resolve));
    return this.constant;
  }
}

@Controller('users')
class NoCacheController {
  @Get(':id')
  find(@Param('id') id: string) {
    return db(id);
  }
}

const raw = memjs.Client.create(memcached, { logger: { log: () => logLines++ } } as never);
@Controller('users')
class HandwrittenController {
  @Get(':id')
  async find(@Param('id') id: string) {
    const key = `user:${id}`;
    try {
      const { value } = await raw.get(key);
      if (value) return JSON.parse(value.toString());
    } catch {
      // fall through to the database
    }
    const row = await db(id);
    raw.set(key, JSON.stringify(row), { expires: 60 }).catch(() => undefined);
    return row;
  }
}

/** Does nothing: what any interceptor on a route costs in Nest's pipeline. */
@Injectable()
class NoopInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

/** The trivial route behind a no-op interceptor: the floor for any hit served by an interceptor. */
@Controller('users')
class TrivialInterceptedController extends TrivialController {
  @Get(':id')
  @UseInterceptors(NoopInterceptor)
  override find() {
    return super.find();
  }
}

/** The hand-written route behind a no-op interceptor: the floor for any interceptor-based cache. */
@Controller('users')
class HandwrittenInterceptedController extends HandwrittenController {
  @Get(':id')
  @UseInterceptors(NoopInterceptor)
  override find(@Param('id') id: string) {
    return super.find(id);
  }
}

/** No cache behind a no-op interceptor: the floor for an interceptor-based cache that is down. */
@Controller('users')
class NoCacheInterceptedController {
  @Get(':id')
  @UseInterceptors(NoopInterceptor)
  find(@Param('id') id: string) {
    return db(id);
  }
}

@Controller('users')
class NestCacheController {
  @Get(':id')
  @UseInterceptors(CacheInterceptor)
  find(@Param('id') id: string) {
    return db(id);
  }
}

@Controller('users')
class OursController {
  @Get(':id')
  @Cacheable({ namespace: 'users', ttl: 60 })
  find(@Param('id') id: string) {
    return db(id);
  }
}

const idOf = (context: ExecutionContext) => context.switchToHttp().getRequest().params.id as string;

/** The controller route with one tag, read with every hit (`-tags1`). */
@Controller('users')
class OursTags1Controller {
  @Get(':id')
  @Cacheable({ namespace: 'users', ttl: 60, tags: (context: ExecutionContext) => [`user:${idOf(context)}`] })
  find(@Param('id') id: string) {
    return db(id);
  }
}

/** The controller route with three tags (`-tags3`). */
@Controller('users')
class OursTags3Controller {
  @Get(':id')
  @Cacheable({
    namespace: 'users',
    ttl: 60,
    tags: (context: ExecutionContext) => [`user:${idOf(context)}`, `team:${Number(idOf(context)) % 5}`, 'org:1'],
  })
  find(@Param('id') id: string) {
    return db(id);
  }
}

@Injectable()
class UsersService {
  @Cacheable({ namespace: 'users', key: (id: string) => id, ttl: 60 })
  find(id: string) {
    return db(id);
  }
}

@Controller('users')
class OursServiceController {
  constructor(private readonly users: UsersService) {}
  @Get(':id')
  find(@Param('id') id: string) {
    return this.users.find(id);
  }
}

@Controller('users')
class OursGetOrSetController {
  constructor(private readonly cache: MemcachedClient) {}
  @Get(':id')
  find(@Param('id') id: string) {
    return this.cache.getOrSet(`user:${id}`, () => db(id), { ttl: 60 });
  }
}

let logLines = 0;
let ourClient: MemcachedClient | undefined;
const countingLogger = {
  log: () => logLines++,
  error: () => logLines++,
  warn: () => logLines++,
  debug: () => undefined,
  verbose: () => undefined,
};

function appModule(): DynamicModule {
  const ours = MemcachedModule.forRoot({ isGlobal: true, servers: memcached, logger: countingLogger });
  const oursCluster = MemcachedModule.forRoot({
    isGlobal: true,
    servers: process.env.MEMCACHED_CLUSTER ?? memcached,
    logger: countingLogger,
  });
  const oursNear = MemcachedModule.forRoot({
    isGlobal: true,
    servers: memcached,
    logger: countingLogger,
    nearCache: { ttl: 60 },
    bus: {
      transport: 'nats',
      url: process.env.BUS_URL ?? 'nats://127.0.0.1:4222',
      channel: `nmc-bench-${process.pid}`,
    },
  });
  const table: Record<string, DynamicModule> = {
    trivial: { module: AppModule, controllers: [StatsController, TrivialController] },
    'trivial-deferred': { module: AppModule, controllers: [StatsController, TrivialDeferredController] },
    'trivial-intercepted': { module: AppModule, controllers: [StatsController, TrivialInterceptedController] },
    nocache: { module: AppModule, controllers: [StatsController, NoCacheController] },
    'nocache-intercepted': { module: AppModule, controllers: [StatsController, NoCacheInterceptedController] },
    handwritten: { module: AppModule, controllers: [StatsController, HandwrittenController] },
    'handwritten-intercepted': { module: AppModule, controllers: [StatsController, HandwrittenInterceptedController] },
    'nest-cache-manager': {
      module: AppModule,
      imports: [CacheModule.register({ stores: [new Keyv({ store: new KeyvMemcache(memcached) })], ttl: 60_000 })],
      controllers: [StatsController, NestCacheController],
    },
    'ours-controller': { module: AppModule, imports: [ours], controllers: [StatsController, OursController] },
    'ours-service': {
      module: AppModule,
      imports: [ours],
      controllers: [StatsController, OursServiceController],
      providers: [UsersService],
    },
    'ours-getorset': { module: AppModule, imports: [ours], controllers: [StatsController, OursGetOrSetController] },
    'ours-controller-prometheus': {
      module: AppModule,
      imports: [ours, MemcachedPrometheusModule.forRoot({ registry: new Registry() })],
      controllers: [StatsController, OursController],
    },
    'ours-service-prometheus': {
      module: AppModule,
      imports: [ours, MemcachedPrometheusModule.forRoot({ registry: new Registry() })],
      controllers: [StatsController, OursServiceController],
      providers: [UsersService],
    },
    'ours-controller-near': { module: AppModule, imports: [oursNear], controllers: [StatsController, OursController] },
    'ours-controller-tags1': {
      module: AppModule,
      imports: [ours],
      controllers: [StatsController, OursTags1Controller],
    },
    'ours-controller-tags3': {
      module: AppModule,
      imports: [ours],
      controllers: [StatsController, OursTags3Controller],
    },
    'ours-controller-near-tags3': {
      module: AppModule,
      imports: [oursNear],
      controllers: [StatsController, OursTags3Controller],
    },
    'ours-controller-cluster': {
      module: AppModule,
      imports: [oursCluster],
      controllers: [StatsController, OursController],
    },
    'ours-service-near': {
      module: AppModule,
      imports: [oursNear],
      controllers: [StatsController, OursServiceController],
      providers: [UsersService],
    },
  };
  const definition = table[variant];
  if (!definition) throw new Error(`unknown VARIANT ${variant}`);
  return definition;
}

@Module({})
class AppModule {}

// a clean exit lets `node --cpu-prof` write its profile
process.on('SIGTERM', () => process.exit(0));

/** The OpenTelemetry SDK as production runs it: HTTP server spans, a batching processor, and (`otel`) ours. */
async function startOtel(withOurs: boolean) {
  const { context, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { registerInstrumentations } = await import('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  const { MemcachedInstrumentation } = await import('../../lib/otel/index.js');
  const dropped = {
    export: (_: unknown, done: (r: { code: number }) => void) => done({ code: 0 }),
    shutdown: async () => {},
  };
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropped)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  registerInstrumentations({
    instrumentations: withOurs
      ? [new HttpInstrumentation(), new MemcachedInstrumentation()]
      : [new HttpInstrumentation()],
    tracerProvider: provider,
  });
  // the HTTP instrumentation patches `http` when it is next required
  createRequire(import.meta.url)('http');
}

async function main() {
  if (otel !== undefined) await startOtel(otel === 'otel');
  if (platform !== 'express' && platform !== 'fastify') throw new Error(`unknown platform ${platform}`);
  const app =
    platform === 'fastify'
      ? await NestFactory.create(appModule(), new FastifyAdapter(), { logger: false })
      : await NestFactory.create(appModule(), { logger: false });
  if (variant.startsWith('ours')) ourClient = app.get(MemcachedClient);
  await app.listen(Number(process.env.PORT ?? 3300), '127.0.0.1');
  process.stdout.write('READY\n');
}

void main();
