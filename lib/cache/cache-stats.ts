import { LatencyHistogram, type LatencySnapshot } from '../utils/latency-histogram.js';

/** Counters of one namespace since the application started. */
export interface NamespaceStats {
  hits: number;
  /** Latency of cached calls (hits and misses), ms. */
  latency: LatencySnapshot;
  /** Hits served stale while one caller refreshed (stale-while-revalidate). */
  stale: number;
  misses: number;
  fills: number;
  evictions: number;
  bypasses: number;
  errors: number;
  /** Misses that waited for another caller's lease. */
  leaseWaits: number;
}

type Counters = Omit<NamespaceStats, 'latency'> & { latency: LatencyHistogram };

/** Per-namespace counters and latency of cached calls. */
export class CacheStats {
  private readonly namespaces = new Map<string, Counters>();

  of(namespace: string): Counters {
    let stats = this.namespaces.get(namespace);
    if (!stats) {
      stats = {
        hits: 0,
        stale: 0,
        misses: 0,
        fills: 0,
        evictions: 0,
        bypasses: 0,
        errors: 0,
        leaseWaits: 0,
        latency: new LatencyHistogram(),
      };
      this.namespaces.set(namespace, stats);
    }
    return stats;
  }

  snapshot(): Record<string, NamespaceStats> {
    return Object.fromEntries([...this.namespaces].map(([ns, s]) => [ns, { ...s, latency: s.latency.snapshot() }]));
  }
}
