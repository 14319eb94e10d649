export { MemcachedHealthIndicator, type MemcachedHealthOptions } from './memcached.health.js';
