// The public API. Everything else under lib/ is internal and may change without notice.

// the module and the client
export { MemcachedModule } from './memcached.module.js';
export {
  MemcachedClient,
  type CounterOptions,
  type GetOrSetOptions,
  type KeyOptions,
  type MemcachedClientStats,
  type BusReport,
  type NodePing,
  type OperationEvent,
  type OperationStats,
  type SetOptions,
} from './client/memcached.client.js';
export type { NodeStatus } from './cluster/breaker-node.js';
export type { BusTransport } from './interfaces/bus-transport.interface.js';
export type { NearCacheStats } from './near/near-cache.js';
export type { DebtReport, OwedReport } from './client/debts.js';
export type { BusStats } from './bus/invalidation-bus.js';
export { InjectMemcached } from './decorators/inject-memcached.decorator.js';
export { CACHE_INTERCEPTOR, getMemcachedClientToken } from './memcached.constants.js';
export type {
  MemcachedBusFollow,
  MemcachedBusOptions,
  MemcachedHttpOptions,
  MemcachedMetricsLimits,
  MemcachedNearCacheOptions,
  MemcachedModuleExtras,
  MemcachedModuleOptions,
  MemcachedSerializer,
  MemcachedServerOptions,
} from './interfaces/memcached-module-options.interface.js';
export type {
  MemcachedEncryptionOptions,
  MemcachedTlsOptions,
  MemcachedValueFormat,
} from './interfaces/memcached-security-options.interface.js';

// the cache: facade, events, counters
export { MemcachedCache, type CacheEventSource } from './cache/memcached-cache.js';
export type { CacheEventMap, CacheEventName } from './stats/cache-events.js';
export type { LatencySnapshot } from './stats/latency-histogram.js';
export type {
  ClientEvent,
  LatencyCounts,
  MemcachedCounters,
  NamespaceCounterView,
  NamespaceStats,
} from './stats/cache-stats.js';
export type { CacheOutcome } from './cache/cache-aside.engine.js';

// decorators and the interceptor they attach
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
export { CacheInterceptor } from './interceptors/cache.interceptor.js';
export type { HttpRequestLike } from './interceptors/http-cache-rules.js';
export type { RawJson } from './codec/value.codec.js';

// errors
export { MemcachedError, type MemcachedErrorCode } from './transport/memcached.error.js';
export { MemcachedConfigError } from './config/memcached-options.js';
export { MemcachedUsageError, type MemcachedUsageErrorCode } from './memcached.errors.js';
export { UnsupportedValueError } from './codec/value.codec.js';

// testing without a server
export { InMemoryMemcachedClient } from './testing/in-memory-memcached.client.js';
export { MemcachedTestingModule } from './testing/memcached-testing.module.js';

// tracing: the diagnostics_channel events (the OpenTelemetry entry point turns them into spans)
export {
  CHANNELS,
  type BusPublishEvent,
  type BusReceiveEvent,
  type CacheCallEvent,
  type CacheCallOutcome,
  type CommandEvent,
  type LogEvent,
  type RunsIn,
} from './tracing/channels.js';
