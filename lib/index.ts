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
