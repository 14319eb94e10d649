import memjs from 'memjs';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedError } from '../../lib/index.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';

const TIMEOUT = 200;
const SLACK = 150; // timer and scheduling slack on a shared 2-core machine

async function settleTime(promise: Promise<unknown>): Promise<{ ms: number; error?: unknown; value?: unknown }> {
  const started = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe('MemcachedClient when memcached is sick', () => {
  let daemon: MemcachedDaemon;
  let client: MemcachedClient;
  const warnings: string[] = [];
  const logger = { log() {}, error: (m: string) => warnings.push(m), warn: (m: string) => warnings.push(m) };

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start();
  });
  afterEach(() => client?.close());
  afterAll(async () => {
    await daemon?.kill();
  });

  it('settles a get against a SIGSTOPped server within the configured timeout', async () => {
    // breaker off: every request here must meet the frozen server and its own deadline
    client = new MemcachedClient({ servers: daemon.address, timeout: TIMEOUT, breakerThreshold: 0, logger: false });
    await client.set('k', 'v');
    await daemon.pause();
    try {
      const single = await settleTime(client.get('k'));
      expect(single.error).toBeInstanceOf(MemcachedError);
      expect(single.error).toMatchObject({ code: 'TIMEOUT', operation: 'get', node: daemon.address });
      expect(single.ms).toBeLessThan(TIMEOUT + SLACK);
      const burst = await Promise.all(Array.from({ length: 50 }, (_, i) => settleTime(client.get(`k${i}`))));
      expect(burst.every((r) => r.error instanceof MemcachedError)).toBe(true);
      expect(Math.max(...burst.map((r) => r.ms))).toBeLessThan(TIMEOUT + SLACK);
    } finally {
      daemon.resume();
    }
    await sleep(TIMEOUT);
    await expect(client.get('k')).resolves.toBe('v');
  });

  it('getOrSet serves the loader result within the timeout while the server is frozen', async () => {
    client = new MemcachedClient({ servers: daemon.address, timeout: TIMEOUT, logger });
    await daemon.pause();
    try {
      const result = await settleTime(client.getOrSet('frozen', async () => 'from db'));
      expect(result.value).toBe('from db');
      expect(result.ms).toBeLessThan(TIMEOUT + SLACK);
    } finally {
      daemon.resume();
    }
    expect(warnings.some((w) => /cache bypassed: memcached get on .* failed: no answer within 200 ms/.test(w))).toBe(
      true,
    );
  });

  it('fails fast with a CONNECTION error naming the node when the server is down, then recovers', async () => {
    client = new MemcachedClient({ servers: daemon.address, timeout: TIMEOUT, logger: false });
    await client.set('k', 'v');
    await daemon.kill();
    const down = await settleTime(client.get('k'));
    expect(down.error).toMatchObject({ name: 'MemcachedError', code: 'CONNECTION', node: daemon.address });
    expect(down.ms).toBeLessThan(TIMEOUT);
    let loads = 0;
    await expect(client.getOrSet('k', () => (loads++, 'db'))).resolves.toBe('db');
    expect(loads).toBe(1);
    await daemon.restart();
    await expect(client.set('k', 'again')).resolves.toBe(true);
    await expect(client.get('k')).resolves.toBe('again');
  });

  describe('server closes the socket mid-request', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await new FaultProxy(daemon.port).start();
    });
    afterAll(() => proxy?.stop());

    it('memjs alone leaves the request pending past its own timeout (the bug we work around)', async () => {
      const raw = memjs.Client.create(proxy.address, { timeout: TIMEOUT / 1000, retries: 1, logger: { log() {} } });
      try {
        await raw.set('warm', 'x');
        proxy.closeOnNextRequest();
        const outcome = await Promise.race([
          raw.get('warm').then(
            () => 'settled',
            () => 'settled',
          ),
          sleep(TIMEOUT * 4).then(() => 'pending'),
        ]);
        expect(outcome).toBe('pending');
      } finally {
        raw.close();
      }
    });

    it('our client settles at once with a CONNECTION error and the next request reconnects', async () => {
      client = new MemcachedClient({ servers: proxy.address, timeout: TIMEOUT, logger: false });
      await client.set('warm', 'x');
      proxy.closeOnNextRequest();
      const closed = await settleTime(client.get('warm'));
      expect(closed.error).toMatchObject({ code: 'CONNECTION', operation: 'get', node: proxy.address });
      expect(closed.ms).toBeLessThan(TIMEOUT + SLACK);
      await expect(client.get('warm')).resolves.toBe('x');
    });

    it('requests pipelined behind the lost one settle too', async () => {
      client = new MemcachedClient({ servers: proxy.address, timeout: TIMEOUT, logger: false });
      await client.set('warm', 'x');
      proxy.closeOnNextRequest();
      const all = await Promise.all([1, 2, 3].map(() => settleTime(client.get('warm'))));
      expect(Math.max(...all.map((r) => r.ms))).toBeLessThan(TIMEOUT + SLACK);
    });
  });

  it('never shows credentials in errors, logs or when the client is inspected', async () => {
    await daemon.restart();
    const secret = 'hunter2-secret';
    client = new MemcachedClient({
      servers: daemon.address,
      username: 'app',
      password: secret,
      timeout: TIMEOUT,
      logger,
    });
    const error = await client.get('k').catch((e: unknown) => e);
    await client.getOrSet('k', () => 1);
    const url = new MemcachedClient({ servers: `app:${secret}@${daemon.address}`, logger: false });
    const seen = [
      String(error),
      JSON.stringify(error),
      inspect(error, { depth: 5 }),
      inspect(client, { depth: 5 }),
      JSON.stringify(client),
      inspect(url, { depth: 5 }),
      ...warnings,
    ].join('\n');
    url.close();
    expect(seen).not.toContain(secret);
    expect(() => new MemcachedClient({ servers: `app:${secret}@host:notaport` })).toThrow(/app:\*\*\*@host:notaport/);
    try {
      new MemcachedClient({ servers: `app:${secret}@host:notaport` });
    } catch (e) {
      expect(String(e)).not.toContain(secret);
    }
  });
});
