import { ClientCore } from '../../lib/client/client-core.js';
import { InMemoryClientCore } from '../../lib/testing/in-memory-memcached.client.js';
import { Opcode } from '../../lib/transport/protocol.js';
import { Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryMemcachedClient, MemcachedClient, MemcachedModule, MemcachedTestingModule } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { UsersDb, UsersService } from './src/users.fixtures.js';

@Module({ providers: [UsersDb, UsersService] })
class UsersModule {}

/** A scripted session of decorated calls; the trace records results and source calls. */
async function scenario(moduleRef: TestingModule): Promise<unknown[]> {
  const users = moduleRef.get(UsersService);
  const db = moduleRef.get(UsersDb);
  const trace: unknown[] = [];
  const step = async (label: string, call: () => Promise<unknown>) => {
    let result: unknown;
    try {
      result = await call();
    } catch (e) {
      result = `threw ${(e as Error).message}`;
    }
    await sleep(10);
    trace.push([label, result, { ...db.calls }]);
  };
  await step('findById 1', () => users.findById('1'));
  await step('findById 1 again', () => users.findById('1'));
  await step('falsy zero', () => users.falsy('zero'));
  await step('falsy zero again', () => users.falsy('zero'));
  await step('falsy null twice', async () => [await users.falsy('null'), await users.falsy('null')]);
  await step('list', () => users.list(1, { a: 1 } as never));
  await step('rename 1', () => users.rename('1', 'Renamed'));
  await step('findById 1 after evict', () => users.findById('1'));
  await step('list after allEntries', () => users.list(1, { a: 1 } as never));
  await step('failing evict', () => users.failingUpdate('1'));
  await step('findById 1 still cached', () => users.findById('1'));
  await step('importAll', () => users.importAll());
  await step('findById 1 after namespace eviction', () => users.findById('1'));
  await step('save (put)', () => users.save({ id: '2', name: 'Put' }));
  await step('findById 2 served by put', () => users.findById('2'));
  await step('conditional', async () => [
    await users.conditional('a'),
    await users.conditional('a'),
    await users.conditional('nocache'),
  ]);
  await step('unless', async () => [await users.unlessNull('missing'), await users.unlessNull('missing')]);
  await step('sync', async () => [await users.syncTotal(1, 1), await users.syncTotal(1, 1)]);
  return trace;
}

async function clientScenario(core: ClientCore): Promise<unknown[]> {
  const client = new MemcachedClient(core);
  const trace: unknown[] = [];
  await client.flush();
  trace.push(await client.set('k', { a: 1 }, { ttl: 1 }), await client.get('k'));
  trace.push(await client.add('k', 2), await client.replace('nope', 1), await client.delete('nope'));
  trace.push(
    await client.increment('c', 5, { initial: 2n ** 40n }),
    await client.increment('c', 1),
    await client.get('c'),
  );
  trace.push(await client.decrement('c', 2n ** 41n), await client.increment('missing'));
  trace.push(await client.set('big', 'x'.repeat(3000)), await client.get('big'));
  trace.push(Object.fromEntries(await client.getMulti(['k', 'c', 'zzz'])));
  trace.push(
    await client.set('t', 'v', { ttl: 31 * 24 * 3600 }),
    await client.touch('t', 1),
    await client.touch('zzz', 1),
  );
  // the lease protocol's primitives: a marker, a conditional fill, a conditional release
  const { ops, readThrough } = core;
  const leases = readThrough.leases;
  const fill = async (key: string, value: string, cas: Buffer) =>
    ops.store(Opcode.Set, 'fill', client.keyFor(key), ops.encode(value), 60, 'test', cas);
  const lease = await leases.acquire(client.keyFor('L'));
  trace.push(lease !== null, await leases.acquire(client.keyFor('L')), await client.get('L'));
  await client.delete('L');
  trace.push(await fill('L', 'stale', lease!));
  const second = await leases.acquire(client.keyFor('L'));
  trace.push(await fill('L', 'fresh', second!), await client.get('L'));
  const marker = await leases.acquire(client.keyFor('M'));
  trace.push(
    await ops.delete(client.keyFor('M'), 'release', Buffer.alloc(8, 7)),
    await ops.delete(client.keyFor('M'), 'release', marker!),
  );
  // namespaced keys: generations, the same on both
  trace.push(await client.set('n', 1, { namespace: 'ns' }), await client.get('n', { namespace: 'ns' }));
  await client.deleteNamespace('ns');
  trace.push(await client.get('n', { namespace: 'ns' }));
  await sleep(2100);
  trace.push(await client.get('k'), await client.get('t'), client.keyFor('a b'));
  return trace;
}

describe('MemcachedTestingModule matches real memcached', () => {
  let daemon: MemcachedDaemon;
  beforeAll(async () => {
    daemon = await MemcachedDaemon.start({ itemSize: '2k' });
  });
  afterAll(async () => {
    await daemon?.kill();
  });

  it('gives the same hit / miss / evict results for decorated methods', async () => {
    const real = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, logger: false }), UsersModule],
    }).compile();
    await real.init();
    const memory = await Test.createTestingModule({
      imports: [MemcachedTestingModule.forRoot(), UsersModule],
    }).compile();
    await memory.init();
    try {
      const [a, b] = [await scenario(real), await scenario(memory)];
      expect(b).toStrictEqual(a);
      expect(memory.get(MemcachedClient)).toBeInstanceOf(InMemoryMemcachedClient);
      const counts = (a.at(-1) as [string, unknown, Record<string, number>])[2];
      expect(counts.findById).toBe(3);
    } finally {
      await real.close();
      await memory.close();
    }
  });

  it('gives the same client results (types, add/replace, counters, item size, TTL)', async () => {
    const real = new ClientCore({
      servers: daemon.address,
      maxItemSize: 2048,
      compressionThreshold: false,
      logger: false,
    });
    const memory = new InMemoryClientCore({ maxItemSize: 2048, compressionThreshold: false });
    try {
      const [a, b] = await Promise.all([clientScenario(real), clientScenario(memory)]);
      expect(b).toStrictEqual(a);
      expect(a[1]).toStrictEqual({ a: 1 });
    } finally {
      real.close();
      memory.close();
    }
  });
});

describe('MemcachedTestingModule in the tests users write', () => {
  it('serves cached methods in a test that stops at compile() and get() (no init())', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedTestingModule.forRoot(), UsersModule],
    }).compile();
    try {
      const users = moduleRef.get(UsersService);
      const db = moduleRef.get(UsersDb);
      await users.findById('1');
      await sleep(10);
      await users.findById('1');
      expect(db.calls.findById).toBe(1);
      // an instance Nest does not manage still runs uncached
      const unmanaged = new UsersService(db);
      await unmanaged.findById('1');
      expect(db.calls.findById).toBe(2);
    } finally {
      await moduleRef.close();
    }
  });

  it('InMemoryMemcachedClient can be injected by its own class, beside MemcachedClient', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedTestingModule.forRoot({ keyPrefix: 't:' }), UsersModule],
    }).compile();
    await moduleRef.init();
    try {
      const memory = moduleRef.get(InMemoryMemcachedClient);
      expect(memory).toBe(moduleRef.get(MemcachedClient));
      await moduleRef.get(UsersService).findById('1');
      await sleep(10);
      expect(memory.storedKeys().some((key) => key.startsWith('t:users#'))).toBe(true);
    } finally {
      await moduleRef.close();
    }
  });
});
