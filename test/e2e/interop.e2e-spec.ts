import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient } from '../../lib/index.js';
import { startDaemons, stopAll, type MemcachedDaemon } from '../support/memcached-daemon.js';

const PEER = fileURLToPath(new URL('../support/pylibmc-peer.py', import.meta.url));
const COUNT = 3000;

/** The same values as `value_for` in pylibmc-peer.py. */
function valueFor(i: number): unknown {
  switch (i % 8) {
    case 0:
      return `text-${i}-é✓`;
    case 1:
      return Buffer.concat([Buffer.from([i % 256, 0, 255]), Buffer.from('bin')]);
    case 2:
      return i * 1000 - 5;
    case 3:
      return 2n ** 60n + BigInt(i);
    case 4:
      return { id: i, name: `n${i}`, tags: ['a', 'b'], ok: true, score: i / 4, none: null };
    case 5:
      return [i, 'x', null, false];
    case 6:
      return `long-${`${i},`.repeat(400)}`;
    default:
      // JSON large enough to be compressed
      return { id: i, rows: Array.from({ length: 100 }, (_, n) => ({ n, s: 'row' })) };
  }
}

function peer(command: object): { placement?: number[]; equal?: number; mismatches?: unknown[] } {
  const out = execFileSync('/usr/bin/python3', [PEER, JSON.stringify(command)], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(out);
}

// Debian's python3-pylibmc (libmemcached 1.0.18) and this library on one 3-node pool
describe('a pool shared with pylibmc (valueFormat "pylibmc")', () => {
  let daemons: MemcachedDaemon[];
  const clients: MemcachedClient[] = [];

  beforeAll(async () => {
    daemons = await startDaemons(3);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await stopAll(daemons);
  });

  it.each([
    ['ketama', { ketama_weighted: true }],
    ['ketama-plain', { ketama: true }],
  ] as const)(
    'hashing "%s" (pylibmc %o): 3000/3000 placed alike, 3000/3000 values cross each way with equal content and type',
    async (hashing, behaviors) => {
      const servers = daemons.map((d) => d.address);
      const client = new MemcachedClient({
        servers,
        hashing,
        valueFormat: 'pylibmc',
        compressionThreshold: 1024,
        logger: false,
      });
      clients.push(client);
      const prefix = `${hashing}:`;

      // pylibmc writes; where each key landed must be where we look for it, and we read each value as written
      const written = peer({ op: 'write', servers, behaviors, prefix: `py:${prefix}`, count: COUNT });
      const keys = Array.from({ length: COUNT }, (_, i) => `py:${prefix}${i}`);
      const placedAlike = keys.filter((key, i) => client.nodeOf(key) === servers[written.placement![i]]).length;
      expect(placedAlike).toBe(COUNT);
      const read = await client.getMulti(keys);
      const equal = keys.filter((key, i) => {
        const value = read.get(key);
        return value !== undefined && expectEqual(value, valueFor(i));
      }).length;
      expect(equal).toBe(COUNT);
      expect(client.stats().undecodable).toBe(0);

      // we write; pylibmc reads each value with the same content and Python type
      for (let i = 0; i < COUNT; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => client.set(`js:${prefix}${i + j}`, valueFor(i + j))));
      }
      const back = peer({ op: 'read', servers, behaviors, prefix: `js:${prefix}`, count: COUNT });
      expect(back.mismatches).toEqual([]);
      expect(back.equal).toBe(COUNT);
    },
  );

  it('reads what it cannot know (a pickle) as a miss, counted, and refuses to write what would come back changed', async () => {
    const client = new MemcachedClient({
      servers: daemons.map((d) => d.address),
      valueFormat: 'pylibmc',
      logger: false,
    });
    clients.push(client);
    // flag 1: a pickle, pylibmc's default for floats, lists and dicts without the JSON subclass
    const before = client.stats().undecodable;
    await client.set('pickle-target', 'x');
    const node = daemons.find((d) => d.address === client.nodeOf('pickle-target'))!;
    const { rawSet } = await import('../support/text-protocol.js');
    await rawSet(node.port, 'pickle-target', Buffer.from([0x80, 0x05, 0x4b, 0x01, 0x2e]), 1);
    expect(await client.get('pickle-target')).toBeUndefined();
    expect(client.stats().undecodable - before).toBe(1);
    await expect(client.set('d', new Date())).rejects.toThrow(/valueFormat is "pylibmc"/);
    await expect(client.set('small-bigint', 5n)).rejects.toThrow(/BigInt within the safe integer range/);
  });
});

function expectEqual(actual: unknown, expected: unknown): boolean {
  try {
    expect(actual).toStrictEqual(expected);
    return true;
  } catch {
    return false;
  }
}
