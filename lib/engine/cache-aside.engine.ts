import { Logger, type LoggerService } from '@nestjs/common';
import { isObservable, lastValueFrom, defer, from, type Observable } from 'rxjs';
import type { ItemRead, LeaseFill, MemcachedClient } from '../client/memcached.client.js';
import { assertNamespace } from '../codec/key.codec.js';
import { RawJson } from '../codec/value.codec.js';
import { normalizeTtl } from '../codec/ttl.js';
import type {
  CacheableOptions,
  CacheEvictOptions,
  CachePutOptions,
} from '../interfaces/cache-decorator-options.interface.js';
import { LatencyHistogram, type LatencySnapshot } from '../utils/latency-histogram.js';
import { RateLimitedLogger } from '../utils/rate-limited-logger.js';
import { SingleFlight } from '../utils/single-flight.js';
import { CacheEvents } from './cache-events.js';
import { type CachePlan, getCachePlan } from './cache-metadata.accessor.js';
import { stableKey } from './stable-key.js';

/** How a cached call was served: from the cache, from the method, or around the cache. */
export type CacheOutcome = 'HIT' | 'MISS' | 'BYPASS' | 'STALE';

/** Where a decorated method is being called from, as the engine needs it. */
export interface CallSite {
  /** What key, keys, condition and unless functions receive. */
  keyArgs: unknown[];
  /** The key when the decorator gives none. */
  defaultKey(): string;
  /** The key an eviction without a key uses (HTTP: the resource path). Default: defaultKey. */
  defaultEvictKey?(): string;
  /** Appended to every key of this call (the HTTP principal). */
  keySuffix?: string;
  /** Set when the call must not read or fill the cache; the reason is reported. */
  bypass?: string;
}

/** Hooks of the HTTP entry point. */
export interface CallHooks {
  /** A result the cache must not hold (a StreamableFile, a non-2xx response). */
  storable?(value: unknown): boolean;
  /** Hits of JSON entries come back as `RawJson` text (the HTTP path sends it as is). */
  rawJson?: boolean;
  onOutcome?(outcome: CacheOutcome): void;
}

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

const GENERATION_SUFFIX = '@gen';

/** What a cached read found: the namespace's generation and the entry under it. */
interface Lookup {
  generation: number;
  item: ItemRead;
}

/** A cached call's value and how it was served. */
interface Served<T> {
  value: T;
  outcome: CacheOutcome;
}

/**
 * The one cache-aside engine behind the interceptor (controllers) and the explorer (providers):
 * key building with namespace generations, TTL resolution, single-flight, fill after a miss,
 * eviction, and the fail-open policy: a cache error or timeout is a miss or a no-op, the method's
 * own result or error reaches the caller unchanged, and the failure is logged (rate-limited),
 * counted and emitted.
 *
 * Entries live at `namespace@generation:key`; `allEntries` increments the namespace's generation
 * (`namespace@gen`), so older entries are never read again and age out by their TTL.
 */
export class CacheAsideEngine {
  /** Subscribe to hits, misses, fills, evictions, bypasses and errors. */
  readonly events = new CacheEvents();
  private readonly flights = new SingleFlight();
  private readonly generations = new Map<string, number>();
  private readonly counters = new Map<string, Omit<NamespaceStats, 'latency'> & { latency: LatencyHistogram }>();
  private readonly warnings: RateLimitedLogger;

  constructor(
    readonly client: MemcachedClient,
    logger: LoggerService | false = new Logger('MemcachedCache'),
  ) {
    this.warnings = new RateLimitedLogger(logger);
  }

  /**
   * The provider path: runs a decorated method through its plan. Called by the method's
   * trampoline once the explorer has bound this engine to the instance.
   */
  invokeMethod(instance: object, methodName: string, original: Function, trampoline: Function, args: unknown[]): unknown {
    const plan = getCachePlan(instance.constructor, trampoline, methodName);
    if (!plan) return original.apply(instance, args);
    const site: CallSite = {
      keyArgs: args,
      defaultKey: () => `${methodName}:${stableKey(args)}`,
    };
    if (returnsObservable(instance, methodName)) {
      return defer(() => from(this.execute(plan, site, () => toPromise(original.apply(instance, args)))));
    }
    return this.execute(plan, site, () => toPromise(original.apply(instance, args)));
  }

  /**
   * Runs `load` under a plan: evictions before (if asked), the cached read or a plain call,
   * the put, then evictions after success.
   */
  async execute<T>(plan: CachePlan, site: CallSite, load: () => Promise<T>, hooks: CallHooks = {}): Promise<T> {
    for (const evict of plan.evicts) {
      if (evict.beforeInvocation) await this.evictFor(plan, site, evict);
    }
    let result: T;
    const cacheable = plan.cacheable;
    if (cacheable && this.conditionHolds(plan, cacheable, site)) {
      result = await this.cached(plan, cacheable, site, load, hooks);
    } else {
      if (cacheable) hooks.onOutcome?.('BYPASS');
      result = await load();
    }
    if (plan.put) await this.putFor(plan, plan.put, site, result, hooks);
    for (const evict of plan.evicts) {
      if (!evict.beforeInvocation) await this.evictFor(plan, site, evict);
    }
    return result;
  }

  /**
   * True when a call under `plan` would go straight to the source because the node holding its
   * namespace is down (its breaker is open), and nothing else in the plan needs the engine (no
   * condition, put or eviction, nobody listening to misses) and `eligible` agrees. The call is
   * counted as a miss, so the caller can skip the engine and run the method as it is.
   */
  skipsDownCache(plan: CachePlan, eligible: () => boolean = () => true): boolean {
    const options = plan.cacheable;
    if (options === undefined || options.condition !== undefined || plan.put !== undefined || plan.evicts.length > 0) return false;
    const namespace = this.namespaceOf(plan, options);
    if (!this.client.isDown(namespace + GENERATION_SUFFIX) || this.events.has('miss') || !eligible()) return false;
    this.count(namespace).misses++;
    return true;
  }

  /** Deletes one entry of a namespace (under its current generation). Never rejects. */
  async evict(namespace: string, key: string): Promise<void> {
    try {
      assertNamespace(namespace);
      const generation = await this.generation(namespace);
      await this.client.delete(entryKey(namespace, generation, key));
      this.count(namespace).evictions++;
      this.events.emit('evict', { namespace, key, allEntries: false });
    } catch (error) {
      this.fail(namespace, 'evict', error);
    }
  }

  /** Makes every entry of a namespace miss, with one atomic increment. Never rejects. */
  async evictAll(namespace: string): Promise<void> {
    try {
      assertNamespace(namespace);
      const next = await this.client.increment(namespace + GENERATION_SUFFIX, 1, { initial: freshGeneration(), ttl: 0 });
      if (next !== null) this.generations.set(namespace, Number(next));
      this.count(namespace).evictions++;
      this.events.emit('evict', { namespace, allEntries: true });
    } catch (error) {
      this.fail(namespace, 'evictAll', error);
    }
  }

  /** Counters per namespace since start. */
  stats(): Record<string, NamespaceStats> {
    return Object.fromEntries([...this.counters].map(([ns, s]) => [ns, { ...s, latency: s.latency.snapshot() }]));
  }

  private conditionHolds(plan: CachePlan, options: CacheableOptions, site: CallSite): boolean {
    if (site.bypass) {
      this.bypass(plan, options, site.bypass);
      return false;
    }
    if (!options.condition) return true;
    try {
      if (options.condition(...site.keyArgs)) return true;
      this.bypass(plan, options, 'condition');
    } catch (error) {
      this.fail(this.namespaceOf(plan, options), 'condition', error);
    }
    return false;
  }

  private bypass(plan: CachePlan, options: { namespace?: string }, reason: string): void {
    const namespace = this.namespaceOf(plan, options);
    this.count(namespace).bypasses++;
    this.events.emit('bypass', { namespace, reason });
  }

  private async cached<T>(
    plan: CachePlan,
    options: CacheableOptions,
    site: CallSite,
    load: () => Promise<T>,
    hooks: CallHooks,
  ): Promise<T> {
    const namespace = this.namespaceOf(plan, options);
    let key: string;
    try {
      assertNamespace(namespace);
      key = this.keyOf(options, site, false);
    } catch (error) {
      this.fail(namespace, 'key', error);
      hooks.onOutcome?.('BYPASS');
      return load();
    }
    const started = performance.now();
    const raw = hooks.rawJson === true;
    // undefined: the cache cannot be read (its node is known down, or the read failed)
    let found: Lookup | undefined;
    if (!this.client.isDown(namespace + GENERATION_SUFFIX)) {
      try {
        found = await this.lookup(namespace, key, raw);
      } catch (error) {
        // a failed read means a sick node: serve from the source and do not queue a fill behind it
        this.fail(namespace, 'get', error);
      }
    }
    let served: Served<T>;
    const item = found?.item;
    if (item?.state === 'hit') {
      served = { value: item.value as T, outcome: 'HIT' };
      if (item.freshUntil !== undefined && item.freshUntil <= Date.now()) {
        served.outcome = 'STALE';
        this.refresh(plan, options, site, namespace, entryKey(namespace, found!.generation, key), item.cas, load, hooks);
      }
    } else {
      // concurrent misses of one key in this process share one load (and one lease)
      served = await this.flights.run(`${raw ? 'raw:' : ''}${namespace}:${key}`, () =>
        this.loadMissing(plan, options, site, namespace, key, found, load, hooks),
      );
    }
    const { value, outcome } = served;
    const stats = this.count(namespace);
    const durationMs = performance.now() - started;
    stats.latency.observe(durationMs);
    if (outcome === 'MISS') {
      stats.misses++;
      if (this.events.has('miss')) this.events.emit('miss', { namespace, key, durationMs });
    } else {
      if (outcome === 'STALE') stats.stale++;
      stats.hits++;
      if (this.events.has('hit')) this.events.emit('hit', { namespace, key, durationMs, stale: outcome === 'STALE' });
    }
    hooks.onOutcome?.(outcome);
    return value;
  }

  /** A miss: load, and fill under a lease (or plainly); without `found`, load and fill nothing. */
  private async loadMissing<T>(
    plan: CachePlan,
    options: CacheableOptions,
    site: CallSite,
    namespace: string,
    key: string,
    found: Lookup | undefined,
    load: () => Promise<T>,
    hooks: CallHooks,
  ): Promise<Served<T>> {
    if (found === undefined) return { value: await load(), outcome: 'MISS' };
    const entry = entryKey(namespace, found.generation, key);
    if (this.client.leasesEnabled && options.lease !== false) {
      return this.client.loadWithLease(entry, load, { ...this.fillPolicy(plan, options, site, namespace, key, hooks), rawJson: hooks.rawJson });
    }
    const value = await load();
    this.fill(plan, options, site, namespace, found.generation, key, value, hooks);
    return { value, outcome: 'MISS' };
  }

  /** Serves stale, refreshes once: an `add` on a refresh marker elects one refresher across processes. */
  private refresh<T>(
    plan: CachePlan,
    options: CacheableOptions,
    site: CallSite,
    namespace: string,
    entry: string,
    cas: Buffer,
    load: () => Promise<T>,
    hooks: CallHooks,
  ): void {
    const marker = `${entry}~refresh`;
    void this.flights
      .run(marker, async () => {
        const lease = await this.client.acquireLease(marker);
        if (!lease) return;
        try {
          const value = await load();
          const policy = this.fillPolicy(plan, options, site, namespace, entry, hooks);
          if (value === undefined || !(policy.shouldStore?.(value) ?? true)) return;
          const freshFor = policy.freshFor?.(value);
          const outcome = await this.client.fillIfUnchanged(entry, value, cas, {
            ttl: policy.ttl?.(value),
            freshUntil: freshFor === undefined ? undefined : Date.now() + freshFor * 1000,
          });
          policy.onFilled?.(outcome);
        } finally {
          await this.client.deleteIfUnchanged(marker, lease).catch(() => undefined);
        }
      })
      .catch((error: unknown) => this.fail(namespace, 'refresh', error));
  }

  private fillPolicy<T>(
    plan: CachePlan,
    options: CacheableOptions | CachePutOptions,
    site: CallSite,
    namespace: string,
    key: string,
    hooks: CallHooks,
  ): LeaseFill<T> {
    const swr = 'staleWhileRevalidate' in options ? options.staleWhileRevalidate : undefined;
    return {
      shouldStore: (value) =>
        !(options.unless?.(value as never, ...site.keyArgs) ?? false) && (hooks.storable?.(value) ?? true),
      ttl: (value) => {
        const ttl = this.ttlOf(plan, options, value) ?? this.client.defaultTtl;
        return swr && ttl > 0 ? ttl + swr : ttl;
      },
      freshFor: swr ? (value) => this.ttlOf(plan, options, value) ?? this.client.defaultTtl : undefined,
      onFilled: (outcome) => {
        if (outcome !== 'stored') return;
        this.count(namespace).fills++;
        this.events.emit('fill', { namespace, key });
      },
      onWait: () => {
        this.count(namespace).leaseWaits++;
        this.events.emit('leaseWait', { namespace, key });
      },
    };
  }

  /** A plain fill (no lease): the same store decision and accounting as a leased one. */
  private fill(
    plan: CachePlan,
    options: CacheableOptions | CachePutOptions,
    site: CallSite,
    namespace: string,
    generation: number,
    key: string,
    value: unknown,
    hooks: CallHooks,
  ): Promise<void> | undefined {
    if (value === undefined) return;
    const policy = this.fillPolicy(plan, options, site, namespace, key, hooks);
    let ttl: number | undefined;
    try {
      if (!policy.shouldStore!(value)) return;
      // plain fills carry no freshness deadline, so no stale-while-revalidate extension either
      ttl = this.ttlOf(plan, options, value);
    } catch (error) {
      this.fail(namespace, 'fill', error);
      return;
    }
    return this.client.set(entryKey(namespace, generation, key), value, { ttl }).then(
      (stored) => (stored ? policy.onFilled!('stored') : undefined),
      (error) => this.fail(namespace, 'set', error),
    );
  }

  private async putFor(plan: CachePlan, options: CachePutOptions, site: CallSite, result: unknown, hooks: CallHooks) {
    const namespace = this.namespaceOf(plan, options);
    try {
      assertNamespace(namespace);
      const key = this.keyOf(options, site, false);
      const generation = await this.generation(namespace);
      await this.fill(plan, options, site, namespace, generation, key, result, hooks);
    } catch (error) {
      this.fail(namespace, 'put', error);
    }
  }

  private async evictFor(plan: CachePlan, site: CallSite, options: CacheEvictOptions): Promise<void> {
    const namespace = this.namespaceOf(plan, options);
    if (options.allEntries) return this.evictAll(namespace);
    let keys: string[];
    try {
      keys = options.keys ? options.keys(...site.keyArgs).map((k) => k + (site.keySuffix ?? '')) : [this.keyOf(options, site, true)];
    } catch (error) {
      this.fail(namespace, 'key', error);
      return;
    }
    await Promise.all(keys.map((key) => this.evict(namespace, key)));
  }

  private async lookup(namespace: string, key: string, rawJson: boolean): Promise<Lookup> {
    const known = this.generations.get(namespace);
    const generationKey = namespace + GENERATION_SUFFIX;
    if (known !== undefined) {
      // one round trip: the generation and the entry under the generation we last saw
      const entry = entryKey(namespace, known, key);
      const [current, item] = await this.client.readItems([generationKey, entry], { rawJson });
      const value = current.state === 'hit' ? current.value : undefined;
      const generation = value instanceof RawJson ? Number(value.json) : value;
      if (generation === known) return { generation: known, item };
      if (typeof generation === 'number' && Number.isSafeInteger(generation)) {
        this.generations.set(namespace, generation);
        return { generation, item: await this.readOne(entryKey(namespace, generation, key), rawJson) };
      }
    }
    const generation = await this.generation(namespace);
    return { generation, item: await this.readOne(entryKey(namespace, generation, key), rawJson) };
  }

  private async readOne(key: string, rawJson: boolean): Promise<ItemRead> {
    return (await this.client.readItems([key], { rawJson }))[0];
  }

  /** The namespace's generation as memcached holds it, created when missing. */
  private async generation(namespace: string): Promise<number> {
    const key = namespace + GENERATION_SUFFIX;
    let current = await this.client.get(key);
    if (typeof current !== 'number') {
      // a lost generation restarts from the clock, never from a value used before
      await this.client.add(key, freshGeneration(), { ttl: 0 });
      current = await this.client.get(key);
      if (typeof current !== 'number') throw new Error(`namespace generation ${key} could not be stored`);
    }
    this.generations.set(namespace, current);
    return current;
  }

  private keyOf(options: CacheableOptions | CachePutOptions | CacheEvictOptions, site: CallSite, evicting: boolean): string {
    let key: string;
    if (typeof options.key === 'string') key = options.key;
    else if (typeof options.key === 'function') key = options.key(...site.keyArgs);
    else key = evicting && site.defaultEvictKey ? site.defaultEvictKey() : site.defaultKey();
    if (typeof key !== 'string') throw new TypeError(`a cache key function returned ${typeof key}, expected a string`);
    return key + (site.keySuffix ?? '');
  }

  private ttlOf(plan: CachePlan, options: CacheableOptions | CachePutOptions, value: unknown): number | undefined {
    const ttl = options.ttl;
    if (typeof ttl === 'function') return normalizeTtl(ttl(value as never), 'ttl()');
    if (ttl !== undefined) return normalizeTtl(ttl);
    return plan.defaults.ttl;
  }

  private namespaceOf(plan: CachePlan, options: { namespace?: string }): string {
    return options.namespace ?? plan.defaults.namespace ?? plan.className;
  }

  private count(namespace: string) {
    let stats = this.counters.get(namespace);
    if (!stats) {
      stats = { hits: 0, stale: 0, misses: 0, fills: 0, evictions: 0, bypasses: 0, errors: 0, leaseWaits: 0, latency: new LatencyHistogram() };
      this.counters.set(namespace, stats);
    }
    return stats;
  }

  private fail(namespace: string, operation: string, error: unknown): void {
    this.count(namespace).errors++;
    this.events.emit('error', { namespace, operation, error });
    const message = () => (error instanceof Error ? error.message : String(error));
    const code = (error as { code?: string })?.code;
    const topic = `${operation}:${(error as { node?: string })?.node ?? ''}:${typeof code === 'string' ? code : message()}`;
    this.warnings.warn(topic, () => `cache ${operation} failed for namespace "${namespace}", continuing without the cache: ${message()}`);
  }
}

export function entryKey(namespace: string, generation: number, key: string): string {
  return `${namespace}@${generation}:${key}`;
}

function freshGeneration(): number {
  return Date.now() * 1000;
}

function toPromise<T>(value: T | Promise<T> | Observable<T>): Promise<T> {
  if (isObservable(value)) return lastValueFrom(value as Observable<T>, { defaultValue: undefined as T });
  return Promise.resolve(value);
}

const observableReturns = new WeakMap<object, Map<string, boolean>>();

function returnsObservable(instance: object, methodName: string): boolean {
  const proto = Object.getPrototypeOf(instance) as object;
  let byMethod = observableReturns.get(proto);
  if (!byMethod) observableReturns.set(proto, (byMethod = new Map()));
  let result = byMethod.get(methodName);
  if (result === undefined) {
    const type = Reflect.getMetadata('design:returntype', proto, methodName) as { name?: string } | undefined;
    result = type?.name === 'Observable';
    byMethod.set(methodName, result);
  }
  return result;
}
