import { Injectable } from '@nestjs/common';

export interface User {
  id: number;
  name: string;
  country: string;
}

/** Stand-in for a database: an in-process table with a realistic 5 ms query latency. */
@Injectable()
export class UsersRepository {
  private readonly rows = new Map<number, User>(
    Array.from({ length: 1000 }, (_, i) => [i + 1, { id: i + 1, name: `User ${i + 1}`, country: ['FR', 'DE', 'US'][i % 3] }]),
  );
  queries = 0;

  async findOne(id: number): Promise<User | null> {
    await this.latency();
    return this.rows.get(id) ?? null;
  }

  async update(id: number, patch: Partial<Omit<User, 'id'>>): Promise<User | null> {
    await this.latency();
    const row = this.rows.get(id);
    if (!row) return null;
    const updated = { ...row, ...patch, id };
    this.rows.set(id, updated);
    return updated;
  }

  private latency(): Promise<void> {
    this.queries++;
    return new Promise((resolve) => setTimeout(resolve, 5));
  }
}
