import { CacheEvents } from './cache-events.js';
import { LatencyHistogram, type LatencySnapshot, roundMs, snapshotOf } from './latency-histogram.js';
import {
  DEFAULT_NAMESPACE_LIMITS,
  NO_NAMESPACE,
  type NamespaceCounters,
  type NamespaceLimits,
  type NamespaceStats,
  NamespaceTable,
} from './namespace-table.js';

export {
  DEFAULT_NAMESPACE_LIMITS,
  leadingLetters,
  MAX_FAMILIES,
  MAX_NAMESPACES,
  NAMESPACE_ENTRY_BYTES,
  NO_NAMESPACE,
  OTHER_NAMESPACES,
  type NamespaceCounters,
  type NamespaceLimits,
  type NamespaceStats,
} from './namespace-table.js';

/** Counters since the client started (see `MemcachedClient.stats()`). */
export interface MemcachedClientStats {
  /** Reads served from the cache, by any path (`get`, `getMulti`, `getOrSet`, decorators, near hits); stale ones included. */
  hits: number;
  /** Reads that found nothing usable (the source ran, for `getOrSet` and the decorators). */
  misses: number;
  sets: number;
  deletes: number;
  /** memcached operations that failed (any node, any reason). */
  errors: number;
  timeouts: number;
  /** Values not stored because they exceed `maxItemSize` (their key was deleted instead). */
  oversizeSkips: number;
  /** Values not stored because they would not come back unchanged (a class instance, a function...). */
  unsupportedValues: number;
  /** Items whose bytes could not be decoded (foreign writer, corruption); read as misses. */
  undecodable: number;
  /** With `encryption`: entries not encrypted by one of the configured keys, or tampered with; read as misses. */
  undecryptable: number;
  /** Leases taken: this process loaded a missing key for everyone. */
  leaseGrants: number;
  /** Misses that found another caller's lease and waited for its fill. */
  leaseWaits: number;
  /** Waits that ran out (`leaseWait`) and loaded without filling. */
  leaseWaitTimeouts: number;
  /** Fills refused because the key was evicted or overwritten after the lease was taken. */
  rejectedFills: number;
  /** Loads whose result was not stored because an eviction in this process came after they started. */
  splitFlights: number;
  /** Reads answered with an entry past its freshness because its source failed or was too slow (grace). */
  graced: number;
  /**
   * Invalidations (evictions, namespace evictions, overwrites) memcached did not confirm, held as
   * debts (this process's, and those other processes told of on the bus).
   */
  invalidationsOwed: number;
  /** Owed invalidations paid once memcached answered again. */
  invalidationsRepaid: number;
  /** Tags given a new version (`invalidateTags`, `@CacheEvict({ tags })`): their entries miss everywhere. */
  tagInvalidations: number;
  /** Entries read as misses because one of their tags was invalidated since they were stored. */
  tagMisses: number;
  /** Tag versions read along with entries (one key each in the same round trip). */
  tagReads: number;
}

/** Per operation: count, failures and latency. */
export interface OperationStats {
  count: number;
  errors: number;
  latency: LatencySnapshot;
}

/** A finished operation, as `onOperation` listeners see it. */
export interface OperationEvent {
  operation: string;
  node: string;
  durationMs: number;
  error?: unknown;
}

/**
 * How a read was served, as the counters know it. GRACED: an entry past its freshness, served
 * because its source failed or was too slow (grace); counted apart from hits and misses, and
 * kept out of the latency histograms (whose counts stay those of hits and misses).
 */
export type ReadOutcome = 'HIT' | 'MISS' | 'STALE' | 'GRACED';

/** The outcomes read latency is kept for. */
export type LatencyOutcome = Exclude<ReadOutcome, 'GRACED'>;

/** A read-through call as served: its outcome, a lease wait, a failure, and its fill settling later. */
export interface ServedRead {
  outcome: ReadOutcome;
  waited?: boolean;
  failure?: { operation: string; error: unknown };
  filled?: Promise<{ outcome: string; failure?: { operation: string; error: unknown } }>;
}

/** The client-wide events counted (see `MemcachedClientStats`) that are not reads or errors. */
export type ClientEvent = Exclude<keyof MemcachedClientStats, 'hits' | 'misses' | 'errors' | 'timeouts' | 'graced'>;

/** A latency histogram as an exporter reads it: per bucket of `LATENCY_BUCKETS_MS` (not cumulative), the last above them all. */
export interface LatencyCounts {
  readonly counts: readonly number[];
  readonly count: number;
  /** Milliseconds. */
  readonly sum: number;
}

/** One namespace's live counters, latency per outcome. */
export interface NamespaceCounterView extends Readonly<Omit<NamespaceStats, 'latency'>> {
  readonly latency: Readonly<Record<LatencyOutcome, LatencyCounts>>;
}

/**
 * The live counters, for an exporter that reads them when it is scraped (as
 * `nestjs-memcached/prometheus` does) without the copies `stats()` makes. Read them; never keep
 * what they return beyond the scrape.
 */
export interface MemcachedCounters {
  /** The client's totals (`MemcachedClientStats`). */
  totals(): Readonly<MemcachedClientStats>;
  /**
   * Per namespace: those named in code, and the others recently used up to `metrics.namespaces`;
   * the rest summed in `(other)`.
   */
  namespaces(): Iterable<[string, NamespaceCounterView]>;
  /**
   * Per label, as metrics should report them: namespaces named in code by name, the others summed
   * by family (`metrics.family`), at most `metrics.families` families, the rest in `(other)`. The
   * number of labels never grows with the namespaces a service meets.
   */
  families(): Iterable<[string, NamespaceCounterView]>;
  /** Per memcached operation, per node: latency of those that succeeded and of those that failed. */
  operations(): Iterable<[string, ReadonlyMap<string, { readonly ok: LatencyCounts; readonly error: LatencyCounts }>]>;
  /** When a graced answer was last served (epoch ms; 0: never). */
  readonly lastGracedAt: number;
}

/** One operation on one node, by result. */
export interface OperationCounters {
  ok: LatencyHistogram;
  error: LatencyHistogram;
}

/**
 * The one place that counts. Every read path (`get`, `getMulti`, `getOrSet`, the decorators, near
 * hits) reports here through the same intent methods, which count and emit the event, so
 * `client.stats()`, `MemcachedCache.stats()`, the events and Prometheus (which reads these counters
 * when scraped) cannot disagree.
 */
export class CacheStats implements MemcachedCounters {
  readonly events = new CacheEvents();
  private readonly counters: MemcachedClientStats = {
    hits: 0,
    misses: 0,
    sets: 0,
    deletes: 0,
    errors: 0,
    timeouts: 0,
    oversizeSkips: 0,
    unsupportedValues: 0,
    undecodable: 0,
    undecryptable: 0,
    leaseGrants: 0,
    leaseWaits: 0,
    leaseWaitTimeouts: 0,
    rejectedFills: 0,
    splitFlights: 0,
    graced: 0,
    invalidationsOwed: 0,
    invalidationsRepaid: 0,
    tagInvalidations: 0,
    tagMisses: 0,
    tagReads: 0,
  };
  /** Per namespace, bounded (`metrics`). */
  private readonly table: NamespaceTable;
  /** operation -> node -> latency by result */
  private readonly operationCounters = new Map<string, Map<string, OperationCounters>>();
  private readonly listeners: Array<(event: OperationEvent) => void> = [];
  /** When a graced answer was last served (ms), 0 never: `/health` says degraded for a while after. */
  lastGracedAt = 0;

  constructor(limits: NamespaceLimits = DEFAULT_NAMESPACE_LIMITS) {
    this.table = new NamespaceTable(limits);
  }

  /** A namespace named in code (a decorator's, the module options'): always counted by itself. */
  declare(namespace: string): void {
    this.table.declare(namespace);
  }

  /** A read of `key` was served (`undefined` namespace: a key without one). */
  read(namespace: string | undefined, key: string, outcome: ReadOutcome, durationMs: number): void {
    const name = namespace ?? NO_NAMESPACE;
    const stats = this.of(name);
    if (outcome === 'GRACED') {
      // not in a latency histogram: their counts stay those of hits and misses
      stats.graced++;
      this.counters.graced++;
      this.lastGracedAt = Date.now();
      if (this.events.has('graced'))
        this.events.emit('graced', { namespace: name, key, durationMs: roundMs(durationMs) });
      return;
    }
    stats.latency[outcome].observe(durationMs);
    if (outcome === 'MISS') {
      stats.misses++;
      this.counters.misses++;
      if (this.events.has('miss')) this.events.emit('miss', { namespace: name, key, durationMs: roundMs(durationMs) });
      return;
    }
    stats.hits++;
    this.counters.hits++;
    if (outcome === 'STALE') stats.stale++;
    if (this.events.has('hit')) {
      this.events.emit('hit', { namespace: name, key, durationMs: roundMs(durationMs), stale: outcome === 'STALE' });
    }
  }

  /**
   * A read-through call (`getOrSet`, a decorator) was served: counted once, with its lease wait,
   * and its fill when that settles. Failures go to `failure`, which counts and reports them.
   */
  served(
    namespace: string | undefined,
    key: string,
    served: ServedRead,
    durationMs: number,
    failure: (operation: string, error: unknown) => void,
  ): void {
    this.read(namespace, key, served.outcome, durationMs);
    if (served.waited) this.leaseWait(namespace, key);
    if (served.failure) failure(served.failure.operation, served.failure.error);
    served.filled?.then((report) => {
      if (report.outcome === 'stored') this.filled(namespace, key);
      if (report.failure) failure(report.failure.operation, report.failure.error);
    });
  }

  /** A miss waited for another caller's lease (the client's own `leaseWaits` counts every wait). */
  leaseWait(namespace: string | undefined, key: string): void {
    const name = namespace ?? NO_NAMESPACE;
    this.of(name).leaseWaits++;
    if (this.events.has('leaseWait')) this.events.emit('leaseWait', { namespace: name, key });
  }

  /** A read's result was stored. */
  filled(namespace: string | undefined, key: string): void {
    const name = namespace ?? NO_NAMESPACE;
    this.of(name).fills++;
    if (this.events.has('fill')) this.events.emit('fill', { namespace: name, key });
  }

  /** Tags were invalidated by this process (counted as they reach memcached, in `tagInvalidations`). */
  tagsInvalidated(tags: string[]): void {
    if (this.events.has('tagsInvalidated')) this.events.emit('tagsInvalidated', { tags });
  }

  /** A key (or, without one, the whole namespace) was evicted. */
  evicted(namespace: string, key: string | undefined): void {
    this.of(namespace).evictions++;
    if (!this.events.has('evict')) return;
    this.events.emit(
      'evict',
      key === undefined ? { namespace, allEntries: true } : { namespace, key, allEntries: false },
    );
  }

  /** A cached call went around the cache. */
  bypassed(namespace: string, reason: string): void {
    this.of(namespace).bypasses++;
    this.events.emit('bypass', { namespace, reason });
  }

  /** A cache operation of a cached call failed (the call went on without the cache). */
  failed(namespace: string | undefined, operation: string, error: unknown): void {
    const name = namespace ?? NO_NAMESPACE;
    this.of(name).errors++;
    this.events.emit('error', { namespace: name, operation, error });
  }

  /** Every memcached operation's end, as its node saw it. */
  readonly settled = (operation: string, node: string, durationMs: number, error?: unknown): void => {
    if (error !== undefined) {
      this.counters.errors++;
      if ((error as { code?: unknown } | null)?.code === 'TIMEOUT') this.counters.timeouts++;
    }
    let byNode = this.operationCounters.get(operation);
    if (byNode === undefined) this.operationCounters.set(operation, (byNode = new Map()));
    let counters = byNode.get(node);
    if (counters === undefined) {
      byNode.set(node, (counters = { ok: new LatencyHistogram(), error: new LatencyHistogram() }));
    }
    (error === undefined ? counters.ok : counters.error).observe(durationMs);
    if (this.listeners.length === 0) return;
    const event: OperationEvent = { operation, node, durationMs: roundMs(durationMs), error };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a metrics bug must not fail the operation
      }
    }
  };

  onOperation(listener: (event: OperationEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const index = this.listeners.indexOf(listener);
      if (index >= 0) this.listeners.splice(index, 1);
    };
  }

  /** One more of a client-wide event (a set, a lease grant, an undecodable item...). */
  count(event: ClientEvent, times = 1): void {
    this.counters[event] += times;
  }

  snapshot(): MemcachedClientStats {
    return { ...this.counters };
  }

  totals(): Readonly<MemcachedClientStats> {
    return this.counters;
  }

  /** Per namespace, as `MemcachedCache.stats()` returns them: bounded, so small enough to log. */
  namespaceStats(): Record<string, NamespaceStats> {
    const result: Record<string, NamespaceStats> = {};
    for (const [name, s] of this.namespaces()) {
      result[name] = {
        hits: s.hits,
        stale: s.stale,
        graced: s.graced,
        misses: s.misses,
        fills: s.fills,
        evictions: s.evictions,
        bypasses: s.bypasses,
        errors: s.errors,
        leaseWaits: s.leaseWaits,
        latency: snapshotOf([s.latency.HIT, s.latency.STALE, s.latency.MISS]),
      };
    }
    return result;
  }

  operationStats(): Record<string, OperationStats> {
    const result: Record<string, OperationStats> = {};
    for (const [operation, byNode] of this.operationCounters) {
      const histograms = [...byNode.values()].flatMap((c) => [c.ok, c.error]);
      const latency = snapshotOf(histograms);
      let errors = 0;
      for (const c of byNode.values()) errors += c.error.count;
      result[operation] = { count: latency.count, errors, latency };
    }
    return result;
  }

  namespaces(): IterableIterator<[string, NamespaceCounters]> {
    return this.table.namespaces();
  }

  families(): IterableIterator<[string, NamespaceCounters]> {
    return this.table.families();
  }

  operations(): IterableIterator<[string, Map<string, OperationCounters>]> {
    return this.operationCounters.entries();
  }

  private of(namespace: string): NamespaceCounters {
    return this.table.of(namespace);
  }
}
