/** What the engine reports: one event per cache decision, plus errors. */
export interface CacheEventMap {
  /** Served from the cache (`stale` when served stale while a refresh runs). */
  hit: { namespace: string; key: string; durationMs: number; stale: boolean };
  /** Served with an entry past its freshness because the source failed or was too slow (grace). */
  graced: { namespace: string; key: string; durationMs: number };
  /** Served by the method (or source), then filled. */
  miss: { namespace: string; key: string; durationMs: number };
  fill: { namespace: string; key: string };
  bypass: { namespace: string; key?: string; reason: string };
  /** Waited for another caller's lease instead of loading. */
  leaseWait: { namespace: string; key: string };
  evict: { namespace: string; key?: string; allEntries: boolean };
  /** Tags invalidated by this process: every entry carrying one misses, in every service sharing the tags. */
  tagsInvalidated: { tags: string[] };
  error: { namespace: string; operation: string; error: unknown };
}

export type CacheEventName = keyof CacheEventMap;

/**
 * A small typed emitter (not Node's EventEmitter, whose 'error' event throws without listeners).
 *
 * @example
 * engine.events.on('miss', ({ namespace, key }) => logger.debug(`MISS ${namespace}:${key}`));
 */
export class CacheEvents {
  private readonly listeners: { [E in CacheEventName]?: Array<(event: CacheEventMap[E]) => void> } = {};

  /** Subscribes; returns a function that unsubscribes. */
  on<E extends CacheEventName>(name: E, listener: (event: CacheEventMap[E]) => void): () => void {
    const list = (this.listeners[name] ??= []) as Array<(event: CacheEventMap[E]) => void>;
    list.push(listener);
    return () => {
      const index = list.indexOf(listener);
      if (index >= 0) list.splice(index, 1);
    };
  }

  /** Whether anyone listens to `name` (callers skip building events nobody reads). */
  has(name: CacheEventName): boolean {
    const list = this.listeners[name];
    return list !== undefined && list.length > 0;
  }

  emit<E extends CacheEventName>(name: E, event: CacheEventMap[E]): void {
    const list = this.listeners[name];
    if (!list || list.length === 0) return;
    for (const listener of [...list]) {
      try {
        (listener as (e: CacheEventMap[E]) => void)(event);
      } catch {
        // a listener's bug must not break the cached call
      }
    }
  }
}
