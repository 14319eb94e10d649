// The load generator, run in its own process: autocannon against GET /users/<random id>.
// argv: JSON { url, connections, seconds, ids, fixedId? }; prints one JSON line of results.
import autocannon from 'autocannon';

const job = JSON.parse(process.argv[2]) as { url: string; connections: number; seconds?: number; amount?: number; ids: number; fixedId?: number };
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
          path: `/users/${job.fixedId ?? 1 + Math.floor(Math.random() * job.ids)}`,
        }),
      },
    ],
  },
  (error: unknown, result: { requests: { total: number; average: number }; non2xx: number; errors: number; timeouts: number; duration: number }) => {
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
      }) + '\n',
    );
  },
);
instance.on('response', (client: unknown, _status: number, _bytes: number, responseTime: number) => {
  latencies.push(responseTime);
  started.delete(client);
});
