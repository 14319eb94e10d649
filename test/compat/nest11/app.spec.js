// A NestJS 11 (CommonJS) app's Jest test using nestjs-memcached through `require`.
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { ConfigModule } = require('@nestjs/config');
const { Test } = require('@nestjs/testing');
const {
  Cacheable,
  CacheEvict,
  InjectMemcached,
  MemcachedCache,
  MemcachedClient,
  MemcachedModule,
} = require('nestjs-memcached');
const { memcachedConfig } = require('nestjs-memcached/config');

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

class PricesService {
  constructor() {
    this.loads = 0;
  }
  price(sku) {
    this.loads++;
    return Promise.resolve({ sku, cents: 1999 });
  }
  reprice() {
    return Promise.resolve();
  }
}
Injectable()(PricesService);
const method = (name) => Object.getOwnPropertyDescriptor(PricesService.prototype, name);
Object.defineProperty(
  PricesService.prototype,
  'price',
  Cacheable({ namespace: 'prices', key: (sku) => sku })(PricesService.prototype, 'price', method('price')),
);
Object.defineProperty(
  PricesService.prototype,
  'reprice',
  CacheEvict({ namespace: 'prices', allEntries: true })(PricesService.prototype, 'reprice', method('reprice')),
);

class UsersModule {}
Module({ providers: [UsersService, PricesService], exports: [UsersService, PricesService] })(UsersModule);

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
    await moduleRef.init();
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

  it('serves @Cacheable and @CacheEvict on a service, and evicts through MemcachedCache', async () => {
    const prices = moduleRef.get(PricesService);
    const cache = moduleRef.get(MemcachedCache);
    await cache.evictAll('prices');
    expect(await prices.price('a')).toEqual({ sku: 'a', cents: 1999 });
    await new Promise((r) => setTimeout(r, 20));
    expect(await prices.price('a')).toEqual({ sku: 'a', cents: 1999 });
    expect(prices.loads).toBe(1);
    await prices.reprice();
    await prices.price('a');
    expect(prices.loads).toBe(2);
    await new Promise((r) => setTimeout(r, 20));
    await cache.evict('prices', 'a');
    await prices.price('a');
    expect(prices.loads).toBe(3);
  });
});

describe('the Nest internals nestjs-memcached relies on, in NestJS 11', () => {
  it('are what its route-handler path reads (else it falls back to the interceptor chain)', () => {
    // not a public entry point: the contract is checked against this app's own @nestjs/common
    const internals = require(require.resolve('nestjs-memcached').replace(/index\.js$/, 'nest/nest-internals.js'));
    expect(internals.nestContract.check()).toBeUndefined();
  });
});
