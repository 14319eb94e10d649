// Outage: memcached killed (or frozen with SIGSTOP) under load. Healthy, outage and recovery
// windows per variant, compared with no cache at all in the same round; database calls per
// request while it is down; with BENCH_FAULT=kill, also one load run during which memcached is
// killed and restarted (its slowest response). Near-cache variants use a NATS started here.
// Run: npm run bench:outage   (BENCH_ROUNDS, BENCH_SECONDS, BENCH_FAULT=kill|stop, BENCH_VARIANTS)
import { freePort, MemcachedDaemon, sleep } from '../test/support/memcached-daemon.js';
import { startNats } from '../test/support/servers.js';
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
const FAULT = process.env.BENCH_FAULT ?? 'kill';
const VARIANTS = (
  process.env.BENCH_VARIANTS ??
  'nocache,nocache-intercepted,handwritten,nest-cache-manager,ours-controller,ours-controller-near,ours-service,ours-service-near'
).split(',');

async function stats(url: string) {
  return (await (await fetch(`${url}/__stats`, { signal: AbortSignal.timeout(5000) })).json()) as {
    logLines: number;
    dbCalls: number;
  };
}

async function main() {
  pinToRest(process.pid);
  const nats = VARIANTS.some((v) => v.endsWith('-near')) ? await startNats() : undefined;
  const results = new Map(
    VARIANTS.map((v) => [
      v,
      {
        healthy: [] as number[],
        outage: [] as number[],
        p99: [] as number[],
        p99Healthy: [] as number[],
        errors: 0,
        logs: [] as number[],
        recovered: [] as number[],
        vsNoCache: [] as number[],
        dbPerRequest: [] as number[],
        restartMax: [] as number[],
        restartP99: [] as number[],
        hung: 0,
      },
    ]),
  );
  const rounds: Array<Map<string, number>> = [];
  /** Per round, each variant's slowest response over the kill and restart. */
  const restartRounds: Array<Map<string, number>> = [];
  await interleave(VARIANTS, ROUNDS, async (variant, round) => {
    const daemon = await MemcachedDaemon.start();
    pinToRest(daemon.pid);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = await startServer(server, {
      VARIANT: variant,
      PORT: String(port),
      MEMCACHED: daemon.address,
      ...(nats ? { BUS_URL: nats.url } : {}),
    });
    const r = results.get(variant)!;
    try {
      await runJson<Load>(load, { url, connections: 50, seconds: 2, ids: 1000 });
      const healthy = await runJson<Load>(load, { url, connections: 50, seconds: SECONDS, ids: 1000 });
      if (FAULT === 'stop') daemon.pause();
      else await daemon.kill();
      // let a breaker notice: the first requests after the fault pay one deadline
      await runJson<Load>(load, { url, connections: 50, seconds: 1, ids: 1000 });
      const before = await stats(url);
      const outage = await runJson<Load>(load, { url, connections: 50, seconds: SECONDS, ids: 1000 });
      const after = await stats(url);
      const [logsBefore, logsAfter] = [before.logLines, after.logLines];
      r.dbPerRequest.push((after.dbCalls - before.dbCalls) / Math.max(1, outage.requests));
      if (FAULT === 'stop') daemon.resume();
      else {
        await daemon.restart();
        pinToRest(daemon.pid);
      }
      const restartedAt = performance.now();
      // recovery: time until a repeated read of one id stops reaching the database (at most
      // 10 s; a request that gets no answer in 5 s counts as a hang)
      let recoveredMs = Number.NaN;
      try {
        for (let i = 0; i < 200 && performance.now() - restartedAt < 10_000; i++) {
          const before = (await stats(url)).dbCalls;
          await fetch(`${url}/users/1`, { signal: AbortSignal.timeout(5000) });
          await fetch(`${url}/users/1`, { signal: AbortSignal.timeout(5000) });
          if ((await stats(url)).dbCalls - before <= 1 && i > 0) {
            recoveredMs = performance.now() - restartedAt;
            break;
          }
          await sleep(25);
        }
      } catch {
        r.hung++;
      }
      if (FAULT === 'kill') {
        // kill and restart under load: the slowest response of a run that spans both
        await runJson<Load>(load, { url, connections: 50, seconds: 2, ids: 1000 });
        // the slowest response from just before the kill on: a run's first responses (50 connections
        // opening at once) are slower than any fault, whatever the variant
        const running = runJson<Load>(load, { url, connections: 50, seconds: 4, ids: 1000, windowFromMs: 900 });
        await sleep(1000);
        await daemon.kill();
        await sleep(1500);
        await daemon.restart();
        pinToRest(daemon.pid);
        const spanned = await running;
        r.restartMax.push(spanned.windowMax);
        (restartRounds[round] ??= new Map()).set(variant, spanned.windowMax);
        r.restartP99.push(spanned.p99);
        r.errors += spanned.errors + spanned.non2xx;
      }
      r.healthy.push(healthy.rps);
      r.p99Healthy.push(healthy.p99);
      r.outage.push(outage.rps);
      r.p99.push(outage.p99);
      r.errors += outage.errors + outage.non2xx;
      r.logs.push(((logsAfter - logsBefore) / SECONDS) * 60);
      r.recovered.push(recoveredMs);
      if (Number.isNaN(recoveredMs)) process.stderr.write(`${variant}: did not recover within 10 s\n`);
      (rounds[round] ??= new Map()).set(variant, outage.rps);
      process.stderr.write(
        `${FAULT} round ${round + 1} ${variant}: healthy ${Math.round(healthy.rps)} req/s, outage ${Math.round(outage.rps)} req/s, p99 ${outage.p99} ms\n`,
      );
    } finally {
      await stop(child);
      await daemon.kill();
    }
  });
  for (const round of rounds)
    for (const v of VARIANTS) results.get(v)!.vsNoCache.push(round.get(v)! / round.get('nocache')!);
  // a near-cache variant's slowest response against the same variant without it, round by round
  const restartVsPlain = (v: string) => {
    const plain = v.endsWith('-near') ? v.slice(0, -'-near'.length) : undefined;
    if (plain === undefined || !VARIANTS.includes(plain)) return '';
    const ratios = restartRounds.map((round) => round.get(v)! / round.get(plain)!);
    return ratios.map((x) => x.toFixed(2)).join(', ');
  };
  const rows = VARIANTS.map((v) => {
    const r = results.get(v)!;
    const recovered = r.recovered.filter((ms) => !Number.isNaN(ms));
    const recovery = `${recovered.length ? cell(recovered) : 'never'}${r.hung ? ` (${r.hung} of ${r.recovered.length} rounds: a request hung > 5 s)` : ''}`;
    return [
      v,
      cell(r.healthy),
      cell(r.outage),
      cell(r.vsNoCache, 2),
      cell(r.p99Healthy, 1),
      cell(r.p99, 1),
      String(r.errors),
      v === 'nest-cache-manager' ? 'n/a' : cell(r.logs),
      recovery,
      cell(r.dbPerRequest, 2),
      ...(FAULT === 'kill' ? [cell(r.restartP99, 1), cell(r.restartMax, 0), restartVsPlain(v)] : []),
    ];
  });
  await nats?.stop();
  process.stdout.write(
    `# Outage (${FAULT === 'stop' ? 'memcached frozen with SIGSTOP' : 'memcached killed'})\n\n${machineNotes()}; ${pinningNote()}; GET /users/<1..1000>, 5 ms database, 50 connections; ${SECONDS} s healthy, fault, 1 s settle, ${SECONDS} s outage${FAULT === 'kill' ? ', then a 4 s run with memcached killed at 1 s and restarted 1.5 s later (its p99, and its slowest response from 0.9 s on)' : ''}; near cache: ttl 60 s, NATS bus; ${ROUNDS} rounds.\n\n` +
      table(
        [
          'variant',
          'healthy req/s',
          'outage req/s',
          'outage vs no cache',
          'healthy p99 ms',
          'outage p99 ms',
          'errors to clients',
          'log lines per minute',
          'recovery ms',
          'database calls per request while down',
          ...(FAULT === 'kill'
            ? ['kill + restart p99 ms', 'kill + restart max ms', 'max vs without near cache, per round']
            : []),
        ],
        rows,
      ) +
      '\n',
  );
}

void main().then(() => process.exit(0));
