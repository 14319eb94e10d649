// The load generator, run in its own process: autocannon against GET /users/<random id>.
// argv: JSON { url, connections, seconds | amount, ids, fixedId?, everyId? }; prints one JSON line of
// results. everyId: ids 1..ids in turn (a warm-up that caches every id), else random ids.
import autocannon from 'autocannon';

const job = JSON.parse(process.argv[2]) as {
  /** `windowMax` is the slowest response that arrived this many ms or more into the run. */
  windowFromMs?: number;
  url: string;
  connections: number;
  seconds?: number;
  amount?: number;
  ids: number;
  fixedId?: number;
  everyId?: boolean;
};
let next = 0;
const pickId = () => job.fixedId ?? (job.everyId ? 1 + (next++ % job.ids) : 1 + Math.floor(Math.random() * job.ids));
const latencies: number[] = [];
const started = new Map<unknown, number>();

const instance = autocannon(
  {
    url: job.url,
    connections: job.connections,
    ...(job.amount ? { amount: job.amount } : { duration: job.seconds }),
    requests: [
      {
        setupRequest: (req: Record<string, unknown>) => ({
          ...req,
          path: `/users/${pickId()}`,
        }),
      },
    ],
  },
  (
    error: unknown,
    result: {
      requests: { total: number; average: number };
      non2xx: number;
      errors: number;
      timeouts: number;
      duration: number;
    },
  ) => {
    if (error) throw error;
    latencies.sort((a, b) => a - b);
    const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
    process.stdout.write(
      JSON.stringify({
        requests: result.requests.total,
        rps: result.requests.total / (job.seconds ?? result.duration),
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        p50: q(0.5),
        p99: q(0.99),
        max: latencies[latencies.length - 1] ?? 0,
        maxAt: slowest.at,
        windowMax,
      }) + '\n',
    );
  },
);
const begun = performance.now();
/** When the slowest response arrived, ms after the run began (to tell a fault's tail from noise). */
let slowest = { ms: 0, at: 0 };
let windowMax = 0;
instance.on('response', (client: unknown, _status: number, _bytes: number, responseTime: number) => {
  latencies.push(responseTime);
  const at = performance.now() - begun;
  if (responseTime > slowest.ms) slowest = { ms: responseTime, at: Math.round(at) };
  if (job.windowFromMs !== undefined && at >= job.windowFromMs && responseTime > windowMax) windowMax = responseTime;
  started.delete(client);
});
