// Cost that grows with the work: each dimension at 1x, 10x and 100x (1,000x for namespaces), side by
// side with the smallest in one run. The smallest and the grown one are separate apps (each with
// its own memcached) in this process; at each size their probe rounds alternate, and the ratio is
// taken within each round. Per call: wall time and this process's CPU time; memory: heap kept
// after a full GC, above the heap before the first call.
// Run: npm run bench:scale   (SCALE_DIMENSIONS=namespaces,keys,variants,values,nodes,bus; SCALE_MAX=1000000)
import 'reflect-metadata';
import http from 'node:http';
import { Controller, Get, Header, type INestApplication, Module, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Registry } from 'prom-client';
import { Cacheable, MemcachedCache, MemcachedClient, MemcachedModule } from '../lib/index.js';
import { MemcachedPrometheusModule } from '../lib/prometheus/index.js';
import { KetamaRing } from '../lib/cluster/ketama.js';
import { freePort, MemcachedDaemon, startDaemons, stopAll } from '../test/support/memcached-daemon.js';
import { startNats } from '../test/support/servers.js';
import { user1k } from './support/payloads.js';
import { cell, fmt, machineNotes, summary, table } from './support/report.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench:scale does)');
const DIMENSIONS = (process.env.SCALE_DIMENSIONS ?? 'namespaces,keys,variants,values,nodes,bus').split(',');
const MAX = Number(process.env.SCALE_MAX ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

/** Heap kept after two full collections. */
function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const mb = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MB`;
const med = (values: number[], digits = 1) => fmt(summary(values).median, digits);

/** Something measured per call: `calls` calls of `call(i)` make one round. */
interface Subject {
  calls: number;
  call(i: number): unknown;
}

interface Measured {
  /** Per round: µs per call, wall and CPU of this process. */
  wall: number[];
  cpu: number[];
}

/**
 * Runs the subjects' rounds interleaved (A B C, B C A, ...), so a slower moment of the machine
 * falls on all of them; one warm-up round first.
 */
async function sideBySide(subjects: Subject[]): Promise<Measured[]> {
  const measured = subjects.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  const counters = subjects.map(() => 0);
  for (let round = -1; round < ROUNDS; round++) {
    for (let k = 0; k < subjects.length; k++) {
      const index = (k + Math.max(0, round)) % subjects.length;
      const subject = subjects[index];
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < subject.calls; i++) await subject.call(counters[index]++);
      const wall = ((performance.now() - t0) * 1000) / subject.calls;
      const used = process.cpuUsage(cpu0);
      if (round < 0) continue;
      measured[index].wall.push(wall);
      measured[index].cpu.push((used.user + used.system) / subject.calls);
    }
  }
  return measured;
}

/** Per round, `of` over `base`: the ratio taken within each round, `median [min–max]`. */
function ratios(of: number[], base: number[]): string {
  return `${cell(
    of.map((value, round) => value / base[round]),
    2,
  )}x`;
}

/** Runs `call(i)` for i in [from, to), 16 at a time: growing a dimension, not measured. */
async function grow(from: number, to: number, call: (i: number) => Promise<unknown>): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < to) await call(next++);
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** Five timed reads: their durations in ms (the first of the run included) and the last result. */
async function timed<T>(read: () => T | Promise<T>): Promise<{ ms: number[]; value: T }> {
  const ms: number[] = [];
  let value!: T;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    value = await read();
    ms.push(performance.now() - t0);
  }
  return { ms, value };
}

const report: string[] = [];
function section(title: string, note: string, headers: string[], rows: string[][]): void {
  const text = `### ${title}\n\n${note}\n\n${table(headers, rows)}\n`;
  report.push(text);
  process.stderr.write(`${text}\n`);
}

@Controller('scale')
class ScaleController {
  @Get('items')
  @Header('Vary', 'Accept-Language')
  @Cacheable({
    namespace: 'scale-items',
    principal: (req: { headers: Record<string, string> }) => req.headers['x-user'],
  })
  items(@Query('page') page: string) {
    return { ...user1k(), page };
  }
}

interface App {
  app: INestApplication;
  client: MemcachedClient;
  cache: MemcachedCache;
  registry: Registry;
  daemon: MemcachedDaemon;
  port: number;
  close(): Promise<void>;
}

/** An app as production runs it: the module global, the Prometheus module registered; its own memcached. */
async function startApp(memoryMb: number, controllers: unknown[] = []): Promise<App> {
  const daemon = await MemcachedDaemon.start({ memoryMb });
  const registry = new Registry();
  @Module({
    imports: [
      MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false, ttl: 3600 }),
      MemcachedPrometheusModule.forRoot({ registry }),
    ],
    controllers: controllers as never[],
  })
  class ScaleModule {}
  const app = await NestFactory.create(ScaleModule, { logger: false, abortOnError: false });
  const port = await freePort();
  await app.listen(port, '127.0.0.1');
  return {
    app,
    client: app.get(MemcachedClient),
    cache: app.get(MemcachedCache),
    registry,
    daemon,
    port,
    async close() {
      await app.close();
      await daemon.stop();
    },
  };
}

/**
 * Per-user namespaces: each call a `getOrSet` fill, a hit and a `MemcachedCache.evictAll` of a
 * namespace never met before. At each size a fresh 1x app, grown to 1,000 namespaces, runs beside
 * the grown one, so both do the same work and only the number of namespaces seen differs.
 */
async function namespaces(): Promise<void> {
  const base = heap();
  const large = await startApp(1024);
  const use = (app: App) => async (i: number) => {
    const namespace = `user-${i}`;
    await app.client.getOrSet('profile', () => ({ id: i }), { namespace });
    await app.client.getOrSet('profile', () => ({ id: i }), { namespace });
    await app.cache.evictAll(namespace);
  };
  const SMALL = 1000;
  const CALLS = 200;
  const rows: string[][] = [];
  let grown = 0;
  let next = 0;
  for (const size of [1000, 10_000, 100_000, 1_000_000].filter((n) => n <= MAX)) {
    await grow(grown, size, use(large));
    grown = size;
    next = Math.max(next, size);
    const kept = heap() - base;
    const small = await startApp(64);
    await grow(0, SMALL, use(small));
    let smallNext = SMALL;
    const [s, l] = await sideBySide([
      { calls: CALLS, call: () => use(small)(smallNext++) },
      { calls: CALLS, call: () => use(large)(next++) },
    ]);
    await small.close();
    const stats = await timed(() => large.cache.stats());
    const scrape = await timed(() => large.registry.metrics());
    const series = scrape.value.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
    rows.push([
      fmt(size),
      mb(kept),
      `${med(stats.ms, 2)} (${fmt(summary(stats.ms).max, 2)}) ms, ${fmt(JSON.stringify(stats.value).length / 1024)} KB`,
      `${med(scrape.ms, 2)} (${fmt(summary(scrape.ms).max, 2)}) ms, ${fmt(scrape.value.length / 1024)} KB, ${fmt(series)} series`,
      med(l.wall.map((w) => w / 3)),
      med(l.cpu.map((c) => c / 3)),
      ratios(l.wall, s.wall),
      ratios(l.cpu, s.cpu),
    ]);
  }
  section(
    'Distinct namespaces',
    'Each call: a `getOrSet` fill, a hit and a `MemcachedCache.evictAll` of a namespace never met before ' +
      '(`user-<n>`), `MemcachedPrometheusModule` registered. Beside the grown app, a fresh app grown to 1,000 ' +
      `namespaces does the same calls (its count ends at ${fmt(1000 + (ROUNDS + 1) * CALLS)}). Heap kept: the grown ` +
      'app, after a full GC, above the heap before it started. `stats()` and scrape: median (longest) of 5 calls on ' +
      `the grown app, the first of the run included. Per call: median of ${ROUNDS} rounds of ${CALLS}; ratios within rounds.`,
    [
      'namespaces',
      'heap kept',
      '`stats()`: ms, JSON',
      'scrape: ms, size, series',
      'µs/call',
      'CPU µs/call',
      'time vs 1x',
      'CPU vs 1x',
    ],
    rows,
  );
  await large.close();
}

/**
 * A dimension measured on items already stored: the 1x app holds `sizes[0]` of them, the grown
 * one each size in turn; every call of `use` (of `parts` operations) picks a random stored item.
 * Returns the rows: size, heap kept (both apps, above `base`), µs and CPU per operation, ratios
 * within rounds.
 */
async function randomUse(
  base: number,
  small: App,
  large: App,
  sizes: number[],
  calls: number,
  parts: number,
  use: (app: App) => (i: number) => Promise<unknown>,
): Promise<string[][]> {
  await grow(0, sizes[0], use(small));
  const rows: string[][] = [];
  const random = (n: number) => Math.floor(Math.random() * n);
  let grown = 0;
  for (const size of sizes.filter((n) => n <= MAX)) {
    await grow(grown, size, use(large));
    grown = size;
    const [s, l] = await sideBySide([
      { calls, call: () => use(small)(random(sizes[0])) },
      { calls, call: () => use(large)(random(size)) },
    ]);
    rows.push([
      fmt(size),
      mb(heap() - base),
      med(l.wall.map((w) => w / parts)),
      med(l.cpu.map((c) => c / parts)),
      ratios(l.wall, s.wall),
      ratios(l.cpu, s.cpu),
    ]);
  }
  return rows;
}

/** Distinct keys in one namespace: each call deletes a key, fills it and hits it (`getOrSet`). */
async function keys(): Promise<void> {
  const base = heap();
  const small = await startApp(64);
  const large = await startApp(2048);
  const rows = await randomUse(base, small, large, [10_000, 100_000, 1_000_000], 500, 3, (app) => async (i) => {
    await app.client.delete(`item:${i}`, { namespace: 'items' });
    await app.client.getOrSet(`item:${i}`, () => ({ id: i }), { namespace: 'items' });
    await app.client.getOrSet(`item:${i}`, () => ({ id: i }), { namespace: 'items' });
  });
  section(
    'Distinct keys',
    'Each call: a `delete`, a `getOrSet` fill and a hit of a random key among those stored, in one namespace. ' +
      `Heap kept: both apps. Per call: median of ${ROUNDS} rounds of 500; ratios within rounds against the app with 10,000 keys.`,
    ['keys', 'heap kept', 'µs/call', 'CPU µs/call', 'time vs 1x', 'CPU vs 1x'],
    rows,
  );
  await small.close();
  await large.close();
}

/** Variants of one route: each a query, a principal and an `Accept-Language` of their own. */
async function variants(): Promise<void> {
  const base = heap();
  const small = await startApp(256, [ScaleController]);
  const large = await startApp(1024, [ScaleController]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const get = (app: App) => (i: number) =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(
        {
          host: '127.0.0.1',
          port: app.port,
          path: `/scale/items?page=${i}`,
          agent,
          headers: { 'x-user': `user-${i}`, authorization: `Bearer t${i}`, 'accept-language': `l-${i}` },
        },
        (response) => {
          response.resume();
          response.on('end', () =>
            response.statusCode === 200 ? resolve() : reject(new Error(`status ${response.statusCode}`)),
          );
        },
      );
      req.on('error', reject);
    });
  const rows = await randomUse(base, small, large, [1000, 10_000, 100_000], 300, 1, get);
  section(
    'Variants of one HTTP route',
    'One `@Cacheable` route (Express) with a `principal` and `Vary: Accept-Language`; every variant stored ' +
      'first (a new query, principal and language each), then each request a hit on a random one of them; client ' +
      `and server in this process. Heap kept: both apps. Per request: median of ${ROUNDS} rounds of 300; ratios ` +
      'within rounds against the app with 1,000 variants.',
    ['variants', 'heap kept', 'µs/request', 'CPU µs/request', 'time vs 1x', 'CPU vs 1x'],
    rows,
  );
  agent.destroy();
  await small.close();
  await large.close();
}

/** Value sizes: a set and a get of one value of each size, compression off, then the default. */
async function values(): Promise<void> {
  const daemon = await MemcachedDaemon.start({ memoryMb: 512, itemSize: '2m' });
  const servers = daemon.address;
  const maxItemSize = 2 * 1024 * 1024;
  const plain = new MemcachedClient({ servers, logger: false, maxItemSize, compressionThreshold: 0 });
  const compressing = new MemcachedClient({ servers, logger: false, maxItemSize });
  const SIZES = [1, 10, 100, 1000];
  const subject = (client: MemcachedClient, kb: number): Subject => {
    // numbers in text, as rows hold them: about as compressible as real JSON
    const value = {
      text: Array.from({ length: kb * 64 }, (_, i) => `${(i * 2654435761) % 1e9}`.padStart(15, 'x')).join(''),
    };
    return {
      calls: Math.max(10, Math.round(1000 / kb)),
      async call(i) {
        await client.set(`value:${kb}:${i % 10}`, value);
        await client.get(`value:${kb}:${i % 10}`);
      },
    };
  };
  const off = await sideBySide(SIZES.map((kb) => subject(plain, kb)));
  const on = await sideBySide(SIZES.map((kb) => subject(compressing, kb)));
  section(
    'Value sizes',
    'A `set` and a `get` of one value (JSON of about that size), compression off: inherently per byte, so the ' +
      'column to read is µs per KB. The last column is the default client, which deflates values of 128 KiB and more ' +
      `(deflate on set, inflate on get: more CPU per byte). Median of ${ROUNDS} rounds, interleaved.`,
    ['value', 'µs/call', 'CPU µs/call', 'µs per KB', 'time vs 1 KB', 'µs/call, default compression'],
    SIZES.map((kb, i) => [
      `${fmt(kb)} KB`,
      med(off[i].wall.map((w) => w / 2)),
      med(off[i].cpu.map((c) => c / 2)),
      med(
        off[i].wall.map((w) => w / 2 / kb),
        2,
      ),
      ratios(off[i].wall, off[0].wall),
      med(on[i].wall.map((w) => w / 2)),
    ]),
  );
  plain.close();
  compressing.close();
  await daemon.stop();
}

/** Nodes in the ring: real memcached nodes where the machine allows, ring lookups beyond. */
async function nodes(): Promise<void> {
  const COUNTS = [3, 30];
  const clusters = await Promise.all(COUNTS.map((count) => startDaemons(count, { memoryMb: 16 })));
  const clients = clusters.map(
    (daemons) => new MemcachedClient({ servers: daemons.map((d) => d.address).join(','), logger: false }),
  );
  for (const client of clients)
    await Promise.all(Array.from({ length: 1000 }, (_, i) => client.set(`k${i}`, user1k(i))));
  const real = await sideBySide(clients.map((client) => ({ calls: 1000, call: (i) => client.get(`k${i % 1000}`) })));
  const RING = [3, 30, 100, 300];
  const keys = Array.from({ length: 10_000 }, (_, i) => `user:${i}`);
  let sink = 0;
  const lookups = await sideBySide(
    RING.map((count) => {
      const ring = new KetamaRing(
        Array.from({ length: count }, (_, i) => ({ host: `10.0.${i >> 8}.${i & 255}`, port: 11211, weight: 1 })),
      );
      return { calls: 100_000, call: (i) => (sink += ring.locate(keys[i % keys.length])) };
    }),
  );
  section(
    'Nodes in the ring',
    'A 1 KB `get` against 3 and 30 real memcached nodes (one process each, on the same 2 cores); ketama lookups ' +
      'alone for 3 to 300 nodes: the ring grows with the nodes, a lookup is a binary search in it. ' +
      `Median of ${ROUNDS} rounds, interleaved, ratios within rounds.${sink < 0 ? '' : ''}`,
    ['nodes', 'µs/call', 'CPU µs/call', 'time vs 3'],
    [
      ...COUNTS.map((count, i) => [
        `${count} (real memcached)`,
        med(real[i].wall),
        med(real[i].cpu),
        ratios(real[i].wall, real[0].wall),
      ]),
      ...RING.map((count, i) => [
        `${count} (ring lookup only)`,
        med(lookups[i].wall, 3),
        med(lookups[i].cpu, 3),
        ratios(lookups[i].wall, lookups[0].wall),
      ]),
    ],
  );
  for (const client of clients) client.close();
  await Promise.all(clusters.map((daemons) => stopAll(daemons)));
}

/**
 * Processes on one bus: one client per simulated process, each with its own NATS connection and
 * source; one bus (channel) per process count, all up at once so their rounds interleave. They
 * share this process's CPU, so the cost that must stay flat is each receiver's: the CPU one more
 * process adds per delete.
 */
async function bus(): Promise<void> {
  const daemon = await MemcachedDaemon.start({ memoryMb: 64 });
  const nats = await startNats();
  const COUNTS = [1, 2, 8, 32];
  const base = heap();
  const groups = COUNTS.map((count) =>
    Array.from(
      { length: count },
      () =>
        new MemcachedClient({
          servers: daemon.address,
          logger: false,
          nearCache: { ttl: 10 },
          bus: { url: nats.url, channel: `scale-bus-${count}`, heartbeat: 1000 },
        }),
    ),
  );
  await Promise.all(groups.flat().map((client) => client.getOrSet('warm', () => 1)));
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const kept = (heap() - base) / groups.flat().length;
  const measured = await sideBySide(
    groups.map((clients) => ({ calls: 300, call: (i) => clients[0].delete(`item:${i}`) })),
  );
  section(
    'Processes on one bus',
    'One client per simulated process, all in this process (so they share its CPU), each with its own NATS ' +
      'connection and source; the first deletes keys, each delete published once and received by every other. ' +
      `The column to read is the CPU each receiving process adds per delete. Heap per process: ${mb(kept)}. ` +
      `Median of ${ROUNDS} rounds, interleaved.`,
    ['processes', 'µs/delete (writer)', 'CPU µs per delete, all processes', 'CPU µs per delete per receiver'],
    COUNTS.map((count, i) => [
      fmt(count),
      med(measured[i].wall),
      med(measured[i].cpu),
      count === 1
        ? '-'
        : med(
            measured[i].cpu.map((cpu, round) => (cpu - measured[0].cpu[round]) / (count - 1)),
            1,
          ),
    ]),
  );
  for (const client of groups.flat()) client.close();
  await nats.stop();
  await daemon.stop();
}

const runs: Record<string, () => Promise<void>> = { namespaces, keys, variants, values, nodes, bus };
for (const name of DIMENSIONS) {
  const run = runs[name];
  if (run === undefined) {
    throw new Error(`SCALE_DIMENSIONS: no dimension ${JSON.stringify(name)} (${Object.keys(runs).join(', ')})`);
  }
  await run();
}
process.stdout.write(`${report.join('\n')}\n${machineNotes()}\n`);
process.exit(0);
