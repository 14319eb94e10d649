import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { MemcachedClient } from '../client/memcached.client.js';

export interface MemcachedHealthOptions {
  /** `true`: down when any node is down. Default `false`: down only when no node answers. */
  requireAll?: boolean;
}

/** How long after the last graced answer the check still says `degraded`. */
const DEGRADED_FOR_MS = 30_000;

/**
 * A `@nestjs/terminus` health indicator (an optional peer dependency) that pings every node and
 * reports each one: up or down, version, latency, breaker state, last error; with a near cache,
 * also its bus (up or down, lag), which never makes the check fail. `degraded: 'serving graced
 * values'` while graced answers were served in the last 30 s (a source failing behind the cache),
 * and `owed` while invalidations memcached did not confirm wait to be paid; neither fails it.
 *
 * @example
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.memcached.isHealthy('memcached')]); }
 */
@Injectable()
export class MemcachedHealthIndicator {
  constructor(
    private readonly healthIndicatorService: HealthIndicatorService,
    private readonly client: MemcachedClient,
  ) {}

  async isHealthy<const Key extends string>(key: Key, options: MemcachedHealthOptions = {}) {
    const indicator = this.healthIndicatorService.check(key);
    const [pings, statuses] = [await this.client.ping(), this.client.nodeStatus()];
    const nodes = Object.fromEntries(
      pings.map((ping) => {
        const status = statuses.find((s) => s.node === ping.node);
        return [
          ping.node,
          {
            status: ping.ok ? 'up' : 'down',
            version: ping.version,
            latencyMs: ping.latencyMs === undefined ? undefined : Math.round(ping.latencyMs * 100) / 100,
            breaker: status?.state === 'down' ? 'open' : 'closed',
            error: ping.ok ? undefined : (ping.error ?? status?.lastError),
          },
        ];
      }),
    );
    const up = pings.filter((p) => p.ok).length;
    const healthy = options.requireAll ? up === pings.length : up > 0;
    // the bus is reported, not judged: without it reads go to memcached, which still serves them
    const { nearCache: near, bus: busStats } = this.client.stats();
    const bus =
      busStats === undefined
        ? undefined
        : {
            status: busStats.healthy ? 'up' : 'down',
            connected: busStats.connected,
            lagMs: busStats.lagMs,
            nearCache: near === undefined ? 'not configured' : near.active ? 'serving' : 'bypassed',
          };
    const details: { nodes: typeof nodes; bus?: typeof bus; degraded?: string; owed?: number } =
      bus === undefined ? { nodes } : { nodes, bus };
    // said, not judged: memcached is fine; what it says is that answers are older than their TTL
    const lastGraced = this.client.counters().lastGracedAt;
    if (lastGraced > 0 && Date.now() - lastGraced < DEGRADED_FOR_MS) details.degraded = 'serving graced values';
    const owed = this.client.stats().owed;
    const held =
      owed.keys +
      owed.namespaces +
      (owed.everything ? 1 : 0) +
      owed.onReturn.keys +
      owed.onReturn.namespaces +
      (owed.onReturn.everything ? 1 : 0);
    if (held > 0) details.owed = held;
    return healthy ? indicator.up(details) : indicator.down(details);
  }
}
