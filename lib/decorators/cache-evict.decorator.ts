import { CACHE_EVICT_METADATA } from '../memcached.constants.js';
import type { CacheDecorator, CacheEvictOptions } from '../interfaces/cache-decorator-options.interface.js';
import { recordCacheMetadata } from './cache-decorator.factory.js';

/**
 * Evicts after the method succeeds (nothing is evicted when it throws, unless
 * `beforeInvocation`): the computed `key`, several `keys`, or the whole namespace with
 * `allEntries`. Stack it for several evictions. On a write route without a key, it evicts the
 * cached GET of the route's own path (`PUT /items/7` evicts `GET /items/7`).
 *
 * @example
 * @CacheEvict({ namespace: 'users', key: (id: string) => id })
 * @CacheEvict({ namespace: 'user-lists', allEntries: true })
 * update(id: string, dto: UpdateUserDto): Promise<User> { ... }
 */
export function CacheEvict<A extends unknown[] = any[]>(options: CacheEvictOptions<A> = {}): CacheDecorator<A> {
  return recordCacheMetadata(CACHE_EVICT_METADATA, options, 'list') as CacheDecorator<A>;
}
