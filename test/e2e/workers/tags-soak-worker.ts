// One process of the tag soak: a Nest application context whose services cache PostgreSQL rows
// and queries over several rows (each result tagged with the rows it shows) through @Cacheable,
// and bump rows through @CacheEvict({ tags }), at random, for a while. Prints one JSON line: every
// read (when it started, row, version seen; a query's read counts once per row it shows) and
// every write (when its invalidation returned, row, version written).
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { Cacheable, CacheEvict, MemcachedClient, MemcachedModule } from '../../../lib/index.js';

interface Job {
  servers: string;
  databaseUrl: string;
  table: string;
  rows: number;
  durationMs: number;
  concurrency: number;
  writeShare: number;
  readSeconds: number;
  /** Each process its own key prefix (its own service): only the tag keyspace is shared. */
  keyPrefix: string;
  leases: boolean;
  near?: { url: string; channel: string; heartbeat: number };
}

const job = JSON.parse(process.argv[2]) as Job;
const KEYS = [{ id: 1, key: Buffer.alloc(32, 0x54) }];
const pool = new pg.Pool({ connectionString: job.databaseUrl, max: job.concurrency + 2 });
const now = () => Number(process.hrtime.bigint()) / 1e6;
/** The rows a query shows: `id` and the next two. */
const shown = (id: number) => [id, (id % job.rows) + 1, ((id + 1) % job.rows) + 1];

@Injectable()
class Rows {
  @Cacheable({ namespace: 'rows', key: (id: number) => String(id), tags: (id: number) => [`row:${id}`], ttl: 60 })
  async find(id: number): Promise<Array<[number, number]>> {
    const { rows } = await pool.query(`SELECT id, version, pg_sleep($2) FROM ${job.table} WHERE id = $1`, [
      id,
      job.readSeconds,
    ]);
    return rows.map((r: { id: number; version: number }) => [r.id, r.version]);
  }

  @Cacheable({
    namespace: 'queries',
    key: (id: number) => String(id),
    tags: (id: number) => shown(id).map((row) => `row:${row}`),
    ttl: 60,
  })
  async query(id: number): Promise<Array<[number, number]>> {
    const { rows } = await pool.query(
      `SELECT id, version, pg_sleep($2) FROM ${job.table} WHERE id = ANY($1::int[]) ORDER BY id`,
      [shown(id), job.readSeconds],
    );
    return rows.map((r: { id: number; version: number }) => [r.id, r.version]);
  }

  @CacheEvict({ tags: (id: number) => [`row:${id}`] })
  async bump(id: number): Promise<number> {
    const { rows } = await pool.query(`UPDATE ${job.table} SET version = version + 1 WHERE id = $1 RETURNING version`, [
      id,
    ]);
    return rows[0].version as number;
  }
}

@Module({
  imports: [
    MemcachedModule.forRoot({
      servers: job.servers,
      keyPrefix: job.keyPrefix,
      leases: job.leases,
      timeout: 1000,
      logger: false,
      ...(job.near && {
        nearCache: { ttl: 30 },
        bus: {
          transport: 'nats' as const,
          url: job.near.url,
          channel: job.near.channel,
          heartbeat: job.near.heartbeat,
          keys: KEYS,
        },
      }),
    }),
  ],
  providers: [Rows],
})
class SoakModule {}

const app = await NestFactory.createApplicationContext(SoakModule, { logger: false });
const rows = app.get(Rows);
const client = app.get(MemcachedClient);
if (job.near) while (client.stats().bus?.healthy !== true) await new Promise((r) => setTimeout(r, 10));
const reads: Array<[number, number, number]> = [];
const writes: Array<[number, number, number]> = [];
const until = Date.now() + job.durationMs;
const loop = async () => {
  while (Date.now() < until) {
    const id = 1 + Math.floor(Math.random() * job.rows);
    const dice = Math.random();
    if (dice < job.writeShare) {
      const version = await rows.bump(id);
      writes.push([now(), id, version]);
    } else {
      const startedAt = now();
      const seen = dice < 0.5 ? await rows.find(id) : await rows.query(id);
      for (const [row, version] of seen) reads.push([startedAt, row, version]);
    }
  }
};
await Promise.all(Array.from({ length: job.concurrency }, loop));
const { nearCache, bus: _bus, owed: _owed, ...counters } = client.stats();
const stats = { ...counters, nearHits: nearCache?.hits ?? 0, nearInvalidations: nearCache?.invalidations ?? 0 };
await app.close();
await pool.end();
process.stdout.write(JSON.stringify({ reads, writes, stats }) + '\n', () => process.exit(0));
