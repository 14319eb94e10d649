// A NestJS 11 (CommonJS) app's Jest test using nestjs-memcached through `require`.
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { ConfigModule } = require('@nestjs/config');
const { Test } = require('@nestjs/testing');
const { InjectMemcached, MemcachedClient, MemcachedModule, memcachedConfig } = require('nestjs-memcached');

class UsersService {
  constructor(cache) {
    this.cache = cache;
    this.loads = 0;
  }
  find(id) {
    return this.cache.getOrSet(`user:${id}`, async () => {
      this.loads++;
      return { id, name: `user ${id}` };
    });
  }
}
Injectable()(UsersService);
InjectMemcached()(UsersService, undefined, 0);

class UsersModule {}
Module({ providers: [UsersService], exports: [UsersService] })(UsersModule);

describe('nestjs-memcached in a NestJS 11 CommonJS app', () => {
  let moduleRef;

  beforeAll(async () => {
    moduleRef = await Test.createTestingModule({
      imports: [
        ConfigModule.forRoot({ ignoreEnvFile: true }),
        MemcachedModule.forRootAsync({ isGlobal: true, ...memcachedConfig.asProvider() }),
        UsersModule,
      ],
    }).compile();
  });
  afterAll(() => moduleRef && moduleRef.close());

  it('injects the client and caches through it', async () => {
    const users = moduleRef.get(UsersService);
    expect(users.cache).toBeInstanceOf(MemcachedClient);
    await users.cache.delete('user:1');
    expect(await users.find(1)).toEqual({ id: 1, name: 'user 1' });
    await new Promise((r) => setTimeout(r, 20));
    expect(await users.find(1)).toEqual({ id: 1, name: 'user 1' });
    expect(users.loads).toBe(1);
    expect(await users.cache.get('user:1')).toEqual({ id: 1, name: 'user 1' });
  });
});
