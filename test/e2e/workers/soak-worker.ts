// One process of the stale-read soak: a Nest application context whose service reads rows of a
// PostgreSQL table through @Cacheable and bumps them through @CacheEvict, at random, for a while.
// Prints one JSON line: every read (when it started, row, version seen) and every write (when its
// eviction returned, row, version written), on the machine-wide monotonic clock.
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import {
  MemcachedCache,
  Cacheable,
  CacheEvict,
  MemcachedClient,
  MemcachedModule,
  type BusTransport,
} from '../../../lib/index.js';
import { createBusTransport } from '../../../lib/bus/transports.js';

interface Job {
  servers: string;
  /** The test's PostgreSQL (user `postgres`, database `test`). */
  databaseUrl: string;
  table: string;
  rows: number;
  durationMs: number;
  concurrency: number;
  writeShare: number;
  /** Seconds a read spends in the database (a realistic query, not a primary-key lookup on a warm table). */
  readSeconds: number;
  /** With a near cache: the NATS URL of its bus (through the test's proxy), channel and heartbeat. */
  near?: { url: string; channel: string; heartbeat: number; dropShare?: number };
  /** A bus without a near cache (what carries owed evictions to the other processes). */
  bus?: { url: string; channel: string };
  /** The client's deadline, ms (default 1000). */
  timeout?: number;
}

const job = JSON.parse(process.argv[2]) as Job;
const SOAK_BUS_KEYS = [{ id: 1, key: Buffer.alloc(32, 0x50) }];
const pool = new pg.Pool({ connectionString: job.databaseUrl, max: job.concurrency + 2 });
const now = () => Number(process.hrtime.bigint()) / 1e6;

@Injectable()
class Rows {
  @Cacheable({ namespace: 'soak', key: (id: number) => String(id), ttl: 60 })
  async find(id: number): Promise<number> {
    const { rows } = await pool.query(`SELECT version, pg_sleep($2) FROM ${job.table} WHERE id = $1`, [
      id,
      job.readSeconds,
    ]);
    return rows[0].version as number;
  }

  @CacheEvict({ namespace: 'soak', key: (id: number) => String(id) })
  async bump(id: number): Promise<number> {
    const { rows } = await pool.query(`UPDATE ${job.table} SET version = version + 1 WHERE id = $1 RETURNING version`, [
      id,
    ]);
    return rows[0].version as number;
  }
}

/**
 * The real NATS transport, losing a share of the invalidations this process receives (not its
 * heartbeats): a lossy link, seen by the bus as gaps in the senders' sequences.
 */
async function lossyNats(url: string, channel: string, dropShare: number): Promise<BusTransport> {
  const inner = await createBusTransport('nats', { url, channel });
  let dropped = 0;
  const transport: BusTransport & { dropped(): number } = {
    start: (deliver, state) =>
      inner.start((data) => {
        const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
        if (!text.includes('"t":"h"') && Math.random() < dropShare) return void dropped++;
        deliver(data);
      }, state),
    publish: (data) => inner.publish(data),
    close: () => inner.close(),
    dropped: () => dropped,
  };
  return transport;
}
const lossy = job.near?.dropShare ? await lossyNats(job.near.url, job.near.channel, job.near.dropShare) : undefined;

@Module({
  imports: [
    MemcachedModule.forRoot({
      servers: job.servers,
      leases: true,
      timeout: job.timeout ?? 1000,
      breakerCooldown: 100,
      logger: false,
      ...(job.bus && {
        bus: { transport: 'nats' as const, url: job.bus.url, channel: job.bus.channel, keys: SOAK_BUS_KEYS },
      }),
      ...(job.near && {
        nearCache: { ttl: 30 },
        // authenticated, as production runs it: every message's MAC is checked
        bus: lossy
          ? { transport: lossy, channel: job.near.channel, heartbeat: job.near.heartbeat, keys: SOAK_BUS_KEYS }
          : {
              transport: 'nats' as const,
              url: job.near.url,
              channel: job.near.channel,
              heartbeat: job.near.heartbeat,
              keys: SOAK_BUS_KEYS,
            },
      }),
    }),
  ],
  providers: [Rows],
})
class SoakModule {}

const app = await NestFactory.createApplicationContext(SoakModule, { logger: false });
const rows = app.get(Rows);
if (job.near || job.bus) {
  // start when the bus vouches for the near cache (and hears the others)
  const client = app.get(MemcachedClient);
  while (client.stats().bus?.healthy !== true) await new Promise((r) => setTimeout(r, 10));
}
const reads: Array<[number, number, number]> = [];
const writes: Array<[number, number, number]> = [];
const until = Date.now() + job.durationMs;
const loop = async () => {
  while (Date.now() < until) {
    const id = 1 + Math.floor(Math.random() * job.rows);
    if (Math.random() < job.writeShare) {
      const version = await rows.bump(id);
      writes.push([now(), id, version]);
    } else {
      const startedAt = now();
      reads.push([startedAt, id, await rows.find(id)]);
    }
  }
};
await Promise.all(Array.from({ length: job.concurrency }, loop));
const { nearCache, bus, owed: _owed, ...counters } = app.get(MemcachedClient).stats();
const stats = {
  ...counters,
  cacheHits: app.get(MemcachedCache).stats().soak?.hits ?? 0,
  nearHits: nearCache?.hits ?? 0,
  busGaps: bus?.gaps ?? 0,
  droppedMessages: (lossy as { dropped?: () => number } | undefined)?.dropped?.() ?? 0,
  nearFlushes: nearCache?.flushes ?? 0,
  nearRefusedFills: nearCache?.refusedFills ?? 0,
};
await app.close();
await pool.end();
process.stdout.write(JSON.stringify({ reads, writes, stats }) + '\n', () => process.exit(0));
