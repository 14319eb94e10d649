import { describe, expect, it } from 'vitest';
import type { BusTransport } from '../../lib/interfaces/bus-transport.interface.js';
import { InMemoryClientCore } from '../../lib/testing/in-memory-memcached.client.js';

const INCREMENT = 0x05;

describe('ClientCore.write (a @CachePut)', () => {
  it("tells other processes only once the key's variants were bumped too, not as soon as the value landed", async () => {
    const told: Array<string | undefined> = [];
    const group = () => core.namespaces.keyspace.group('users', '/users/7');
    /** The variant counter as memcached holds it now (read synchronously, at the moment of the publish). */
    const counterNow = () =>
      (core.memoryNodes[0] as unknown as { items: Map<string, { value: Buffer }> }).items
        .get(group())
        ?.value.toString();
    const transport: BusTransport = {
      start: async (_deliver, state) => state(true),
      publish: async (data) => {
        if (data.includes('"t":"k"')) told.push(counterNow());
      },
      close: async () => undefined,
    };
    // the transport's closures read `core` only once it exists (the first publish)
    const core = new InMemoryClientCore({ logger: false, keyPrefix: 'p:', bus: { transport } });
    await core.ready;
    // a variant was read before: its group counter exists
    await core.namespaces.currentWire({ namespace: 'users', key: '/users/7', variant: 'lang=fr' });
    const before = counterNow();
    // memcached answers the increment later than the set (another node, a slower path)
    const node = core.memoryNodes[0];
    const request = node.request.bind(node);
    node.request = ((...args: Parameters<typeof request>) =>
      args[2][1] === INCREMENT
        ? new Promise((resolve) => setTimeout(resolve, 20)).then(() => request(...args))
        : request(...args)) as typeof node.request;
    expect(before).toMatch(/^\d+$/);
    const report = await core.write({ namespace: 'users', key: '/users/7' }, { id: 7 }, { ttl: 60 }, 'users');
    expect(report.outcome).toBe('stored');
    expect(told).toHaveLength(1);
    expect(BigInt(told[0]!)).toBe(BigInt(before!) + 1n);
    core.close();
  });
});
