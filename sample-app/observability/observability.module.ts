import {
  Controller,
  Get,
  Header,
  Injectable,
  Logger,
  Module,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Gauge, Registry } from 'prom-client';
import { MemcachedCache } from '../../lib/index.js';
import { MemcachedHealthIndicator } from '../../lib/terminus/index.js';
import { MemcachedPrometheusModule } from '../../lib/prometheus/index.js';
import { DatabaseService } from '../database/database.service.js';

export const registry = new Registry();

/** Logs each cached request's outcome at debug level (LOG_LEVEL=debug), so you see HIT and MISS. */
@Injectable()
class CacheOutcomeLogger implements OnModuleInit, OnApplicationBootstrap {
  private readonly logger = new Logger('Cache');

  constructor(
    private readonly cache: MemcachedCache,
    private readonly config: ConfigService,
  ) {}

  /** The embedded database starts fresh on every run: entries cached by an earlier run must not answer. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.config.get('DATABASE_URL')) return;
    await Promise.all(['users', 'user-lists', 'country-stats'].map((ns) => this.cache.evictAll(ns)));
  }

  onModuleInit(): void {
    const { events } = this.cache;
    events.on('hit', (e) =>
      this.logger.debug(`${e.stale ? 'STALE' : 'HIT'}  ${e.namespace} ${e.key} (${e.durationMs.toFixed(2)} ms)`),
    );
    events.on('miss', (e) => this.logger.debug(`MISS ${e.namespace} ${e.key} (${e.durationMs.toFixed(2)} ms)`));
    events.on('bypass', (e) => this.logger.debug(`BYPASS ${e.namespace} (${e.reason})`));
    events.on('evict', (e) => this.logger.debug(`EVICT ${e.namespace} ${e.allEntries ? '(all entries)' : e.key}`));
  }
}

@Controller()
class ObservabilityController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly memcached: MemcachedHealthIndicator,
    private readonly db: DatabaseService,
  ) {}

  @Get('metrics')
  @Header('Content-Type', registry.contentType)
  metrics(): Promise<string> {
    return registry.metrics();
  }

  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.memcached.isHealthy('memcached')]);
  }

  onModuleInit(): void {
    const db = this.db;
    registry.removeSingleMetric('sample_db_queries');
    new Gauge({
      name: 'sample_db_queries',
      help: 'SQL queries run by the sample app since start',
      registers: [registry],
      collect() {
        this.set(db.queries);
      },
    });
  }
}

@Module({
  imports: [TerminusModule, MemcachedPrometheusModule.forRoot({ registry })],
  controllers: [ObservabilityController],
  providers: [MemcachedHealthIndicator, CacheOutcomeLogger],
})
export class ObservabilityModule {}
