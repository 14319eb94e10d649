import { CACHEABLE_METADATA } from '../memcached.constants.js';
import type { CacheDecorator, CacheableOptions } from '../interfaces/cache-decorator-options.interface.js';
import { recordCacheMetadata } from './cache-decorator.factory.js';

/**
 * Cache-aside read: a hit returns the cached value without calling the method; a miss calls it,
 * returns its result and stores it. Works on service methods (async, sync or Observable; a
 * cached sync method returns a Promise) and on controller routes (GET/HEAD, 2xx only, `X-Cache`
 * header). On a class: defaults (`namespace`, `ttl`) for its methods.
 *
 * @example
 * @Cacheable({ namespace: 'users', key: (id: string) => id, ttl: 300 })
 * findById(id: string): Promise<User> { ... }
 */
export function Cacheable<A extends unknown[] = any[], R = any>(
  options: CacheableOptions<A, R> = {},
): CacheDecorator<A> {
  return recordCacheMetadata(CACHEABLE_METADATA, options, 'single') as CacheDecorator<A>;
}
