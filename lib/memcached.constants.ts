import { MemcachedClient } from './client/memcached.client.js';

export const CACHEABLE_METADATA = 'nestjs-memcached:cacheable';
export const CACHE_EVICT_METADATA = 'nestjs-memcached:cache-evict';
export const CACHE_PUT_METADATA = 'nestjs-memcached:cache-put';
/**
 * Set on an instance (or a prototype) by the explorer: the function its decorated methods'
 * trampolines hand their calls to.
 */
export const CACHE_INVOKER = Symbol.for('nestjs-memcached:invoker');
/**
 * The method of `CacheInterceptor` the decorators' delegate calls: the route's own plan (its
 * `intercept` is what an app binds itself, which caches routes without decorators by URL).
 */
export const SERVE_DECORATED = Symbol.for('nestjs-memcached:serve-decorated');
/** The method of `CacheInterceptor` a route served from its handler calls (nest/route-handlers.ts). */
export const SERVE_ROUTE = Symbol.for('nestjs-memcached:serve-route');
/** Marks a method replaced by the decoration-time trampoline, holding the original. */
export const ORIGINAL_METHOD = Symbol.for('nestjs-memcached:original');
/**
 * Set on a trampoline whose route Nest passes the request to, at this index after the handler's
 * own arguments (a cached route served from its handler): the trampoline drops it.
 */
export const ROUTE_REQUEST_INDEX = Symbol.for('nestjs-memcached:route-request-index');
/**
 * The interceptor the cache decorators apply to controller routes: `CacheInterceptor` unless the
 * module's `interceptor` extra names a subclass.
 */
export const CACHE_INTERCEPTOR = Symbol.for('nestjs-memcached:interceptor');

/**
 * The injection token of a named client; the default client is injected by its class.
 *
 * @example
 * Test.createTestingModule({ ... }).overrideProvider(getMemcachedClientToken('sessions')).useValue(fake)
 */
export function getMemcachedClientToken(name?: string): string | typeof MemcachedClient {
  return name === undefined || name === '' ? MemcachedClient : `MemcachedClient:${name}`;
}
