import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient, type MemcachedModuleOptions } from '../../lib/index.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';
import { rawGet, rawSet } from '../support/text-protocol.js';

const KEY_1 = randomBytes(32);
const KEY_2 = randomBytes(32).toString('base64');

describe('encrypted values against a real memcached', () => {
  let daemon: MemcachedDaemon;
  const clients: MemcachedClient[] = [];
  const client = (options: MemcachedModuleOptions = {}) => {
    const c = new MemcachedClient({ servers: daemon.address, logger: false, ...options });
    clients.push(c);
    return c;
  };
  const withKeys = (...keys: Array<{ id: number; key: string | Buffer }>) => client({ encryption: { keys } });

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await daemon?.kill();
  });

  it('round-trips every kind of value, and memcached holds none of the plaintext', async () => {
    const c = withKeys({ id: 1, key: KEY_1 });
    const values: Record<string, unknown> = {
      text: 'secret text: Ada Lovelace, ada@example.com',
      object: { email: 'ada@example.com', born: 1815 },
      dated: { at: new Date('2026-01-02T03:04:05Z') },
      bytes: Buffer.from('raw secret bytes'),
      big: 'secret '.repeat(30_000),
    };
    for (const [key, value] of Object.entries(values)) {
      await c.set(`enc:${key}`, value);
      expect(await c.get(`enc:${key}`)).toStrictEqual(value);
      const raw = (await rawGet(daemon.port, `enc:${key}`))!;
      expect(raw.bytes.includes('secret')).toBe(false);
      expect(raw.bytes.includes('ada@')).toBe(false);
    }
    // a client without the key reads nothing
    expect(await client().get('enc:text')).toBeUndefined();
  });

  it('reads tampered bytes, a ciphertext copied to another key, an unencrypted entry and an unknown key id as misses, counted', async () => {
    const c = withKeys({ id: 1, key: KEY_1 });
    await c.set('enc:a', 'value of a');
    const stored = (await rawGet(daemon.port, 'enc:a'))!;

    const flipped = Buffer.from(stored.bytes);
    flipped[flipped.length - 20] ^= 0x01;
    await rawSet(daemon.port, 'enc:tampered', flipped, stored.flags);
    await rawSet(daemon.port, 'enc:moved', stored.bytes, stored.flags);
    await client().set('enc:plain', 'written without encryption');
    const otherKey = withKeys({ id: 1, key: randomBytes(32) });
    await otherKey.set('enc:foreign', 'same id, another key');
    const otherId = withKeys({ id: 9, key: KEY_1 });
    await otherId.set('enc:unknown-id', 'a key id the reader does not have');

    const before = c.stats().undecryptable;
    for (const key of ['enc:tampered', 'enc:moved', 'enc:plain', 'enc:foreign', 'enc:unknown-id']) {
      expect(await c.get(key)).toBeUndefined();
    }
    expect(c.stats().undecryptable - before).toBe(5);
    expect(await c.get('enc:a')).toBe('value of a');
    // a miss is loaded and replaces the bad entry
    expect(await c.getOrSet('enc:tampered', async () => 'reloaded')).toBe('reloaded');
    expect(await c.get('enc:tampered')).toBe('reloaded');
  });

  it('rotation: after a new key is put first, entries written with the old one stay readable; the old key alone cannot read new entries', async () => {
    const before = withKeys({ id: 1, key: KEY_1 });
    await before.set('enc:rot-old', { written: 'before rotation' });
    const after = withKeys({ id: 2, key: KEY_2 }, { id: 1, key: KEY_1 });
    expect(await after.get('enc:rot-old')).toStrictEqual({ written: 'before rotation' });
    await after.set('enc:rot-new', { written: 'after rotation' });
    expect((await rawGet(daemon.port, 'enc:rot-new'))!.bytes[1]).toBe(2);
    expect(await after.get('enc:rot-new')).toStrictEqual({ written: 'after rotation' });
    expect(await before.get('enc:rot-new')).toBeUndefined();
    // the old key retired: its entries are misses
    const retired = withKeys({ id: 2, key: KEY_2 });
    expect(await retired.get('enc:rot-old')).toBeUndefined();
  });

  it('namespaces, leases and evictAll work with encryption on (their counters are the only clear entries)', async () => {
    const c = withKeys({ id: 1, key: KEY_1 });
    let loads = 0;
    const load = async () => ({ n: ++loads, email: 'grace@example.com' });
    expect(await c.getOrSet('u1', load, { namespace: 'users' })).toStrictEqual({ n: 1, email: 'grace@example.com' });
    expect(await c.getOrSet('u1', load, { namespace: 'users' })).toStrictEqual({ n: 1, email: 'grace@example.com' });
    await c.deleteNamespace('users');
    expect(await c.getOrSet('u1', load, { namespace: 'users' })).toStrictEqual({ n: 2, email: 'grace@example.com' });
    expect(c.stats().undecryptable).toBe(0);
  });
});
