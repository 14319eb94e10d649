import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cacheable, CacheEvict, MemcachedClient, MemcachedModule } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

/** A gate a test opens by hand, to interleave a reader and a writer deterministically. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** The database of these tests: one row whose reads can be paused between reading and returning. */
class Db {
  value = 'v1';
  reads = 0;
  pause?: { reached: ReturnType<typeof gate>; release: ReturnType<typeof gate> };

  async read(): Promise<string> {
    this.reads++;
    const seen = this.value;
    const pause = this.pause;
    if (pause) {
      this.pause = undefined;
      pause.reached.open();
      await pause.release.opened;
    }
    return seen;
  }

  /** The next read pauses after reading; returns its gates. */
  pauseNextRead() {
    const pause = { reached: gate(), release: gate() };
    this.pause = pause;
    return pause;
  }
}

const db = new Db();

@Injectable()
class Profiles {
  @Cacheable({ namespace: 'profiles', key: (id: string) => id })
  find(_id: string): Promise<string> {
    return db.read();
  }

  @CacheEvict({ namespace: 'profiles', key: (id: string) => id })
  async update(_id: string, value: string): Promise<void> {
    db.value = value;
  }
}

@Module({ providers: [Profiles] })
class ProfilesModule {}

describe('no read that starts after an eviction returns gets the old value', () => {
  let daemon: MemcachedDaemon;
  const apps: TestingModule[] = [];
  const app = async (leases = true) => {
    const m = await Test.createTestingModule({
      imports: [
        MemcachedModule.forRoot({ isGlobal: true, servers: daemon.address, leases, logger: false }),
        ProfilesModule,
      ],
    }).compile();
    await m.init();
    apps.push(m);
    return m;
  };

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
  });
  afterAll(async () => {
    for (const m of apps) await m.close();
    await daemon?.kill();
  });

  describe.each([
    ['leases on, eviction in the same process', true, false],
    ['leases on, eviction in another process', true, true],
    ['leases off, eviction in the same process', false, false],
  ])('%s', (_, leases, otherWriter) => {
    it('a read after the eviction does not join the load that started before it, and that load is not stored', async () => {
      const reader = await app(leases);
      const writer = otherWriter ? await app(leases) : reader;
      const id = `p-${leases}-${otherWriter}`;
      db.value = 'v1';
      const pause = db.pauseNextRead();
      const before = reader.get(Profiles).find(id); // loads v1, then waits
      await pause.reached.opened;
      await writer.get(Profiles).update(id, 'v2'); // commit, then evict: returned
      const after = await reader.get(Profiles).find(id); // starts after the eviction returned
      expect(after).toBe('v2');
      pause.release.open();
      expect(await before).toBe('v1');
      await sleep(30);
      expect(await reader.get(Profiles).find(id)).toBe('v2');
      expect(await writer.get(Profiles).find(id)).toBe('v2');
      const stats = reader.get(MemcachedClient).stats();
      expect(stats.rejectedFills + stats.splitFlights).toBeGreaterThanOrEqual(1);
    });
  });

  it('getOrSet: the same, through client.delete', async () => {
    const client = new MemcachedClient({ servers: daemon.address, logger: false });
    try {
      let value = 'v1';
      const reached = gate();
      const release = gate();
      const before = client.getOrSet(
        'row',
        async () => {
          const seen = value;
          reached.open();
          await release.opened;
          return seen;
        },
        { namespace: 'rows' },
      );
      await reached.opened;
      value = 'v2';
      await client.delete('row', { namespace: 'rows' });
      expect(await client.getOrSet('row', async () => value, { namespace: 'rows' })).toBe('v2');
      release.open();
      expect(await before).toBe('v1');
      await sleep(30);
      expect(await client.get('row', { namespace: 'rows' })).toBe('v2');
    } finally {
      client.close();
    }
  });

  it('concurrent misses that start together still share one load (the split does not cost the herd)', async () => {
    const m = await app();
    const reads = db.reads;
    db.value = 'shared';
    const results = await Promise.all(Array.from({ length: 30 }, () => m.get(Profiles).find('herd')));
    expect(new Set(results)).toStrictEqual(new Set(['shared']));
    expect(db.reads - reads).toBe(1);
  });
});
