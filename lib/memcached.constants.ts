import { MemcachedClient } from './client/memcached.client.js';

/** The injection token of a named client; the default client is injected by its class. */
export function getMemcachedClientToken(name?: string): string | typeof MemcachedClient {
  return name === undefined || name === '' ? MemcachedClient : `MemcachedClient:${name}`;
}
