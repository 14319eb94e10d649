// HTTP hit path: GET /users/:id (1,000 ids, 5 ms timer database, 50 connections, autocannon in its
// own process) for each variant, interleaved rounds, one server process per cell.
// Run: npm run bench:http   (BENCH_ROUNDS, BENCH_SECONDS, BENCH_SIZES=1k,100k, BENCH_VARIANTS)
// A variant ending in @fastify runs on Fastify and is compared with trivial@fastify.
import { MemcachedClient } from '../lib/index.js';
import { freePort, MemcachedDaemon } from '../test/support/memcached-daemon.js';
import { startNats, type TestServer } from '../test/support/servers.js';
import {
  httpServer as server,
  loadGenerator as load,
  type LoadResult as Load,
  pinningNote,
  pinToRest,
  runJson,
  startServer,
  stop,
} from './support/processes.js';
import { cell, interleave, machineNotes, table } from './support/report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const SIZES = (process.env.BENCH_SIZES ?? '1k,100k').split(',');
const VARIANTS = (
  process.env.BENCH_VARIANTS ??
  'trivial,nocache,handwritten,handwritten-intercepted,nest-cache-manager,ours-controller,ours-service,ours-getorset'
).split(',');

/** The variant a `-near`, `-prometheus`, `-cluster`, `-tags<n>`, `-otel` or `-otelsdk` variant adds to (on the same platform). */
function baseOf(variant: string): string | undefined {
  const base = variant.replace(/-(near|prometheus|cluster|tags\d|otel|otelsdk)(@\w+)?$/, '$2');
  return base === variant ? undefined : base;
}

/** The trivial route on the variant's platform. */
function trivialOf(variant: string): string {
  const at = variant.indexOf('@');
  return at === -1 ? 'trivial' : `trivial${variant.slice(at)}`;
}

async function main() {
  const daemon = await MemcachedDaemon.start({ memoryMb: 1024 });
  // the near variants' bus: a NATS of this run's own
  const nats: TestServer | undefined = VARIANTS.some((v) => v.includes('-near')) ? await startNats() : undefined;
  // the cluster variants' other two nodes (the first is the daemon above)
  const others = VARIANTS.some((v) => v.includes('-cluster'))
    ? await Promise.all([1, 2].map(() => MemcachedDaemon.start({ memoryMb: 1024 })))
    : [];
  const cluster = [daemon, ...others].map((d) => d.address).join(',');
  pinToRest(process.pid);
  pinToRest(daemon.pid);
  for (const other of others) pinToRest(other.pid);
  pinToRest(nats?.pid);
  // one client per node, each flushing its own between cells
  const admins = [daemon, ...others].map((d) => new MemcachedClient({ servers: d.address, logger: false }));
  const out = [
    `# HTTP hit path\n\n${machineNotes()}; ${pinningNote()}; memcached on loopback; GET /users/<1..1000>, 5 ms timer database, 50 connections, each id requested once, then ${WARMUP} s warm-up, then ${SECONDS} s measured per cell, ${ROUNDS} rounds, variant order rotated each round. Ratios are taken within each round, then median [min–max].\n`,
  ];
  for (const size of SIZES) {
    const rows = new Map<
      string,
      {
        rps: number[];
        p50: number[];
        p99: number[];
        cpu: number[];
        db: number[];
        vsHand: number[];
        vsTrivial: number[];
        vsNest: number[];
        vsBase: number[];
        errors: number;
      }
    >();
    for (const v of VARIANTS)
      rows.set(v, {
        rps: [],
        p50: [],
        p99: [],
        cpu: [],
        db: [],
        vsHand: [],
        vsTrivial: [],
        vsNest: [],
        vsBase: [],
        errors: 0,
      });
    const rounds: Array<Map<string, number>> = [];
    await interleave(VARIANTS, ROUNDS, async (variant, round) => {
      for (const admin of admins) await admin.flush();
      const port = await freePort();
      const child = await startServer(server, {
        VARIANT: variant,
        SIZE: size,
        PORT: String(port),
        MEMCACHED: daemon.address,
        MEMCACHED_CLUSTER: cluster,
        ...(nats ? { BUS_URL: nats.url } : {}),
      });
      const url = `http://127.0.0.1:${port}`;
      try {
        // every id once (so the window measures hits), then random ids for the rest of the warm-up
        await runJson<Load>(load, { url, connections: 50, amount: 1000, ids: 1000, everyId: true });
        await runJson<Load>(load, { url, connections: 50, seconds: WARMUP, ids: 1000 });
        const before = (await (await fetch(`${url}/__stats`)).json()) as { cpuMicros: number; dbCalls: number };
        const result = await runJson<Load>(load, { url, connections: 50, seconds: SECONDS, ids: 1000 });
        const after = (await (await fetch(`${url}/__stats`)).json()) as { cpuMicros: number; dbCalls: number };
        const row = rows.get(variant)!;
        row.rps.push(result.rps);
        row.p50.push(result.p50);
        row.p99.push(result.p99);
        row.cpu.push((after.cpuMicros - before.cpuMicros) / result.requests);
        row.db.push(after.dbCalls - before.dbCalls);
        row.errors += result.errors + result.non2xx;
        (rounds[round] ??= new Map()).set(variant, result.rps);
        process.stderr.write(`${size} round ${round + 1} ${variant}: ${Math.round(result.rps)} req/s\n`);
      } finally {
        await stop(child);
      }
    });
    for (const round of rounds) {
      for (const v of VARIANTS) {
        const r = rows.get(v)!;
        if (round.has('handwritten')) r.vsHand.push(round.get(v)! / round.get('handwritten')!);
        const trivial = trivialOf(v);
        if (round.has(trivial)) r.vsTrivial.push(round.get(v)! / round.get(trivial)!);
        if (round.has('nest-cache-manager')) r.vsNest.push(round.get(v)! / round.get('nest-cache-manager')!);
        // ours-service-near against ours-service, ours-controller-prometheus against ours-controller, ...
        const base = baseOf(v);
        if (base !== undefined && round.has(base)) r.vsBase.push(round.get(v)! / round.get(base)!);
      }
    }
    const body = VARIANTS.map((v) => {
      const r = rows.get(v)!;
      const ratio = (xs: number[]) => (xs.length ? cell(xs, 2) : 'n/a');
      return [
        v,
        cell(r.rps),
        ratio(r.vsHand),
        ratio(r.vsNest),
        ratio(r.vsTrivial),
        ratio(r.vsBase),
        cell(r.p50, 2),
        cell(r.p99, 2),
        cell(r.cpu),
        cell(r.db),
        String(r.errors),
      ];
    });
    out.push(
      `\n## ${size === '1k' ? '1 KB' : '100 KB'} JSON body\n\n` +
        table(
          [
            'variant',
            'req/s',
            'vs hand-written',
            'vs @nestjs/cache-manager',
            'vs trivial',
            'vs the same route without it',
            'p50 ms',
            'p99 ms',
            'server CPU µs/req',
            'db calls in window',
            'errors',
          ],
          body,
        ) +
        '\n',
    );
  }
  process.stdout.write(out.join('\n') + '\n');
  for (const admin of admins) admin.close();
  await daemon.kill();
  for (const other of others) await other.kill();
  await nats?.stop();
}

void main().then(() => process.exit(0));
