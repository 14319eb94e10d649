// A separate OS process (another service, traced with its own OpenTelemetry SDK) that writes once
// inside a span: deletes a key, so its bus message carries that span's trace context. Reads its
// job from argv[2] (JSON); prints `{"traceId": ...}` once the message is published, and exits.
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { MemcachedClient } from '../../../lib/index.js';
import { enableMemcachedTracing } from '../../../lib/otel/index.js';

interface Job {
  servers: string;
  keyPrefix: string;
  natsUrl: string;
  channel: string;
  key: string;
  namespace: string;
}

const job = JSON.parse(process.argv[2]) as Job;
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider());
enableMemcachedTracing();
const client = new MemcachedClient({
  servers: job.servers,
  keyPrefix: job.keyPrefix,
  logger: false,
  nearCache: { ttl: 60 },
  bus: { transport: 'nats', url: job.natsUrl, channel: job.channel, heartbeat: 200 },
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  for (let i = 0; i < 100 && !client.stats().bus?.healthy; i++) await sleep(50);
  const traceId = await trace.getTracer('writer').startActiveSpan('PUT /profile', async (span) => {
    await client.delete(job.key, { namespace: job.namespace });
    span.end();
    return span.spanContext().traceId;
  });
  for (let i = 0; i < 100 && client.stats().bus!.published === 0; i++) await sleep(10);
  return { traceId, published: client.stats().bus!.published };
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
