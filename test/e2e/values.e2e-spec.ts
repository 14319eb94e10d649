import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemcachedCache, Cacheable, MemcachedClient, MemcachedModule, UnsupportedValueError } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

class Money {
  constructor(readonly cents: number) {}
}

const LOAD_MS = 40;
let calls: Record<string, number> = {};
const call = async <T>(name: string, value: T): Promise<T> => {
  calls[name] = (calls[name] ?? 0) + 1;
  await sleep(LOAD_MS);
  return value;
};

@Injectable()
class Catalog {
  @Cacheable({ namespace: 'catalog', key: () => 'roles' })
  roles(): Promise<Map<string, Set<string>>> {
    return call('roles', new Map([['admin', new Set(['read', 'write'])]]));
  }

  @Cacheable({ namespace: 'catalog', key: () => 'row' })
  row(): Promise<{ id: number; createdAt: Date; big: bigint }> {
    return call('row', { id: 1, createdAt: new Date(1_700_000_000_000), big: 2n ** 64n });
  }

  @Cacheable({ namespace: 'catalog', key: () => 'price' })
  price(): Promise<Money> {
    return call('price', new Money(1999));
  }

  @Cacheable({ namespace: 'catalog', key: () => 'with-function' })
  withFunction(): Promise<{ total: number; format(): string }> {
    return call('with-function', { total: 1, format: () => '1' });
  }

  @Cacheable({ namespace: 'catalog', key: () => 'bad-ttl', ttl: () => -1 })
  badTtl(): Promise<string> {
    return call('bad-ttl', 'x');
  }

  @Cacheable({
    namespace: 'catalog',
    key: () => 'throwing-ttl',
    ttl: () => {
      throw new Error('no ttl today');
    },
  })
  throwingTtl(): Promise<string> {
    return call('throwing-ttl', 'x');
  }
}

@Module({ providers: [Catalog] })
class CatalogModule {}

describe('values keep their type through the cache, or are not cached; a failed fill never stalls its key', () => {
  let daemon: MemcachedDaemon;
  let moduleRef: TestingModule;
  let catalog: Catalog;
  const warnings: string[] = [];

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          isGlobal: true,
          servers: daemon.address,
          logger: { log() {}, error() {}, warn: (m: string) => warnings.push(m) },
        }),
        CatalogModule,
      ],
    }).compile();
    await moduleRef.init();
    catalog = moduleRef.get(Catalog);
  });
  afterAll(async () => {
    await moduleRef?.close();
    await daemon?.kill();
  });
  beforeEach(async () => {
    await moduleRef.get(MemcachedClient).flush();
    calls = {};
  });

  it('a Map of Sets comes back as a Map of Sets on a hit', async () => {
    const miss = await catalog.roles();
    await sleep(20);
    const hit = await catalog.roles();
    expect(calls.roles).toBe(1);
    expect(hit).toBeInstanceOf(Map);
    expect(hit.get('admin')).toBeInstanceOf(Set);
    expect(isDeepStrictEqual(hit, miss)).toBe(true);
  });

  it('a row with a Date and a BigInt comes back with a Date and a BigInt', async () => {
    const miss = await catalog.row();
    await sleep(20);
    const hit = await catalog.row();
    expect(calls.row).toBe(1);
    expect(hit.createdAt).toBeInstanceOf(Date);
    expect(typeof hit.big).toBe('bigint');
    expect(isDeepStrictEqual(hit, miss)).toBe(true);
  });

  it.each([
    ['a class instance', 'price', () => catalog.price(), /namespace "catalog".*an instance of Money/],
    [
      'an object holding a function',
      'with-function',
      () => catalog.withFunction(),
      /namespace "catalog".*a function at \.format/,
    ],
  ])(
    '%s is returned, not cached, counted, warned once naming the namespace and the type',
    async (_, name, run, message) => {
      const client = moduleRef.get(MemcachedClient);
      const before = client.stats().unsupportedValues;
      const first = await run();
      const started = performance.now();
      const second = await run();
      // no lease was left behind: the second call waits for nobody
      expect(performance.now() - started).toBeLessThan(LOAD_MS + 300);
      expect(calls[name]).toBe(2);
      expect(Object.keys(second as object)).toStrictEqual(Object.keys(first as object));
      expect(client.stats().unsupportedValues - before).toBe(2);
      expect(warnings.filter((w) => message.test(w))).toHaveLength(1);
    },
  );

  it.each([
    ['returns -1', 'bad-ttl', () => catalog.badTtl()],
    ['throws', 'throwing-ttl', () => catalog.throwingTtl()],
  ])(
    'a ttl function that %s: the value is returned, not cached, and the next call does not wait for a lease',
    async (_, name, run) => {
      expect(await run()).toBe('x');
      const started = performance.now();
      expect(await run()).toBe('x');
      expect(performance.now() - started).toBeLessThan(LOAD_MS + 300);
      expect(calls[name]).toBe(2);
    },
  );

  it('getOrSet and set: a Date comes back as a Date; a class instance is refused by set, not cached by getOrSet', async () => {
    const client = moduleRef.get(MemcachedClient);
    const at = new Date(42);
    expect(await client.getOrSet('when', async () => at, { namespace: 'values' })).toBe(at);
    await sleep(20);
    const hit = await client.getOrSet('when', async () => new Date(0), { namespace: 'values' });
    expect(hit).toBeInstanceOf(Date);
    expect(hit.getTime()).toBe(42);
    await expect(client.set('money', new Money(1))).rejects.toThrow(UnsupportedValueError);
    let loads = 0;
    await client.getOrSet('money', async () => (loads++, new Money(1)));
    const started = performance.now();
    await client.getOrSet('money', async () => (loads++, new Money(1)));
    expect(performance.now() - started).toBeLessThan(300);
    expect(loads).toBe(2);
    expect(moduleRef.get(MemcachedCache)).toBeDefined();
  });
});
