// A separate OS process for the lease tests. Reads its job from argv[2] (JSON), prints one JSON
// line with its results on stdout, and exits.
import { MemcachedClient } from '../../../lib/index.js';

interface Job {
  mode: 'herd' | 'soak' | 'crash';
  servers: string;
  key?: string;
  keys?: string[];
  concurrency?: number;
  sourceMs?: number;
  durationMs?: number;
  dbUrl?: string;
  leases?: boolean;
}

const job = JSON.parse(process.argv[2]) as Job;
const client = new MemcachedClient({
  servers: job.servers,
  leases: job.leases ?? true,
  leaseWait: 3000,
  timeout: 1000,
  logger: false,
});
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function herd() {
  let sourceCalls = 0;
  const source = async () => {
    sourceCalls++;
    await sleep(job.sourceMs ?? 200);
    return { value: 'computed', by: process.pid };
  };
  // start barrier: every process is loaded and connected before any of them calls
  await client.ping();
  process.stdout.write('READY\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  const results = await Promise.all(
    Array.from({ length: job.concurrency ?? 50 }, () => client.getOrSet(job.key!, source, { ttl: 60 })),
  );
  return { sourceCalls, results, stats: client.stats() };
}

async function soak() {
  const reads: Array<[number, string, number]> = [];
  const until = Date.now() + job.durationMs!;
  const loop = async () => {
    while (Date.now() < until) {
      const key = job.keys![Math.floor(Math.random() * job.keys!.length)];
      const startedAt = now();
      const row = await client.getOrSet(
        key,
        async () => {
          const res = await fetch(`${job.dbUrl}/${key}`);
          return (await res.json()) as { version: number };
        },
        { ttl: 60 },
      );
      reads.push([startedAt, key, row.version]);
      await sleep(Math.random() * 3);
    }
  };
  await Promise.all(Array.from({ length: job.concurrency ?? 8 }, loop));
  return { reads, stats: client.stats() };
}

async function crash() {
  await client.getOrSet(job.key!, () => {
    process.stdout.write('LEASED\n');
    return new Promise(() => undefined);
  });
  return {};
}

const run = { herd, soak, crash }[job.mode];
run()
  .then((result) => {
    client.close();
    // exit only once the (possibly large) result has been flushed to the pipe
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
  })
  .catch((error) => {
    process.stderr.write(String(error?.stack ?? error) + '\n');
    process.exit(1);
  });
