import { MemcachedConfigError } from '../config/memcached-options.js';
import type { Registry } from 'prom-client';
import type { MemcachedClient } from '../client/memcached.client.js';
import type { LatencyCounts, NamespaceCounterView } from '../stats/cache-stats.js';
import { LATENCY_BUCKETS_MS } from '../stats/latency-histogram.js';
import { metricsRegistryMissing } from '../memcached.messages.js';

export interface MemcachedMetricsOptions {
  /** The prom-client registry to register in. */
  registry: Registry;
  /** Metric name prefix. Default `memcached_`. */
  prefix?: string;
}

/** The latency buckets in seconds, as Prometheus reports them (rounded: 2.5 / 1000 is not 0.0025 in binary). */
const SECONDS = LATENCY_BUCKETS_MS.map((ms) => Number((ms / 1000).toPrecision(6)));

type Labels = Record<string, string | number>;
type Sample = { value: number; labels: Labels; metricName?: string };
type MetricType = 'counter' | 'gauge' | 'histogram';

/**
 * A metric whose samples are read from the client's counters when Prometheus scrapes, so nothing
 * is recorded per call: prom-client's registry accepts any object of this shape.
 */
class ScrapedMetric {
  readonly aggregator = 'sum';

  constructor(
    public name: string,
    readonly help: string,
    readonly type: MetricType,
    private readonly samples: () => Sample[],
  ) {}

  async get() {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples() };
  }

  /** The counters belong to the client; a registry reset leaves them alone. */
  reset(): void {}
}

/** A histogram's samples (`_bucket` per bound, `_sum`, `_count`) from milliseconds to seconds. */
function histogramSamples(out: Sample[], name: string, labels: Labels, histogram: LatencyCounts): void {
  let cumulative = 0;
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) {
    cumulative += histogram.counts[i];
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: SECONDS[i] }, value: cumulative });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: histogram.count });
  out.push({ metricName: `${name}_sum`, labels, value: histogram.sum / 1000 });
  out.push({ metricName: `${name}_count`, labels, value: histogram.count });
}

/**
 * Exposes the cache's counters and latencies as Prometheus metrics in a prom-client registry:
 * reads by namespace and outcome with their latency, fills, evictions, errors and lease waits per
 * namespace (namespaces not named in code by family, bounded by the module's `metrics` option), memcached operations by operation, node and result with their latency, the client's
 * counters, each node's up/down state, and the near cache and its bus when configured. The
 * samples are read from the same counters as `client.stats()` and `MemcachedCache.stats()` when
 * the registry is scraped, so they agree and nothing is recorded per call. Returns a function that
 * removes the metrics.
 *
 * @example
 * const registry = new Registry();
 * registerMemcachedMetrics(app.get(MemcachedClient), { registry });
 */
export function registerMemcachedMetrics(client: MemcachedClient, options: MemcachedMetricsOptions): () => void {
  const registry = options?.registry;
  if (registry === undefined || typeof registry.registerMetric !== 'function') {
    throw new MemcachedConfigError(metricsRegistryMissing());
  }
  const p = options.prefix ?? 'memcached_';
  const stats = client.counters();
  // One label per namespace named in code and per family of the others (`metrics`): bounded however
  // many namespaces the service meets. Read once per scrape: the registry asks the three metrics below
  // in one synchronous pass, so the labels are summed once and dropped at the end of that pass.
  let scraped: Array<[string, NamespaceCounterView]> | undefined;
  const labels = () => {
    if (scraped === undefined) {
      scraped = [...stats.families()];
      queueMicrotask(() => (scraped = undefined));
    }
    return scraped;
  };
  const namespaces = (each: (name: string, counters: NamespaceCounterView, out: Sample[]) => void) => () => {
    const out: Sample[] = [];
    for (const [name, counters] of labels()) each(name, counters, out);
    return out;
  };

  const metrics = [
    new ScrapedMetric(
      `${p}cache_requests_total`,
      'Reads by namespace and outcome (hit, stale, graced, miss) and cached calls that went around the cache (bypass)',
      'counter',
      namespaces((namespace, s, out) => {
        out.push({ labels: { namespace, outcome: 'hit' }, value: s.hits - s.stale });
        out.push({ labels: { namespace, outcome: 'stale' }, value: s.stale });
        out.push({ labels: { namespace, outcome: 'graced' }, value: s.graced });
        out.push({ labels: { namespace, outcome: 'miss' }, value: s.misses });
        out.push({ labels: { namespace, outcome: 'bypass' }, value: s.bypasses });
      }),
    ),
    new ScrapedMetric(
      `${p}cache_request_duration_seconds`,
      'Duration of reads by namespace and outcome (a miss includes the source)',
      'histogram',
      namespaces((namespace, s, out) => {
        const name = `${p}cache_request_duration_seconds`;
        histogramSamples(out, name, { namespace, outcome: 'hit' }, s.latency.HIT);
        histogramSamples(out, name, { namespace, outcome: 'stale' }, s.latency.STALE);
        histogramSamples(out, name, { namespace, outcome: 'miss' }, s.latency.MISS);
      }),
    ),
    new ScrapedMetric(
      `${p}cache_events_total`,
      'Fills, evictions, errors and lease waits by namespace',
      'counter',
      namespaces((namespace, s, out) => {
        out.push({ labels: { namespace, event: 'fill' }, value: s.fills });
        out.push({ labels: { namespace, event: 'eviction' }, value: s.evictions });
        out.push({ labels: { namespace, event: 'error' }, value: s.errors });
        out.push({ labels: { namespace, event: 'lease_wait' }, value: s.leaseWaits });
      }),
    ),
    new ScrapedMetric(
      `${p}operation_duration_seconds`,
      'memcached operations by operation, node and result',
      'histogram',
      () => {
        const out: Sample[] = [];
        const name = `${p}operation_duration_seconds`;
        for (const [operation, byNode] of stats.operations()) {
          for (const [node, counters] of byNode) {
            if (counters.ok.count > 0) histogramSamples(out, name, { operation, node, result: 'ok' }, counters.ok);
            if (counters.error.count > 0) {
              histogramSamples(out, name, { operation, node, result: 'error' }, counters.error);
            }
          }
        }
        return out;
      },
    ),
    new ScrapedMetric(
      `${p}client_events_total`,
      "The client's counters (hits and misses of every read path, sets, deletes, errors, lease grants and waits, ...)",
      'counter',
      () => Object.entries(stats.totals()).map(([event, value]) => ({ labels: { event }, value })),
    ),
    new ScrapedMetric(
      `${p}near_cache_events_total`,
      'Near cache: hits, misses, invalidations, flushes, refused fills; bus: published, received, gaps, ' +
        'new sources, malformed, forged, replayed, stale, dropped, flushes, publish failures, followed evictions and failures',
      'counter',
      () => {
        const { nearCache: near, bus } = client.stats();
        const events: Record<string, number> = {};
        if (near !== undefined) {
          Object.assign(events, {
            hits: near.hits,
            misses: near.misses,
            invalidations: near.invalidations,
            flushes: near.flushes,
            refused_fills: near.refusedFills,
          });
        }
        if (bus !== undefined) {
          Object.assign(events, {
            followed_evictions: bus.followed.evictions,
            followed_failures: bus.followed.failures,
            bus_published: bus.published,
            bus_received: bus.received,
            bus_gaps: bus.gaps,
            bus_new_sources: bus.newSources,
            bus_malformed: bus.malformed,
            bus_forged: bus.forged,
            bus_replayed: bus.replayed,
            bus_stale: bus.stale,
            bus_dropped: bus.dropped,
            bus_flushes: bus.flushes,
            bus_publish_failures: bus.publishFailures,
          });
        }
        return Object.entries(events).map(([event, value]) => ({ labels: { event }, value }));
      },
    ),
    new ScrapedMetric(
      `${p}near_cache`,
      'Near cache: entries, bytes, active (1 while the bus vouches for it); bus: bus_healthy, bus_lag_seconds ' +
        '(last heartbeat round trip), bus_quiet_sources (processes not heard from within the heartbeat)',
      'gauge',
      () => {
        const { nearCache: near, bus } = client.stats();
        const out: Sample[] = [];
        if (near !== undefined) {
          out.push({ labels: { measure: 'entries' }, value: near.entries });
          out.push({ labels: { measure: 'bytes' }, value: near.bytes });
          out.push({ labels: { measure: 'active' }, value: near.active ? 1 : 0 });
        }
        if (bus !== undefined) {
          out.push({ labels: { measure: 'bus_healthy' }, value: bus.healthy ? 1 : 0 });
          out.push({ labels: { measure: 'bus_quiet_sources' }, value: bus.quietSources });
          if (bus.lagMs !== undefined) out.push({ labels: { measure: 'bus_lag_seconds' }, value: bus.lagMs / 1000 });
        }
        return out;
      },
    ),
    new ScrapedMetric(`${p}node_up`, '1 while the node is up, 0 while its circuit breaker is open', 'gauge', () =>
      client.nodeStatus().map((status) => ({ labels: { node: status.node }, value: status.state === 'up' ? 1 : 0 })),
    ),
  ];
  for (const metric of metrics) registry.registerMetric(metric as never);
  return () => {
    for (const metric of metrics) {
      if (registry.getSingleMetric(metric.name) === (metric as never)) registry.removeSingleMetric(metric.name);
    }
  };
}
