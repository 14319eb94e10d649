import { Module } from '@nestjs/common';
import { ContextIdFactory } from '@nestjs/core';
import { Test, type TestingModule } from '@nestjs/testing';
import { firstValueFrom, isObservable, type Observable } from 'rxjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemcachedCache, MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { rawEntry } from '../support/text-protocol.js';
import { RequestScopedService, UsersDb, UsersService } from './src/users.fixtures.js';

const silent = { log() {}, error() {}, warn() {}, debug() {} };
const settle = () => sleep(15); // fills are written behind the result

@Module({ providers: [UsersDb, UsersService, RequestScopedService], exports: [UsersService] })
class UsersModule {}

describe('@Cacheable / @CacheEvict / @CachePut on a service, against real memcached', () => {
  let daemon: MemcachedDaemon;
  let moduleRef: TestingModule;
  let users: UsersService;
  let db: UsersDb;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    moduleRef = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({
          isGlobal: true,
          servers: daemon.address,
          keyPrefix: 'svc:',
          timeout: 300,
          logger: silent,
        }),
        UsersModule,
      ],
    }).compile();
    await moduleRef.init();
    users = moduleRef.get(UsersService);
    db = moduleRef.get(UsersDb);
  });
  afterAll(async () => {
    await moduleRef?.close();
    await daemon?.kill();
  });
  beforeEach(async () => {
    await moduleRef.get(MemcachedClient).flush();
    db.calls = {};
    db.delayMs = 0;
  });

  it('calls the source once for repeated calls, and the key is on the server', async () => {
    expect(await users.findById('1')).toStrictEqual({ id: '1', name: 'Ada' });
    await settle();
    expect(await users.findById('1')).toStrictEqual({ id: '1', name: 'Ada' });
    expect(await users.findById('1')).toStrictEqual({ id: '1', name: 'Ada' });
    expect(db.count('findById')).toBe(1);
    const entry = await rawEntry(daemon.port, 'svc:', 'users', '1');
    expect(entry?.key).toMatch(/^svc:users#\d+:1$/);
    expect(JSON.parse(entry!.bytes.toString())).toStrictEqual({ id: '1', name: 'Ada' });
  });

  it('keeps the method name and its metadata on the decorated method', () => {
    expect(users.findById.name).toBe('findById');
    expect(UsersService.prototype.findById.length).toBe(1);
  });

  it('@CacheEvict then a read reaches the source again; other keys keep hitting', async () => {
    await users.findById('1');
    await users.findById('2');
    await settle();
    await users.rename('1', 'Ada L.');
    expect(await users.findById('1')).toStrictEqual({ id: '1', name: 'Ada L.' });
    expect(await users.findById('2')).toStrictEqual({ id: '2', name: 'Grace' });
    expect(db.count('findById')).toBe(3);
  });

  it('evicts nothing when the evicting method throws, unless beforeInvocation', async () => {
    await users.findById('1');
    await settle();
    await expect(users.failingUpdate('1')).rejects.toThrow('constraint violated');
    await users.findById('1');
    expect(db.count('findById')).toBe(1);
    await expect(users.failingUpdateEvictFirst('1')).rejects.toThrow('constraint violated');
    await users.findById('1');
    expect(db.count('findById')).toBe(2);
  });

  it('allEntries makes every key of the namespace miss while other namespaces still hit', async () => {
    await users.findById('1');
    await users.findById('2');
    await users.list(1, { country: 'FR' });
    await settle();
    await users.importAll();
    await users.findById('1');
    await users.findById('2');
    await users.list(1, { country: 'FR' });
    expect(db.count('findById')).toBe(4);
    expect(db.count('list')).toBe(1);
  });

  it('derives a stable default key from the arguments (object key order does not matter)', async () => {
    await users.list(1, { country: 'FR', active: true });
    await settle();
    await users.list(1, { active: true, country: 'FR' });
    expect(db.count('list')).toBe(1);
    await users.list(2, { active: true, country: 'FR' });
    expect(db.count('list')).toBe(2);
  });

  it('@CachePut always calls the method and writes its result', async () => {
    await users.findById('1');
    await users.save({ id: '1', name: 'Put' });
    await users.save({ id: '1', name: 'Put again' });
    expect(db.count('save')).toBe(2);
    expect(await users.findById('1')).toStrictEqual({ id: '1', name: 'Put again' });
    expect(db.count('findById')).toBe(1);
  });

  it.each([
    ['null', null],
    ['false', false],
    ['zero', 0],
    ['empty', ''],
  ] as const)('caches a %s result and returns it as such', async (kind, value) => {
    expect(await users.falsy(kind)).toBe(value);
    await settle();
    expect(await users.falsy(kind)).toBe(value);
    expect(db.count(`falsy:${kind}`)).toBe(1);
  });

  it('does not cache undefined', async () => {
    expect(await users.falsy('undefined')).toBeUndefined();
    await settle();
    expect(await users.falsy('undefined')).toBeUndefined();
    expect(db.count('falsy:undefined')).toBe(2);
  });

  it('honours condition (before the call) and unless (after the call)', async () => {
    await users.conditional('a');
    await users.conditional('nocache-a');
    await settle();
    await users.conditional('a');
    await users.conditional('nocache-a');
    expect(db.count('conditional')).toBe(3);
    await users.unlessNull('missing');
    await users.unlessNull('x');
    await settle();
    await users.unlessNull('missing');
    await users.unlessNull('x');
    expect(db.count('unlessNull')).toBe(3);
  });

  it('calls the source once for 200 concurrent calls on one cold key, and all get its value', async () => {
    db.delayMs = 100;
    const results = await Promise.all(Array.from({ length: 200 }, () => users.findById('2')));
    expect(db.count('findById')).toBe(1);
    expect(results.every((u) => u?.name === 'Grace')).toBe(true);
  });

  it('serves sync methods (as a Promise) and Observable methods (as an Observable)', async () => {
    expect(await users.syncTotal(2, 3)).toBe(5);
    await settle();
    expect(await users.syncTotal(2, 3)).toBe(5);
    expect(db.count('syncTotal')).toBe(1);
    const first = users.observe('x') as Observable<string>;
    expect(isObservable(first)).toBe(true);
    expect(await firstValueFrom(first)).toBe('obs:x');
    await settle();
    expect(await firstValueFrom(users.observe('x'))).toBe('obs:x');
    expect(db.count('observe')).toBe(1);
  });

  it('uses the class defaults: namespace = class name, TTL from the class decorator', async () => {
    await users.classDefaults('z');
    await settle();
    const entry = await rawEntry(daemon.port, 'svc:', 'UsersService', 'classDefaults:["z"]');
    expect(entry?.bytes.toString()).toBe('d:z');
    const stats = moduleRef.get(MemcachedCache).stats();
    expect(stats.UsersService.misses).toBeGreaterThanOrEqual(1);
  });

  it('emits events for hits, misses, fills and evictions, and counts them per namespace', async () => {
    const engine = moduleRef.get(MemcachedCache);
    const seen: string[] = [];
    const off = [
      engine.events.on('miss', (e) => seen.push(`miss ${e.namespace}:${e.key}`)),
      engine.events.on('hit', (e) => seen.push(`hit ${e.namespace}:${e.key}`)),
      engine.events.on('fill', (e) => seen.push(`fill ${e.namespace}:${e.key}`)),
      engine.events.on('evict', (e) => seen.push(`evict ${e.namespace}:${e.key ?? '*'}`)),
    ];
    const before = engine.stats().users ?? { hits: 0, misses: 0, evictions: 0 };
    await users.findById('1');
    await settle();
    await users.findById('1');
    await users.importAll();
    off.forEach((unsubscribe) => unsubscribe());
    await users.findById('1');
    expect(seen).toStrictEqual(['miss users:1', 'fill users:1', 'hit users:1', 'evict users:*']);
    const after = engine.stats().users;
    expect(after.hits - before.hits).toBe(1);
    expect(after.misses - before.misses).toBe(2);
    expect(after.evictions - before.evictions).toBe(1);
  });

  it("passes the method's own error through unchanged and caches nothing", async () => {
    await expect(users.throws('q')).rejects.toThrow('no q');
    await expect(users.throws('q')).rejects.toThrow('no q');
    expect(db.count('throws')).toBe(2);
  });

  it('serves request-scoped providers too', async () => {
    const contextId = ContextIdFactory.create();
    const a = await moduleRef.resolve(RequestScopedService, contextId);
    const b = await moduleRef.resolve(RequestScopedService, ContextIdFactory.create());
    expect(a).not.toBe(b);
    await a.find('1');
    await settle();
    await b.find('1');
    expect(db.count('scoped')).toBe(1);
  });

  it('runs the method uncached on an instance Nest does not manage (or before bootstrap)', async () => {
    const plain = new UsersService(db);
    await plain.findById('1');
    await plain.findById('1');
    expect(db.count('findById')).toBe(2);
  });
});
