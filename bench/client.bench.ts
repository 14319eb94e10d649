// Client-level benchmark: get and set at concurrency 1 and 64, 1 KB and 100 KB values,
// this library's MemcachedClient against hand-written memjs, in one process, interleaved rounds.
// Run: npm run bench:client   (BENCH_ROUNDS, BENCH_SECONDS to change the length)
// The npm script lets V8's young generation grow to 64 MB per semi-space (--max-semi-space-size=64):
// every variant shares this process's heap, and with V8's default (16 MB) a 100 KB get cell ran at
// either ~1,400 or ~2,200 ops/s, memjs and ours alike, depending on what ran before it
// (docs/benchmarks.md).
import memjs from 'memjs';
import { MemcachedClient } from '../lib/index.js';
import { MemcachedDaemon } from '../test/support/memcached-daemon.js';
import { cell, interleave, machineNotes, summary, table } from './support/report.js';
import { pinningNote, pinToRest, pinToServer } from './support/processes.js';
import { catalog100k, user1k } from './support/payloads.js';
import { measure } from './support/measure.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const SIZES = (process.env.BENCH_SIZES ?? '1k,100k').split(',');
const OPS = (process.env.BENCH_OPS ?? 'get,set').split(',');

interface Variant {
  name: string;
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, json: string): Promise<unknown>;
}

/**
 * The variant's key prefix: its name without spaces or punctuation. A key with a space is not a
 * valid memcached key, so MemcachedClient sends it as head + SHA-256 (memjs sends it as is), and
 * the variant would pay a hash per operation that the others do not.
 */
const keyPrefix = (v: Variant) => v.name.replace(/[^A-Za-z0-9]+/g, '-');

/** The V8 heap flags this process runs with (they decide how large-value cells behave). */
function heapFlags(): string {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].filter((f) =>
    /semi-space|old-space|heap/.test(f),
  );
  return flags.length > 0 ? flags.join(' ') : 'V8 defaults';
}

async function main() {
  const daemon = await MemcachedDaemon.start({ memoryMb: 512 });
  pinToServer(process.pid);
  pinToRest(daemon.pid);
  const raw = memjs.Client.create(daemon.address, { logger: { log() {} } });
  const ours = new MemcachedClient({ servers: daemon.address, logger: false, ttl: 0 });
  const oursRaw = new MemcachedClient({ servers: daemon.address, logger: false, ttl: 0, compressionThreshold: false });
  // a custom serializer is stored as it gives it: no check that the value comes back unchanged
  const oursUnchecked = new MemcachedClient({
    servers: daemon.address,
    logger: false,
    ttl: 0,
    serializer: { serialize: JSON.stringify, deserialize: (b) => JSON.parse(b.toString()) },
  });
  const variants: Variant[] = [
    {
      name: 'memjs, Buffer (no JSON)',
      get: (k) => raw.get(k).then((r) => r.value),
      set: (k, _v, json) => raw.set(k, json, {}),
    },
    {
      name: 'memjs + JSON',
      get: (k) => raw.get(k).then((r) => (r.value ? JSON.parse(r.value.toString()) : undefined)),
      set: (k, v) => raw.set(k, JSON.stringify(v), {}),
    },
    { name: 'MemcachedClient', get: (k) => ours.get(k), set: (k, v) => ours.set(k, v) },
    { name: 'MemcachedClient, no compression', get: (k) => oursRaw.get(k), set: (k, v) => oursRaw.set(k, v) },
    {
      name: 'MemcachedClient, JSON serializer (no value check)',
      get: (k) => oursUnchecked.get(k),
      set: (k, v) => oursUnchecked.set(k, v),
    },
  ];
  const sizes = [
    { id: '1k', name: '1 KB', keys: 1000, value: user1k() },
    { id: '100k', name: '100 KB', keys: 100, value: catalog100k() },
  ].filter((s) => SIZES.includes(s.id));
  const out: string[] = [
    `# Client benchmark\n\n${machineNotes()}; ${pinningNote().replace('server', 'this process').replace('load generator and ', '')}; memcached ${(await ours.ping())[0].version} on loopback; V8 heap flags: ${heapFlags()}; ${ROUNDS} rounds x ${SECONDS} s per cell; ratios within each round vs memjs + JSON, then median [min–max].\n`,
  ];
  for (const size of sizes) {
    const json = JSON.stringify(size.value);
    for (const op of (['get', 'set'] as const).filter((o) => OPS.includes(o))) {
      for (const concurrency of [1, 64]) {
        const results = new Map<string, number[]>(variants.map((v) => [v.name, []]));
        const ratios = new Map<string, number[]>(variants.map((v) => [v.name, []]));
        for (const v of variants) {
          // each variant reads keys it wrote itself, so every get is a hit in its own format
          await Promise.all(
            Array.from({ length: size.keys }, (_, i) => v.set(`${keyPrefix(v)}:${i}`, size.value, json)),
          );
        }
        const perRound: Array<Map<string, number>> = [];
        await interleave(variants, ROUNDS, async (v, round) => {
          const { rate } = await measure(
            (i) =>
              op === 'get'
                ? v.get(`${keyPrefix(v)}:${i % size.keys}`)
                : v.set(`${keyPrefix(v)}:${i % size.keys}`, size.value, json),
            concurrency,
            SECONDS,
          );
          (perRound[round] ??= new Map()).set(v.name, rate);
          results.get(v.name)!.push(rate);
        });
        for (const round of perRound)
          for (const v of variants) ratios.get(v.name)!.push(round.get(v.name)! / round.get('memjs + JSON')!);
        const rows = variants.map((v) => [v.name, cell(results.get(v.name)!), cell(ratios.get(v.name)!, 2)]);
        out.push(
          `\n## ${op}, ${size.name}, concurrency ${concurrency}\n\n${table(['variant', 'ops/s', 'ratio vs memjs + JSON'], rows)}\n`,
        );
        const median = (name: string) => summary(ratios.get(name)!).median.toFixed(2);
        process.stderr.write(
          `${op} ${size.name} c${concurrency}: ours ${median('MemcachedClient')}x, without the value check ${median('MemcachedClient, JSON serializer (no value check)')}x\n`,
        );
      }
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  raw.close();
  ours.close();
  oursRaw.close();
  oursUnchecked.close();
  await daemon.kill();
}

void main().then(() => process.exit(0));
