// A writer that dies during a partition: a client on the bus says `ready`, and on `go` (sent while
// memcached is frozen) deletes its keys, which all reject, prints how many did, and exits at once,
// without closing anything: whatever it owed is lost with it unless the bus carried it.
import { createInterface } from 'node:readline';
import { MemcachedClient } from '../../../lib/index.js';

interface Job {
  servers: string;
  bus: string;
  keys: string[];
}

const job = JSON.parse(process.argv[2]) as Job;
const client = new MemcachedClient({
  servers: job.servers,
  timeout: 150,
  logger: false,
  bus: { transport: 'nats', url: job.bus, heartbeat: 200, keys: [{ id: 1, key: Buffer.alloc(32, 7) }] },
});

async function main(): Promise<void> {
  while (client.stats().bus?.healthy !== true) await new Promise((r) => setTimeout(r, 10));
  console.log('ready');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line !== 'go') continue;
    const results = await Promise.allSettled(job.keys.map((key) => client.delete(key, { namespace: 'shared' })));
    // the debts' messages are on their way to the broker: give them a moment, as any write would have
    await new Promise((r) => setTimeout(r, 100));
    console.log(JSON.stringify({ rejected: results.filter((r) => r.status === 'rejected').length }));
    process.exit(0);
  }
}

void main();
