import { Injectable, Scope } from '@nestjs/common';
import { Observable, of } from 'rxjs';
import { Cacheable, CacheEvict, CachePut } from '../../../lib/index.js';

export interface User {
  id: string;
  name: string;
}

/** A fake database that counts its queries and can be paused, to test what reaches it. */
@Injectable()
export class UsersDb {
  readonly rows = new Map<string, User>([
    ['1', { id: '1', name: 'Ada' }],
    ['2', { id: '2', name: 'Grace' }],
  ]);
  calls: Record<string, number> = {};
  delayMs = 0;

  async query<T>(name: string, fn: () => T): Promise<T> {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    return fn();
  }

  count(name: string): number {
    return this.calls[name] ?? 0;
  }
}

@Injectable()
@Cacheable({ ttl: 120 })
export class UsersService {
  constructor(readonly db: UsersDb) {}

  @Cacheable({ namespace: 'users', key: (id: string) => id })
  findById(id: string): Promise<User | null> {
    return this.db.query('findById', () => this.db.rows.get(id) ?? null);
  }

  @Cacheable({ namespace: 'user-lists' })
  list(page: number, filter: { country?: string; active?: boolean }): Promise<User[]> {
    return this.db.query('list', () => [...this.db.rows.values()]);
  }

  @CacheEvict({ namespace: 'users', key: (id: string) => id })
  @CacheEvict({ namespace: 'user-lists', allEntries: true })
  async rename(id: string, name: string): Promise<User> {
    return this.db.query('rename', () => {
      const user = { id, name };
      this.db.rows.set(id, user);
      return user;
    });
  }

  @CacheEvict({ namespace: 'users', key: (id: string) => id })
  async failingUpdate(id: string): Promise<void> {
    await this.db.query('failingUpdate', () => undefined);
    throw new Error('constraint violated');
  }

  @CacheEvict({ namespace: 'users', key: (id: string) => id, beforeInvocation: true })
  async failingUpdateEvictFirst(id: string): Promise<void> {
    throw new Error('constraint violated');
  }

  @CacheEvict({ namespace: 'users', allEntries: true })
  async importAll(): Promise<void> {}

  @CachePut({ namespace: 'users', key: (user: User) => user.id })
  async save(user: User): Promise<User> {
    return this.db.query('save', () => {
      this.db.rows.set(user.id, user);
      return user;
    });
  }

  @Cacheable({ namespace: 'falsy', key: (kind: string) => kind })
  falsy(kind: 'null' | 'false' | 'zero' | 'empty' | 'undefined'): Promise<unknown> {
    const values = { null: null, false: false, zero: 0, empty: '', undefined: undefined };
    return this.db.query(`falsy:${kind}`, () => values[kind]);
  }

  @Cacheable({ namespace: 'cond', key: (id: string) => id, condition: (id: string) => !id.startsWith('nocache') })
  conditional(id: string): Promise<string> {
    return this.db.query('conditional', () => `v:${id}`);
  }

  @Cacheable({ namespace: 'unless', key: (id: string) => id, unless: (result: string | null) => result === null })
  unlessNull(id: string): Promise<string | null> {
    return this.db.query('unlessNull', () => (id === 'missing' ? null : `v:${id}`));
  }

  @Cacheable({ namespace: 'sync' })
  syncTotal(a: number, b: number): number {
    this.db.calls.syncTotal = (this.db.calls.syncTotal ?? 0) + 1;
    return a + b;
  }

  @Cacheable({ namespace: 'obs' })
  observe(id: string): Observable<string> {
    this.db.calls.observe = (this.db.calls.observe ?? 0) + 1;
    return of(`obs:${id}`);
  }

  @Cacheable()
  classDefaults(id: string): Promise<string> {
    return this.db.query('classDefaults', () => `d:${id}`);
  }

  @Cacheable({ namespace: 'errors', key: (id: string) => id })
  async throws(id: string): Promise<string> {
    await this.db.query('throws', () => undefined);
    throw new Error(`no ${id}`);
  }
}

@Injectable({ scope: Scope.REQUEST })
export class RequestScopedService {
  constructor(readonly db: UsersDb) {}

  @Cacheable({ namespace: 'scoped', key: (id: string) => id })
  find(id: string): Promise<string> {
    return this.db.query('scoped', () => `s:${id}`);
  }
}
