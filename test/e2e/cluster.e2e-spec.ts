import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KetamaRing } from '../../lib/cluster/ketama.js';
import { MemcachedClient, type MemcachedModuleOptions } from '../../lib/index.js';
import { MemcachedDaemon, sleep, startDaemons } from '../support/memcached-daemon.js';
import { rawGet } from '../support/text-protocol.js';

const TIMEOUT = 200;
const COOLDOWN = 300;
const SLACK = 150;

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe('a 3-node cluster of real memcached daemons', () => {
  let daemons: MemcachedDaemon[];
  let client: MemcachedClient;
  const keys = Array.from({ length: 3000 }, (_, i) => `key:${i}`);
  const make = (extra: MemcachedModuleOptions = {}) =>
    new MemcachedClient({
      servers: daemons.map((d) => d.address).join(','),
      timeout: TIMEOUT,
      breakerThreshold: 3,
      breakerCooldown: COOLDOWN,
      logger: false,
      ...extra,
    });
  const byNode = (node: MemcachedDaemon) => keys.filter((k) => client.nodeOf(k) === node.address);

  beforeAll(async () => {
    daemons = await startDaemons(3);
  });
  afterEach(async () => {
    client?.close();
    for (const d of daemons) {
      d.resume();
      if (!d.isRunning) await d.restart();
    }
  });
  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.kill()));
  });

  it('spreads keys over all three nodes (20-47% each), where libmemcached ketama puts them', async () => {
    client = make();
    await client.flush();
    for (let i = 0; i < keys.length; i += 300) await Promise.all(keys.slice(i, i + 300).map((k) => client.set(k, k)));
    const stats = await client.serverStats();
    for (const d of daemons) {
      const share = Number(stats[d.address].curr_items) / keys.length;
      expect(share).toBeGreaterThanOrEqual(0.2);
      expect(share).toBeLessThanOrEqual(0.47);
    }
    const ring = new KetamaRing(daemons.map((d) => ({ host: d.host, port: d.port, weight: 1 })));
    for (const key of keys.slice(0, 50)) {
      const owner = daemons[ring.locate(key)];
      await expect(rawGet(owner.port, key)).resolves.toMatchObject({ bytes: Buffer.from(key) });
    }
  });

  it('keeps the other nodes working when one is killed: its keys miss within one deadline, then in ~0 ms', async () => {
    client = make();
    await Promise.all(keys.slice(0, 600).map((k) => client.set(k, k)));
    const [dead, ...alive] = daemons;
    await dead.kill();
    const deadKeys = byNode(dead).slice(0, 20);
    const aliveKeys = alive.flatMap((d) => byNode(d).slice(0, 10));

    const first = await timed(() => client.getOrSet(deadKeys[0], () => 'from db'));
    expect(first.value).toBe('from db');
    expect(first.ms).toBeLessThan(TIMEOUT + SLACK);
    for (const key of deadKeys.slice(1, 4)) await client.getOrSet(key, () => 'from db');
    expect(client.nodeStatus().find((s) => s.node === dead.address)?.state).toBe('down');

    const afterOpen = await Promise.all(deadKeys.map((k) => timed(() => client.getOrSet(k, () => 'from db'))));
    expect(afterOpen.every((r) => r.value === 'from db')).toBe(true);
    // ~0 ms: no timeout is paid (the bound leaves room for a loaded 2-core machine)
    expect(Math.max(...afterOpen.map((r) => r.ms))).toBeLessThan(40);
    await expect(client.get(deadKeys[0])).rejects.toMatchObject({ code: 'UNAVAILABLE', node: dead.address });

    for (const key of aliveKeys) {
      await expect(client.get(key)).resolves.toBe(key);
      await expect(client.set(key, `${key}!`)).resolves.toBe(true);
    }
    expect(client.nodeStatus().filter((s) => s.state === 'up')).toHaveLength(2);
  });

  it('uses a restarted node again within the probe interval', async () => {
    client = make();
    const [node] = daemons;
    const key = byNode(node)[0];
    await node.kill();
    for (let i = 0; i < 3; i++) await client.getOrSet(key, () => 'db');
    expect(client.nodeStatus()[0].state).toBe('down');
    await node.restart();
    await sleep(COOLDOWN * 2 + 100);
    expect(client.nodeStatus()[0].state).toBe('up');
    await expect(client.set(key, 'back')).resolves.toBe(true);
    await expect(rawGet(node.port, key)).resolves.toMatchObject({ bytes: Buffer.from('back') });
  });

  it('never lets a request wait longer than the deadline on a SIGSTOPped node', async () => {
    client = make({ breakerThreshold: 1000 });
    await Promise.all(keys.slice(0, 300).map((k) => client.set(k, k)));
    await daemons[1].pause();
    const results = await Promise.all(keys.slice(0, 300).map((k) => timed(() => client.getOrSet(k, () => 'db'))));
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(TIMEOUT + SLACK);
    expect(results.every((r) => r.value !== undefined)).toBe(true);
    const frozen = new Set(byNode(daemons[1]));
    expect(results.filter((r, i) => !frozen.has(keys[i]) && r.value === keys[i]).length).toBe(
      300 - keys.slice(0, 300).filter((k) => frozen.has(k)).length,
    );
  });

  it("getMulti of 300 keys returns every stored value, and with one node stopped the others' values within the deadline", async () => {
    client = make({ breakerThreshold: 1000 });
    const batch = keys.slice(0, 300);
    await Promise.all(batch.map((k) => client.set(k, { v: k })));
    const all = await client.getMulti(batch);
    expect(all.size).toBe(300);
    expect(all.get('key:7')).toStrictEqual({ v: 'key:7' });
    await daemons[2].pause();
    const { ms, value } = await timed(() => client.getMulti(batch));
    const stopped = new Set(byNode(daemons[2]));
    expect(ms).toBeLessThan(TIMEOUT + SLACK);
    expect(value!.size).toBe(batch.filter((k) => !stopped.has(k)).length);
    for (const k of batch) if (!stopped.has(k)) expect(value!.get(k)).toStrictEqual({ v: k });
  });

  it('with deadNodePolicy "rehash", a down node\'s keys are served by the next node on the ring', async () => {
    client = make({ deadNodePolicy: 'rehash' });
    const [node] = daemons;
    const key = byNode(node)[0];
    await node.kill();
    for (let i = 0; i < 3; i++) await client.get(key).catch(() => undefined);
    expect(client.nodeStatus()[0].state).toBe('down');
    await expect(client.set(key, 'failover')).resolves.toBe(true);
    await expect(client.get(key)).resolves.toBe('failover');
    expect(client.nodeOf(key)).not.toBe(node.address);
  });
});
