import { Test } from '@nestjs/testing';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemcachedClient, MemcachedError, MemcachedModule } from '../../lib/index.js';
import { MemcachedDaemon } from '../support/memcached-daemon.js';

const USERS = [
  { username: 'app', password: 's3cret-Pässwörd' },
  { username: 'odd@user', password: 'with:colon @t and spaces ✓' },
];

describe('SASL against a real memcached -S (sasldb made with saslpasswd2)', () => {
  let daemon: MemcachedDaemon;
  const clients: MemcachedClient[] = [];
  const client = (options: object) => {
    const c = new MemcachedClient({ servers: daemon.address, logger: false, timeout: 1000, ...options });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    daemon = await MemcachedDaemon.start({ saslUsers: USERS });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await daemon?.kill();
  });

  it.each(USERS)('authenticates $username and works', async ({ username, password }) => {
    const c = client({ username, password });
    await c.set('k', { by: username });
    expect(await c.get('k')).toStrictEqual({ by: username });
    const [ping] = await c.ping();
    expect(ping.ok).toBe(true);
  });

  it('a wrong password: operations fail as AUTH, the ping says authentication failed, nothing shows the password', async () => {
    const c = client({ username: 'app', password: 'wrong-password-xyz' });
    const error = await c.get('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MemcachedError);
    expect((error as MemcachedError).code).toBe('AUTH');
    expect((error as Error).message).toMatch(/authentication failed/);
    const [ping] = await c.ping();
    expect(ping.ok).toBe(false);
    expect(ping.error).toMatch(/authentication/);
    for (const text of [
      (error as Error).message,
      (error as Error).stack,
      JSON.stringify(ping),
      inspect(c, { depth: 10, showHidden: true }),
      JSON.stringify(c),
    ]) {
      expect(text).not.toContain('wrong-password-xyz');
    }
  });

  it('no credentials: the ping reports authentication required instead of "reachable", and getOrSet still serves from the source', async () => {
    const c = client({});
    const [ping] = await c.ping();
    expect(ping.ok).toBe(false);
    expect(ping.error).toMatch(/authentication required/);
    expect(await c.getOrSet('k', async () => 'from the source')).toBe('from the source');
  });

  it('the startup ping logs the authentication failure, not "reachable"', async () => {
    const logs: string[] = [];
    const logger = {
      log: (m: string) => logs.push(`log ${m}`),
      warn: (m: string) => logs.push(`warn ${m}`),
      error() {},
    };
    const moduleRef = await Test.createTestingModule({
      imports: [MemcachedModule.forRoot({ servers: daemon.address, username: 'app', password: 'nope-nope', logger })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    for (let i = 0; i < 50 && logs.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await app.close();
    expect(logs.some((l) => l.startsWith('warn') && /not reachable.*authentication failed/.test(l))).toBe(true);
    expect(logs.some((l) => /is reachable/.test(l))).toBe(false);
    expect(logs.join('\n')).not.toContain('nope-nope');
  });

  it('inspecting a node, the router or the options never shows the password', () => {
    const c = client({
      username: 'app',
      password: 'hunter2-very-secret',
      servers: `app:other-secret@${daemon.address}`,
    });
    const internals = inspect((c as unknown as Record<string, unknown>).router, { depth: 10, showHidden: true });
    expect(internals).toContain(daemon.address);
    expect(internals).not.toContain('hunter2');
    const options = inspect((c as unknown as Record<string, unknown>).options, { depth: 5, showHidden: true });
    expect(options).not.toContain('hunter2');
  });
});
