import { Controller, type ExecutionContext, Get, Injectable, type INestApplication, Param } from '@nestjs/common';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Cacheable, CacheEvict, CachePut, MemcachedCache, MemcachedClient } from '../../lib/index.js';
import type { MemcachedDaemon } from '../support/memcached-daemon.js';
import { sleep } from '../support/memcached-daemon.js';
import { startMemcachedApp } from '../support/nest-app.js';

const settle = () => sleep(20); // fills are written behind the result

/** The "database": what each method read, counted. */
@Injectable()
class Db {
  calls: Record<string, number> = {};
  names: Record<string, string> = { '1': 'Ada', '2': 'Grace', '7': 'Linus' };
  teams: Record<string, string[]> = { a: ['1', '7'], b: ['2'] };
  read<T>(what: string, value: T): T {
    this.calls[what] = (this.calls[what] ?? 0) + 1;
    return value;
  }
}

@Injectable()
class UsersService {
  constructor(private readonly db: Db) {}

  @Cacheable({ namespace: 'users', tags: (id: string) => [`user:${id}`] })
  async find(id: string) {
    return this.db.read('user', { id, name: this.db.names[id] });
  }

  @Cacheable({ namespace: 'users', tags: () => ['x'.repeat(300)] })
  async broken() {
    return this.db.read('broken', 'answered');
  }

  @CacheEvict({ tags: (id: string) => [`user:${id}`] })
  async rename(id: string, name: string) {
    this.db.names[id] = name;
  }

  @CachePut({ namespace: 'cards', key: (id: string) => id, tags: (id: string) => [`user:${id}`] })
  async card(id: string) {
    return this.db.read('card', `card of ${this.db.names[id]}`);
  }
}

@Injectable()
class OrdersService {
  constructor(private readonly db: Db) {}

  /** Tags learned from the result: the users the list shows. */
  @Cacheable({
    namespace: 'orders',
    resultTags: (orders: Array<{ userId: string }>) => orders.map((order) => `user:${order.userId}`),
  })
  async recent() {
    return this.db.read('orders', [
      { id: 'o1', userId: '1', buyer: this.db.names['1'] },
      { id: 'o2', userId: '7', buyer: this.db.names['7'] },
    ]);
  }

  @Cacheable({ namespace: 'cards', key: (id: string) => id })
  async cardOf(id: string) {
    return this.db.read('cardOf', 'from the method');
  }
}

@Controller('teams')
class TeamsController {
  constructor(private readonly db: Db) {}

  @Get(':id')
  @Cacheable({
    namespace: 'teams',
    tags: (context: ExecutionContext) => [`team:${context.switchToHttp().getRequest().params.id}`],
    resultTags: (body: { members: Array<{ id: string }> }) => body.members.map((member) => `user:${member.id}`),
  })
  find(@Param('id') id: string) {
    const members = (this.db.teams[id] ?? []).map((user) => ({ id: user, name: this.db.names[user] }));
    return this.db.read(`team ${id}`, { id, members });
  }
}

describe('tags on decorators (services, an HTTP route) against real memcached', () => {
  let app: INestApplication;
  let daemon: MemcachedDaemon;
  let db: Db;
  let users: UsersService;
  let orders: OrdersService;

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp({
      controllers: [TeamsController],
      providers: [Db, UsersService, OrdersService],
    }));
    db = app.get(Db);
    users = app.get(UsersService);
    orders = app.get(OrdersService);
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });
  beforeEach(async () => {
    await app.get(MemcachedClient).flush();
    db.calls = {};
    db.names = { '1': 'Ada', '2': 'Grace', '7': 'Linus' };
  });

  const warm = async () => {
    for (let i = 0; i < 2; i++) {
      await users.find('7');
      await users.find('2');
      await orders.recent();
      await request(app.getHttpServer()).get('/teams/a').expect(200);
      await request(app.getHttpServer()).get('/teams/b').expect(200);
      await settle();
    }
    expect(db.calls).toEqual({ user: 2, orders: 1, 'team a': 1, 'team b': 1 });
  };

  it('@CacheEvict({ tags }) makes every entry showing the user miss: the user, a list, an HTTP route; the others keep hitting', async () => {
    await warm();
    await users.rename('7', 'Linus T.');
    expect(await users.find('7')).toEqual({ id: '7', name: 'Linus T.' });
    expect((await orders.recent())[1].buyer).toBe('Linus T.');
    const team = await request(app.getHttpServer()).get('/teams/a').expect(200);
    expect(team.body.members[1]).toEqual({ id: '7', name: 'Linus T.' });
    expect(team.headers['x-cache']).toBe('MISS');
    await users.find('2');
    await request(app.getHttpServer()).get('/teams/b').expect(200).expect('x-cache', 'HIT');
    expect(db.calls).toEqual({ user: 3, orders: 2, 'team a': 2, 'team b': 1 });
  });

  it('MemcachedCache.invalidateTags does the same, and is emitted', async () => {
    await warm();
    const cache = app.get(MemcachedCache);
    const heard: string[][] = [];
    const off = cache.events.on('tagsInvalidated', ({ tags }) => heard.push(tags));
    await cache.invalidateTags(['team:a']);
    off();
    expect(heard).toEqual([['team:a']]);
    await request(app.getHttpServer()).get('/teams/a').expect(200).expect('x-cache', 'MISS');
    await users.find('7');
    expect(db.calls['team a']).toBe(2);
    expect(db.calls.user).toBe(2);
  });

  it('@CachePut({ tags }) stores under the tags: an invalidation makes it miss for @Cacheable readers', async () => {
    await users.card('7');
    await settle();
    expect(await orders.cardOf('7')).toBe('card of Linus');
    await app.get(MemcachedCache).invalidateTags(['user:7']);
    expect(await orders.cardOf('7')).toBe('from the method');
  });

  it('a bad tag from a tag function is reported, and the method still answers (uncached)', async () => {
    const errors: string[] = [];
    const cache = app.get(MemcachedCache);
    const off = cache.events.on('error', ({ operation }) => errors.push(operation));
    expect(await users.broken()).toBe('answered');
    expect(await users.broken()).toBe('answered');
    await expect(cache.invalidateTags([''])).resolves.toBeUndefined();
    off();
    expect(db.calls.broken).toBe(2);
    expect(errors).toEqual(['tags', 'tags', 'invalidateTags']);
  });
});
