import {
  type DynamicModule,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { MemcachedClient } from '../client/memcached.client.js';
import { MemcachedCache } from '../cache/memcached-cache.js';
import { type MemcachedMetricsOptions, registerMemcachedMetrics } from './memcached-metrics.js';

const METRICS_OPTIONS = Symbol('MEMCACHED_METRICS_OPTIONS');

@Injectable()
class MemcachedMetricsRecorder implements OnModuleInit, OnApplicationShutdown {
  private stop?: () => void;

  constructor(
    private readonly client: MemcachedClient,
    @Optional() @Inject(MemcachedCache) private readonly cache: MemcachedCache | undefined,
    @Inject(METRICS_OPTIONS) private readonly options: MemcachedMetricsOptions,
  ) {}

  onModuleInit(): void {
    this.stop = registerMemcachedMetrics(this.client, this.cache, this.options);
  }

  onApplicationShutdown(): void {
    this.stop?.();
  }
}

/**
 * Records the default client's and the decorators' metrics in a prom-client registry (import it
 * after `MemcachedModule`, which must be global). Serve `registry.metrics()` at `/metrics`.
 *
 * @example
 * imports: [MemcachedModule.forRoot({ isGlobal: true }), MemcachedPrometheusModule.forRoot({ registry })]
 */
@Module({})
export class MemcachedPrometheusModule {
  static forRoot(options: MemcachedMetricsOptions = {}): DynamicModule {
    return {
      module: MemcachedPrometheusModule,
      providers: [{ provide: METRICS_OPTIONS, useValue: options }, MemcachedMetricsRecorder],
    };
  }
}
