import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';

interface Queryable {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  close(): Promise<void>;
}

/**
 * The sample's SQL database: embedded PGlite (PostgreSQL compiled to WebAssembly, in process)
 * by default, a real PostgreSQL when DATABASE_URL is set. Creates and seeds the schema on start
 * and counts queries, so you can see what the cache saves.
 */
@Injectable()
export class DatabaseService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Database');
  private db!: Queryable;
  readonly table: string;
  /** Queries run since start. */
  queries = 0;

  constructor(private readonly config: ConfigService) {
    this.table = config.get<string>('SAMPLE_TABLE') ?? 'sample_users';
    if (!/^[a-z_][a-z0-9_]*$/.test(this.table))
      throw new Error(`Invalid SAMPLE_TABLE "${this.table}": use lower-case letters, digits and _`);
  }

  async onModuleInit(): Promise<void> {
    const url = this.config.get<string>('DATABASE_URL');
    if (url) {
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({ connectionString: url, max: 10 });
      this.db = { query: (sql, params) => pool.query(sql, params as unknown[]) as never, close: () => pool.end() };
      this.logger.log(`using PostgreSQL at ${url.replace(/\/\/[^@/]*@/, '//***@')}`);
    } else {
      this.logger.log('starting the embedded PGlite database (set DATABASE_URL for PostgreSQL)');
      const { PGlite } = await import('@electric-sql/pglite');
      const lite = new PGlite();
      await lite.waitReady;
      this.db = { query: (sql, params) => lite.query(sql, params as unknown[]) as never, close: () => lite.close() };
    }
    await this.db.query(`CREATE TABLE IF NOT EXISTS ${this.table} (
      id serial PRIMARY KEY,
      name text NOT NULL,
      email text NOT NULL,
      country text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.table}`);
    if (rows[0].n === 0) {
      const seed = Number(this.config.get('SAMPLE_SEED_USERS') ?? 5000);
      this.logger.log(`seeding ${seed} users (SAMPLE_SEED_USERS)...`);
      await this.db.query(
        `INSERT INTO ${this.table} (name, email, country)
         SELECT 'User ' || g, 'user' || g || '@example.com', (ARRAY['FR','DE','US','JP','BR'])[1 + g % 5]
         FROM generate_series(1, $1::int) AS g`,
        [seed],
      );
      this.logger.log(`seeded ${seed} users`);
    }
  }

  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    this.queries++;
    return (await this.db.query<T>(sql, params)).rows;
  }

  async onModuleDestroy(): Promise<void> {
    await this.db?.close();
  }
}
