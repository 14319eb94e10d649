import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient } from '../../lib/index.js';
import { registerMemcachedMetrics } from '../../lib/prometheus/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startNats, type TestServer } from '../support/servers.js';

// What the bus says about itself agrees with what it does: the near cache is reported serving only
// when one is configured and serving, good news is not a warning, a recovery is logged once, and a
// clean shutdown says nothing.
const HEARTBEAT = 100;
const KEY = { id: 1, key: Buffer.alloc(32, 0x4b) };

class Lines implements LoggerService {
  readonly lines: string[] = [];
  log(message: string) {
    this.lines.push(`log: ${message}`);
  }
  warn(message: string) {
    this.lines.push(`warn: ${message}`);
  }
  error(message: string) {
    this.lines.push(`error: ${message}`);
  }
  bus(): string[] {
    return this.lines.filter((line) => line.includes('Invalidation bus'));
  }
}

async function until(check: () => boolean, ms = 15_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await sleep(10);
  }
}

describe('the bus reports what is true', () => {
  let daemon: MemcachedDaemon;
  let nats: TestServer;

  beforeAll(async () => {
    [daemon, nats] = await Promise.all([MemcachedDaemon.start(), startNats()]);
  });
  afterAll(async () => {
    await Promise.all([daemon?.stop(), nats?.stop()]);
  });

  it('a bus without a near cache never says a near cache serves; a clean shutdown logs nothing', async () => {
    const logger = new Lines();
    const client = new MemcachedClient({
      servers: daemon.address,
      logger,
      bus: { url: nats.url, channel: `logs-${randomUUID()}`, heartbeat: HEARTBEAT, keys: [KEY] },
    });
    await client.ping();
    await until(() => client.stats().bus?.healthy === true);
    expect(client.stats().nearCache).toBeUndefined();
    const registry = new Registry();
    registerMemcachedMetrics(client, { registry });
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/memcached_near_cache\{measure="bus_healthy"\} 1/);
    expect(metrics).not.toMatch(/measure="active"/);
    expect(logger.bus()).toStrictEqual([
      "log: Invalidation bus (nats) connected: this process's evictions reach the other processes",
    ]);
    client.close();
    await sleep(3 * HEARTBEAT);
    expect(logger.bus()).toHaveLength(1);
    expect(logger.lines.filter((line) => line.startsWith('warn'))).toStrictEqual([]);
  });

  it('with a near cache: connected (log), silent (warn), back (log, once), and the last line is the state', async () => {
    const logger = new Lines();
    const proxy = await new FaultProxy(nats.port).start();
    const client = new MemcachedClient({
      servers: daemon.address,
      logger,
      nearCache: { ttl: 10 },
      bus: {
        url: `nats://127.0.0.1:${proxy.port}`,
        channel: `logs-${randomUUID()}`,
        heartbeat: HEARTBEAT,
        keys: [KEY],
      },
    });
    try {
      await until(() => client.stats().bus?.healthy === true);
      expect(logger.bus()).toStrictEqual(['log: Invalidation bus (nats) connected: the near cache serves hits']);
      // state lines are at most one per 10 s: past that, a silence is reported at once
      await sleep(10_200);
      proxy.silent = true;
      await until(() => client.stats().bus?.healthy === false);
      expect(client.stats().nearCache?.active).toBe(false);
      await until(() => logger.bus().length === 2);
      expect(logger.bus()[1]).toMatch(/^warn: Invalidation bus \(nats\) .*: the near cache is dropped and bypassed/);
      proxy.silent = false;
      await until(() => client.stats().bus?.healthy === true);
      // the recovery came within 10 s of the last line: it is reported when those 10 s end
      await until(() => logger.bus().length === 3, 15_000);
      await sleep(500);
      const lines = logger.bus();
      expect(lines).toHaveLength(3);
      expect(lines[2]).toMatch(
        /^log: Invalidation bus \(nats\) back after \d+ ms( \(\d+ changes since the last report\))?: the near cache serves hits again$/,
      );
    } finally {
      client.close();
      await proxy.stop();
    }
  }, 45_000);

  it('without bus.keys: one warning at startup that any publisher can evict, and no other', async () => {
    const logger = new Lines();
    const client = new MemcachedClient({
      servers: daemon.address,
      logger,
      nearCache: { ttl: 10 },
      bus: { url: nats.url, channel: `logs-${randomUUID()}`, heartbeat: HEARTBEAT },
    });
    try {
      await until(() => client.stats().bus?.healthy === true);
      await sleep(3 * HEARTBEAT);
      const warnings = logger.lines.filter((line) => line.startsWith('warn'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/without bus\.keys: anyone who can publish on its channel can evict and flush/);
    } finally {
      client.close();
    }
  });
});
