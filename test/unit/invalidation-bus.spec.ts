import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBusMessage, encodeBusMessage } from '../../lib/bus/bus-message.js';
import { type BusListener, type BusTransport, InvalidationBus } from '../../lib/bus/invalidation-bus.js';

/** An in-memory fan-out channel: every subscriber gets every message; `drop` loses the next ones. */
class Channel {
  readonly subscribers: Array<{ deliver: (data: string) => void; state: (up: boolean) => void }> = [];
  drop = 0;
  /** While true, messages wait (in order) until `release()`: a link that delivers late. */
  hold = false;
  private held: string[] = [];
  send(data: string) {
    if (this.drop > 0) return void this.drop--;
    if (this.hold) return void this.held.push(data);
    for (const s of this.subscribers) s.deliver(data);
  }
  release() {
    this.hold = false;
    for (const data of this.held.splice(0)) this.send(data);
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
  const seen = {
    keys: [] as string[],
    namespaces: [] as string[],
    flushes: [] as string[],
    healthy: [] as boolean[],
    derived: [] as boolean[],
  };
  const listener: BusListener = {
    keys: (f, d) => (seen.keys.push(...f), seen.derived.push(d)),
    namespaces: (n, d) => (seen.namespaces.push(...n), seen.derived.push(d)),
    flush: (reason) => seen.flushes.push(reason),
    healthy: (h) => seen.healthy.push(h),
  };
  return { seen, listener };
}

/** A bus on the channel; while `link.silent`, what it publishes is lost (it still receives). */
function node(channel: Channel, clock: { now: number }, heartbeat = 1000) {
  const { seen, listener } = recorder();
  const link = { silent: false };
  const inner = channel.transport();
  const transport: BusTransport = {
    ...inner,
    publish: async (data) => (link.silent ? undefined : inner.publish(data)),
  };
  const bus = new InvalidationBus(transport, listener, heartbeat, () => clock.now);
  return { bus, seen, link };
}

/** One started bus (heartbeat 1000 ms) on its own channel and clock. */
async function oneNode() {
  const channel = new Channel();
  const clock = { now: 0 };
  const a = node(channel, clock);
  await a.bus.start();
  return { channel, clock, a };
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
    for (const bad of [
      '',
      'null',
      '[]',
      '{"v":2,"s":"a","q":1,"t":"k","x":["a"]}',
      '{"v":1,"s":"a","q":0,"t":"k","x":["a"]}',
      '{"v":1,"s":"a","q":1,"t":"z","x":["a"]}',
      '{"v":1,"s":"a","q":1,"t":"k","x":[1]}',
      '{"v":1,"s":"a","q":1,"t":"k","x":[]}',
      '{"v":1,"s":"a","q":1.5,"t":"h","x":[]}',
      '{"v":1,"s":"a","q":1,"t":"b","x":["a"]}',
      '{"v":1,"s":"","q":1,"t":"h","x":[]}',
    ]) {
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
  it("becomes healthy when its own heartbeat comes back, and hands on the others' invalidations only", async () => {
    const { a, b } = await twoNodes();
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

  it("flushes on a gap in a source's sequence (a lost message)", async () => {
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
    const { channel, clock, a } = await oneNode();
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

  it('a read notices an overdue heartbeat before the timer does (a late timer does not stretch the bound)', async () => {
    const { channel, clock, a } = await oneNode();
    channel.drop = Number.POSITIVE_INFINITY;
    clock.now = 1000;
    expect(a.bus.vouches()).toBe(true);
    // no tick ran since start: the timer is late
    clock.now = 1001;
    expect(a.bus.vouches()).toBe(false);
    expect(a.seen.flushes).toStrictEqual(['silent']);
    expect(a.seen.healthy).toStrictEqual([true, false]);
    // noticed once: the timer, when it runs, flushes nothing more
    a.bus.tick();
    expect(a.seen.flushes).toStrictEqual(['silent']);
    await a.bus.close();
  });

  it('an echo vouches from when its heartbeat left, not from when it arrived', async () => {
    const { channel, clock, a } = await oneNode();
    channel.hold = true;
    clock.now = 250;
    a.bus.tick();
    // the heartbeat sent at 250 comes back at 1200 (it sat in a socket): it vouches until 1250 only
    clock.now = 1200;
    channel.release();
    expect(a.bus.stats().lagMs).toBe(950);
    expect(a.bus.vouches()).toBe(true);
    clock.now = 1251;
    expect(a.bus.vouches()).toBe(false);
    expect(a.seen.flushes).toStrictEqual(['silent']);
    // once silent, an echo older than the heartbeat does not bring the near cache back
    channel.hold = true;
    a.bus.tick();
    clock.now = 2300;
    channel.release();
    expect(a.bus.healthy).toBe(false);
    // a prompt one does
    a.bus.tick();
    expect(a.seen.healthy).toStrictEqual([true, false, true]);
    await a.bus.close();
  });

  it('stops vouching when another source goes quiet (its evictions may be lost), and resumes when it is heard again', async () => {
    const { clock, a, b } = await twoNodes();
    clock.now = 250;
    a.bus.tick();
    b.bus.tick();
    a.link.silent = true;
    a.bus.publishKeys(['lost']);
    for (let t = 500; t <= 1250; t += 250) {
      clock.now = t;
      b.bus.tick();
    }
    // b's own heartbeats come back, but a was last heard at 250
    expect(b.bus.vouches()).toBe(true);
    clock.now = 1251;
    expect(b.bus.vouches()).toBe(false);
    expect(b.seen.flushes).toStrictEqual(['silent']);
    expect(b.bus.stats()).toMatchObject({ sources: 1, quietSources: 1 });
    a.link.silent = false;
    clock.now = 1500;
    a.bus.tick();
    expect(b.seen.flushes).toStrictEqual(['silent', 'gap']);
    expect(b.seen.healthy).toStrictEqual([true, false, true]);
    await Promise.all([a.bus.close(), b.bus.close()]);
  });

  it('after a reconnect, still waits for the sources it knew, and takes their sequences afresh', async () => {
    const channel = new Channel();
    const clock = { now: 0 };
    const [a, b, c] = [node(channel, clock), node(channel, clock), node(channel, clock)];
    for (const n of [a, b, c]) await n.bus.start();
    for (const n of [a, b, c]) n.bus.tick();
    // c loses its connection; meanwhile a goes quiet and b publishes (c misses it)
    const cState = channel.subscribers[2].state;
    cState(false);
    a.link.silent = true;
    b.bus.publishKeys(['missed']);
    clock.now = 500;
    cState(true);
    b.bus.tick();
    expect(c.seen.flushes).toStrictEqual(['down']);
    expect(c.bus.vouches()).toBe(true);
    // a was last heard at 0: c does not vouch past 1000, though its own heartbeats come back
    clock.now = 1001;
    c.bus.tick();
    b.bus.tick();
    expect(c.bus.vouches()).toBe(false);
    expect(c.seen.flushes).toStrictEqual(['down', 'silent']);
    await Promise.all([a.bus.close(), b.bus.close(), c.bus.close()]);
  });

  it('does not wait for a source that said goodbye; presumes one unheard for ten heartbeats gone', async () => {
    const { clock, a, b } = await twoNodes();
    await a.bus.close();
    clock.now = 5000;
    b.bus.tick();
    expect(b.bus.vouches()).toBe(true);
    expect(b.seen.flushes).toStrictEqual([]);

    const channel = new Channel();
    const c = node(channel, clock);
    const d = node(channel, clock);
    await c.bus.start();
    await d.bus.start();
    c.bus.tick();
    c.link.silent = true;
    for (let t = 5250; t <= 15000; t += 250) {
      clock.now = t;
      d.bus.tick();
      if (t === 6000) expect(d.bus.vouches()).toBe(true);
      if (t === 6250 || t === 15000) expect(d.bus.vouches()).toBe(false);
    }
    clock.now = 15001;
    d.bus.tick();
    expect(d.bus.vouches()).toBe(true);
    expect(d.seen.healthy).toStrictEqual([true, false, true]);
    await Promise.all([b.bus.close(), c.bus.close(), d.bus.close()]);
  });

  it('a closing bus is never vouched for again, whatever still arrives', async () => {
    const { channel, a } = await oneNode();
    channel.hold = true;
    a.bus.tick();
    const closing = a.bus.close();
    channel.release();
    expect(a.bus.vouches()).toBe(false);
    await closing;
    expect(a.seen.healthy).toStrictEqual([true, false]);
  });

  it('flushes on a malformed message and on a lost connection', async () => {
    const { channel, a } = await oneNode();
    channel.send('{"v":1,"garbage"');
    expect(a.seen.flushes).toStrictEqual(['malformed']);
    channel.subscribers[0].state(false);
    expect(a.seen.flushes).toStrictEqual(['malformed', 'down']);
    expect(a.bus.healthy).toBe(false);
    await a.bus.close();
  });
});
