import { CACHE_PUT_METADATA } from '../memcached.constants.js';
import type { CacheDecorator, CachePutOptions } from '../interfaces/cache-decorator-options.interface.js';
import { recordCacheMetadata } from './cache-decorator.factory.js';

/**
 * Write-through: always calls the method and stores its result under the key.
 *
 * @example
 * @CachePut({ namespace: 'users', key: (user: User) => user.id })
 * save(user: User): Promise<User> { ... }
 */
export function CachePut<A extends unknown[] = any[], R = any>(options: CachePutOptions<A, R> = {}): CacheDecorator<A> {
  return recordCacheMetadata(CACHE_PUT_METADATA, options, 'single') as CacheDecorator<A>;
}
