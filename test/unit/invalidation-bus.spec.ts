import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { inspect } from 'node:util';
import {
  BusCodec,
  type BusMessage,
  MAX_BUS_MESSAGE,
  MAX_BUS_NAME,
  MAX_BUS_NAMES,
  REPLAY_WINDOW_MS,
} from '../../lib/bus/bus-message.js';
import type { KeyChange, NamespaceChange } from '../../lib/codec/keyspace.js';
import { type BusListener, type BusTransport, InvalidationBus, MAX_SOURCES } from '../../lib/bus/invalidation-bus.js';

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

/** A key of namespace `users` changed, and a namespace changed. */
const k = (key: string): KeyChange => ({ prefix: 'p', namespace: 'users', key });
const n = (namespace: string): NamespaceChange => ({ prefix: 'p', namespace });

function recorder() {
  const seen = {
    keys: [] as string[],
    namespaces: [] as string[],
    flushes: [] as string[],
    healthy: [] as boolean[],
    derived: [] as boolean[],
    rejected: [] as string[],
    tags: [] as string[],
  };
  const listener: BusListener = {
    keys: (f, d) => (seen.keys.push(...f.map((change) => change.key)), seen.derived.push(d)),
    tags: (t) => seen.tags.push(...t.map((change) => change.tag)),
    namespaces: (n, d) => (seen.namespaces.push(...n.map((change) => change.namespace)), seen.derived.push(d)),
    flush: (reason) => seen.flushes.push(reason),
    healthy: (h) => seen.healthy.push(h),
    rejected: (reason) => seen.rejected.push(reason),
  };
  return { seen, listener };
}

/** A bus on the channel; while `link.silent`, what it publishes is lost (it still receives). */
function node(channel: Channel, clock: { now: number }, heartbeat = 1000, codec = new BusCodec()) {
  const { seen, listener } = recorder();
  const link = { silent: false };
  const inner = channel.transport();
  const transport: BusTransport = {
    ...inner,
    publish: async (data) => (link.silent ? undefined : inner.publish(data)),
  };
  // handled as delivered, however long a test takes (the slices are tested on their own)
  const bus = new InvalidationBus(
    transport,
    listener,
    heartbeat,
    () => clock.now,
    codec,
    () => NOW + clock.now,
    Infinity,
  );
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
async function twoNodes(keys?: Array<{ id: number; key: Buffer }>) {
  const channel = new Channel();
  const clock = { now: 0 };
  const a = node(channel, clock, 1000, new BusCodec(keys));
  const b = node(channel, clock, 1000, new BusCodec(keys));
  await a.bus.start();
  await b.bus.start();
  return { channel, clock, a, b };
}

const KEY1 = { id: 1, key: Buffer.alloc(32, 1) };
const KEY2 = { id: 2, key: Buffer.alloc(32, 2) };
const NOW = 1_800_000_000_000;

describe('bus messages', () => {
  const plain = new BusCodec();
  const message = { source: 'abc', seq: 3, type: 'k' as const, changes: [k('7')], at: NOW };

  it('round-trip, and anything else read from the bus is refused, unread', () => {
    expect(plain.decode(plain.encode(message), NOW)).toStrictEqual({ message });
    expect(plain.decode(Buffer.from(plain.encode(message)), NOW)).toStrictEqual({ message });
    const derived = { ...message, derived: true };
    expect(plain.decode(plain.encode(derived), NOW)).toStrictEqual({ message: derived });
    const payload = (body: object) => `2..${JSON.stringify(body)}`;
    for (const bad of [
      '',
      'null',
      '[]',
      '2.',
      '2..',
      '3..{}',
      payload({ s: 'a', q: 0, t: 'k', x: ['a'], a: NOW }),
      payload({ s: 'a', q: 1, t: 'z', x: ['a'], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [1], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [], a: NOW }),
      payload({ s: 'a', q: 1.5, t: 'h', x: [], a: NOW }),
      payload({ s: 'a', q: 1, t: 'b', x: ['a'], a: NOW }),
      payload({ s: '', q: 1, t: 'h', x: [], a: NOW }),
      payload({ s: 'a b', q: 1, t: 'h', x: [], a: NOW }),
      payload({ s: 'a', q: 1, t: 'h', x: [], a: 'now' }),
      payload({ s: 'a', q: 1, t: 'k', x: ['a'], a: NOW, d: 2 }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users', 'k']], a: NOW, o: 3 }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users', 'k']], a: NOW, o: true }),
      payload({ s: 'a', q: 1, t: 'h', x: [], a: NOW, o: 1 }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users', 'x'.repeat(MAX_BUS_NAME)]], a: NOW }),
      payload({ s: 'a', q: 1, t: 'n', x: Array.from({ length: MAX_BUS_NAMES + 1 }, () => ['p', 'n']), a: NOW }),
      // a change that is not what a sender writes: wrong kind, separators, a bad hash
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users']], a: NOW }),
      payload({ s: 'a', q: 1, t: 'n', x: [['p', 'users', 'k']], a: NOW }),
      payload({ s: 'a', q: 1, t: 'n', x: [['p', '']], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'a b', 'k']], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p\u0000users', 'x', 'k']], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p#', 'users', 'k']], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users', 'k', 2]], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users', 'not-a-hash', 1]], a: NOW }),
      payload({ s: 'a', q: 1, t: 'k', x: [['p', 'users', 7]], a: NOW }),
      `2..${'['.repeat(MAX_BUS_MESSAGE / 2 - 4)}`,
      `2..${' '.repeat(MAX_BUS_MESSAGE)}`,
      '{"v":1,"s":"a","q":1,"t":"k","x":["a"],"d":2}',
    ]) {
      expect(plain.decode(bad, NOW)).toStrictEqual({ rejected: 'malformed' });
    }
  });

  it("without keys, reads the previous release's messages (a rolling upgrade)", () => {
    const v1 = '{"v":1,"s":"old","q":4,"t":"k","x":["p\\u0000users\\u00007"],"d":1}';
    expect(plain.decode(v1, NOW)).toStrictEqual({
      message: { source: 'old', seq: 4, type: 'k', changes: [k('7')], at: 0, derived: true },
    });
  });

  it('with keys: a message authenticates under any key the receiver holds, and nothing else does', () => {
    const signer = new BusCodec([KEY2, KEY1]);
    const onlyOld = new BusCodec([KEY1]);
    const onlyNew = new BusCodec([KEY2]);
    const other = new BusCodec([{ id: 1, key: Buffer.alloc(32, 9) }]);
    const sent = signer.encode(message);
    // a rollout: [2, 1] and [1] read each other, and so do [2, 1] and [2]
    expect(onlyOld.decode(sent, NOW)).toStrictEqual({ message });
    expect(onlyNew.decode(sent, NOW)).toStrictEqual({ message });
    expect(signer.decode(onlyOld.encode(message), NOW)).toStrictEqual({ message });
    expect(onlyNew.decode(onlyOld.encode(message), NOW)).toStrictEqual({ rejected: 'forged' });
    expect(other.decode(sent, NOW)).toStrictEqual({ rejected: 'forged' });
    // unsigned, version 1, changed payload, changed MAC, garbage
    expect(onlyOld.decode(plain.encode(message), NOW)).toStrictEqual({ rejected: 'forged' });
    expect(onlyOld.decode('{"v":1,"s":"a","q":1,"t":"h","x":[]}', NOW)).toStrictEqual({ rejected: 'forged' });
    expect(onlyOld.decode(sent.replace('"q":3', '"q":4'), NOW)).toStrictEqual({ rejected: 'forged' });
    const [head, macs, ...rest] = sent.split('.');
    const flipped = macs.replace(/1:(.)/, (_, c: string) => `1:${c === 'A' ? 'B' : 'A'}`);
    expect(onlyOld.decode([head, flipped, ...rest].join('.'), NOW)).toStrictEqual({ rejected: 'forged' });
    expect(onlyOld.decode('random bytes', NOW)).toStrictEqual({ rejected: 'forged' });
  });

  it('with keys: a message sent outside the replay window is refused', () => {
    const codec = new BusCodec([KEY1]);
    const sent = codec.encode(message);
    expect(codec.decode(sent, NOW + REPLAY_WINDOW_MS)).toStrictEqual({ message });
    expect(codec.decode(sent, NOW + REPLAY_WINDOW_MS + 1)).toStrictEqual({ rejected: 'stale' });
    expect(codec.decode(sent, NOW - REPLAY_WINDOW_MS - 1)).toStrictEqual({ rejected: 'stale' });
  });

  it('with keys: a message is accepted under any key both sides hold the same, whichever comes first', () => {
    const a = new BusCodec([{ id: 2, key: Buffer.alloc(32, 0x0a) }, KEY1]);
    const b = new BusCodec([{ id: 2, key: Buffer.alloc(32, 0x0b) }, KEY1]);
    expect(b.decode(a.encode(message), NOW)).toStrictEqual({ message });
  });

  it('the keys are not shown by inspecting the codec', () => {
    const codec = new BusCodec([{ id: 1, key: Buffer.from('s'.repeat(32)) }]);
    const shown = inspect(codec, { depth: 10, showHidden: true });
    expect(shown).not.toContain('sssss');
    expect(shown).not.toContain(Buffer.from('s'.repeat(32)).toString('hex').slice(0, 16));
    expect(JSON.stringify(codec)).not.toContain('sss');
  });

  it('property: random bytes never throw, and decode only to well-formed messages, with or without keys', () => {
    const signed = new BusCodec([KEY1]);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string(), fc.json()), (data) => {
        const decoded = plain.decode(data, NOW);
        if ('message' in decoded) expect(plain.decode(plain.encode(decoded.message), NOW)).toStrictEqual(decoded);
        expect(signed.decode(data, NOW)).toStrictEqual({ rejected: 'forged' });
      }),
      { numRuns: 2000 },
    );
  });

  it('property: any well-formed message round-trips through a signing codec', () => {
    const signed = new BusCodec([KEY2, KEY1]);
    const prefix = fc.stringMatching(/^[!-"$-~]{0,8}$/);
    const namespace = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/);
    const keyChange = fc.oneof(
      fc.record({
        prefix,
        namespace: fc.oneof(fc.constant(''), namespace),
        key: fc.string({ maxLength: 40, unit: 'binary' }),
      }),
      fc.record({ prefix, namespace, key: fc.stringMatching(/^[A-Za-z0-9_-]{43}$/), hashed: fc.constant(true) }),
    );
    const header = {
      source: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      at: fc.constant(NOW),
    };
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({
            ...header,
            type: fc.constant('k' as const),
            changes: fc.array(keyChange, { minLength: 1, maxLength: 5 }),
          }),
          fc.record({
            ...header,
            type: fc.constant('n' as const),
            changes: fc.array(fc.record({ prefix, namespace }), { minLength: 1, maxLength: 5 }),
          }),
        ),
        (sent) => {
          expect(signed.decode(signed.encode(sent), NOW)).toStrictEqual({ message: JSON.parse(JSON.stringify(sent)) });
          // an invalidation memcached did not confirm travels as the same change, marked owed
          for (const kind of [1, 2] as const) {
            const owed = { ...sent, owed: kind };
            expect(signed.decode(signed.encode(owed), NOW)).toStrictEqual({
              message: JSON.parse(JSON.stringify(owed)),
            });
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("property: a change carries its writer's traceparent; one that is not a traceparent is left out, the change kept", () => {
    const signed = new BusCodec([KEY1]);
    const hex = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`));
    const traceparent = fc
      .tuple(hex(32), hex(16), hex(2))
      .filter(([trace, span]) => !/^0+$/.test(trace) && !/^0+$/.test(span))
      .map(([trace, span, flags]) => `00-${trace}-${span}-${flags}`);
    const sent: BusMessage = {
      source: 'writer',
      seq: 1,
      at: NOW,
      type: 'k',
      changes: [{ prefix: 'svc:', namespace: 'users', key: '7' }],
    };
    fc.assert(
      fc.property(traceparent, (p) => {
        expect(signed.decode(signed.encode({ ...sent, traceparent: p }), NOW)).toStrictEqual({
          message: { ...sent, traceparent: p },
        });
      }),
    );
    // anything else in `p` (a forger's, or a future version's) costs the change nothing
    const notTraceparent = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.constant(`00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`),
      fc.constant(`01-${'a'.repeat(32)}-${'b'.repeat(16)}-01`),
      fc.constant(`00-${'A'.repeat(32)}-${'b'.repeat(16)}-01`),
      fc.integer(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(notTraceparent, (p) => {
        const data = signed.encode({ ...sent, traceparent: p as string });
        expect(signed.decode(data, NOW)).toStrictEqual({ message: sent });
      }),
    );
  });
});

describe('InvalidationBus', () => {
  it("becomes healthy when its own heartbeat comes back, and hands on the others' invalidations only", async () => {
    const { a, b } = await twoNodes();
    expect(a.bus.healthy && b.bus.healthy).toBe(true);
    a.bus.publishKeys([k('k1')]);
    a.bus.publishNamespaces([n('n1')]);
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
    a.bus.publishKeys([k('k1')]);
    channel.drop = 1;
    a.bus.publishKeys([k('k2')]);
    a.bus.publishKeys([k('k3')]);
    await Promise.resolve();
    expect(b.seen.keys).toStrictEqual(['k1', 'k3']);
    expect(b.seen.flushes).toStrictEqual(['gap']);
    expect(b.bus.stats().gaps).toBe(1);
    await Promise.all([a.bus.close(), b.bus.close()]);
  });

  it('a message published while disconnected still takes a number, so receivers see the gap', async () => {
    const { channel, a, b } = await twoNodes();
    a.bus.publishKeys([k('k0')]);
    const aState = channel.subscribers[0].state;
    aState(false);
    a.bus.publishKeys([k('lost')]);
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
    a.bus.publishKeys([k('lost')]);
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
    b.bus.publishKeys([k('missed')]);
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

  it('counts a malformed message without flushing (it cannot be a lost eviction), and flushes on a lost connection', async () => {
    const { channel, a } = await oneNode();
    channel.send('{"v":1,"garbage"');
    expect(a.seen.flushes).toStrictEqual([]);
    expect(a.bus.stats().malformed).toBe(1);
    expect(a.bus.healthy).toBe(true);
    channel.subscribers[0].state(false);
    expect(a.seen.flushes).toStrictEqual(['down']);
    expect(a.bus.healthy).toBe(false);
    await a.bus.close();
  });
});

/** What a hostile publisher on the channel sends: its own bytes, outside any bus. */
function sendAs(channel: Channel, codec: BusCodec, message: Partial<BusMessage> & Record<string, unknown>) {
  channel.send(codec.encode({ source: 'mallory', seq: 1, type: 'h', changes: [], at: NOW, ...message } as BusMessage));
}

describe('InvalidationBus against a hostile publisher', () => {
  it('with keys: nothing forged or replayed changes any state, it is only counted', async () => {
    const { channel, a, b } = await twoNodes([KEY1]);
    const forger = new BusCodec([{ id: 1, key: Buffer.alloc(32, 7) }]);
    const state = () => ({ flushes: [...a.seen.flushes], keys: [...a.seen.keys], sources: a.bus.stats().sources });
    const before = state();
    sendAs(channel, forger, { type: 'k', changes: [k('victim')] });
    sendAs(channel, forger, { source: b.bus.source, seq: 1e9, type: 'n', changes: [n('ns')] });
    sendAs(channel, new BusCodec(), { type: 'k', changes: [k('unsigned')] });
    for (let i = 0; i < 1000; i++) sendAs(channel, forger, { source: `s${i}` });
    // past a slice of handling, the rest waits for the next turns of the event loop
    await a.bus.whenIdle();
    expect(state()).toStrictEqual(before);
    expect(a.bus.stats().forged).toBe(1003);
    expect(a.seen.rejected).toHaveLength(1003);
    // a replay of b's authentic message is refused too
    const recorded: string[] = [];
    channel.subscribers.push({ deliver: (d: string) => recorded.push(d), state: () => undefined });
    b.bus.publishKeys([k('k1')]);
    await a.bus.whenIdle();
    expect(a.seen.keys).toStrictEqual([...before.keys, 'k1']);
    channel.send(recorded.at(-1)!);
    await a.bus.whenIdle();
    expect(a.seen.keys).toStrictEqual([...before.keys, 'k1']);
    expect(a.seen.flushes).toStrictEqual(before.flushes);
    expect(a.bus.stats().replayed).toBe(1);
    expect(a.bus.healthy).toBe(true);
  });

  it('with keys: [2, 1] and [1] interoperate while a new key is rolled out', async () => {
    const channel = new Channel();
    const clock = { now: 0 };
    const a = node(channel, clock, 1000, new BusCodec([KEY2, KEY1]));
    const b = node(channel, clock, 1000, new BusCodec([KEY1]));
    await a.bus.start();
    await b.bus.start();
    a.bus.publishKeys([k('from-new')]);
    b.bus.publishKeys([k('from-old')]);
    expect(b.seen.keys).toStrictEqual(['from-new']);
    expect(a.seen.keys).toStrictEqual(['from-old']);
    expect(a.bus.stats().forged + b.bus.stats().forged).toBe(0);
    expect(a.bus.healthy && b.bus.healthy).toBe(true);
  });

  it('without keys: a forged sequence number far ahead cannot hide a later lost message', async () => {
    const { channel, a, b } = await twoNodes();
    b.bus.publishKeys([k('k1')]);
    // the poison: b's source id, a number far ahead
    sendAs(channel, new BusCodec(), { source: b.bus.source, seq: 1e9 });
    const flushes = a.seen.flushes.length;
    b.bus.publishKeys([k('k2')]); // goes back: resynchronised (and flushed)
    expect(a.seen.flushes.length).toBe(flushes + 1);
    channel.drop = 1;
    b.bus.publishKeys([k('lost')]);
    b.bus.publishKeys([k('k3')]); // the gap after the lost one is seen at once
    expect(a.seen.flushes.length).toBe(flushes + 2);
    expect(a.seen.flushes.at(-1)).toBe('gap');
  });

  it('without keys: a malformed flood neither flushes nor turns the near cache off', async () => {
    const { channel, a } = await oneNode();
    for (let i = 0; i < 1000; i++) channel.send(i % 2 ? 'garbage' : `2..{"s":"x","q":${i + 1},"t":"k","x":"no"}`);
    await a.bus.whenIdle();
    expect(a.seen.flushes).toStrictEqual([]);
    expect(a.bus.healthy).toBe(true);
    expect(a.bus.stats().malformed).toBe(1000);
  });

  it('the sources table is bounded whatever arrives, and keeps the most recently heard', async () => {
    const { channel, clock, a } = await oneNode();
    const plain = new BusCodec();
    clock.now += 5000; // well after start-up: each new source flushes
    for (let i = 0; i < 10 * MAX_SOURCES; i++) sendAs(channel, plain, { source: `s${i}` });
    await a.bus.whenIdle();
    expect(a.bus.stats().sources).toBe(MAX_SOURCES);
    expect(a.bus.stats().newSources).toBe(10 * MAX_SOURCES);
    // the last one heard is remembered; the first ones were forgotten
    clock.now += 1500;
    const flushes = a.seen.flushes.length;
    sendAs(channel, plain, { source: `s${10 * MAX_SOURCES - 1}`, seq: 2 });
    await a.bus.whenIdle();
    expect(a.seen.flushes.length).toBe(flushes);
    expect(a.bus.stats().quietSources).toBe(MAX_SOURCES - 1);
    sendAs(channel, plain, { source: 's0', seq: 2 });
    await a.bus.whenIdle();
    expect(a.seen.flushes.at(-1)).toBe('source');
  });

  it('a flood is handled in slices: no turn of the event loop handles more than a slice, and order is kept', async () => {
    // on the real clock: slices are measured on the bus's clock
    const channel = new Channel();
    const { seen, listener } = recorder();
    const bus = new InvalidationBus(channel.transport(), listener, 1000);
    await bus.start();
    const a = { bus, seen };
    const plain = new BusCodec();
    const turns: number[] = [];
    let handledThisTurn = 0;
    const count = () => handledThisTurn++;
    const original = a.seen.keys.push.bind(a.seen.keys);
    a.seen.keys.push = (...items: string[]) => (count(), original(...items));
    const timer = setInterval(() => {
      turns.push(handledThisTurn);
      handledThisTurn = 0;
    }, 0);
    for (let i = 0; i < 20_000; i++)
      sendAs(channel, plain, { source: 'flood', seq: i + 1, type: 'k', changes: [k(`n${i}`)] });
    await a.bus.whenIdle();
    clearInterval(timer);
    await bus.close();
    turns.push(handledThisTurn);
    expect(a.seen.keys).toHaveLength(20_000);
    expect(a.seen.keys.slice(0, 3)).toStrictEqual(['n0', 'n1', 'n2']);
    expect(a.seen.keys.at(-1)).toBe('n19999');
    // the work was spread over several turns
    expect(turns.filter((n) => n > 0).length).toBeGreaterThan(1);
  });

  it('with keys: an authentic message from outside the replay window is refused, and flushes (a clock off, or a replay)', async () => {
    const channel = new Channel();
    const clock = { now: 0 };
    const a = node(channel, clock, 1000, new BusCodec([KEY1]));
    await a.bus.start();
    const flushes = a.seen.flushes.length;
    channel.send(
      new BusCodec([KEY1]).encode({ source: 'skewed', seq: 1, type: 'k', changes: [k('x')], at: NOW - 40_000 }),
    );
    expect(a.bus.stats().stale).toBe(1);
    expect(a.seen.flushes.slice(flushes)).toStrictEqual(['stale']);
    expect(a.seen.keys).toStrictEqual([]);
    expect(a.bus.stats().sources).toBe(0);
  });

  it('with keys: a replay of a source that said goodbye, or of one heard before our reconnect, is refused', async () => {
    const { channel, a, b } = await twoNodes([KEY1]);
    const recorded: string[] = [];
    channel.subscribers.push({ deliver: (d: string) => recorded.push(d), state: () => undefined });
    b.bus.publishKeys([k('k1')]);
    const evictions = recorded.length;
    // a's link drops and comes back: b's old messages must still be refused
    channel.subscribers[0].state(false);
    channel.subscribers[0].state(true);
    channel.send(recorded[evictions - 1]);
    expect(a.bus.stats().replayed).toBe(1);
    // b leaves; replaying its messages must not bring it back
    await b.bus.close();
    const flushes = a.seen.flushes.length;
    channel.send(recorded[evictions - 1]);
    expect(a.bus.stats().replayed).toBe(2);
    expect(a.bus.stats().sources).toBe(0);
    expect(a.seen.flushes.length).toBe(flushes);
    expect(a.seen.keys.filter((k) => k === 'k1')).toHaveLength(1);
  });

  it('without keys: the same message twice is harmless (at-least-once transports), an older one resynchronises', async () => {
    const { channel, a, b } = await twoNodes();
    const recorded: string[] = [];
    channel.subscribers.push({ deliver: (d: string) => recorded.push(d), state: () => undefined });
    b.bus.publishKeys([k('k1')]);
    const flushes = a.seen.flushes.length;
    channel.send(recorded.at(-1)!);
    expect(a.seen.flushes.length).toBe(flushes);
  });

  it('a listener that throws does not stop the bus handling what comes next', async () => {
    const channel = new Channel();
    let calls = 0;
    const listener: BusListener = {
      keys: () => {
        calls++;
        throw new Error('a broken logger');
      },
      namespaces: () => undefined,
      tags: () => undefined,
      flush: () => undefined,
      healthy: () => undefined,
    };
    const bus = new InvalidationBus(channel.transport(), listener, 1000);
    await bus.start();
    const plain = new BusCodec();
    for (let i = 0; i < 5000; i++)
      sendAs(channel, plain, { source: 'p', seq: i + 1, type: 'k', changes: [k(`n${i}`)] });
    await bus.whenIdle();
    expect(calls).toBe(5000);
    await bus.close();
  });
});
