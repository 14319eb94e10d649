import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BreakerNode } from '../../lib/cluster/breaker-node.js';
import { NodeRouter } from '../../lib/cluster/router.js';
import { toNode } from '../../lib/config/server-list.js';
import { MemcachedError } from '../../lib/transport/memcached.error.js';
import type { NodeTransport } from '../../lib/transport/node-connection.js';
import { Opcode } from '../../lib/transport/protocol.js';
import { CONNECTION_OPAQUE, RequestIds } from '../../lib/transport/request-ids.js';

/** A node whose next answers the test decides: 'ok', a connection error, or a server error. */
class ScriptedNode implements NodeTransport {
  answer: 'ok' | 'down' | 'server' = 'ok';
  requests: number[] = [];
  resets = 0;

  constructor(readonly label: string) {}

  request<T>(operation: string, _seq: number, frame: Buffer): Promise<T> {
    this.requests.push(frame[1]);
    if (this.answer === 'down')
      return Promise.reject(new MemcachedError(operation, this.label, 'CONNECTION', 'refused'));
    if (this.answer === 'server')
      return Promise.reject(new MemcachedError(operation, this.label, 'SERVER', 'key exists', 2));
    return Promise.resolve(true as T);
  }

  reset(): void {
    this.resets++;
  }

  close(): void {}
}

const frame = Buffer.from([0x80, Opcode.Get]);

describe('BreakerNode', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('opens after `threshold` consecutive node failures, then fails at once without touching the node', async () => {
    const inner = new ScriptedNode('a:1');
    const node = new BreakerNode(inner, { threshold: 3, cooldown: 250, logger: false });
    inner.answer = 'down';
    for (let i = 0; i < 3; i++)
      await expect(node.request('get', i, frame, () => true)).rejects.toMatchObject({ code: 'CONNECTION' });
    expect(node.isOpen).toBe(true);
    expect(inner.resets).toBe(1);
    const sent = inner.requests.length;
    await expect(node.request('get', 9, frame, () => true)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(inner.requests.length).toBe(sent);
    // each caller gets its own error: one that marks or changes it does not change another's
    const first = await node.request('get', 10, frame, () => true).catch((e: unknown) => e);
    const second = await node.request('get', 11, frame, () => true).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(MemcachedError);
    expect(second).not.toBe(first);
    expect(second).toMatchObject({ code: 'UNAVAILABLE', operation: 'get', node: 'a:1' });
  });

  it("memcached's own error answers do not count: the node is alive", async () => {
    const inner = new ScriptedNode('a:1');
    const node = new BreakerNode(inner, { threshold: 2, cooldown: 250, logger: false });
    inner.answer = 'down';
    await node.request('get', 1, frame, () => true).catch(() => undefined);
    inner.answer = 'server';
    await node.request('get', 2, frame, () => true).catch(() => undefined);
    inner.answer = 'down';
    await node.request('get', 3, frame, () => true).catch(() => undefined);
    expect(node.isOpen).toBe(false);
  });

  it('probes with an authenticated noop, first after a tenth of the cooldown, backing off to it, and closes on the first answer', async () => {
    const inner = new ScriptedNode('a:1');
    const node = new BreakerNode(inner, { threshold: 1, cooldown: 400, logger: false });
    inner.answer = 'down';
    await node.request('get', 1, frame, () => true).catch(() => undefined);
    const probeTimes: number[] = [];
    const started = Date.now();
    inner.request = ((original) =>
      function (this: ScriptedNode, ...args: Parameters<ScriptedNode['request']>) {
        if (args[2][1] === Opcode.Noop) probeTimes.push(Date.now() - started);
        return original.apply(this, args);
      })(inner.request) as ScriptedNode['request'];
    await vi.advanceTimersByTimeAsync(40 + 80 + 160 + 320 + 400 + 400);
    expect(probeTimes).toStrictEqual([40, 120, 280, 600, 1000, 1400]);
    inner.answer = 'ok';
    await vi.advanceTimersByTimeAsync(400);
    expect(node.isOpen).toBe(false);
    expect(await node.request('get', 5, frame, () => true)).toBe(true);
  });
});

describe('NodeRouter', () => {
  const addresses = [toNode('10.0.0.1', 11211, 1), toNode('10.0.0.2', 11211, 1), toNode('10.0.0.3', 11211, 1)];
  const keys = Array.from({ length: 300 }, (_, i) => `key-${i}`);

  function router(policy: 'miss' | 'rehash') {
    const nodes = new Map<string, ScriptedNode>();
    const r = new NodeRouter(
      addresses,
      (address) => {
        const n = new ScriptedNode(address.label);
        nodes.set(address.label, n);
        return n;
      },
      {} as never,
      { hashing: 'ketama', deadNodePolicy: policy, breakerThreshold: 1, breakerCooldown: 10_000, logger: false },
    );
    return { r, nodes };
  }

  async function kill(r: NodeRouter, nodes: Map<string, ScriptedNode>, label: string) {
    nodes.get(label)!.answer = 'down';
    await r.nodes
      .find((n) => n.label === label)!
      .request('get', 1, frame, () => true)
      .catch(() => undefined);
  }

  it('spreads keys over every node and groups a batch by node, positions kept', () => {
    const { r } = router('miss');
    const groups = r.group(keys);
    expect(groups).toHaveLength(3);
    const seen = groups.flatMap(([node, positions]) => positions!.map((i) => [i, node.label] as const));
    expect(seen).toHaveLength(keys.length);
    for (const [i, label] of seen) expect(r.nodeFor(keys[i]).label).toBe(label);
  });

  it("miss: a dead node's keys stay on it and read as down; rehash: they move to live nodes, the others never move", async () => {
    for (const policy of ['miss', 'rehash'] as const) {
      const { r, nodes } = router(policy);
      const before = new Map(keys.map((k) => [k, r.nodeFor(k).label]));
      await kill(r, nodes, '10.0.0.2:11211');
      for (const k of keys) {
        const was = before.get(k)!;
        if (was !== '10.0.0.2:11211') {
          expect(r.nodeFor(k).label).toBe(was);
          expect(r.isDown(k)).toBe(false);
        } else if (policy === 'miss') {
          expect(r.isDown(k)).toBe(true);
        } else {
          expect(r.nodeFor(k).label).not.toBe(was);
          expect(r.isDown(k)).toBe(false);
        }
      }
    }
  });
});

describe('RequestIds', () => {
  it("requests and probes never share an id, nor the connection's own, even as they wrap around", () => {
    const requests = RequestIds.forRequests();
    const probes = RequestIds.forProbes();
    const seen = (ids: RequestIds, n: number) => Array.from({ length: n }, () => ids.next());
    const [a, b] = [seen(requests, 3), seen(probes, 3)];
    expect(a).toStrictEqual([1, 2, 3]);
    expect(b).toStrictEqual([0x80000001, 0x80000002, 0x80000003]);
    // wrap: jump near the end of each range
    (requests as unknown as { last: number }).last = 0x7ffffffe;
    (probes as unknown as { last: number }).last = 0x7ffffffe;
    expect(seen(requests, 3)).toStrictEqual([0x7fffffff, 1, 2]);
    expect(seen(probes, 3)).toStrictEqual([0xffffffff, 0x80000001, 0x80000002]);
    for (const id of [...a, ...b]) expect(id).not.toBe(CONNECTION_OPAQUE);
  });
});
