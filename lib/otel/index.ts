export {
  MemcachedInstrumentation,
  type MemcachedInstrumentationOptions,
  enableMemcachedTracing,
} from './memcached-instrumentation.js';
