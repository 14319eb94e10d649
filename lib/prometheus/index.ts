export { registerMemcachedMetrics, type MemcachedMetricsOptions } from './memcached-metrics.js';
export { MemcachedPrometheusModule, type MemcachedPrometheusOptions } from './memcached-prometheus.module.js';
