import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { rawGet, rawSet } from '../support/text-protocol.js';

describe('MemcachedClient against a real memcached', () => {
  let daemon: MemcachedDaemon;
  let client: MemcachedClient;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    client = new MemcachedClient({ servers: daemon.address, keyPrefix: 'test:', logger: false });
  });
  afterAll(async () => {
    client?.close();
    await daemon?.kill();
  });
  afterEach(async () => {
    await client.flush();
  });

  it('round-trips values with their types; null, false, 0 and "" are hits, not misses', async () => {
    const values: unknown[] = [null, false, 0, '', true, 42.5, 'text', { nested: { list: [1, 'two', null] } }, [0]];
    for (const [i, value] of values.entries()) {
      await expect(client.set(`v${i}`, value)).resolves.toBe(true);
      await expect(client.get(`v${i}`)).resolves.toStrictEqual(value);
    }
    await expect(client.get('absent')).resolves.toBeUndefined();
    const stats = client.stats();
    expect(stats.hits).toBe(values.length);
    expect(stats.misses).toBe(1);
  });

  it('round-trips Buffers and strings byte for byte', async () => {
    const buf = Buffer.from([0, 255, 13, 10, 32, 0x80, 0xfe]);
    await client.set('buf', buf);
    const out = await client.get<Buffer>('buf');
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out!.equals(buf)).toBe(true);
    for (const s of ['"looks like json"', '123', 'null', 'line\r\nbreak', 'emoji 😀 ключ']) {
      await client.set('str', s);
      await expect(client.get('str')).resolves.toBe(s);
    }
  });

  it('stores a 300-byte key with spaces and emoji as a valid key and reads it back', async () => {
    const key = `user profile ${'x'.repeat(280)} 😀`;
    expect(Buffer.byteLength(key)).toBeGreaterThan(290);
    await client.set(key, { ok: 1 });
    await expect(client.get(key)).resolves.toStrictEqual({ ok: 1 });
    const wire = client.keyFor(key);
    expect(wire.length).toBeLessThanOrEqual(250);
    expect(wire).toMatch(/^test:user_profile_x+#[A-Za-z0-9_-]{43}$/);
    expect((await rawGet(daemon.port, wire))?.bytes.toString()).toBe('{"ok":1}');
  });

  it('keeps distinct awkward keys distinct on the server', async () => {
    const keys = ['a b', 'a_b', 'a\tb', 'a\nb', 'k'.repeat(251), 'k'.repeat(252), 'é', 'e\u0301', '', '#'];
    for (const [i, key] of keys.entries()) await client.set(key, i);
    for (const [i, key] of keys.entries()) await expect(client.get(key)).resolves.toBe(i);
    const wires = keys.map((k) => client.keyFor(k));
    expect(new Set(wires).size).toBe(keys.length);
    for (const [i, wire] of wires.entries())
      expect((await rawGet(daemon.port, wire))?.bytes.toString()).toBe(String(i));
  });

  it('keeps a namespaced key under the namespace generation, as the decorators do: prefix + namespace#generation:key', async () => {
    await client.set('42', 'jane', { namespace: 'users' });
    const generation = JSON.parse((await rawGet(daemon.port, 'test:users#gen'))!.bytes.toString()) as number;
    expect(Number.isSafeInteger(generation)).toBe(true);
    await expect(rawGet(daemon.port, `test:users#${generation}:42`)).resolves.toMatchObject({
      bytes: Buffer.from('jane'),
    });
    await expect(client.get('42', { namespace: 'users' })).resolves.toBe('jane');
    await expect(client.get('42')).resolves.toBeUndefined();
    await client.deleteNamespace('users');
    await expect(client.get('42', { namespace: 'users' })).resolves.toBeUndefined();
  });

  it('records the format in memcached flags and treats foreign or corrupt bytes as a miss', async () => {
    await client.set('json', { a: 1 });
    await client.set('text', 'a');
    const [json, text] = [await rawGet(daemon.port, 'test:json'), await rawGet(daemon.port, 'test:text')];
    expect(json!.flags).not.toBe(0);
    expect(json!.flags).not.toBe(text!.flags);
    await rawSet(daemon.port, 'test:foreign', 'written by php', 17);
    await rawSet(daemon.port, 'test:corrupt', '{"broken', json!.flags);
    await expect(client.get('foreign')).resolves.toBeUndefined();
    await expect(client.get('corrupt')).resolves.toBeUndefined();
    expect(client.stats().undecodable).toBeGreaterThanOrEqual(2);
  });

  it('compresses values above the threshold on the wire and reads them back', async () => {
    const big = { rows: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `user ${i}`, country: 'FR' })) };
    const compressing = new MemcachedClient({
      servers: daemon.address,
      keyPrefix: 'test:',
      compressionThreshold: 16 * 1024,
      logger: false,
    });
    try {
      await compressing.set('big', big);
      const raw = await rawGet(daemon.port, 'test:big');
      expect(raw!.bytes.length).toBeLessThan(JSON.stringify(big).length / 2);
      await expect(compressing.get('big')).resolves.toStrictEqual(big);
      await expect(client.get('big')).resolves.toStrictEqual(big);
      await client.set('big', big);
      expect((await rawGet(daemon.port, 'test:big'))!.bytes.length).toBe(JSON.stringify(big).length);
    } finally {
      compressing.close();
    }
  });

  it('reads many large values pipelined on one socket, each intact', async () => {
    const values = Array.from(
      { length: 8 },
      (_, i) => `${i}:` + String.fromCharCode(65 + i).repeat(300_000 + i * 1000),
    );
    await Promise.all(values.map((v, i) => client.set(`large:${i}`, v)));
    const reads = await Promise.all(Array.from({ length: 64 }, (_, n) => client.get(`large:${n % 8}`)));
    reads.forEach((v, n) => expect(v).toBe(values[n % 8]));
  });

  it('writes a turn of small and large requests in order, each intact, however they are grouped into writes', async () => {
    // small runs are copied into one buffer, large frames go as they are: every mix of the two
    const sizes = [5, 90_000, 300, 300, 20_000, 16_000, 40, 200_000, 1, 16_383, 16_384, 700];
    const values = sizes.map((n, i) => String.fromCharCode(97 + i).repeat(n));
    for (const order of [sizes.map((_, i) => i), sizes.map((_, i) => sizes.length - 1 - i)]) {
      await Promise.all(order.map((i) => client.set(`mix:${i}`, values[i])));
      const back = await Promise.all(order.map((i) => client.get(`mix:${i}`)));
      back.forEach((v, n) => expect(v).toBe(values[order[n]]));
      await Promise.all(order.map((i) => client.delete(`mix:${i}`)));
    }
  });

  it('add, replace, delete and touch report what happened', async () => {
    await expect(client.add('k', 1)).resolves.toBe(true);
    await expect(client.add('k', 2)).resolves.toBe(false);
    await expect(client.get('k')).resolves.toBe(1);
    await expect(client.replace('k', 3)).resolves.toBe(true);
    await expect(client.replace('missing', 3)).resolves.toBe(false);
    await expect(client.get('missing')).resolves.toBeUndefined();
    await expect(client.touch('k', 100)).resolves.toBe(true);
    await expect(client.touch('missing', 100)).resolves.toBe(false);
    await expect(client.delete('k')).resolves.toBe(true);
    await expect(client.delete('k')).resolves.toBe(false);
    await expect(client.get('k')).resolves.toBeUndefined();
  });

  it('expires entries by TTL, and touch changes the TTL', async () => {
    await client.set('short', 'v', { ttl: 1 });
    await client.set('touched', 'v', { ttl: 1 });
    await client.touch('touched', 100);
    await sleep(2100);
    await expect(client.get('short')).resolves.toBeUndefined();
    await expect(client.get('touched')).resolves.toBe('v');
  });

  it('stores a TTL of 31 days (sent as an absolute time) without expiring it at once', async () => {
    await client.set('long', 'kept', { ttl: 31 * 24 * 3600 });
    await sleep(1100);
    await expect(client.get('long')).resolves.toBe('kept');
    await client.set('zero', 'forever', { ttl: 0 });
    await expect(client.get('zero')).resolves.toBe('forever');
  });

  it('increments and decrements exactly above 2^32 and up to 2^64 - 1', async () => {
    await expect(client.increment('c', 1)).resolves.toBeNull();
    await expect(client.increment('c', 5, { initial: 4294967296n + 1n })).resolves.toBe(4294967297n);
    await expect(client.increment('c', 5)).resolves.toBe(4294967302n);
    await expect(client.decrement('c', 2)).resolves.toBe(4294967300n);
    await expect(client.get('c')).resolves.toBe(4294967300);
    await expect(client.increment('big', 0, { initial: (1n << 64n) - 2n })).resolves.toBe((1n << 64n) - 2n);
    await expect(client.increment('big', 1)).resolves.toBe((1n << 64n) - 1n);
    await expect(client.get('big')).resolves.toBe((1n << 64n) - 1n);
    await expect(client.decrement('missing')).resolves.toBeNull();
    await expect(client.decrement('floor', 10, { initial: 3 })).resolves.toBe(3n);
    await expect(client.decrement('floor', 10)).resolves.toBe(0n);
    await client.set('text', 'abc');
    await expect(client.increment('text', 1)).rejects.toMatchObject({ name: 'MemcachedError', code: 'SERVER' });
    await expect(client.increment('c', -1)).rejects.toThrow(/Invalid delta -1/);
  });

  it('getMulti fetches hits in one pipelined round trip, with the same decoding as get', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `m${i}`);
    for (const [i, key] of keys.entries()) if (i % 3 !== 0) await client.set(key, i % 2 === 0 ? i : { i });
    await client.set('falsy', 0);
    const found = await client.getMulti([...keys, 'falsy', 'falsy', 'nope']);
    expect(found.size).toBe(201);
    expect(found.get('m1')).toStrictEqual({ i: 1 });
    expect(found.get('m2')).toBe(2);
    expect(found.has('m3')).toBe(false);
    expect(found.get('falsy')).toBe(0);
    await expect(client.getMulti([])).resolves.toStrictEqual(new Map());
  });

  it('getOrSet calls the loader once for 200 concurrent callers and caches the result', async () => {
    let calls = 0;
    const loader = async () => {
      calls++;
      await sleep(50);
      return { id: 7 };
    };
    const results = await Promise.all(Array.from({ length: 200 }, () => client.getOrSet('hot', loader, { ttl: 60 })));
    expect(calls).toBe(1);
    expect(results.every((r) => r.id === 7)).toBe(true);
    await sleep(20);
    await expect(client.getOrSet('hot', loader)).resolves.toStrictEqual({ id: 7 });
    expect(calls).toBe(1);
    await expect(rawGet(daemon.port, 'test:hot')).resolves.toBeDefined();
  });

  it('getOrSet caches falsy results, passes loader errors through, and never stores undefined', async () => {
    let calls = 0;
    await expect(client.getOrSet('f', () => (calls++, false))).resolves.toBe(false);
    await sleep(10);
    await expect(client.getOrSet('f', () => (calls++, true))).resolves.toBe(false);
    expect(calls).toBe(1);
    const boom = new Error('db down');
    await expect(client.getOrSet('e', () => Promise.reject(boom))).rejects.toBe(boom);
    await expect(client.getOrSet('u', () => undefined)).resolves.toBeUndefined();
    await sleep(10);
    await expect(rawGet(daemon.port, 'test:u')).resolves.toBeUndefined();
  });

  it('getOrSet takes the TTL from a function of the result', async () => {
    await client.getOrSet('ttlfn', () => ({ short: true }), { ttl: (v) => (v.short ? 1 : 600) });
    await sleep(2100);
    await expect(client.get('ttlfn')).resolves.toBeUndefined();
  });

  it('flush empties the server; serverStats reports memcached counters', async () => {
    await client.set('a', 1);
    await client.flush();
    await expect(client.get('a')).resolves.toBeUndefined();
    const stats = await client.serverStats();
    expect(Object.keys(stats)).toStrictEqual([daemon.address]);
    expect(Number(stats[daemon.address].cmd_flush)).toBeGreaterThan(0);
    expect(stats[daemon.address].version).toMatch(/^1\.6/);
  });

  it('refuses to store undefined with a clear error', async () => {
    await expect(client.set('u', undefined)).rejects.toThrow(/undefined cannot be stored/);
  });
});

describe("a namespace's counters holding someone else's bytes", () => {
  let daemon: MemcachedDaemon;
  let client: MemcachedClient;

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
    client = new MemcachedClient({ servers: daemon.address, keyPrefix: 'g:', logger: false });
  });
  afterAll(async () => {
    client?.close();
    await daemon?.kill();
  });

  it('a generation key holding garbage is a miss, then repaired; nothing rejects with a plain Error', async () => {
    for (const [flags, garbage] of [
      [0, 'not a number'],
      [17, '12abc'],
      [0, '-5'],
      [0, '1e400'],
    ] as const) {
      const ns = `poisoned${flags}${garbage.length}`;
      await rawSet(daemon.port, `g:${ns}#gen`, garbage, flags);
      // each call on a fresh client, so that no generation is remembered from before
      const fresh = new MemcachedClient({ servers: daemon.address, keyPrefix: 'g:', logger: false });
      try {
        expect(await fresh.get('k', { namespace: ns })).toBeUndefined();
        expect(await fresh.set('k', 'v', { namespace: ns })).toBe(true);
        expect(await fresh.get('k', { namespace: ns })).toBe('v');
        let loads = 0;
        for (let i = 0; i < 3; i++) await fresh.getOrSet('w', async () => ++loads, { namespace: ns });
        expect(loads).toBe(1);
        // deleteNamespace works on garbage too, and the old entries are gone
        await rawSet(daemon.port, `g:${ns}#gen`, garbage, flags);
        await fresh.deleteNamespace(ns);
        expect(await fresh.get('k', { namespace: ns })).toBeUndefined();
        expect(Number((await rawGet(daemon.port, `g:${ns}#gen`))!.bytes.toString())).toBeGreaterThan(0);
        expect(await fresh.delete('k', { namespace: ns })).toBe(false);
      } finally {
        fresh.close();
      }
    }
  });

  it("a key's variant counter holding garbage does not stop evictions of that key", async () => {
    await client.set('doc', 'v1', { namespace: 'docs' });
    await rawSet(daemon.port, 'g:docs#r:doc', 'garbage');
    await expect(client.delete('doc', { namespace: 'docs' })).resolves.toBe(true);
    expect(await client.get('doc', { namespace: 'docs' })).toBeUndefined();
    expect(await rawGet(daemon.port, 'g:docs#r:doc')).toBeUndefined();
  });
});

describe('MemcachedClient and the item size limit (memcached -I 2k)', () => {
  let daemon: MemcachedDaemon;
  let client: MemcachedClient;
  const warnings: string[] = [];

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start({ itemSize: '2k' });
    client = new MemcachedClient({
      servers: daemon.address,
      maxItemSize: 2048,
      compressionThreshold: false,
      logger: { log() {}, error() {}, warn: (m: string) => warnings.push(m) },
    });
  });
  afterAll(async () => {
    client?.close();
    await daemon?.kill();
  });

  it('does not send a value over the limit, does not throw, and leaves no older value behind', async () => {
    await expect(client.set('report:1', 'small')).resolves.toBe(true);
    await expect(client.set('report:1', 'x'.repeat(4000))).resolves.toBe(false);
    await expect(client.get('report:1')).resolves.toBeUndefined();
    await expect(rawGet(daemon.port, 'report:1')).resolves.toBeUndefined();
    expect(client.stats().oversizeSkips).toBe(1);
  });

  it('handles a value the server rejects as too large the same way', async () => {
    const lenient = new MemcachedClient({
      servers: daemon.address,
      maxItemSize: 1 << 20,
      compressionThreshold: false,
      logger: false,
    });
    try {
      await lenient.set('report:2', 'old');
      await expect(lenient.set('report:2', 'y'.repeat(3000))).resolves.toBe(false);
      await expect(lenient.get('report:2')).resolves.toBeUndefined();
      expect(lenient.stats().oversizeSkips).toBe(1);
    } finally {
      lenient.close();
    }
  });

  it('warns once per namespace, never naming the key, and counts every skip', async () => {
    await client.set('report:3', 'z'.repeat(4000));
    await client.set('report:4', 'z'.repeat(4000));
    await client.set('secret-user@example.com', 'z'.repeat(4000), { namespace: 'reports' });
    await client.set('other-user@example.com', 'z'.repeat(4000), { namespace: 'reports' });
    expect(client.stats().oversizeSkips).toBe(5);
    expect(warnings.filter((w) => w.includes('keys without a namespace'))).toHaveLength(1);
    expect(warnings.filter((w) => w.includes('namespace "reports"'))).toHaveLength(1);
    expect(warnings[0]).toMatch(/exceeds the item size limit of 2048 bytes/);
    expect(warnings.join('\n')).not.toMatch(/report:|example\.com/);
  });
});
