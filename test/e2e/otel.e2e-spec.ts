import { createRequire } from 'node:module';
import { randomBytes, randomUUID } from 'node:crypto';
import { Controller, Get, type INestApplication, Param, Post, Req } from '@nestjs/common';
import { context, metrics, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Cacheable, MemcachedClient } from '../../lib/index.js';
import { MemcachedInstrumentation } from '../../lib/otel/index.js';
import {
  busPublishChannel,
  busReceiveChannel,
  cacheChannel,
  commandChannel,
  logChannel,
} from '../../lib/tracing/channels.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startMemcachedApp } from '../support/nest-app.js';
import { startNats, type TestServer } from '../support/servers.js';
import { startWorker } from '../support/workers.js';

const writerWorker = new URL('./workers/otel-writer.ts', import.meta.url);

// the SDK as an app sets it up: a context manager, a tracer provider, a meter provider, HTTP spans
const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(tracerProvider);
metrics.setGlobalMeterProvider(meterProvider);
const memcachedTracing = new MemcachedInstrumentation();
registerInstrumentations({
  instrumentations: [new HttpInstrumentation(), memcachedTracing],
  tracerProvider,
  meterProvider,
});
// the HTTP instrumentation patches `http` when it is next required (Nest's server is made after)
createRequire(import.meta.url)('http');

const tracer = trace.getTracer('test');
/** Runs `work` inside a span of the test's own, as a request or a job would be. */
function inSpan<T>(name: string, work: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, async (span) => {
    try {
      return await work(span);
    } finally {
      span.end();
    }
  });
}

const finished = () => spans.getFinishedSpans();
const named = (name: string) => finished().filter((span) => span.name === name);
const memcachedSpans = () => finished().filter((span) => span.attributes['db.system.name'] === 'memcached');
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const childrenOf = (parent: ReadableSpan, of: ReadableSpan[]) =>
  of.filter((span) => parentOf(span) === parent.spanContext().spanId);

let loads = 0;
@Controller('users')
class UsersController {
  @Get(':id')
  @Cacheable({ namespace: 'users', ttl: 60 })
  find(@Param('id') id: string) {
    loads++;
    return { id, name: `user ${id}` };
  }

  @Get('fresh/:id')
  @Cacheable({ namespace: 'users', condition: () => false })
  fresh(@Param('id') id: string) {
    return { id, fresh: true };
  }

  /** Sets a cookie as it answers: a response the cache must not keep. */
  @Get('session/:id')
  @Cacheable({ namespace: 'users' })
  session(@Param('id') id: string, @Req() req: { res: { setHeader(name: string, value: string): void } }) {
    req.res.setHeader('Set-Cookie', `sid=${id}`);
    return { id };
  }

  @Post(':id')
  @Cacheable({ namespace: 'users' })
  touch(@Param('id') id: string) {
    return { id, touched: true };
  }
}

describe('OpenTelemetry: spans and metrics from nestjs-memcached/otel', () => {
  let app: INestApplication;
  let daemon: MemcachedDaemon;
  let nats: TestServer;
  const clients: MemcachedClient[] = [];
  const client = (options: Partial<ConstructorParameters<typeof MemcachedClient>[0]> = {}) => {
    const made = new MemcachedClient({ servers: daemon.address, logger: false, ...options });
    clients.push(made);
    return made;
  };

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp({ controllers: [UsersController] }));
    await app.listen(0, '127.0.0.1');
    nats = await startNats();
  });
  afterAll(async () => {
    for (const made of clients) made.close();
    await app?.close();
    await daemon?.kill();
    await nats?.stop();
  });
  beforeEach(() => spans.reset());

  it('one HTTP request: the server span, the cache span with its outcome, memcached commands as its children', async () => {
    const id = randomUUID().slice(0, 8);
    const server = app.getHttpServer();
    await request(server).get(`/users/${id}`).expect(200).expect('x-cache', 'MISS');
    await sleep(50); // the fill is written behind the response
    await request(server).get(`/users/${id}`).expect(200).expect('x-cache', 'HIT');
    expect(loads).toBeGreaterThan(0);

    const servers = finished().filter((span) => span.kind === SpanKind.SERVER);
    expect(servers).toHaveLength(2);
    const calls = named('cache.get');
    expect(calls).toHaveLength(2);
    for (const [i, call] of calls.entries()) {
      // each cache span is a child of its request's server span, in the same trace
      expect(parentOf(call)).toBe(servers[i].spanContext().spanId);
      expect(call.spanContext().traceId).toBe(servers[i].spanContext().traceId);
      expect(call.kind).toBe(SpanKind.INTERNAL);
      expect(call.attributes['nestjs_memcached.namespace']).toBe('users');
      // keys can hold user data: off by default
      expect(call.attributes['cache.key']).toBeUndefined();
    }
    expect(calls[0].attributes).toMatchObject({ 'cache.hit': false, 'nestjs_memcached.outcome': 'MISS' });
    expect(calls[1].attributes).toMatchObject({ 'cache.hit': true, 'nestjs_memcached.outcome': 'HIT' });

    // the hit's read is one memcached command span under the cache span, by the conventions
    const reads = childrenOf(calls[1], memcachedSpans());
    expect(reads.length).toBeGreaterThanOrEqual(1);
    for (const read of reads) {
      expect(read.kind).toBe(SpanKind.CLIENT);
      // the namespace's generation and the entry in one write: a batch of two gets
      expect(read.name).toBe(`BATCH get 127.0.0.1:${daemon.port}`);
      expect(read.attributes).toMatchObject({
        'db.system.name': 'memcached',
        'db.operation.name': 'BATCH get',
        'db.operation.batch.size': 2,
        'server.address': '127.0.0.1',
        'server.port': daemon.port,
      });
    }
    // the miss read, then filled: a set among its commands (the fill may land after the call ends)
    const missCommands = memcachedSpans().filter(
      (span) => span.spanContext().traceId === calls[0].spanContext().traceId,
    );
    expect(missCommands.map((span) => span.attributes['db.operation.name'])).toEqual(
      expect.arrayContaining([expect.stringMatching(/get$/), expect.stringMatching(/^(set|add)$/)]),
    );
    // no memcached span outside a cache span's trace
    for (const span of memcachedSpans()) {
      expect(calls.map((call) => call.spanContext().traceId)).toContain(span.spanContext().traceId);
    }
  });

  it('a call that goes around the cache is a BYPASS span, with no memcached command under it', async () => {
    await request(app.getHttpServer()).get('/users/fresh/7').expect(200).expect('x-cache', 'BYPASS');
    const [call] = named('cache.get');
    expect(call.attributes).toMatchObject({ 'nestjs_memcached.outcome': 'BYPASS', 'cache.hit': false });
    expect(childrenOf(call, memcachedSpans())).toEqual([]);
  });

  it('every request to a cached route gets its span, with the outcome its X-Cache header says', async () => {
    const server = app.getHttpServer();
    const outcomes = async (send: () => request.Test) => {
      spans.reset();
      const res = await send();
      const calls = named('cache.get');
      expect(calls).toHaveLength(1);
      return [res.headers['x-cache'], calls[0].attributes['nestjs_memcached.outcome']];
    };
    // a response the cache must not keep (it sets a cookie), and a request it may not read (a POST)
    expect(await outcomes(() => request(server).get('/users/session/1').expect(200))).toEqual(['BYPASS', 'BYPASS']);
    expect(await outcomes(() => request(server).post('/users/1').expect(201))).toEqual(['BYPASS', 'BYPASS']);
    // its node known down: served by the handler, a miss
    const down = await startMemcachedApp({ controllers: [UsersController] }, { timeout: 100, breakerCooldown: 60_000 });
    try {
      await down.daemon.kill();
      const other = down.app.getHttpServer();
      for (let i = 0; i < 5; i++) await request(other).get(`/users/${i}`).expect(200);
      expect(await outcomes(() => request(other).get('/users/9').expect(200))).toEqual(['MISS', 'MISS']);
      expect(memcachedSpans()).toEqual([]);
    } finally {
      await down.app.close();
    }
  });

  it('no span without an active parent by default; the duration histogram is recorded all the same', async () => {
    const a = client();
    await a.getOrSet(`orphan-${randomUUID()}`, async () => 'v', { ttl: 60 });
    await a.get('orphan');
    expect(finished()).toEqual([]);
    await reader.forceFlush();
    const metric = metricExporter
      .getMetrics()
      .flatMap((resource) => resource.scopeMetrics)
      .flatMap((scope) => scope.metrics)
      .find((found) => found.descriptor.name === 'db.client.operation.duration');
    expect(metric?.descriptor.unit).toBe('s');
    const points = metric!.dataPoints as Array<{
      attributes: Record<string, unknown>;
      value: { count: number; boundaries?: number[] };
    }>;
    const gets = points.find((point) => point.attributes['db.operation.name'] === 'get');
    expect(gets?.attributes).toMatchObject({ 'db.system.name': 'memcached', 'server.port': daemon.port });
    expect(gets!.value.count).toBeGreaterThan(0);
  });

  it('a multi-get is one command span with its batch size; keys are recorded only when asked, hashed or raw', async () => {
    const a = client();
    await inSpan('job', () => a.getMulti(['a', 'b', 'c']));
    const [multi] = memcachedSpans();
    // separate requests in one write: a batch, by the conventions
    expect(multi.name).toBe(`BATCH get 127.0.0.1:${daemon.port}`);
    expect(multi.attributes).toMatchObject({ 'db.operation.name': 'BATCH get', 'db.operation.batch.size': 3 });

    memcachedTracing.setConfig({ keys: 'hashed' });
    try {
      spans.reset();
      await inSpan('job', () => a.getOrSet('user:7', async () => 'v', { namespace: 'profiles', tags: ['user:7'] }));
      const [call] = named('cache.get');
      expect(call.attributes['cache.key']).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(JSON.stringify(call.attributes)).not.toContain('user:7');
      memcachedTracing.setConfig({ keys: 'raw' });
      spans.reset();
      await inSpan('job', () => a.getOrSet('user:7', async () => 'v', { namespace: 'profiles', tags: ['user:7'] }));
      expect(named('cache.get')[0].attributes).toMatchObject({
        'cache.key': 'user:7',
        'nestjs_memcached.tags': ['user:7'],
      });
    } finally {
      memcachedTracing.setConfig({});
    }
    expect(() => memcachedTracing.setConfig({ keys: 'plain' as never })).toThrow(/"keys": "plain"/);
  });

  it('a command memcached refuses is a failed span with its status code, and so is its histogram point', async () => {
    // the client lets an item through that memcached (-I 1m) refuses: it answers "too large"
    const lax = client({ maxItemSize: 4 * 1024 * 1024 });
    const value = randomBytes(1536 * 1024).toString('base64');
    await inSpan('job', () => lax.set(`too-big-${randomUUID()}`, value));
    const [set] = memcachedSpans().filter((span) => span.attributes['db.operation.name'] === 'set');
    expect(set.attributes).toMatchObject({ 'db.response.status_code': '0x0003', 'error.type': '0x0003' });
    expect(set.status.code).toBe(SpanStatusCode.ERROR);
    // an answer that is an outcome (not found) is named, not failed
    spans.reset();
    await inSpan('job', () => lax.delete(`absent-${randomUUID()}`));
    const [removal] = memcachedSpans();
    expect(removal.attributes).toMatchObject({ 'db.response.status_code': '0x0001' });
    expect(removal.attributes['error.type']).toBeUndefined();
    expect(removal.status.code).toBe(SpanStatusCode.UNSET);
    await reader.forceFlush();
    const points = metricExporter
      .getMetrics()
      .flatMap((resource) => resource.scopeMetrics)
      .flatMap((scope) => scope.metrics)
      .filter((found) => found.descriptor.name === 'db.client.operation.duration')
      .flatMap((found) => found.dataPoints as Array<{ attributes: Record<string, unknown> }>);
    expect(points.map((point) => point.attributes)).toContainEqual(
      expect.objectContaining({
        'db.operation.name': 'set',
        'error.type': '0x0003',
        'db.response.status_code': '0x0003',
      }),
    );
  });

  it("a miss that waits for another caller's lease shows the wait", async () => {
    const key = `leased-${randomUUID()}`;
    const first = client();
    const second = client();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const filling = first.getOrSet(key, async () => (await released, 'from the first'), { ttl: 60 });
    await sleep(50); // the first caller holds the lease
    const waiting = inSpan('request', () => second.getOrSet(key, async () => 'from the second', { ttl: 60 }));
    await sleep(100);
    release();
    expect(await filling).toBe('from the first');
    expect(await waiting).toBe('from the first');
    const [call] = named('cache.get');
    expect(call.attributes).toMatchObject({ 'nestjs_memcached.lease_waited': true, 'cache.hit': true });
    // its reads while it waited are its children
    expect(childrenOf(call, memcachedSpans()).length).toBeGreaterThanOrEqual(2);
  });

  it("a write in another process and the eviction it causes here: this process's span links to the writer's trace", async () => {
    const channel = `nmc-otel-${randomUUID()}`;
    const here = client({
      keyPrefix: 'svc-a:',
      nearCache: { ttl: 60 },
      bus: { transport: 'nats', url: nats.url, channel, heartbeat: 200 },
    });
    for (let i = 0; i < 100 && !here.stats().bus?.healthy; i++) await sleep(50);
    // a miss, a memcached hit that fills the near cache, then a near hit: no command under it
    for (let i = 0; i < 3; i++) {
      await inSpan('job', () => here.getOrSet('profile', async () => 'old', { namespace: 'profiles' }));
      await sleep(30);
    }
    const nearHit = named('cache.get').at(-1)!;
    expect(nearHit.attributes).toMatchObject({ 'nestjs_memcached.near': true, 'cache.hit': true });
    expect(childrenOf(nearHit, memcachedSpans())).toEqual([]);
    const job = {
      servers: daemon.address,
      keyPrefix: 'svc-a:',
      natsUrl: nats.url,
      channel,
      key: 'profile',
      namespace: 'profiles',
    };
    const { traceId, published } = (await startWorker(writerWorker, job).result) as {
      traceId: string;
      published: number;
    };
    expect(published).toBeGreaterThan(0);
    let received: ReadableSpan | undefined;
    for (let i = 0; i < 100 && !received; i++) {
      await sleep(20);
      received = named('invalidate keys')[0];
    }
    expect(received).toBeDefined();
    expect(received!.kind).toBe(SpanKind.CONSUMER);
    expect(received!.links.map((link) => link.context.traceId)).toEqual([traceId]);
    // its own trace: a bus message never makes a span a child of another process's request
    expect(received!.spanContext().traceId).not.toBe(traceId);
    expect(received!.attributes).toMatchObject({ 'nestjs_memcached.invalidation.kind': 'keys' });
  }, 30_000);

  it("invalidations owed in a request are paid later outside that request's trace", async () => {
    const owing = client({ timeout: 200, retries: 0, breakerCooldown: 100 });
    await owing.set('owed-key', 'old');
    let requestTrace = '';
    // the payments' commands get spans of their own (no parent required here), so they can be seen
    memcachedTracing.setConfig({ requireParentSpan: false });
    try {
      await daemon.pause();
      try {
        await inSpan('request', async (span) => {
          requestTrace = span.spanContext().traceId;
          await expect(owing.delete('owed-key')).rejects.toMatchObject({ name: 'MemcachedError' });
          await expect(owing.invalidateTags(['owed-tag'])).rejects.toMatchObject({ name: 'MemcachedError' });
        });
      } finally {
        daemon.resume();
      }
      for (let i = 0; i < 200 && owing.stats().owed.keys + owing.stats().owed.tags > 0; i++) await sleep(20);
      expect(owing.stats()).toMatchObject({ owed: { keys: 0, tags: 0 }, invalidationsOwed: 2 });
    } finally {
      memcachedTracing.setConfig({});
    }
    const inRequest = memcachedSpans().filter((span) => span.spanContext().traceId === requestTrace);
    const payments = memcachedSpans().filter(
      (span) => span.spanContext().traceId !== requestTrace && span.attributes['db.operation.name'] === 'delete',
    );
    // the request's trace holds what the request sent, and ends with it; the payments are not in it
    expect(inRequest.length).toBeGreaterThan(0);
    expect(inRequest.every((span) => span.status.code === SpanStatusCode.ERROR)).toBe(true);
    expect(payments.length).toBeGreaterThan(0);
    expect(payments.every((span) => span.parentSpanContext === undefined)).toBe(true);
  });

  it('a warning logged inside a trace names the trace', async () => {
    const lines: string[] = [];
    const logger = { log() {}, error() {}, warn: (line: string) => void lines.push(line) };
    // nothing listens on this port: the cache fails open, and says so once
    const sick = client({ servers: '127.0.0.1:1', logger, timeout: 100, retries: 0 });
    let traceId = '';
    const value = await inSpan('request', async (span) => {
      traceId = span.spanContext().traceId;
      return sick.getOrSet('k', async () => 'from the source');
    });
    expect(value).toBe('from the source');
    expect(lines.some((line) => line.includes(`(trace ${traceId})`))).toBe(true);
  });

  it('disabled mid-call: the open span still ends with its call, then nothing more is published', async () => {
    const a = client();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const call = inSpan('request', () =>
      a.getOrSet(`slow-${randomUUID()}`, async () => (await released, 'v'), { ttl: 60 }),
    );
    await sleep(50); // the cache span is open, the loader waits
    memcachedTracing.disable();
    try {
      expect(cacheChannel.hasSubscribers).toBe(true); // still listening for the open span's end
      release();
      expect(await call).toBe('v');
      await sleep(50); // the fill, written behind
      expect(named('cache.get')).toHaveLength(1);
      expect(named('cache.get')[0].attributes).toMatchObject({ 'nestjs_memcached.outcome': 'MISS' });
      expect(cacheChannel.hasSubscribers || commandChannel.hasSubscribers || busReceiveChannel.hasSubscribers).toBe(
        false,
      );
    } finally {
      memcachedTracing.enable();
    }
  });

  it('a second instrumentation stays off while one is enabled: no span is doubled', async () => {
    const second = new MemcachedInstrumentation();
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    second.enable();
    try {
      expect(second.getConfig().enabled).toBe(false);
      expect(await warned).toMatchObject({ code: 'NESTJS_MEMCACHED_TRACING_TWICE' });
      await inSpan('job', () => client().getOrSet(`once-${randomUUID()}`, async () => 'v'));
      expect(named('cache.get')).toHaveLength(1);
    } finally {
      second.disable();
    }
    // disabling the one that stayed off leaves the enabled one tracing
    spans.reset();
    await inSpan('job', () => client().getOrSet(`once-${randomUUID()}`, async () => 'v'));
    expect(named('cache.get')).toHaveLength(1);
  });

  it('refuses, naming the Node version, where the channels cannot say whether anyone listens (Node < 20.13)', () => {
    Object.defineProperty(cacheChannel, 'hasSubscribers', { value: undefined, configurable: true });
    try {
      expect(() => new MemcachedInstrumentation()).toThrow(
        expect.objectContaining({
          name: 'MemcachedConfigError',
          message: expect.stringMatching(/Node 20\.13.*Node \d/),
        }),
      );
    } finally {
      delete (cacheChannel as { hasSubscribers?: unknown }).hasSubscribers;
    }
    expect(() => new MemcachedInstrumentation()).not.toThrow();
  });

  it('nothing is published without a subscriber', async () => {
    const published: string[] = [];
    const count = <T extends object>(target: T, method: keyof T & string, name: string) => {
      const original = (target[method] as (...args: unknown[]) => unknown).bind(target);
      Object.assign(target, {
        [method]: (...args: unknown[]) => {
          published.push(name);
          return original(...args);
        },
      });
      return () => delete (target as Record<string, unknown>)[method];
    };
    const restore = [
      count(cacheChannel, 'tracePromise', 'cache'),
      count(commandChannel, 'tracePromise', 'command'),
      count(busReceiveChannel, 'traceSync', 'bus.receive'),
      count(busPublishChannel, 'publish', 'bus.publish'),
      count(logChannel, 'publish', 'log'),
    ];
    const traffic = async () => {
      const id = randomUUID().slice(0, 8);
      await request(app.getHttpServer()).get(`/users/${id}`).expect(200);
      await request(app.getHttpServer()).get(`/users/${id}`).expect(200);
      const lines: string[] = [];
      const sick = client({
        servers: '127.0.0.1:1',
        timeout: 100,
        logger: { log() {}, error() {}, warn: (l: string) => void lines.push(l) },
      });
      await sick.getOrSet(`k-${id}`, async () => 'v');
      expect(lines.length).toBeGreaterThan(0);
    };
    const listened = () => cacheChannel.hasSubscribers || commandChannel.hasSubscribers;
    try {
      memcachedTracing.disable();
      // spans still open (a fill written behind the last test's call) end first
      for (let i = 0; i < 50 && listened(); i++) await sleep(20);
      expect(cacheChannel.hasSubscribers || commandChannel.hasSubscribers || busReceiveChannel.hasSubscribers).toBe(
        false,
      );
      await traffic();
      expect(published).toEqual([]);
      // and the same traffic with a subscriber is published: the count above could fail
      memcachedTracing.enable();
      await traffic();
      expect(new Set(published)).toEqual(new Set(['cache', 'command', 'log']));
    } finally {
      for (const undo of restore) undo();
      memcachedTracing.enable();
    }
  });
});
