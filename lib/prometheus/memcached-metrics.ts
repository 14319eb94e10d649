import { Counter, Gauge, Histogram, type Registry, register as defaultRegistry } from 'prom-client';
import type { MemcachedClient } from '../client/memcached.client.js';
import type { MemcachedCache } from '../cache/memcached-cache.js';

export interface MemcachedMetricsOptions {
  /** Default: prom-client's global registry. */
  registry?: Registry;
  /** Metric name prefix. Default `memcached_`. */
  prefix?: string;
}

const SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Exposes the cache's counters and latencies as Prometheus metrics (prom-client, an optional peer
 * dependency): cached calls by namespace and outcome with their latency, fills, evictions,
 * errors and lease waits per namespace, memcached operations by operation and node with their
 * latency, the client's counters, each node's up/down state, and the near cache and its bus
 * when configured. Returns a function that stops recording.
 *
 * @example
 * registerMemcachedMetrics(app.get(MemcachedClient), app.get(MemcachedCache), { registry });
 */
export function registerMemcachedMetrics(
  client: MemcachedClient,
  cache: MemcachedCache | undefined,
  options: MemcachedMetricsOptions = {},
): () => void {
  const registry = options.registry ?? defaultRegistry;
  const p = options.prefix ?? 'memcached_';
  const registers = [registry];
  const unsubscribe: Array<() => void> = [];

  const requests = new Counter({
    name: `${p}cache_requests_total`,
    help: 'Cached calls by namespace and outcome (hit, stale, miss, bypass)',
    labelNames: ['namespace', 'outcome'],
    registers,
  });
  const requestDuration = new Histogram({
    name: `${p}cache_request_duration_seconds`,
    help: 'Duration of cached calls (a miss includes the source)',
    labelNames: ['namespace', 'outcome'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const namespaceEvents = new Counter({
    name: `${p}cache_events_total`,
    help: 'Fills, evictions, errors and lease waits by namespace',
    labelNames: ['namespace', 'event'],
    registers,
  });
  const operationDuration = new Histogram({
    name: `${p}operation_duration_seconds`,
    help: 'memcached operations by operation, node and result',
    labelNames: ['operation', 'node', 'result'],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  new Counter({
    name: `${p}client_events_total`,
    help: "The client's counters (lease grants, waits, timeouts, rejected fills, oversize skips, ...)",
    labelNames: ['event'],
    registers,
    collect() {
      this.reset();
      for (const [event, value] of Object.entries(client.stats()))
        if (typeof value === 'number') this.inc({ event }, value);
    },
  });
  new Counter({
    name: `${p}near_cache_events_total`,
    help: 'Near cache: hits, misses, invalidations, flushes, refused fills, followed evictions and failures; bus: published, received, gaps, new sources, malformed, flushes, publish failures',
    labelNames: ['event'],
    registers,
    collect() {
      this.reset();
      const near = client.stats().nearCache;
      if (near === undefined) return;
      const { hits, misses, invalidations, flushes, refusedFills } = near.cache;
      const followed = { followed_evictions: near.followed.evictions, followed_failures: near.followed.failures };
      for (const [event, value] of Object.entries({
        hits,
        misses,
        invalidations,
        flushes,
        refused_fills: refusedFills,
        ...followed,
      }))
        this.inc({ event }, value);
      if (near.bus === undefined) return;
      const { published, received, gaps, newSources, malformed, publishFailures } = near.bus;
      const busEvents = {
        bus_published: published,
        bus_received: received,
        bus_gaps: gaps,
        bus_new_sources: newSources,
        bus_malformed: malformed,
        bus_flushes: near.bus.flushes,
        bus_publish_failures: publishFailures,
      };
      for (const [event, value] of Object.entries(busEvents)) this.inc({ event }, value);
    },
  });
  new Gauge({
    name: `${p}near_cache`,
    help: 'Near cache: entries, bytes, active (1 while the bus vouches for it), bus_healthy, bus_lag_seconds (last heartbeat round trip), bus_quiet_sources (processes not heard from within the heartbeat)',
    labelNames: ['measure'],
    registers,
    collect() {
      this.reset();
      const near = client.stats().nearCache;
      if (near === undefined) return;
      this.set({ measure: 'entries' }, near.cache.entries);
      this.set({ measure: 'bytes' }, near.cache.bytes);
      this.set({ measure: 'active' }, near.cache.active ? 1 : 0);
      this.set({ measure: 'bus_healthy' }, near.bus?.healthy ? 1 : 0);
      if (near.bus !== undefined) this.set({ measure: 'bus_quiet_sources' }, near.bus.quietSources);
      if (near.bus?.lagMs !== undefined) this.set({ measure: 'bus_lag_seconds' }, near.bus.lagMs / 1000);
    },
  });
  new Gauge({
    name: `${p}node_up`,
    help: '1 while the node is up, 0 while its circuit breaker is open',
    labelNames: ['node'],
    registers,
    collect() {
      for (const status of client.nodeStatus()) this.set({ node: status.node }, status.state === 'up' ? 1 : 0);
    },
  });

  unsubscribe.push(
    client.onOperation((e) =>
      operationDuration.observe(
        { operation: e.operation, node: e.node, result: e.error ? 'error' : 'ok' },
        e.durationMs / 1000,
      ),
    ),
  );
  if (cache) {
    const events = cache.events;
    unsubscribe.push(
      events.on('hit', (e) => {
        const outcome = e.stale ? 'stale' : 'hit';
        requests.inc({ namespace: e.namespace, outcome });
        requestDuration.observe({ namespace: e.namespace, outcome }, e.durationMs / 1000);
      }),
      events.on('miss', (e) => {
        requests.inc({ namespace: e.namespace, outcome: 'miss' });
        requestDuration.observe({ namespace: e.namespace, outcome: 'miss' }, e.durationMs / 1000);
      }),
      events.on('bypass', (e) => requests.inc({ namespace: e.namespace, outcome: 'bypass' })),
      events.on('fill', (e) => namespaceEvents.inc({ namespace: e.namespace, event: 'fill' })),
      events.on('evict', (e) => namespaceEvents.inc({ namespace: e.namespace, event: 'eviction' })),
      events.on('error', (e) => namespaceEvents.inc({ namespace: e.namespace, event: 'error' })),
      events.on('leaseWait', (e) => namespaceEvents.inc({ namespace: e.namespace, event: 'lease_wait' })),
    );
  }
  return () => {
    for (const off of unsubscribe) off();
    for (const name of [
      'cache_requests_total',
      'cache_request_duration_seconds',
      'cache_events_total',
      'operation_duration_seconds',
      'client_events_total',
      'node_up',
      'near_cache_events_total',
      'near_cache',
    ]) {
      registry.removeSingleMetric(p + name);
    }
  };
}
