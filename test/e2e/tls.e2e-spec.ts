import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedError, type MemcachedModuleOptions } from '../../lib/index.js';
import { MemcachedDaemon, sleep } from '../support/memcached-daemon.js';
import { makeTestPki, type TestPki } from '../support/tls-certs.js';

// Debian's memcached 1.6.18 is built with TLS (-Z); each daemon here gets a throwaway PKI
describe('TLS against real memcached -Z daemons', () => {
  let pki: TestPki;
  let tlsDaemon: MemcachedDaemon;
  let mutualDaemon: MemcachedDaemon;
  let saslDaemon: MemcachedDaemon;
  let plainDaemon: MemcachedDaemon;
  const clients: MemcachedClient[] = [];
  const client = (options: MemcachedModuleOptions) => {
    const c = new MemcachedClient({ logger: false, timeout: 1000, ...options });
    clients.push(c);
    return c;
  };
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (e: unknown) => e as MemcachedError,
    );

  beforeAll(async () => {
    pki = makeTestPki();
    const server = { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile };
    [tlsDaemon, mutualDaemon, saslDaemon, plainDaemon] = await Promise.all([
      MemcachedDaemon.start({ tls: server }),
      MemcachedDaemon.start({ tls: { ...server, clientCaFile: pki.caFile } }),
      MemcachedDaemon.start({ tls: server, saslUsers: [{ username: 'app', password: 'tls+sasl ✓' }] }),
      MemcachedDaemon.start(),
    ]);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all([tlsDaemon, mutualDaemon, saslDaemon, plainDaemon].map((d) => d?.kill()));
    pki?.remove();
  });

  it('stores and reads over TLS with a private CA, by IP and by host name', async () => {
    for (const servers of [tlsDaemon.address, `localhost:${tlsDaemon.port}`]) {
      const c = client({ servers, tls: { ca: pki.ca } });
      const value = { user: 1, name: 'Ada', bytes: 'x'.repeat(50_000) };
      await c.set('tls:k', value);
      expect(await c.get('tls:k')).toStrictEqual(value);
      const [ping] = await c.ping();
      expect(ping).toMatchObject({ ok: true, version: expect.stringMatching(/^1\./) });
    }
  });

  // memcached leaves the rest of a TLS record unread after a short read; without a nudge,
  // 20 pipelined 1 KB sets were never answered
  it.each([
    [20, 1000],
    [1000, 1000],
    [40, 5000],
    [30, 100_000],
  ])('answers %i pipelined sets of %i bytes, and the gets after them', async (count, size) => {
    const c = client({ servers: tlsDaemon.address, tls: { ca: pki.ca }, retries: 0 });
    const value = (i: number) => `${i}:`.padEnd(size, 'v');
    await Promise.all(Array.from({ length: count }, (_, i) => c.set(`burst:${size}:${i}`, value(i))));
    const read = await Promise.all(Array.from({ length: count }, (_, i) => c.get(`burst:${size}:${i}`)));
    expect(read).toStrictEqual(Array.from({ length: count }, (_, i) => value(i)));
  });

  it('refuses a server whose certificate another CA signed: a TLS error naming tls.ca, and getOrSet still serves from the source', async () => {
    const c = client({ servers: tlsDaemon.address, tls: { ca: pki.otherCa }, breakerThreshold: 0 });
    const error = await failure(c.get('k'));
    expect(error).toBeInstanceOf(MemcachedError);
    expect(error).toMatchObject({ code: 'TLS', node: tlsDaemon.address });
    expect(error!.message).toMatch(/TLS handshake failed .*check tls\.ca/);
    expect(await c.getOrSet('k', async () => 'from the source')).toBe('from the source');
    // nothing was written to a server that did not verify
    const trusted = client({ servers: tlsDaemon.address, tls: { ca: pki.ca } });
    expect(await trusted.get('k')).toBeUndefined();
  });

  it('refuses a certificate for another name: the error points at tls.servername', async () => {
    const c = client({ servers: tlsDaemon.address, tls: { ca: pki.ca, servername: 'cache.example.org' } });
    const error = await failure(c.get('k'));
    expect(error).toMatchObject({ code: 'TLS' });
    expect(error!.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID.*tls\.servername/);
  });

  it('a TLS client on a plaintext server and a plaintext client on a TLS server both fail within the deadline, never hang', async () => {
    const tlsToPlain = client({ servers: plainDaemon.address, tls: { ca: pki.ca }, timeout: 400 });
    const plainToTls = client({ servers: tlsDaemon.address, timeout: 400 });
    for (const c of [tlsToPlain, plainToTls]) {
      const started = Date.now();
      const error = await failure(c.get('k'));
      expect(error).toBeInstanceOf(MemcachedError);
      expect(Date.now() - started).toBeLessThan(400 + 300);
    }
    expect((await failure(tlsToPlain.get('k')))!.code).toBe('TLS');
  });

  it('mutual TLS: the server refuses a client without a certificate and serves one with it', async () => {
    const anonymous = client({ servers: mutualDaemon.address, tls: { ca: pki.ca }, timeout: 500 });
    const refused = await failure(anonymous.set('m', 'v'));
    expect(refused).toBeInstanceOf(MemcachedError);
    const [ping] = await anonymous.ping();
    expect(ping.ok).toBe(false);

    const c = client({ servers: mutualDaemon.address, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    await c.set('m', 'mutual');
    expect(await c.get('m')).toBe('mutual');
  });

  it('TLS and SASL together: right credentials work, wrong ones fail as AUTH', async () => {
    const good = client({ servers: saslDaemon.address, tls: { ca: pki.ca }, username: 'app', password: 'tls+sasl ✓' });
    await good.set('s', [1, 2, 3]);
    expect(await good.get('s')).toStrictEqual([1, 2, 3]);
    const bad = client({ servers: saslDaemon.address, tls: { ca: pki.ca }, username: 'app', password: 'wrong' });
    expect(await failure(bad.get('s'))).toMatchObject({ code: 'AUTH' });
  });

  it('keeps the deadline and the breaker over TLS: a frozen node times out, is skipped, and is used again when it is back', async () => {
    const c = client({
      servers: tlsDaemon.address,
      tls: { ca: pki.ca },
      timeout: 200,
      breakerThreshold: 2,
      breakerCooldown: 100,
    });
    await c.set('b', 'before');
    await tlsDaemon.pause();
    try {
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        expect(await c.getOrSet(`b${i}`, async () => 'from the source')).toBe('from the source');
        expect(Date.now() - started).toBeLessThan(200 + 250);
      }
      expect(c.nodeStatus()[0].state).toBe('down');
      expect(await failure(c.get('b'))).toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      tlsDaemon.resume();
    }
    for (let i = 0; i < 50 && c.nodeStatus()[0].state === 'down'; i++) await sleep(50);
    expect(c.nodeStatus()[0].state).toBe('up');
    expect(await c.get('b')).toBe('before');
  });

  it('never shows the private key or the passphrase when the client or its options are inspected', () => {
    const c = client({
      servers: mutualDaemon.address,
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, passphrase: 'pp-secret-123' },
    });
    const keyLine = pki.clientKey.toString().split('\n')[1];
    const text = [
      inspect(c, { depth: 12, showHidden: true }),
      JSON.stringify(c),
      inspect((c as unknown as Record<string, unknown>).router, { depth: 12, showHidden: true }),
    ].join('\n');
    expect(text).not.toContain(keyLine);
    expect(text).not.toContain('pp-secret-123');
  });

  it('never shows the private key or its passphrase, even with a TLS connection open (its socket keeps its options)', async () => {
    const c = client({
      servers: mutualDaemon.address,
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.encryptedClientKey, passphrase: pki.clientKeyPassphrase },
    });
    await c.set('inspect', 'me');
    expect(await c.get('inspect')).toBe('me');
    const keyLines = pki.encryptedClientKey.toString().split('\n').slice(1, 3);
    const router = (c as unknown as { router: { nodes: unknown[] } }).router;
    const text = [
      inspect(c, { depth: 12, showHidden: true }),
      inspect(router, { depth: 12, showHidden: true }),
      inspect(router.nodes[0], { depth: 12, showHidden: true }),
    ].join('\n');
    for (const line of keyLines) expect(text).not.toContain(line);
    expect(text).not.toContain(pki.clientKeyPassphrase);
  });

  it('a wrong key passphrase or a bad PEM key is a TLS error with a hint, every time, at once', async () => {
    const cases: Array<[MemcachedModuleOptions['tls'], RegExp]> = [
      [{ ca: pki.ca, cert: pki.clientCert, key: pki.encryptedClientKey, passphrase: 'wrong' }, /check tls\.passphrase/],
      [{ ca: pki.ca, cert: pki.clientCert, key: pki.encryptedClientKey }, /check tls\.passphrase/],
      [
        {
          ca: pki.ca,
          cert: pki.clientCert,
          key: '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n',
        },
        /PEM text/,
      ],
      [{ ca: pki.ca, cert: pki.clientCert, key: pki.strangerKey }, /belongs to the certificate/],
    ];
    for (const [tls, hint] of cases) {
      const c = client({ servers: mutualDaemon.address, tls, timeout: 2000, breakerThreshold: 0 });
      for (let i = 0; i < 4; i++) {
        const started = performance.now();
        const error = await failure(c.get('k'));
        expect(performance.now() - started).toBeLessThan(500);
        expect(error).toBeInstanceOf(MemcachedError);
        expect(error).toMatchObject({ code: 'TLS' });
        expect(error!.message).toMatch(hint);
        expect(error!.message).not.toContain(pki.clientKeyPassphrase);
      }
      expect(await c.getOrSet('g', async () => 'from the source')).toBe('from the source');
    }
  });

  it("a client certificate the server refuses (none, or another CA's) is a TLS error naming tls.cert", async () => {
    for (const tls of [{ ca: pki.ca }, { ca: pki.ca, cert: pki.strangerCert, key: pki.strangerKey }]) {
      const c = client({ servers: mutualDaemon.address, tls, timeout: 1000 });
      const error = await failure(c.set('m', 'v'));
      expect(error).toMatchObject({ code: 'TLS' });
      expect(error!.message).toMatch(/refused this client's certificate: check tls\.cert/);
    }
  });
});
