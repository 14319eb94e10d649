// The process a hostile publisher attacks: a client with a near cache and a bus (and follow rules),
// in its own process so that the attacker's own work never counts as the victim's. It primes its
// near cache, says `ready`, and on `attack` starts watching its event loop; on `done` it waits for
// what is queued to drain, reads its primed keys again (counting loads), collects garbage and
// prints one JSON line: the longest event-loop stall, the heap after GC before and after, the loads
// during the check, and its counters.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { MemcachedClient } from '../../../lib/index.js';

interface Job {
  servers: string;
  transport: 'nats' | 'redis';
  url: string;
  channel: string;
  keys?: Array<{ id: number; key: string }>;
  /** Keys primed in the victim's near cache. */
  primed: number;
}

const job = JSON.parse(process.argv[2]) as Job;
const gc = (globalThis as { gc?: () => void }).gc!;
const client = new MemcachedClient({
  servers: job.servers,
  keyPrefix: 'victim:',
  logger: false,
  nearCache: { ttl: 600 },
  bus: {
    transport: job.transport,
    url: job.url,
    channel: job.channel,
    keys: job.keys,
    // the forged follows name this namespace of another service's prefix (follow needs keys)
    follow: job.keys === undefined ? undefined : [{ keyPrefix: 'users:', namespace: 'users', evict: 'user-names' }],
  },
});

let loads = 0;
const read = (i: number) => client.getOrSet(`k${i}`, async () => ++loads, { namespace: 'victim' });

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  while (client.stats().bus?.healthy !== true) await new Promise((r) => setTimeout(r, 10));
  // a miss and fill, then a memcached hit the near cache keeps, then near hits
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < job.primed; i++) await read(i);
    await new Promise((r) => setTimeout(r, 20));
  }
  const lines = createInterface({ input: process.stdin });
  const monitor = monitorEventLoopDelay({ resolution: 5 });
  // garbage collection pauses count as stalls too: the longest is reported beside them
  let longestGcMs = 0;
  let watching = false;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (watching) longestGcMs = Math.max(longestGcMs, entry.duration);
  }).observe({ entryTypes: ['gc'] });
  let heapBefore = 0;
  let cpuBefore = process.cpuUsage();
  let before = client.stats();
  console.log('ready');
  for await (const line of lines) {
    if (line === 'attack') {
      heapBefore = heapAfterGc();
      before = client.stats();
      monitor.enable();
      cpuBefore = process.cpuUsage();
      watching = true;
      console.log('watching');
    } else if (line === 'done') {
      // what the broker still holds for us arrives and is handled while the monitor runs
      await new Promise((r) => setTimeout(r, 1500));
      monitor.disable();
      watching = false;
      const loadsBefore = loads;
      for (let i = 0; i < job.primed; i++) await read(i);
      const after = client.stats();
      console.log(
        JSON.stringify({
          maxStallMs: monitor.max / 1e6,
          p99StallMs: monitor.percentile(99) / 1e6,
          cpuMs: (process.cpuUsage(cpuBefore).user + process.cpuUsage(cpuBefore).system) / 1000,
          longestGcMs,
          heapBefore,
          heapAfter: heapAfterGc(),
          checkLoads: loads - loadsBefore,
          before,
          after,
        }),
      );
      client.close();
      setTimeout(() => process.exit(0), 300).unref();
      return;
    }
  }
}

void main();
