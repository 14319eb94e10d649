import { CACHE_EVICT_METADATA, CACHE_PUT_METADATA, CACHEABLE_METADATA } from '../memcached.constants.js';
import { isEventStream } from '../nest/nest-internals.js';
import type {
  CacheableOptions,
  CacheClassDefaults,
  CacheEvictOptions,
  CachePlan,
  CachePutOptions,
} from '../interfaces/cache-decorator-options.interface.js';

/**
 * Plans by class, then method: an inherited method is the same function on several classes, and
 * each class's plan has its own class name (the default namespace) and class-level defaults.
 */
type Plans = WeakMap<Function, WeakMap<Function, CachePlan | null>>;
const plans: Plans = new WeakMap();
const urlPlans: Plans = new WeakMap();

function remembered(table: Plans, classRef: Function, method: Function): CachePlan | null | undefined {
  return table.get(classRef)?.get(method);
}

function remember(table: Plans, classRef: Function, method: Function, plan: CachePlan | null): CachePlan | null {
  let byMethod = table.get(classRef);
  if (byMethod === undefined) table.set(classRef, (byMethod = new WeakMap()));
  byMethod.set(method, plan);
  return plan;
}

function read<T>(key: string, target: unknown): T | undefined {
  // reflect-metadata throws on non-object targets
  if (!target || (typeof target !== 'function' && typeof target !== 'object')) return undefined;
  return Reflect.getMetadata(key, target as object) as T | undefined;
}

/** The plan of `method` on `classRef`, or null when the method carries no cache decorator. */
export function getCachePlan(classRef: Function, method: Function, methodName?: string): CachePlan | null {
  const cached = remembered(plans, classRef, method);
  if (cached !== undefined) return cached;
  const cacheable = read<CacheableOptions>(CACHEABLE_METADATA, method);
  const put = read<CachePutOptions>(CACHE_PUT_METADATA, method);
  const evicts = read<CacheEvictOptions[]>(CACHE_EVICT_METADATA, method) ?? [];
  let plan: CachePlan | null = null;
  if (cacheable || put || evicts.length > 0) {
    const classCacheable = read<CacheableOptions>(CACHEABLE_METADATA, classRef);
    const classPut = read<CachePutOptions>(CACHE_PUT_METADATA, classRef);
    const classEvict = read<CacheEvictOptions[]>(CACHE_EVICT_METADATA, classRef)?.[0];
    plan = {
      className: classRef.name || 'Anonymous',
      methodName: methodName ?? method.name,
      cacheable,
      put,
      evicts,
      defaults: pick(classCacheable, classPut, classEvict),
    };
  }
  return remember(plans, classRef, method, plan);
}

function pick(...sources: Array<{ namespace?: string; ttl?: unknown } | undefined>): CacheClassDefaults {
  const defaults: CacheClassDefaults = {};
  for (const s of sources) {
    if (s?.namespace !== undefined) defaults.namespace ??= s.namespace;
    if (typeof s?.ttl === 'number') defaults.ttl ??= s.ttl;
  }
  return defaults;
}

/**
 * The plan of a route without cache decorators in the scope of a `CacheInterceptor` the app binds
 * itself: a `@Cacheable()` of the route (keyed by URL; the class-level decorator's namespace and
 * TTL, else the class name and the module's TTL), or null for a route whose result is a stream.
 */
export function urlCachePlan(classRef: Function, handler: Function): CachePlan | null {
  const known = remembered(urlPlans, classRef, handler);
  if (known !== undefined) return known;
  const plan: CachePlan | null = isEventStream(handler)
    ? null
    : {
        className: classRef.name || 'Anonymous',
        methodName: handler.name,
        cacheable: {},
        put: undefined,
        evicts: [],
        defaults: pick(read<CacheableOptions>(CACHEABLE_METADATA, classRef)),
      };
  return remember(urlPlans, classRef, handler, plan);
}
