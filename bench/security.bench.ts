// What TLS and value encryption cost on a hit: MemcachedClient.get of 1 KB and 100 KB values at
// concurrency 1 and 64, over plain TCP, over TLS (memcached -Z), with encryption, and with both,
// in one process, interleaved rounds. Ratios are to plain TCP within each round.
// Run: npm run bench:security   (BENCH_ROUNDS, BENCH_SECONDS, BENCH_SIZES to change it)
import { randomBytes } from 'node:crypto';
import { MemcachedClient } from '../lib/index.js';
import { MemcachedDaemon } from '../test/support/memcached-daemon.js';
import { makeTestPki } from '../test/support/tls-certs.js';
import { measure } from './support/measure.js';
import { catalog100k, user1k } from './support/payloads.js';
import { pinningNote, pinToRest, pinToServer } from './support/processes.js';
import { cell, interleave, machineNotes, summary, table } from './support/report.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const SIZES = (process.env.BENCH_SIZES ?? '1k,100k').split(',');

async function main() {
  const pki = makeTestPki();
  const plain = await MemcachedDaemon.start({ memoryMb: 256 });
  const secure = await MemcachedDaemon.start({
    memoryMb: 256,
    tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile },
  });
  pinToServer(process.pid);
  pinToRest(plain.pid);
  pinToRest(secure.pid);
  const encryption = { keys: [{ id: 1, key: randomBytes(32) }] };
  const tls = { ca: pki.ca };
  const common = { logger: false as const, ttl: 0 };
  const variants = [
    { name: 'plain TCP', client: new MemcachedClient({ ...common, servers: plain.address }) },
    { name: 'TLS', client: new MemcachedClient({ ...common, servers: secure.address, tls }) },
    { name: 'encrypted values', client: new MemcachedClient({ ...common, servers: plain.address, encryption }) },
    {
      name: 'TLS + encrypted values',
      client: new MemcachedClient({ ...common, servers: secure.address, tls, encryption }),
    },
  ];
  const sizes = [
    { id: '1k', name: '1 KB', keys: 1000, value: user1k() },
    { id: '100k', name: '100 KB', keys: 100, value: catalog100k() },
  ].filter((s) => SIZES.includes(s.id));
  const out = [
    `# Security benchmark: hits over TLS and with encrypted values\n\n${machineNotes()}; ${pinningNote().replace('server', 'this process').replace('load generator and ', '')}; memcached ${(await variants[0].client.ping())[0].version} on loopback (plain and -Z); ${ROUNDS} rounds x ${SECONDS} s per cell; ratios within each round vs plain TCP, then median [min–max]; CPU is this process's (client) µs per get.\n`,
  ];
  for (const size of sizes) {
    // two variants share each daemon: each reads keys it wrote itself (its own format)
    const key = (v: (typeof variants)[number], i: number) => `${variants.indexOf(v)}:${size.id}:${i}`;
    for (const v of variants) {
      await Promise.all(Array.from({ length: size.keys }, (_, i) => v.client.set(key(v, i), size.value)));
      if (JSON.stringify(await v.client.get(key(v, 0))) !== JSON.stringify(size.value))
        throw new Error(`${v.name}: the value did not come back`);
    }
    for (const concurrency of [1, 64]) {
      const rates = new Map(variants.map((v) => [v.name, [] as number[]]));
      const cpu = new Map(variants.map((v) => [v.name, [] as number[]]));
      const perRound: Array<Map<string, number>> = [];
      await interleave(variants, ROUNDS, async (v, round) => {
        const result = await measure((i) => v.client.get(key(v, i % size.keys)), concurrency, SECONDS);
        (perRound[round] ??= new Map()).set(v.name, result.rate);
        rates.get(v.name)!.push(result.rate);
        cpu.get(v.name)!.push(result.cpuUs);
      });
      const ratio = (name: string) => perRound.map((r) => r.get(name)! / r.get('plain TCP')!);
      const cpuOver = (name: string) => cpu.get(name)!.map((c, i) => c - cpu.get('plain TCP')![i]);
      const rows = variants.map((v) => [
        v.name,
        cell(rates.get(v.name)!),
        cell(ratio(v.name), 2),
        cell(cpu.get(v.name)!, 1),
        cell(cpuOver(v.name), 1),
      ]);
      out.push(
        `\n## get (hit), ${size.name}, concurrency ${concurrency}\n\n${table(['variant', 'gets/s', 'ratio vs plain TCP', 'client CPU µs/get', 'µs/get over plain'], rows)}\n`,
      );
      process.stderr.write(
        `get ${size.name} c${concurrency}: ${variants
          .slice(1)
          .map((v) => `${v.name} ${summary(ratio(v.name)).median.toFixed(2)}x`)
          .join(', ')}\n`,
      );
    }
  }
  // every get was a hit in its own format, or the figures mean nothing
  for (const v of variants) {
    const { misses, undecodable, undecryptable } = v.client.stats();
    if (misses + undecodable + undecryptable > 0)
      throw new Error(`${v.name}: ${misses} misses, ${undecodable} undecodable, ${undecryptable} undecryptable`);
  }
  process.stdout.write(out.join('\n') + '\n');
  for (const v of variants) v.client.close();
  await Promise.all([plain.kill(), secure.kill()]);
  pki.remove();
}

void main().then(() => process.exit(0));
