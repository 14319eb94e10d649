// Thundering herd: 200 concurrent requests for one cold id, counting database calls; in one
// server process, and spread over 4 server processes sharing one memcached.
// Run: npm run bench:herd   (BENCH_REPEATS)
import { freePort, MemcachedDaemon } from '../test/support/memcached-daemon.js';
import { httpServer as server, loadGenerator as load, runJson, startServer, stop } from './support/processes.js';
import { cell, machineNotes, table } from './support/report.js';

const REPEATS = Number(process.env.BENCH_REPEATS ?? 5);

async function dbCalls(url: string): Promise<number> {
  return ((await (await fetch(`${url}/__stats`)).json()) as { dbCalls: number }).dbCalls;
}

async function herd(variant: string, processes: number, daemon: MemcachedDaemon): Promise<number[]> {
  const counts: number[] = [];
  const urls: string[] = [];
  const children = [];
  for (let i = 0; i < processes; i++) {
    const port = await freePort();
    children.push(
      await startServer(
        server,
        { VARIANT: variant, PORT: String(port), MEMCACHED: daemon.address, DB_DELAY_MS: '50' },
        { pin: false },
      ),
    );
    urls.push(`http://127.0.0.1:${port}`);
  }
  try {
    for (let r = 0; r < REPEATS; r++) {
      const id = 100_000 + Math.floor(Math.random() * 1e6);
      const before = await Promise.all(urls.map(dbCalls));
      const per = 200 / processes;
      await Promise.all(urls.map((url) => runJson(load, { url, connections: per, amount: per, ids: 1, fixedId: id })));
      const after = await Promise.all(urls.map(dbCalls));
      counts.push(after.reduce((sum, n, i) => sum + n - before[i], 0));
    }
  } finally {
    await Promise.all(children.map(stop));
  }
  return counts;
}

async function main() {
  const daemon = await MemcachedDaemon.start();
  const rows: string[][] = [];
  for (const [variant, processes] of [
    ['handwritten', 1],
    ['nest-cache-manager', 1],
    ['ours-controller', 1],
    ['ours-getorset', 1],
    ['handwritten', 4],
    ['ours-controller', 4],
  ] as const) {
    const counts = await herd(variant, processes, daemon);
    rows.push([variant, String(processes), cell(counts), counts.join(', ')]);
    process.stderr.write(`${variant} x${processes}: ${counts.join(', ')}\n`);
  }
  process.stdout.write(
    `# Herd\n\n${machineNotes()}; 200 concurrent GET /users/<cold id> (50 ms database), ${REPEATS} repetitions with a new id each; with 4 processes, 50 requests to each.\n\n` +
      table(['variant', 'server processes', 'database calls per 200 requests', 'each repetition'], rows) +
      '\n',
  );
  await daemon.kill();
}

void main().then(() => process.exit(0));
