import { Controller, type ExecutionContext, Get, Injectable, Module, Param } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cacheable,
  CacheEvict,
  CacheInterceptor,
  MemcachedCache,
  MemcachedClient,
  MemcachedModule,
} from '../../lib/index.js';
import { startMemcachedApp } from '../support/nest-app.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

let loads = 0;

@Injectable()
class Users {
  @Cacheable({ namespace: 'users', key: (id: string) => id })
  async find(id: string): Promise<{ id: string; n: number }> {
    return { id, n: ++loads };
  }

  @CacheEvict({ namespace: 'users', allEntries: true })
  async importAll(): Promise<void> {}
}

@Module({ providers: [Users], exports: [Users] })
class UsersModule {}

describe('one meaning of namespace: the client, the decorators and the facade address the same entries', () => {
  let daemon: MemcachedDaemon;
  let moduleRef: TestingModule;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false }), UsersModule],
    }).compile();
    await moduleRef.init();
  });
  afterAll(async () => {
    await moduleRef?.close();
    await daemon?.kill();
  });

  it("a getOrSet entry is the decorator's entry, and @CacheEvict({ allEntries: true }) evicts it", async () => {
    const client = moduleRef.get(MemcachedClient);
    const users = moduleRef.get(Users);
    let fromClient = 0;
    await client.getOrSet('7', async () => ({ id: '7', n: (fromClient++, 100) }), { namespace: 'users' });
    await sleep(20);
    // the decorated method finds the entry getOrSet stored: same namespace, same key
    expect(await users.find('7')).toStrictEqual({ id: '7', n: 100 });
    expect(loads).toBe(0);
    await users.importAll();
    expect(await client.get('7', { namespace: 'users' })).toBeUndefined();
    expect(
      await client.getOrSet('7', async () => ({ id: '7', n: (fromClient++, 200) }), { namespace: 'users' }),
    ).toStrictEqual({ id: '7', n: 200 });
    expect(fromClient).toBe(2);
  });

  it("a decorator's entry is evicted by the facade's evict and by client.delete with the namespace", async () => {
    const client = moduleRef.get(MemcachedClient);
    const cache = moduleRef.get(MemcachedCache);
    const users = moduleRef.get(Users);
    const first = await users.find('8');
    await sleep(20);
    expect(await client.get('8', { namespace: 'users' })).toStrictEqual(first);
    await cache.evict('users', '8');
    const second = await users.find('8');
    expect(second.n).toBeGreaterThan(first.n);
    await sleep(20);
    expect(await client.delete('8', { namespace: 'users' })).toBe(true);
    expect((await users.find('8')).n).toBeGreaterThan(second.n);
  });
});

/** A subclass with its own rule: `?preview=1` requests are never answered from the cache. */
@Injectable()
class PreviewAwareInterceptor extends CacheInterceptor {
  static instances = 0;

  protected override isRequestCacheable(context: ExecutionContext): boolean {
    PreviewAwareInterceptor.instances++;
    const req = context.switchToHttp().getRequest<{ query?: Record<string, string> }>();
    return super.isRequestCacheable(context) && req.query?.preview !== '1';
  }
}

@Controller('docs')
class DocsController {
  calls = 0;

  @Get(':id')
  @Cacheable({ namespace: 'docs' })
  find(@Param('id') id: string) {
    return { id, call: ++this.calls };
  }
}

describe('the interceptor can be replaced', () => {
  let daemon: MemcachedDaemon;
  let app: Awaited<ReturnType<TestingModule['createNestApplication']>>;

  beforeAll(async () => {
    ({ app, daemon } = await startMemcachedApp(
      { controllers: [DocsController] },
      { interceptor: PreviewAwareInterceptor },
    ));
  });
  afterAll(async () => {
    await app?.close();
    await daemon?.kill();
  });

  it("the module's interceptor serves the decorators instead of CacheInterceptor, not beside it", async () => {
    const http = () => request(app.getHttpServer());
    expect((await http().get('/docs/1')).headers['x-cache']).toBe('MISS');
    await sleep(20);
    expect((await http().get('/docs/1')).headers['x-cache']).toBe('HIT');
    const preview = await http().get('/docs/1?preview=1');
    expect(preview.headers['x-cache']).toBe('BYPASS');
    expect(preview.body.call).toBe(2);
    expect(PreviewAwareInterceptor.instances).toBeGreaterThanOrEqual(3);
    // one interceptor ran per request: a second one would have cached (or counted) the call twice
    expect(app.get(DocsController).calls).toBe(2);
  });
});
