import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBusMessage, encodeBusMessage } from '../../lib/bus/bus-message.js';
import { type BusListener, type BusTransport, InvalidationBus } from '../../lib/bus/invalidation-bus.js';

/** An in-memory fan-out channel: every subscriber gets every message; `drop` loses the next ones. */
class Channel {
  readonly subscribers: Array<{ deliver: (data: string) => void; state: (up: boolean) => void }> = [];
  drop = 0;
  send(data: string) {
    if (this.drop > 0) return void this.drop--;
    for (const s of this.subscribers) s.deliver(data);
  }
  transport(): BusTransport {
    return {
      start: async (deliver, state) => {
        this.subscribers.push({ deliver: (d) => deliver(d), state });
        state(true);
      },
      publish: async (data) => this.send(data),
      close: async () => undefined,
    };
  }
}

function recorder() {
  const seen = { keys: [] as string[], namespaces: [] as string[], flushes: [] as string[], healthy: [] as boolean[], derived: [] as boolean[] };
  const listener: BusListener = {
    keys: (f, d) => (seen.keys.push(...f), seen.derived.push(d)),
    namespaces: (n, d) => (seen.namespaces.push(...n), seen.derived.push(d)),
    flush: (reason) => seen.flushes.push(reason),
    healthy: (h) => seen.healthy.push(h),
  };
  return { seen, listener };
}

function node(channel: Channel, clock: { now: number }, heartbeat = 1000) {
  const { seen, listener } = recorder();
  const bus = new InvalidationBus(channel.transport(), listener, heartbeat, () => clock.now);
  return { bus, seen };
}

/** Two started buses on one channel, on one clock. */
async function twoNodes() {
  const channel = new Channel();
  const clock = { now: 0 };
  const a = node(channel, clock);
  const b = node(channel, clock);
  await a.bus.start();
  await b.bus.start();
  return { channel, clock, a, b };
}

describe('bus messages', () => {
  it('round-trip, and anything else read from the bus is refused', () => {
    const message = { source: 'abc', seq: 3, type: 'k' as const, names: ['p\u0000users\u00007'] };
    expect(decodeBusMessage(encodeBusMessage(message))).toStrictEqual(message);
    expect(decodeBusMessage(Buffer.from(encodeBusMessage(message)))).toStrictEqual(message);
    const derived = { ...message, derived: true };
    expect(decodeBusMessage(encodeBusMessage(derived))).toStrictEqual(derived);
    expect(decodeBusMessage('{"v":1,"s":"a","q":1,"t":"k","x":["a"],"d":2}')).toBeUndefined();
    for (const bad of ['', 'null', '[]', '{"v":2,"s":"a","q":1,"t":"k","x":["a"]}', '{"v":1,"s":"a","q":0,"t":"k","x":["a"]}',
      '{"v":1,"s":"a","q":1,"t":"z","x":["a"]}', '{"v":1,"s":"a","q":1,"t":"k","x":[1]}', '{"v":1,"s":"a","q":1,"t":"k","x":[]}',
      '{"v":1,"s":"a","q":1.5,"t":"h","x":[]}', '{"v":1,"s":"","q":1,"t":"h","x":[]}']) {
      expect(decodeBusMessage(bad)).toBeUndefined();
    }
  });

  it('property: random bytes never throw, and decode only to well-formed messages', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string(), fc.json()), (data) => {
        const message = decodeBusMessage(data);
        if (message !== undefined) expect(decodeBusMessage(encodeBusMessage(message))).toStrictEqual(message);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('InvalidationBus', () => {
  it('becomes healthy when its own heartbeat comes back, and hands on the others\' invalidations only', async () => {
    const { channel, a, b } = await twoNodes();
    expect(a.bus.healthy && b.bus.healthy).toBe(true);
    a.bus.publishKeys(['k1']);
    a.bus.publishNamespaces(['n1']);
    await Promise.resolve();
    expect(b.seen.keys).toStrictEqual(['k1']);
    expect(b.seen.derived).toStrictEqual([false, false]);
    expect(b.seen.namespaces).toStrictEqual(['n1']);
    expect(a.seen.keys).toStrictEqual([]);
    expect(b.seen.flushes).toStrictEqual([]);
    await Promise.all([a.bus.close(), b.bus.close()]);
  });

  it('flushes on a gap in a source\'s sequence (a lost message)', async () => {
    const { channel, a, b } = await twoNodes();
    a.bus.publishKeys(['k1']);
    channel.drop = 1;
    a.bus.publishKeys(['k2']);
    a.bus.publishKeys(['k3']);
    await Promise.resolve();
    expect(b.seen.keys).toStrictEqual(['k1', 'k3']);
    expect(b.seen.flushes).toStrictEqual(['gap']);
    expect(b.bus.stats().gaps).toBe(1);
    await Promise.all([a.bus.close(), b.bus.close()]);
  });

  it('a message published while disconnected still takes a number, so receivers see the gap', async () => {
    const { channel, a, b } = await twoNodes();
    a.bus.publishKeys(['k0']);
    const aState = channel.subscribers[0].state;
    aState(false);
    a.bus.publishKeys(['lost']);
    expect(a.bus.stats().publishFailures).toBe(1);
    aState(true);
    await Promise.resolve();
    expect(b.seen.flushes).toContain('gap');
    await Promise.all([a.bus.close(), b.bus.close()]);
  });

  it('flushes when a source is first heard long after start-up (a restart, or one we lost)', async () => {
    const channel = new Channel();
    const clock = { now: 0 };
    const b = node(channel, clock);
    await b.bus.start();
    clock.now = 5000;
    const late = node(channel, clock);
    await late.bus.start();
    expect(b.seen.flushes).toStrictEqual(['source']);
    await Promise.all([late.bus.close(), b.bus.close()]);
  });

  it('notices a silent channel within the heartbeat, flushes, and recovers when heartbeats return', async () => {
    const channel = new Channel();
    const clock = { now: 0 };
    const a = node(channel, clock, 1000);
    await a.bus.start();
    expect(a.seen.healthy).toStrictEqual([true]);
    channel.drop = Number.POSITIVE_INFINITY;
    for (let t = 250; t <= 1250; t += 250) {
      clock.now = t;
      a.bus.tick();
    }
    expect(a.seen.healthy).toStrictEqual([true, false]);
    expect(a.seen.flushes).toStrictEqual(['silent']);
    channel.drop = 0;
    clock.now = 1500;
    a.bus.tick();
    expect(a.seen.healthy).toStrictEqual([true, false, true]);
    await a.bus.close();
  });

  it('flushes on a malformed message and on a lost connection', async () => {
    const channel = new Channel();
    const clock = { now: 0 };
    const a = node(channel, clock);
    await a.bus.start();
    channel.send('{"v":1,"garbage"');
    expect(a.seen.flushes).toStrictEqual(['malformed']);
    channel.subscribers[0].state(false);
    expect(a.seen.flushes).toStrictEqual(['malformed', 'down']);
    expect(a.bus.healthy).toBe(false);
    await a.bus.close();
  });
});
