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
import { CacheAsideEngine } from '../engine/cache-aside.engine.js';
import { type MemcachedMetricsOptions, registerMemcachedMetrics } from './memcached-metrics.js';

const METRICS_OPTIONS = Symbol('MEMCACHED_METRICS_OPTIONS');

@Injectable()
class MemcachedMetricsRecorder implements OnModuleInit, OnApplicationShutdown {
  private stop?: () => void;

  constructor(
    private readonly client: MemcachedClient,
    @Optional() @Inject(CacheAsideEngine) private readonly engine: CacheAsideEngine | undefined,
    @Inject(METRICS_OPTIONS) private readonly options: MemcachedMetricsOptions,
  ) {}

  onModuleInit(): void {
    this.stop = registerMemcachedMetrics(this.client, this.engine, this.options);
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
