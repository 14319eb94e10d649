export { MemcachedClient } from './client/memcached.client.js';
export type {
  CounterOptions,
  GetOrSetOptions,
  KeyOptions,
  MemcachedClientStats,
  NodePing,
  SetOptions,
} from './client/memcached.client.js';
export { MemcachedError, type MemcachedErrorCode } from './client/memcached.error.js';
export { KetamaRing, ketamaHash, type KetamaNode, type KetamaOptions } from './cluster/ketama.js';
export { composeKey, toWireKey, MAX_KEY_LENGTH } from './codec/key.codec.js';
export { MAX_RELATIVE_TTL, toExpiry } from './codec/ttl.js';
export { MemcachedConfigError, resolveOptions } from './config/memcached-options.js';
export { memcachedConfig, readMemcachedEnv, MEMCACHED_ENV_VARIABLES } from './config/memcached.config.js';
export { InjectMemcached } from './decorators/inject-memcached.decorator.js';
export type {
  MemcachedModuleExtras,
  MemcachedModuleOptions,
  MemcachedSerializer,
  MemcachedServerOptions,
} from './interfaces/memcached-module-options.interface.js';
export { getMemcachedClientToken } from './memcached.constants.js';
export { MEMCACHED_MODULE_OPTIONS } from './memcached.module-definition.js';
export { MemcachedModule } from './memcached.module.js';
export { Cacheable } from './decorators/cacheable.decorator.js';
export { CacheEvict } from './decorators/cache-evict.decorator.js';
export { CachePut } from './decorators/cache-put.decorator.js';
export type {
  CacheDecorator,
  CacheableOptions,
  CacheClassDefaults,
  CacheEvictOptions,
  CacheKeyFn,
  CachePutOptions,
} from './interfaces/cache-decorator-options.interface.js';
export { CacheAsideEngine, entryKey, type CacheOutcome, type CallSite, type CallHooks, type NamespaceStats } from './engine/cache-aside.engine.js';
export { CacheEvents, type CacheEventMap, type CacheEventName } from './engine/cache-events.js';
export { stableKey } from './engine/stable-key.js';
export { CacheInterceptor } from './interceptors/cache.interceptor.js';
export { CacheExplorer } from './explorer/cache.explorer.js';
export { InMemoryMemcachedClient } from './testing/in-memory-memcached.client.js';
export { MemcachedTestingModule } from './testing/memcached-testing.module.js';
