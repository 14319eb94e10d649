import type { CacheAsideEngine } from './cache-aside.engine.js';
import type { CacheEventMap, CacheEventName } from '../stats/cache-events.js';
import type { NamespaceStats } from '../stats/cache-stats.js';

/**
 * Imperative cache work beside the decorators, injectable like the client: evict what a decorator
 * (or `getOrSet` with a namespace) cached, watch what the cache does, read its counters. The
 * decorators' own engine does the work, so keys, variants and failure rules are the same.
 *
 * @example
 * constructor(private readonly cache: MemcachedCache) {}
 *
 * async importUsers(rows: User[]) {
 *   await this.repo.save(rows);
 *   await this.cache.evictAll('users');
 * }
 */
export class MemcachedCache {
  /** Subscribe to hits, misses, fills, evictions, bypasses, lease waits and errors. */
  readonly events: CacheEventSource;

  constructor(private readonly engine: CacheAsideEngine) {
    this.events = { on: (name, listener) => engine.events.on(name, listener) };
  }

  /**
   * Evicts one key of a namespace and every variant of it (all the HTTP responses cached under
   * it). A load of the key running in this process is not joined afterwards and not stored.
   * Never rejects: a failure is logged, counted and emitted.
   */
  evict(namespace: string, key: string): Promise<void> {
    return this.engine.evict(namespace, key);
  }

  /** Makes every entry of a namespace miss, with one atomic increment. Never rejects. */
  evictAll(namespace: string): Promise<void> {
    return this.engine.evictAll(namespace);
  }

  /**
   * Makes every entry carrying one of `tags` miss: in every namespace, in this process and in every
   * service sharing the `tagPrefix`. Never rejects: a failure is logged, counted and emitted.
   *
   * @example
   * await this.repo.update(id, changes);
   * await this.cache.invalidateTags([`user:${id}`]);
   */
  invalidateTags(tags: string[]): Promise<void> {
    return this.engine.invalidateTags(tags);
  }

  /** Counters and latency of cached calls, per namespace, since start. */
  stats(): Record<string, NamespaceStats> {
    return this.engine.stats();
  }
}

/** Where cache events are subscribed. */
export interface CacheEventSource {
  /**
   * Subscribes to an event; returns a function that unsubscribes.
   *
   * @example
   * cache.events.on('miss', ({ namespace, key, durationMs }) => logger.debug(`MISS ${namespace} ${key} ${durationMs} ms`));
   */
  on<E extends CacheEventName>(name: E, listener: (event: CacheEventMap[E]) => void): () => void;
}
