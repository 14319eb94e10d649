export { registerMemcachedMetrics, type MemcachedMetricsOptions } from './memcached-metrics.js';
export { MemcachedPrometheusModule } from './memcached-prometheus.module.js';
