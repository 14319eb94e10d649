import { describe, expect, it } from 'vitest';
import { ClientCore } from '../../lib/client/client-core.js';
import { MemcachedClient } from '../../lib/client/memcached.client.js';
import { InMemoryNode } from '../../lib/testing/in-memory-node.js';

/** Two "processes": two clients over one in-memory node, each with its own flights and leases. */
function twoProcesses(options: object = {}) {
  const node = new InMemoryNode('memory:11211', 1024 * 1024);
  const make = () => new MemcachedClient(new ClientCore({ logger: false, leaseWait: 300, ...options }, () => node));
  return [make(), make()] as const;
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

const settle = () => new Promise((r) => setTimeout(r, 5));

describe('the lease protocol, over the in-memory node', () => {
  it('one load across processes: the holder fills, the other waits for the fill (a HIT)', async () => {
    const [a, b] = twoProcesses();
    let loads = 0;
    const release = gate();
    const slow = async () => {
      loads++;
      await release.opened;
      return 'value';
    };
    const first = a.getOrSet('k', slow);
    await settle();
    const second = b.getOrSet('k', slow);
    await settle();
    release.open();
    expect(await Promise.all([first, second])).toStrictEqual(['value', 'value']);
    expect(loads).toBe(1);
    expect(a.stats().leaseGrants).toBe(1);
    expect(b.stats().leaseWaits).toBe(1);
  });

  it('an eviction between the load and the fill voids the fill (no stale set)', async () => {
    const [reader, writer] = twoProcesses();
    const loaded = gate();
    const release = gate();
    let db = 'v1';
    const read = reader.getOrSet('row', async () => {
      const seen = db;
      loaded.open();
      await release.opened;
      return seen;
    });
    await loaded.opened;
    db = 'v2';
    await writer.delete('row');
    release.open();
    expect(await read).toBe('v1');
    await settle();
    expect(await writer.get('row')).toBeUndefined();
    expect(reader.stats().rejectedFills).toBe(1);
  });

  it('every path that does not fill releases the lease: a failed load, a refused value, a throwing ttl', async () => {
    class Money {
      constructor(readonly cents: number) {}
    }
    const cases: Array<[string, () => Promise<unknown>, object?]> = [
      ['a failed load', async () => Promise.reject(new Error('db down'))],
      ['a refused value', async () => new Money(1)],
      [
        'a throwing ttl',
        async () => 'x',
        {
          ttl: () => {
            throw new Error('no ttl');
          },
        },
      ],
    ];
    for (const [name, load, options] of cases) {
      const [a, b] = twoProcesses();
      await a.getOrSet(`k-${name}`, load, options as never).catch(() => undefined);
      const started = performance.now();
      await b.getOrSet(`k-${name}`, async () => 'fresh');
      // b took the lease itself: it did not wait leaseWait (300 ms) for a fill that never comes
      expect(performance.now() - started, name).toBeLessThan(100);
      expect(b.stats().leaseWaits, name).toBe(0);
    }
  });

  it('a holder that never fills: the waiter gives up after leaseWait and loads without filling', async () => {
    const [a, b] = twoProcesses({ leaseWait: 50 });
    void a.getOrSet('stuck', () => new Promise(() => undefined));
    await settle();
    const started = performance.now();
    expect(await b.getOrSet('stuck', async () => 'fallback')).toBe('fallback');
    expect(performance.now() - started).toBeLessThan(150);
    expect(b.stats().leaseWaitTimeouts).toBe(1);
  });
});

describe('flights, over the in-memory node', () => {
  it('concurrent misses share one load; a call that starts after an eviction never joins an older load', async () => {
    const [client] = twoProcesses();
    let loads = 0;
    const release = gate();
    const load = async () => {
      loads++;
      await release.opened;
      return loads;
    };
    const early = Array.from({ length: 5 }, () => client.getOrSet('f', load));
    await settle();
    await client.delete('f');
    const late = client.getOrSet('f', async () => 'after the eviction');
    expect(await late).toBe('after the eviction');
    release.open();
    expect(new Set(await Promise.all(early))).toStrictEqual(new Set([1]));
    expect(loads).toBe(1);
    expect(client.stats().splitFlights + client.stats().rejectedFills).toBeGreaterThanOrEqual(1);
  });
});
