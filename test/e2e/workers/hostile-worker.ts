// A separate OS process for the hostile-server test: with no test runner around it, an uncaught
// exception from the client ends it with a non-zero exit. Calls the client `calls` times and
// prints how many calls settled.
import { MemcachedClient } from '../../../lib/index.js';

const job = JSON.parse(process.argv[2]) as { servers: string; calls: number };

const client = new MemcachedClient({ servers: job.servers, timeout: 150, breakerThreshold: 0, logger: false });
let settled = 0;
for (let i = 0; i < job.calls; i++) {
  const ops = [client.get(`k${i}`), client.getMulti([`a${i}`, `b${i}`]), client.increment(`c${i}`, 1)];
  for (const result of await Promise.allSettled(ops)) void result;
  settled++;
}
client.close();
process.stdout.write(JSON.stringify({ settled }) + '\n', () => process.exit(0));
