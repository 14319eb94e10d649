import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedError } from '../../lib/index.js';
import { flagsExtras, HostileServer, response } from '../support/hostile-server.js';
import { startWorker } from '../support/workers.js';

const worker = new URL('./workers/hostile-worker.ts', import.meta.url);
const FLAGS_UTF8 = 0x4e4d0002;
const GET = 0x00;
const NOT_FOUND = 0x01;

const hit = (opaque: number, text: string) =>
  response({ opcode: GET, opaque, extras: flagsExtras(FLAGS_UTF8), value: Buffer.from(text) });
const miss = (opaque: number) => response({ opcode: GET, opaque, status: NOT_FOUND });

async function failure(promise: Promise<unknown>): Promise<MemcachedError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(MemcachedError);
    return error as MemcachedError;
  }
  throw new Error('expected the request to fail');
}

describe('a hostile server: no frame ends the process, grows memory or leaks into the next connection', () => {
  let server: HostileServer;
  let client: MemcachedClient;
  const clientFor = (options: object = {}) =>
    new MemcachedClient({ servers: server.address, timeout: 300, breakerThreshold: 0, logger: false, ...options });

  beforeAll(async () => {
    server = await new HostileServer().start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(() => {
    client?.close();
    server.onRequest = (req) => miss(req.opaque);
    server.onConnect = undefined;
  });

  it.each([
    [
      'key and extras longer than the body',
      (o: number) =>
        response({
          opcode: GET,
          opaque: o,
          keyLength: 100,
          extrasLength: 4,
          totalBodyLength: 10,
          value: Buffer.alloc(10),
        }),
    ],
    [
      'a wrong magic byte',
      (o: number) =>
        response({ opcode: GET, opaque: o, magic: 0x80, extras: flagsExtras(FLAGS_UTF8), value: Buffer.from('x') }),
    ],
    ['an unknown data type', (o: number) => response({ opcode: GET, opaque: o, dataType: 7 })],
    ['an opcode that answers another request', (o: number) => response({ opcode: 0x01, opaque: o })],
    [
      'a body longer than any memcached item',
      (o: number) => response({ opcode: GET, opaque: o, totalBodyLength: 0xfffffff0 }),
    ],
  ])('%s: the request fails as PROTOCOL, the socket is replaced, the next request works', async (_, craft) => {
    client = clientFor();
    let crafted = true;
    server.onRequest = (req) => (crafted ? ((crafted = false), craft(req.opaque)) : hit(req.opaque, 'fine'));
    const error = await failure(client.get('k'));
    expect(error.code).toBe('PROTOCOL');
    expect(await client.get('k')).toBe('fine');
    expect(server.connections).toBeGreaterThanOrEqual(2);
  });

  it('a protocol error fails every request in flight on that socket at once, not at their deadlines', async () => {
    client = clientFor({ timeout: 5000 });
    let first = true;
    server.onRequest = (req) =>
      first ? ((first = false), response({ opcode: GET, opaque: req.opaque, magic: 0x00 })) : 'ignore';
    const started = performance.now();
    const results = await Promise.allSettled([client.get('a'), client.get('b'), client.get('c')]);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('a half-received frame is never carried into the next connection', async () => {
    client = clientFor();
    const first = server.connections + 1;
    server.onRequest = (req, connection) => {
      if (connection === first) {
        const bytes = hit(req.opaque, 'first connection');
        setTimeout(() => server.sockets.forEach((s) => s.destroy()), 20);
        return bytes.subarray(0, 13);
      }
      return hit(req.opaque, 'second connection');
    };
    expect((await failure(client.get('k'))).code).toBe('CONNECTION');
    expect(await client.get('k')).toBe('second connection');
  });

  it('answers for requests nobody sent (unknown ids) are ignored', async () => {
    client = clientFor();
    server.onRequest = (req) => Buffer.concat([hit(req.opaque + 1000, 'not yours'), hit(req.opaque, 'yours')]);
    expect(await client.get('k')).toBe('yours');
  });

  it('a declared body over maxItemSize is skipped as it streams, without buffering it: a miss, memory flat', async () => {
    client = clientFor({ maxItemSize: 1024 * 1024, timeout: 10_000 });
    const bodyLength = 256 * 1024 * 1024;
    let streamed = 0;
    let done = false;
    let after: Buffer | undefined;
    server.onRequest = (req) => {
      const socket = [...server.sockets][0];
      if (req.key !== 'huge') {
        // answered behind the whole streamed body, as a real server would
        if (done) return hit(req.opaque, 'after');
        after = hit(req.opaque, 'after');
        return 'ignore';
      }
      const head = response({
        opcode: GET,
        opaque: req.opaque,
        extras: flagsExtras(FLAGS_UTF8),
        totalBodyLength: bodyLength + 4,
      });
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const pump = () => {
        while (streamed < bodyLength) {
          streamed += chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
        done = true;
        if (after) socket.write(after);
      };
      setImmediate(pump);
      return head;
    };
    const before = process.memoryUsage().rss;
    expect(await client.get('huge')).toBeUndefined();
    // the next request is answered once the skipped body has gone by: the stream is still in step
    expect(await client.get('next')).toBe('after');
    expect(streamed).toBe(bodyLength);
    const grown = process.memoryUsage().rss - before;
    expect(grown).toBeLessThan(96 * 1024 * 1024);
    expect(client.stats().undecodable).toBe(1);
  }, 30_000);

  it('random bytes in answer to a request: every request settles within its deadline', async () => {
    client = clientFor({ timeout: 200 });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.boolean(), async (raw, validMagic) => {
        const bytes = Buffer.from(raw);
        if (validMagic) bytes[0] = 0x81;
        server.onRequest = () => bytes;
        const started = performance.now();
        const outcome = await Promise.allSettled([client.get('x'), client.set('y', 'v')]);
        expect(performance.now() - started).toBeLessThan(200 + 150);
        for (const r of outcome) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(MemcachedError);
      }),
      { numRuns: 40 },
    );
  });

  it('in its own OS process, a client fed garbage for every request keeps running and settles every call', async () => {
    // one crafted answer per connection (the first request's), then the connection is closed
    const answered = new Set<number>();
    server.onRequest = (req, connection) => {
      if (answered.has(connection)) return 'close';
      answered.add(connection);
      const kind = connection % 4;
      if (kind === 0) return Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + req.opaque) & 0xff));
      if (kind === 1)
        return response({
          opcode: GET,
          opaque: req.opaque,
          keyLength: 500,
          extrasLength: 200,
          totalBodyLength: 3,
          value: Buffer.alloc(3),
        });
      if (kind === 2) return hit(req.opaque, 'ok').subarray(0, 20);
      return 'close';
    };
    const run = startWorker(worker, { servers: server.address, calls: 300 });
    const result = await run.result;
    expect(result.settled).toBe(300);
  }, 30_000);
});
