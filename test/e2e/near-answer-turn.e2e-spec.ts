import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { randomUUID } from 'node:crypto';
import { MemcachedClient } from '../../lib/index.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { startNats, type TestServer } from '../support/servers.js';

// Near hits are handed back once per event-loop turn, together (lib/near/answer-turn.ts): real
// memcached and a real NATS this file starts, one client with a near cache.
let daemon: MemcachedDaemon;
let nats: TestServer;
let client: MemcachedClient;
const ns = `t${randomUUID().slice(0, 8)}`;
const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
const read = (key: string) => client.getOrSet(key, () => ({ key }), { namespace: ns });

beforeAll(async () => {
  [daemon, nats] = await Promise.all([MemcachedDaemon.start(), startNats()]);
  client = new MemcachedClient({
    servers: daemon.address,
    logger: false,
    nearCache: { ttl: 60 },
    bus: { transport: 'nats', url: nats.url, channel: `nmc-test-${randomUUID()}` },
  });
  const started = performance.now();
  while (client.stats().bus?.healthy !== true) {
    if (performance.now() - started > 10_000) throw new Error('the bus did not come up');
    await new Promise((r) => setTimeout(r, 10));
  }
  for (const key of keys) await read(key); // filled
  for (const key of keys) await read(key); // memcached hits, kept in the near cache
}, 60_000);
afterAll(async () => {
  client?.close();
  await Promise.all([daemon?.stop(), nats?.stop()]);
});

/** Counts event-loop turns (one per check phase) until stopped. */
function turnCounter() {
  let turns = 0;
  let running = true;
  const tick = () => {
    turns++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    get turns() {
      return turns;
    },
    stop: () => (running = false),
  };
}

describe('near hits are answered once per turn', () => {
  it('hits found in one turn are handed back together, after it, not one by one as found', async () => {
    const hitsBefore = client.stats().nearCache!.hits;
    const counter = turnCounter();
    const answeredAt: number[] = [];
    const reads = keys.map((key) =>
      read(key).then((value) => {
        answeredAt.push(counter.turns);
        expect(value).toStrictEqual({ key });
      }),
    );
    await Promise.all(reads);
    counter.stop();
    expect(client.stats().nearCache!.hits - hitsBefore).toBe(keys.length);
    // none in the turn that asked (turn 0), all in one later turn
    expect(Math.min(...answeredAt)).toBeGreaterThan(0);
    expect(new Set(answeredAt).size).toBe(1);
  });

  it('a call made while the turn hands back its answers waits for no later turn: 30 hits one after another', async () => {
    const hitsBefore = client.stats().nearCache!.hits;
    const counter = turnCounter();
    for (let round = 0; round < 3; round++) for (const key of keys) expect(await read(key)).toStrictEqual({ key });
    const turns = counter.turns;
    counter.stop();
    expect(client.stats().nearCache!.hits - hitsBefore).toBe(3 * keys.length);
    // the first waits for the turn's hand-back; the other 89 are answered within it
    expect(turns).toBeLessThanOrEqual(3);
  });

  it("a test's fake timers do not hold near hits", async () => {
    // out of the previous test's hand-back (its calls were answered within it)
    await new Promise((resolve) => setTimeout(resolve, 5));
    const realSetTimeout = globalThis.setTimeout;
    vi.useFakeTimers();
    try {
      const hitsBefore = client.stats().nearCache!.hits;
      const answered = await Promise.race([
        Promise.all(keys.slice(0, 5).map(read)),
        // a hang would leave this to win (a timer fake timers do not hold: taken before them)
        new Promise((resolve) => realSetTimeout(() => resolve('held'), 2000)),
      ]);
      expect(answered).toStrictEqual(keys.slice(0, 5).map((key) => ({ key })));
      expect(client.stats().nearCache!.hits - hitsBefore).toBe(5);
    } finally {
      vi.useRealTimers();
    }
  });
});
