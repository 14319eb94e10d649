import { MemcachedUsageError } from '../memcached.errors.js';
import { Logger, type LoggerService } from '@nestjs/common';
import { type FillPlan, freshness, type Loaded, shownOutcome } from '../client/lease.js';
import type { CacheBackend } from '../client/client-core.js';
import type { EntryRef } from '../codec/keyspace.js';
import { DEADLINE, RELOAD_PAUSED, type Served } from '../client/read-through.js';
import { assertNamespace } from '../codec/key.codec.js';
import { checkTags } from '../codec/tags.js';
import { normalizeTtl } from '../codec/ttl.js';
import type { ResponseMeta } from '../codec/value.codec.js';
import type { HttpCachePolicy } from '../config/memcached-options.js';
import type {
  CacheableOptions,
  CacheEvictOptions,
  CachePlan,
  CachePutOptions,
} from '../interfaces/cache-decorator-options.interface.js';
import { cacheFailed, keyFnNotString, keysFnNotList, servingGraced } from '../memcached.messages.js';
import { RateLimitedLogger } from '../utils/rate-limited-logger.js';
import type { CacheEvents } from '../stats/cache-events.js';
import type { CacheStats, NamespaceStats } from '../stats/cache-stats.js';
import { traceAround } from '../tracing/channels.js';
import { type HttpRequestParts, LearnedVary, varyMatches } from './variants.js';

/** How a cached call was served: from the cache, from the method, or around the cache. */
export type CacheOutcome = 'HIT' | 'MISS' | 'BYPASS' | 'STALE';

/** A decorated call as the engine needs it: data, and keys computed only when asked for. */
export interface CallSite {
  /** What key, keys, condition and unless functions receive. */
  keyArgs: unknown[];
  /** The key when the decorator gives none. */
  defaultKey(): string;
  /** The key an eviction without a key uses (HTTP: the resource path). Default: defaultKey. */
  defaultEvictKey?(): string;
  /**
   * An HTTP request: what selects its response among the variants of a key. Its fills store the
   * response body, and JSON hits come back as `RawJson` text.
   */
  http?: HttpRequestParts;
  /** Set when the call must not read or fill the cache; the reason is reported. */
  bypass?: string;
}

/** What the decorated method (or handler) produced. */
export interface Produced<T> {
  value: T;
  /** `false`: return it without storing it (a non-2xx response, a StreamableFile, ...). */
  storable?: boolean;
  /** What an HTTP entry records about its request: the response's `Vary` names and the request's values. */
  meta?: ResponseMeta;
}

/** How a call was served, as `execute` fills it in (HTTP: `X-Cache` and the hit's `Vary`). */
export interface CallReport {
  outcome?: CacheOutcome;
  /** A graced answer (served STALE because the source failed): its age, seconds (HTTP `Age`). */
  ageSeconds?: number;
  /** The hit's recorded metadata. */
  meta?: ResponseMeta;
}

/** Tries of a call whose hits belong to other `Vary` values before it loads around the cache. */
const MAX_RETARGETS = 3;

/**
 * The one cache-aside engine behind the interceptor (controllers), the provider methods and the
 * `MemcachedCache` facade. It is policy only: it turns a decorated call's plan into keys, TTLs and
 * fill plans, runs it through the client's read-through core (namespace generations,
 * single-flight, leases), evicts, and applies the fail-open rule: a cache error or timeout is a
 * miss or a no-op, the method's own result or error reaches the caller unchanged, and the
 * failure is logged (rate-limited), counted and emitted.
 */
export class CacheAsideEngine {
  /** Subscribe to hits, misses, fills, evictions, bypasses and errors. */
  readonly events: CacheEvents;
  private readonly counts: CacheStats;
  private readonly warnings: RateLimitedLogger;
  private readonly vary = new LearnedVary();

  constructor(
    private readonly backend: CacheBackend,
    logger: LoggerService | false = new Logger('MemcachedCache'),
  ) {
    this.warnings = new RateLimitedLogger(logger);
    this.counts = backend.stats;
    this.events = this.counts.events;
  }

  /** The module's HTTP caching rules (the `http` option). */
  get httpPolicy(): HttpCachePolicy {
    return this.backend.httpPolicy;
  }

  /** Whether cached Express and Fastify routes may be served from their handlers (the `routeHandlers` option). */
  get routeHandlers(): boolean {
    return this.backend.routeHandlers;
  }

  /**
   * Runs a decorated call under its plan: evictions before (if asked), the cached read or a plain
   * call, the put, then evictions after success. `produce` runs the method (`keep`: whether its
   * result may be stored, so what storing needs is worth working out); `report`, when given,
   * receives how the call was served.
   */
  async execute<T>(
    plan: CachePlan,
    site: CallSite,
    produce: (keep: boolean) => Promise<Produced<T>>,
    report?: CallReport,
  ): Promise<T> {
    for (const evict of plan.evicts) {
      if (evict.beforeInvocation) await this.evictFor(plan, site, evict);
    }
    let result: T;
    const cacheable = plan.cacheable;
    if (cacheable && this.conditionHolds(plan, cacheable, site)) {
      result = await this.cached(plan, cacheable, site, produce, report);
    } else {
      if (cacheable && report) report.outcome = 'BYPASS';
      result = (await (cacheable ? this.around(plan, cacheable, produce) : produce(false))).value;
    }
    if (plan.put) await this.putFor(plan, plan.put, site, result);
    for (const evict of plan.evicts) {
      if (!evict.beforeInvocation) await this.evictFor(plan, site, evict);
    }
    return result;
  }

  /**
   * True when a call under `plan` would go straight to the source because the node holding its
   * namespace is down (its breaker is open) and nothing else in the plan needs the engine: no
   * condition, put or eviction, no near cache that could still answer, and a key that can be
   * computed. The call is counted and emitted as a miss, so the caller can run the method as it is.
   * The answer never depends on who listens to the events.
   */
  skipsDownCache(plan: CachePlan, site: CallSite): boolean {
    const options = plan.cacheable;
    if (
      options === undefined ||
      site.bypass !== undefined ||
      options.condition !== undefined ||
      plan.put !== undefined ||
      plan.evicts.length > 0
    )
      return false;
    const namespace = this.namespaceOf(plan, options);
    if (!this.backend.isDown(namespace)) return false;
    if (this.backend.usesNear(namespace, options.nearCache)) return false;
    let key: string;
    try {
      key = this.keyOf(options, site, false);
    } catch {
      return false; // the engine reports the key's failure
    }
    // counted without a duration: the caller runs the method outside the engine
    this.counts.read(namespace, key, 'MISS', 0);
    return true;
  }

  /** Deletes one entry of a namespace and every variant of it. Never rejects. */
  async evict(namespace: string, key: string): Promise<void> {
    try {
      assertNamespace(namespace);
      await this.backend.evict({ namespace, key });
      this.counts.evicted(namespace, key);
    } catch (error) {
      this.fail(namespace, 'evict', error);
    }
  }

  /** Makes every entry of a namespace miss, with one atomic increment. Never rejects. */
  async evictAll(namespace: string): Promise<void> {
    try {
      await this.backend.evictAll(namespace);
      this.counts.evicted(namespace, undefined);
    } catch (error) {
      this.fail(namespace, 'evictAll', error);
    }
  }

  /**
   * Makes every entry carrying one of `tags` miss, everywhere the tags are shared. Never rejects:
   * a failure is logged, counted (under `namespace`, when a decorator asked) and emitted.
   */
  async invalidateTags(tags: string[], namespace?: string): Promise<void> {
    try {
      const checked = checkTags(tags);
      await this.backend.invalidateTags(checked);
      this.counts.tagsInvalidated(checked);
    } catch (error) {
      this.fail(namespace, 'invalidateTags', error);
    }
  }

  /** Counters per namespace since start. */
  stats(): Record<string, NamespaceStats> {
    return this.counts.namespaceStats();
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

  /** Runs the method around the cache (traced as a bypass, under its namespace). */
  private around<T>(plan: CachePlan, how: CacheableOptions, run: (keep: boolean) => Promise<T>) {
    return traceAround(
      () => this.namespaceOf(plan, how),
      () => run(false),
    );
  }

  private bypass(plan: CachePlan, options: { namespace?: string }, reason: string): void {
    this.counts.bypassed(this.namespaceOf(plan, options), reason);
  }

  private async cached<T>(
    plan: CachePlan,
    options: CacheableOptions,
    site: CallSite,
    produce: (keep: boolean) => Promise<Produced<T>>,
    report?: CallReport,
  ): Promise<T> {
    const namespace = this.namespaceOf(plan, options);
    const http = site.http;
    let target: EntryRef;
    let tags: string[] | undefined;
    try {
      assertNamespace(namespace);
      const key = this.keyOf(options, site, false);
      tags = this.tagsOf(options, site);
      target = { namespace, key, variant: http && this.vary.variant(plan, key, http) };
    } catch (error) {
      this.fail(namespace, error instanceof MemcachedUsageError && error.code === 'TAGS' ? 'tags' : 'key', error);
      if (report) report.outcome = 'BYPASS';
      return (await this.around(plan, options, produce)).value;
    }
    const started = performance.now();
    const lease = this.backend.leases && options.lease !== false;
    const label = `namespace "${namespace}"`;
    const grace = this.backend.gracePolicy(options.grace, options.staleWhileRevalidate);
    let unstorable = false;
    let served: Served<T>;
    for (let attempt = 0; ; attempt++) {
      const current = target;
      const load = async (how?: { keep: boolean }): Promise<Loaded<T>> => {
        const keep = how?.keep !== false;
        const produced = await produce(keep);
        if (produced.storable === false) unstorable = true;
        const fill = keep ? await this.fillPlan(plan, options, site, current, produced) : undefined;
        if (fill === undefined || options.resultTags === undefined) return { value: produced.value, fill, unstorable };
        const resultTags = this.resultTagsOf(namespace, options, site, produced.value);
        return resultTags === undefined
          ? { value: produced.value, fill: undefined }
          : { value: produced.value, fill, resultTags };
      };
      try {
        served = await this.backend.read({
          target,
          load,
          lease,
          rawJson: http !== undefined,
          label,
          near: this.backend.usesNear(target.namespace, options.nearCache),
          grace,
          tags,
        });
      } catch (error) {
        // only the method's own error gets here (the cache fails open): the read was a miss
        this.counts.read(namespace, target.key, 'MISS', performance.now() - started);
        throw error;
      }
      if (http === undefined || served.outcome === 'MISS' || varyMatches(served.meta, http)) break;
      // a hit stored for other Vary values: read the variant they select, or go around the cache
      if (
        attempt < MAX_RETARGETS &&
        this.vary.learn(
          plan,
          served.meta!.vary!.map(([name]) => name),
        )
      ) {
        target = { ...target, variant: this.vary.variant(plan, target.key, http) };
        continue;
      }
      this.bypass(plan, options, 'vary');
      if (report) report.outcome = 'BYPASS';
      return (await this.around(plan, options, produce)).value;
    }
    const key = target.key;
    this.counts.served(namespace, key, served, performance.now() - started, (op, error) =>
      this.fail(namespace, op, error),
    );
    if (served.outcome === 'GRACED') this.graced(namespace, served.graceReason, grace!.deadline);
    if (report) {
      if (served.outcome === 'GRACED') {
        report.outcome = 'STALE';
        // the entry's TTL when it is known here (a function of the value: counted from its freshness)
        const ttl =
          typeof options.ttl === 'function' ? 0 : (options.ttl ?? plan.defaults.ttl ?? this.backend.defaultTtl);
        report.ageSeconds = Math.max(0, Math.floor(ttl + (served.staleMs ?? 0) / 1000));
      } else report.outcome = shownOutcome(served.outcome, unstorable);
      report.meta = served.meta;
    }
    return served.value;
  }

  /**
   * How to store what a call produced, or undefined: not storable, `unless` says no, or a
   * function of the decorator failed (reported). An HTTP response whose `Vary` names are new to
   * its route is stored under the variant they select.
   */
  private async fillPlan(
    plan: CachePlan,
    options: CacheableOptions | CachePutOptions,
    site: CallSite,
    target: EntryRef,
    produced: Produced<unknown>,
  ): Promise<FillPlan | undefined> {
    const value = produced.value;
    const namespace = target.namespace!;
    try {
      if (value === undefined || produced.storable === false || options.unless?.(value as never, ...site.keyArgs))
        return undefined;
      const ttl = this.ttlOf(plan, options, value) ?? this.backend.defaultTtl;
      const swr = 'staleWhileRevalidate' in options ? options.staleWhileRevalidate : undefined;
      // a put's entries are read by `@Cacheable` methods: the module's grace keeps them too
      const grace = ('grace' in options ? options.grace : undefined) ?? this.backend.grace;
      const fill: FillPlan = {
        // memcached keeps the entry past its freshness for whichever is longer: the refresh, or grace
        ...freshness(ttl, Math.max(swr ?? 0, grace)),
        asResponse: site.http !== undefined,
        meta: produced.meta,
      };
      const http = site.http;
      if (
        http !== undefined &&
        produced.meta?.vary &&
        this.vary.learn(
          plan,
          produced.meta.vary.map(([name]) => name),
        )
      ) {
        const variant = this.vary.variant(plan, target.key, http);
        if (variant !== target.variant) fill.wire = await this.backend.wireOf({ ...target, variant });
      }
      return fill;
    } catch (error) {
      this.fail(namespace, 'fill', error);
      return undefined;
    }
  }

  private async putFor(plan: CachePlan, options: CachePutOptions, site: CallSite, result: unknown): Promise<void> {
    const namespace = this.namespaceOf(plan, options);
    try {
      assertNamespace(namespace);
      const key = this.keyOf(options, site, false);
      const fill = await this.fillPlan(
        plan,
        options,
        { ...site, http: undefined },
        { namespace, key },
        { value: result },
      );
      const declared = this.tagsOf(options, site) ?? [];
      const learned =
        fill === undefined || options.resultTags === undefined
          ? []
          : this.resultTagsOf(namespace, options, site, result);
      if (learned === undefined) return;
      const tags = learned.length === 0 ? declared : checkTags([...declared, ...learned]);
      const report = await this.backend.write({ namespace, key }, result, fill, `namespace "${namespace}"`, tags);
      if (report.outcome === 'stored') this.counts.filled(namespace, key);
      if (report.failure) this.fail(namespace, report.failure.operation, report.failure.error);
    } catch (error) {
      this.fail(namespace, 'put', error);
    }
  }

  private async evictFor(plan: CachePlan, site: CallSite, options: CacheEvictOptions): Promise<void> {
    const namespace = this.namespaceOf(plan, options);
    if (options.tags !== undefined) {
      let tags: string[];
      try {
        tags = this.tagsOf(options, site)!;
      } catch (error) {
        this.fail(namespace, 'tags', error);
        return;
      }
      await this.invalidateTags(tags, namespace);
      if (options.key === undefined && options.keys === undefined && !options.allEntries) return;
    }
    if (options.allEntries) return this.evictAll(namespace);
    let keys: string[];
    try {
      keys = options.keys ? options.keys(...site.keyArgs) : [this.keyOf(options, site, true)];
      if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string'))
        throw new MemcachedUsageError('KEY_FUNCTION', keysFnNotList());
    } catch (error) {
      this.fail(namespace, 'key', error);
      return;
    }
    await Promise.all(keys.map((key) => this.evict(namespace, key)));
  }

  private keyOf(
    options: CacheableOptions | CachePutOptions | CacheEvictOptions,
    site: CallSite,
    evicting: boolean,
  ): string {
    let key: string;
    if (typeof options.key === 'string') key = options.key;
    else if (typeof options.key === 'function') key = options.key(...site.keyArgs);
    else key = evicting && site.defaultEvictKey ? site.defaultEvictKey() : site.defaultKey();
    if (typeof key !== 'string') throw new MemcachedUsageError('KEY_FUNCTION', keyFnNotString(typeof key));
    return key;
  }

  /** A decorator's tags for this call (checked), or undefined without any. */
  private tagsOf(
    options: CacheableOptions | CachePutOptions | CacheEvictOptions,
    site: CallSite,
  ): string[] | undefined {
    const tags = options.tags;
    if (tags === undefined) return undefined;
    return checkTags(typeof tags === 'function' ? tags(...site.keyArgs) : tags);
  }

  /** The tags a decorator learns from a result (checked); undefined when its function failed (reported: nothing is stored). */
  private resultTagsOf(
    namespace: string,
    options: CacheableOptions | CachePutOptions,
    site: CallSite,
    result: unknown,
  ): string[] | undefined {
    try {
      return checkTags(options.resultTags!(result as never, ...site.keyArgs));
    } catch (error) {
      this.fail(namespace, 'tags', error);
      return undefined;
    }
  }

  private ttlOf(plan: CachePlan, options: CacheableOptions | CachePutOptions, value: unknown): number | undefined {
    const ttl = options.ttl;
    if (typeof ttl === 'function') return normalizeTtl(ttl(value as never), 'ttl()');
    if (ttl !== undefined) return normalizeTtl(ttl);
    return plan.defaults.ttl;
  }

  /**
   * Every namespace a method's decorators name (or default to): named in code, so counted and
   * labelled by itself. Called for each cached method at bootstrap, before any call is counted.
   */
  declarePlan(plan: CachePlan): void {
    for (const options of [plan.cacheable, plan.put, ...plan.evicts]) if (options) this.namespaceOf(plan, options);
  }

  /** A decorated call's namespace: one named in code, so always counted by itself. */
  namespaceOf(plan: CachePlan, options: { namespace?: string }): string {
    const namespace = options.namespace ?? plan.defaults.namespace ?? plan.className;
    this.counts.declare(namespace);
    return namespace;
  }

  /** A graced answer: said (rate-limited) with why the source did not answer, never with a key. */
  private graced(namespace: string, reason: unknown, deadline: number): void {
    const why =
      reason === DEADLINE
        ? `it did not answer within ${deadline} ms`
        : reason === RELOAD_PAUSED
          ? 'it failed moments ago (reloads of the key are paused)'
          : `it failed: ${reason instanceof Error ? reason.message : String(reason)}`;
    this.warnings.warn(`graced:${namespace}`, () => servingGraced(namespace, why));
  }

  private fail(namespace: string | undefined, operation: string, error: unknown): void {
    this.counts.failed(namespace, operation, error);
    const code = (error as { code?: string })?.code;
    // topics by operation, node and error kind: never by a message, which can hold user data
    const topic = `${namespace}:${operation}:${(error as { node?: string })?.node ?? ''}:${typeof code === 'string' ? code : ((error as Error)?.name ?? typeof error)}`;
    this.warnings.warn(topic, () =>
      cacheFailed(operation, namespace, error instanceof Error ? error.message : String(error)),
    );
  }
}
