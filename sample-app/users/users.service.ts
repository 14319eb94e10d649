import { Injectable } from '@nestjs/common';
import { Cacheable, CacheEvict } from '../../lib/index.js';
import { DatabaseService } from '../database/database.service.js';

export interface User {
  id: number;
  name: string;
  email: string;
  country: string;
}

export type UserInput = Omit<User, 'id'>;

const COLUMNS = 'id, name, email, country';

@Injectable()
export class UsersService {
  constructor(private readonly db: DatabaseService) {}

  async findOne(id: number): Promise<User | null> {
    const [row] = await this.db.query<User>(`SELECT ${COLUMNS} FROM ${this.db.table} WHERE id = $1`, [id]);
    return row ?? null;
  }

  list(page: number, limit: number): Promise<User[]> {
    return this.db.query<User>(`SELECT ${COLUMNS} FROM ${this.db.table} ORDER BY id LIMIT $1 OFFSET $2`, [
      limit,
      (page - 1) * limit,
    ]);
  }

  async create(input: UserInput): Promise<User> {
    const [row] = await this.db.query<User>(
      `INSERT INTO ${this.db.table} (name, email, country) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
      [input.name, input.email, input.country],
    );
    return row;
  }

  async update(id: number, patch: Partial<UserInput>): Promise<User | null> {
    const [row] = await this.db.query<User>(
      `UPDATE ${this.db.table} SET name = coalesce($2, name), email = coalesce($3, email), country = coalesce($4, country), updated_at = now()
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, patch.name ?? null, patch.email ?? null, patch.country ?? null],
    );
    return row ?? null;
  }

  async remove(id: number): Promise<boolean> {
    const rows = await this.db.query(`DELETE FROM ${this.db.table} WHERE id = $1 RETURNING id`, [id]);
    return rows.length > 0;
  }

  /** A service-level cached computation: the provider path of the library. */
  @Cacheable({ namespace: 'country-stats', key: () => 'all', ttl: 300 })
  async countsByCountry(): Promise<Record<string, number>> {
    const rows = await this.db.query<{ country: string; n: number }>(
      `SELECT country, count(*)::int AS n FROM ${this.db.table} GROUP BY country ORDER BY country`,
    );
    return Object.fromEntries(rows.map((r) => [r.country, r.n]));
  }

  @CacheEvict({ namespace: 'country-stats', allEntries: true })
  async countriesChanged(): Promise<void> {}
}
