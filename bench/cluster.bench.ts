// Cluster: 3 memcached nodes, one killed under load. req/s and p99 before and after, errors.
// Run: npm run bench:cluster   (BENCH_ROUNDS, BENCH_SECONDS)
import { freePort, startDaemons } from '../test/support/memcached-daemon.js';
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

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const VARIANTS = ['nocache', 'handwritten', 'ours-controller'];

async function main() {
  pinToRest(process.pid);
  const results = new Map(
    VARIANTS.map((v) => [
      v,
      {
        before: [] as number[],
        after: [] as number[],
        p99Before: [] as number[],
        p99After: [] as number[],
        errors: 0,
        vsNoCache: [] as number[],
      },
    ]),
  );
  const rounds: Array<Map<string, number>> = [];
  await interleave(VARIANTS, ROUNDS, async (variant, round) => {
    const daemons = await startDaemons(3);
    for (const d of daemons) pinToRest(d.pid);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = await startServer(server, {
      VARIANT: variant,
      PORT: String(port),
      MEMCACHED: daemons.map((d) => d.address).join(','),
    });
    const r = results.get(variant)!;
    try {
      await runJson<Load>(load, { url, connections: 50, seconds: 2, ids: 1000 });
      const before = await runJson<Load>(load, { url, connections: 50, seconds: SECONDS, ids: 1000 });
      await daemons[0].kill();
      await runJson<Load>(load, { url, connections: 50, seconds: 1, ids: 1000 });
      const after = await runJson<Load>(load, { url, connections: 50, seconds: SECONDS, ids: 1000 });
      r.before.push(before.rps);
      r.after.push(after.rps);
      r.p99Before.push(before.p99);
      r.p99After.push(after.p99);
      r.errors += after.errors + after.non2xx;
      (rounds[round] ??= new Map()).set(variant, after.rps);
      process.stderr.write(
        `cluster round ${round + 1} ${variant}: ${Math.round(before.rps)} -> ${Math.round(after.rps)} req/s\n`,
      );
    } finally {
      await stop(child);
      await Promise.all(daemons.map((d) => d.kill()));
    }
  });
  for (const round of rounds)
    for (const v of VARIANTS) results.get(v)!.vsNoCache.push(round.get(v)! / round.get('nocache')!);
  const rows = VARIANTS.map((v) => {
    const r = results.get(v)!;
    return [
      v,
      cell(r.before),
      cell(r.after),
      cell(r.vsNoCache, 2),
      cell(r.p99Before, 1),
      cell(r.p99After, 1),
      String(r.errors),
    ];
  });
  process.stdout.write(
    `# Cluster: 3 nodes, one killed under load\n\n${machineNotes()}; ${pinningNote()}; GET /users/<1..1000>, 5 ms database, 50 connections; ${SECONDS} s with 3 nodes, kill one, 1 s settle, ${SECONDS} s with 2; ${ROUNDS} rounds. hand-written memjs picks nodes by hashCode % 3 without failover (memjs defaults).\n\n` +
      table(
        [
          'variant',
          'req/s, 3 nodes',
          'req/s, one killed',
          'killed vs no cache',
          'p99 ms, 3 nodes',
          'p99 ms, one killed',
          'errors to clients',
        ],
        rows,
      ) +
      '\n',
  );
}

void main().then(() => process.exit(0));
