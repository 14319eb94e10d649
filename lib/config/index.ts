export { memcachedConfig } from './memcached.config.js';
export { MEMCACHED_ENV_VARIABLES, readMemcachedEnv } from './memcached-env.js';
