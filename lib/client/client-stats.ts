import { MemcachedError } from '../transport/memcached.error.js';
import { LatencyHistogram, type LatencySnapshot } from '../utils/latency-histogram.js';

/** Counters since the client started (see `MemcachedClient.stats()`). */
export interface MemcachedClientStats {
  hits: number;
  misses: number;
  sets: number;
  deletes: number;
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

/** The client's counters, per-operation latency and operation listeners. */
export class ClientStats {
  readonly counters: MemcachedClientStats = {
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
  };
  private readonly operations = new Map<string, { count: number; errors: number; latency: LatencyHistogram }>();
  private readonly listeners: Array<(event: OperationEvent) => void> = [];

  /** Every operation's end, as the node saw it. */
  readonly settled = (operation: string, node: string, durationMs: number, error?: unknown): void => {
    if (error !== undefined) {
      this.counters.errors++;
      if (error instanceof MemcachedError && error.code === 'TIMEOUT') this.counters.timeouts++;
    }
    let stats = this.operations.get(operation);
    if (!stats) this.operations.set(operation, (stats = { count: 0, errors: 0, latency: new LatencyHistogram() }));
    stats.count++;
    if (error !== undefined) stats.errors++;
    stats.latency.observe(durationMs);
    if (this.listeners.length === 0) return;
    const event: OperationEvent = { operation, node, durationMs, error };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a metrics bug must not fail the operation
      }
    }
  };

  snapshot(): MemcachedClientStats {
    return { ...this.counters };
  }

  operationStats(): Record<string, OperationStats> {
    return Object.fromEntries(
      [...this.operations].map(([op, s]) => [op, { count: s.count, errors: s.errors, latency: s.latency.snapshot() }]),
    );
  }

  onOperation(listener: (event: OperationEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const index = this.listeners.indexOf(listener);
      if (index >= 0) this.listeners.splice(index, 1);
    };
  }
}
