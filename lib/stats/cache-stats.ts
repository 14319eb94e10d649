import { CacheEvents } from './cache-events.js';
import { LatencyHistogram, type LatencySnapshot, roundMs, snapshotOf } from './latency-histogram.js';

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
}

/** Counters of one namespace since the application started (`MemcachedCache.stats()`). */
export interface NamespaceStats {
  /** Reads served from the cache, stale ones included. */
  hits: number;
  /** Of the hits, those served stale while one caller refreshed (stale-while-revalidate). */
  stale: number;
  /**
   * Reads answered with an entry past its freshness because the source failed or passed its
   * deadline (grace); not hits, not misses.
   */
  graced: number;
  misses: number;
  fills: number;
  evictions: number;
  bypasses: number;
  errors: number;
  /** Misses that waited for another caller's lease. */
  leaseWaits: number;
  /** Latency of reads (hits and misses; a miss includes the source), ms. */
  latency: LatencySnapshot;
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

/** Where reads of keys without a namespace are counted. */
export const NO_NAMESPACE = '(none)';
/** Where the namespaces folded away (see `MAX_NAMESPACES`) are counted together. */
export const OTHER_NAMESPACES = '(other)';
/**
 * Namespaces counted one by one beyond those declared in code (decorators): per-user or per-tenant
 * namespaces are met by the million, so past this many the least recently used is folded into
 * `(other)`; totals stay exact.
 */
export const MAX_NAMESPACES = 1000;

/** One namespace's counters; latency per outcome, so Prometheus can label it. */
export type NamespaceCounters = Omit<NamespaceStats, 'latency'> & { latency: Record<LatencyOutcome, LatencyHistogram> };

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
  /** Per namespace (those past the bound folded into `(other)`). */
  namespaces(): Iterable<[string, NamespaceCounterView]>;
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
  };
  /** Oldest used first among the namespaces not declared; the declared ones are never folded. */
  private readonly namespaceCounters = new Map<string, NamespaceCounters>();
  private readonly declared = new Set<string>([NO_NAMESPACE, OTHER_NAMESPACES]);
  private undeclared = 0;
  /** operation -> node -> latency by result */
  private readonly operationCounters = new Map<string, Map<string, OperationCounters>>();
  private readonly listeners: Array<(event: OperationEvent) => void> = [];
  /** When a graced answer was last served (ms), 0 never: `/health` says degraded for a while after. */
  lastGracedAt = 0;

  /** A namespace named in code (a decorator's): always counted by itself. */
  declare(namespace: string): void {
    if (this.declared.has(namespace)) return;
    this.declared.add(namespace);
    if (this.namespaceCounters.has(namespace)) this.undeclared--;
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

  namespaceStats(): Record<string, NamespaceStats> {
    const result: Record<string, NamespaceStats> = {};
    for (const [name, s] of this.namespaceCounters) {
      const { latency, ...counts } = s;
      result[name] = { ...counts, latency: snapshotOf([latency.HIT, latency.STALE, latency.MISS]) };
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
    return this.namespaceCounters.entries();
  }

  operations(): IterableIterator<[string, Map<string, OperationCounters>]> {
    return this.operationCounters.entries();
  }

  private of(namespace: string): NamespaceCounters {
    let stats = this.namespaceCounters.get(namespace);
    const declared = this.declared.has(namespace);
    if (stats !== undefined) {
      if (!declared) {
        // most recently used last: the first undeclared one is the one to fold
        this.namespaceCounters.delete(namespace);
        this.namespaceCounters.set(namespace, stats);
      }
      return stats;
    }
    stats = emptyCounters();
    this.namespaceCounters.set(namespace, stats);
    if (!declared && ++this.undeclared > MAX_NAMESPACES) this.foldOldest();
    return stats;
  }

  /** Adds the least recently used undeclared namespace to `(other)` and forgets it. */
  private foldOldest(): void {
    for (const [name, stats] of this.namespaceCounters) {
      if (this.declared.has(name)) continue;
      let other = this.namespaceCounters.get(OTHER_NAMESPACES);
      if (other === undefined) this.namespaceCounters.set(OTHER_NAMESPACES, (other = emptyCounters()));
      addCounters(other, stats);
      this.namespaceCounters.delete(name);
      this.undeclared--;
      return;
    }
  }
}

function emptyCounters(): NamespaceCounters {
  return {
    hits: 0,
    stale: 0,
    graced: 0,
    misses: 0,
    fills: 0,
    evictions: 0,
    bypasses: 0,
    errors: 0,
    leaseWaits: 0,
    latency: { HIT: new LatencyHistogram(), STALE: new LatencyHistogram(), MISS: new LatencyHistogram() },
  };
}

function addCounters(into: NamespaceCounters, from: NamespaceCounters): void {
  into.hits += from.hits;
  into.stale += from.stale;
  into.graced += from.graced;
  into.misses += from.misses;
  into.fills += from.fills;
  into.evictions += from.evictions;
  into.bypasses += from.bypasses;
  into.errors += from.errors;
  into.leaseWaits += from.leaseWaits;
  for (const outcome of ['HIT', 'STALE', 'MISS'] as const) into.latency[outcome].add(from.latency[outcome]);
}
