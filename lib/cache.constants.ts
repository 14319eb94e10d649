export const CACHEABLE_METADATA = 'nestjs-memcached:cacheable';
export const CACHE_EVICT_METADATA = 'nestjs-memcached:cache-evict';
export const CACHE_PUT_METADATA = 'nestjs-memcached:cache-put';
/** Set on an instance (or a prototype) by the explorer: the engine its decorated methods use. */
export const CACHE_ENGINE = Symbol.for('nestjs-memcached:engine');
/** Marks a method replaced by the decoration-time trampoline, holding the original. */
export const ORIGINAL_METHOD = Symbol.for('nestjs-memcached:original');
