// A separate OS process (another service: its own key prefix) for the tag tests. Reads its job
// from argv[2] (JSON): `invalidate` gives the tags new versions; `read` reads a tagged key through
// getOrSet and says whether its loader ran. Prints one JSON line, and exits.
import { MemcachedClient } from '../../../lib/index.js';

interface Job {
  mode: 'invalidate' | 'read';
  servers: string;
  keyPrefix: string;
  tagPrefix?: string;
  tags: string[];
  key?: string;
  namespace?: string;
}

const job = JSON.parse(process.argv[2]) as Job;
const client = new MemcachedClient({
  servers: job.servers,
  keyPrefix: job.keyPrefix,
  tagPrefix: job.tagPrefix,
  logger: false,
});

async function main() {
  if (job.mode === 'invalidate') {
    await client.invalidateTags(job.tags);
    return { invalidated: job.tags };
  }
  let loaded = false;
  const value = await client.getOrSet(
    job.key!,
    async () => {
      loaded = true;
      return { by: process.pid };
    },
    { namespace: job.namespace, tags: job.tags, ttl: 60 },
  );
  return { loaded, value };
}

main()
  .then((result) => {
    process.stdout.write(JSON.stringify(result) + '\n');
    client.close();
    process.exit(0);
  })
  .catch((error: Error) => {
    process.stderr.write(String(error.stack));
    process.exit(1);
  });
