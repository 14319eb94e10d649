import { MemcachedConfigError } from '../config/memcached-options.js';
import {
  type DynamicModule,
  Inject,
  Injectable,
  Module,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { Registry } from 'prom-client';
import { MemcachedClient } from '../client/memcached.client.js';
import { peerMissing } from '../memcached.messages.js';
import { registerMemcachedMetrics } from './memcached-metrics.js';

const METRICS_OPTIONS = Symbol('MEMCACHED_METRICS_OPTIONS');

/** Options of `MemcachedPrometheusModule.forRoot`. */
export interface MemcachedPrometheusOptions {
  /** Default: prom-client's global registry (`register`). */
  registry?: Registry;
  /** Metric name prefix. Default `memcached_`. */
  prefix?: string;
}

@Injectable()
class MemcachedMetricsRecorder implements OnModuleInit, OnApplicationShutdown {
  private stop?: () => void;

  constructor(
    private readonly client: MemcachedClient,
    @Inject(METRICS_OPTIONS) private readonly options: { registry: Registry; prefix?: string },
  ) {}

  onModuleInit(): void {
    this.stop = registerMemcachedMetrics(this.client, this.options);
  }

  onApplicationShutdown(): void {
    this.stop?.();
  }
}

/** prom-client's global registry, loaded only when no registry is given (prom-client is an optional peer). */
async function globalRegistry(): Promise<Registry> {
  try {
    return (await import('prom-client')).register;
  } catch (error) {
    throw new MemcachedConfigError(peerMissing('nestjs-memcached/prometheus', 'prom-client'), { cause: error });
  }
}

/**
 * Exposes the default client's counters (every read path, the decorators, operations, nodes, the
 * near cache and bus) in a prom-client registry, read when it is scraped (import it after
 * `MemcachedModule`, which must be global). Serve `registry.metrics()` at `/metrics`. Needs the
 * optional peer `prom-client`; without it the app fails at startup saying so.
 *
 * @example
 * imports: [MemcachedModule.forRoot({ isGlobal: true }), MemcachedPrometheusModule.forRoot({ registry })]
 */
@Module({})
export class MemcachedPrometheusModule {
  static forRoot(options: MemcachedPrometheusOptions = {}): DynamicModule {
    return {
      module: MemcachedPrometheusModule,
      providers: [
        {
          provide: METRICS_OPTIONS,
          useFactory: async () => ({ ...options, registry: options.registry ?? (await globalRegistry()) }),
        },
        MemcachedMetricsRecorder,
      ],
    };
  }
}
