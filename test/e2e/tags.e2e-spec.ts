import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedUsageError } from '../../lib/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { startNats, type TestServer } from '../support/servers.js';
import { rawGet, textCommand } from '../support/text-protocol.js';
import { startWorker } from '../support/workers.js';

const worker = new URL('./workers/tags-worker.ts', import.meta.url);

/** A gate a test opens by hand, to put an invalidation inside a load. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

let daemon: MemcachedDaemon;
const clients: MemcachedClient[] = [];
const client = (options: Partial<ConstructorParameters<typeof MemcachedClient>[0]> = {}) => {
  const made = new MemcachedClient({ servers: daemon.address, keyPrefix: 'svc-a:', logger: false, ...options });
  clients.push(made);
  return made;
};

beforeAll(async () => {
  daemon = await MemcachedDaemon.start();
});
afterAll(async () => {
  for (const made of clients) made.close();
  await daemon?.kill();
});

/** Reads `key` through getOrSet; says whether the loader ran, and what came back. */
async function read(
  on: MemcachedClient,
  key: string,
  tags: string[] | undefined,
  value: unknown = 'v',
  extra: { namespace?: string; lease?: boolean; resultTags?: (v: any) => string[] } = {},
) {
  let loaded = false;
  const got = await on.getOrSet(
    key,
    async () => {
      loaded = true;
      return value;
    },
    { namespace: 'namespace' in extra ? extra.namespace : 'orders', tags, ttl: 60, ...extra },
  );
  return { loaded, got };
}

describe('tags against real memcached', () => {
  it('an entry with three tags misses after any one of them is invalidated, and only then', async () => {
    const a = client();
    const id = randomUUID().slice(0, 8);
    const tags = [`user:${id}`, `team:${id}`, `org:${id}`];
    for (const tag of tags) {
      for (const namespace of ['orders', undefined]) {
        const key = `k-${tag}-${namespace ?? 'plain'}`;
        expect((await read(a, key, tags, 1, { namespace })).loaded).toBe(true);
        expect((await read(a, key, tags, 2, { namespace })).loaded).toBe(false);
        await a.invalidateTags([`unrelated:${id}`]);
        expect((await read(a, key, tags, 2, { namespace })).loaded).toBe(false);
        await a.invalidateTags([tag]);
        const after = await read(a, key, tags, 3, { namespace });
        expect(after).toEqual({ loaded: true, got: 3 });
        expect((await read(a, key, tags, 4, { namespace })).got).toBe(3);
      }
    }
    // one unrelated tag and one of the entry's, six times
    expect(a.stats()).toMatchObject({ tagInvalidations: 12 });
    expect(a.stats().tagMisses).toBeGreaterThanOrEqual(6);
    expect(a.stats().tagReads).toBeGreaterThan(0);
  });

  it('another service (another key prefix, another OS process) invalidating a tag makes this one miss, and back', async () => {
    const a = client();
    const tag = `user:${randomUUID()}`;
    expect((await read(a, 'orders-of-7', [tag], 'old')).loaded).toBe(true);
    const other = { servers: daemon.address, keyPrefix: 'svc-b:', tags: [tag] };
    const theirs = await startWorker(worker, { ...other, mode: 'read', key: 'profile-7' }).result;
    expect(theirs.loaded).toBe(true);
    expect((await startWorker(worker, { ...other, mode: 'read', key: 'profile-7' }).result).loaded).toBe(false);

    await startWorker(worker, { ...other, mode: 'invalidate' }).result;
    expect(await read(a, 'orders-of-7', [tag], 'new')).toEqual({ loaded: true, got: 'new' });

    await a.invalidateTags([tag]);
    expect((await startWorker(worker, { ...other, mode: 'read', key: 'profile-7' }).result).loaded).toBe(true);
  }, 30_000);

  it('a service with another tagPrefix does not share tags', async () => {
    const a = client();
    const tag = `user:${randomUUID()}`;
    await read(a, 'k', [tag]);
    await startWorker(worker, {
      servers: daemon.address,
      keyPrefix: 'svc-b:',
      tagPrefix: 'elsewhere:',
      tags: [tag],
      mode: 'invalidate',
    }).result;
    expect((await read(a, 'k', [tag])).loaded).toBe(false);
  }, 30_000);

  it('a tag version deleted from memcached never makes an invalidated entry valid again', async () => {
    const a = client();
    const tag = `user:${randomUUID()}`;
    const wire = `${tag}#tag`;
    await read(a, 'k', [tag], 'v1');
    // stamped under the version memcached lost: read as changed
    await textCommand(daemon.port, `delete ${wire}\r\n`);
    expect(await read(a, 'k', [tag], 'v2')).toEqual({ loaded: true, got: 'v2' });
    expect((await read(a, 'k', [tag], 'v3')).loaded).toBe(false);
    // two entries invalidated, then the version lost: the first read makes a new one, which the
    // other entry's stamp must not match
    await read(a, 'other', [tag], 'o1');
    await a.invalidateTags([tag]);
    await textCommand(daemon.port, `delete ${wire}\r\n`);
    expect(await read(a, 'k', [tag], 'v4')).toEqual({ loaded: true, got: 'v4' });
    expect(await rawGet(daemon.port, wire)).toBeDefined();
    expect(await read(a, 'other', [tag], 'o2')).toEqual({ loaded: true, got: 'o2' });
  });

  it('tag versions evicted under memory pressure never make invalidated entries valid again', async () => {
    const small = await MemcachedDaemon.start({ memoryMb: 2 });
    try {
      const a = new MemcachedClient({ servers: small.address, logger: false });
      clients.push(a);
      const tags = Array.from({ length: 20 }, (_, i) => `user:${i}`);
      // entries large enough for a slab class of their own: filling the small class evicts versions only
      const big = 'x'.repeat(20_000);
      const plain = { namespace: undefined };
      for (const tag of tags) {
        await read(a, `first-${tag}`, [tag], big, plain);
        await read(a, `second-${tag}`, [tag], big, plain);
      }
      await a.invalidateTags(tags);
      for (let i = 0; i < 60_000; i++) await a.set(`filler-${i}`, 'y'.repeat(20), { ttl: 0 });
      let exercised = 0;
      for (const tag of tags) {
        const versionLost = (await rawGet(small.port, `${tag}#tag`)) === undefined;
        const secondStored = (await rawGet(small.port, `second-${tag}`)) !== undefined;
        if (versionLost && secondStored) exercised++;
        // the first read makes a new version; the second entry, stamped before, must not match it
        expect((await read(a, `first-${tag}`, [tag], 'fresh', plain)).got).toBe('fresh');
        expect((await read(a, `second-${tag}`, [tag], 'fresh', plain)).got).toBe('fresh');
      }
      expect(exercised).toBeGreaterThan(0);
    } finally {
      await small.kill();
    }
  }, 60_000);

  describe.each([true, false])('an invalidation during a load, leases %s', (lease) => {
    it('leaves the fill stale: the next read loads again', async () => {
      const a = client();
      const tag = `user:${randomUUID()}`;
      const loading = gate();
      const started = gate();
      const first = a.getOrSet(
        'during',
        async () => {
          started.open();
          await loading.opened;
          return 'computed before the invalidation';
        },
        { namespace: 'orders', tags: [tag], lease },
      );
      await started.opened;
      await a.invalidateTags([tag]);
      loading.open();
      expect(await first).toBe('computed before the invalidation');
      await sleep(50);
      expect(await read(a, 'during', [tag], 'after', { lease })).toEqual({ loaded: true, got: 'after' });
    });

    it('a call that starts after the invalidation does not get the value loading before it', async () => {
      const a = client();
      const b = client();
      const tag = `user:${randomUUID()}`;
      for (const [reader, name] of [
        [a, 'same process'],
        [b, 'another client'],
      ] as const) {
        const key = `joined-${name}`;
        const loading = gate();
        const started = gate();
        const first = a.getOrSet(
          key,
          async () => {
            started.open();
            await loading.opened;
            return 'old';
          },
          { namespace: 'orders', tags: [tag], lease, ttl: 60 },
        );
        await started.opened;
        await a.invalidateTags([tag]);
        const second = read(reader, key, [tag], 'new', { lease });
        await sleep(30);
        loading.open();
        expect(await first).toBe('old');
        expect((await second).got).toBe('new');
      }
    });
  });

  it('tags learned from the value (resultTags) invalidate it, in a process that never read it before', async () => {
    const a = client();
    const id = randomUUID().slice(0, 8);
    const users = [`${id}-1`, `${id}-2`];
    const resultTags = (list: Array<{ user: string }>) => list.map((row) => `user:${row.user}`);
    const value = users.map((user) => ({ user }));
    expect((await read(a, 'recent', [], value, { resultTags })).loaded).toBe(true);
    const fresh = client();
    expect((await read(fresh, 'recent', [], value, { resultTags })).loaded).toBe(false);
    await a.invalidateTags([`user:${users[1]}`]);
    expect((await read(client(), 'recent', [], value, { resultTags })).loaded).toBe(true);
    await fresh.invalidateTags([`user:${users[0]}`]);
    expect((await read(a, 'recent', [], value, { resultTags })).loaded).toBe(true);
  });

  it('get and getMulti read an entry whose tag was invalidated as a miss', async () => {
    const a = client();
    const tag = `user:${randomUUID()}`;
    for (const namespace of ['orders', undefined]) {
      await read(a, 'g1', [tag], 'one', { namespace });
      await read(a, 'g2', [], 'two', { namespace });
      expect(await a.get('g1', { namespace })).toBe('one');
      await a.invalidateTags([tag]);
      expect(await a.get('g1', { namespace })).toBeUndefined();
      expect([...(await a.getMulti(['g1', 'g2'], { namespace }))]).toEqual([['g2', 'two']]);
    }
  });

  it('an entry stored without tags is not served to a reader that names tags', async () => {
    const a = client();
    await a.set('untagged', 'old', { namespace: 'orders' });
    expect(await read(a, 'untagged', ['user:1'], 'tagged')).toEqual({ loaded: true, got: 'tagged' });
    expect((await read(a, 'untagged', ['user:1'], 'again')).loaded).toBe(false);
  });

  it('an invalidation memcached did not take is owed: its entries are not read from memcached until it is paid', async () => {
    const proxy = await new FaultProxy(daemon.port).start();
    try {
      const a = client({ servers: proxy.address, timeout: 150, breakerCooldown: 100 });
      const tag = `user:${randomUUID()}`;
      expect((await read(a, 'owed', [tag], 'old')).loaded).toBe(true);
      expect((await read(a, 'owed', [tag], 'old')).loaded).toBe(false);
      proxy.silent = true;
      await expect(a.invalidateTags([tag])).rejects.toThrow();
      expect(a.stats().owed.tags).toBe(1);
      proxy.silent = false;
      // owed: not read from memcached, nothing stored under it
      expect(await read(a, 'owed', [tag], 'during')).toEqual({ loaded: true, got: 'during' });
      expect(await a.get('owed', { namespace: 'orders' })).toBeUndefined();
      for (let i = 0; i < 100 && a.stats().owed.tags > 0; i++) await sleep(20);
      expect(a.stats().owed.tags).toBe(0);
      expect(a.stats()).toMatchObject({ invalidationsOwed: 1, invalidationsRepaid: 1 });
      // paid: the old entry is stale for every reader, in any process
      expect(await read(client(), 'owed', [tag], 'new')).toEqual({ loaded: true, got: 'new' });
      expect((await read(a, 'owed', [tag], 'newer')).got).toBe('new');
    } finally {
      await proxy.stop();
    }
  });

  it('bad tags are refused before anything is sent, naming the value', async () => {
    const a = client();
    const calls = [
      () => a.invalidateTags('user:1' as never),
      () => a.invalidateTags(['']),
      () => a.invalidateTags(['x'.repeat(201)]),
      () => a.invalidateTags(Array.from({ length: 33 }, (_, i) => `t${i}`)),
      () => a.getOrSet('k', () => 1, { tags: [7 as never] }),
    ];
    for (const call of calls) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MemcachedUsageError);
      expect((error as MemcachedUsageError).code).toBe('TAGS');
    }
    expect(() => client({ tagPrefix: 'has space' })).toThrow(/tagPrefix.*has space/);
  });
});

describe('tags and the near cache (NATS bus)', () => {
  let nats: TestServer;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    // the bus clients close before their broker goes, as an app shuts down (the NATS client can
    // throw "write after end" from a socket whose server has gone while it closes)
    for (const made of clients.splice(0)) made.close();
    await nats?.stop();
  });

  it('an invalidation in one service drops the tagged near entries of another, on the bus', async () => {
    const channel = `nmc-tags-${randomUUID()}`;
    const service = (keyPrefix: string) =>
      client({
        keyPrefix,
        nearCache: { ttl: 60 },
        bus: { transport: 'nats', url: nats.url, channel, heartbeat: 200 },
      });
    const a = service('svc-a:');
    const b = service('svc-b:');
    for (let i = 0; i < 100 && !(a.stats().bus?.healthy && b.stats().bus?.healthy); i++) await sleep(50);
    const tag = `user:${randomUUID()}`;
    // a miss fills memcached, a memcached hit fills the near cache, the third read is a near hit
    for (let i = 0; i < 3; i++) await read(b, 'profile', [tag], 'old');
    expect(b.stats().nearCache).toMatchObject({ hits: 1 });
    await a.invalidateTags([tag]);
    let served: { loaded: boolean; got: unknown } | undefined;
    for (let i = 0; i < 40; i++) {
      served = await read(b, 'profile', [tag], 'new');
      if (served.loaded) break;
      await sleep(25);
    }
    expect(served).toEqual({ loaded: true, got: 'new' });
    expect(b.stats().nearCache!.invalidations).toBeGreaterThanOrEqual(1);
  }, 30_000);
});
