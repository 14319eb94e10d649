import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_TTL, normalizeTtl, ttlOrDefault } from '../../lib/codec/ttl.js';
import {
  busKeysOf,
  MemcachedConfigError,
  NUMERIC_OPTIONS,
  passwordOf,
  resolveOptions,
} from '../../lib/config/memcached-options.js';
import { MEMCACHED_ENV_VARIABLES, readMemcachedEnv } from '../../lib/config/memcached-env.js';

const names = Object.keys(NUMERIC_OPTIONS) as Array<keyof typeof NUMERIC_OPTIONS>;
const envOf = Object.fromEntries(Object.entries(MEMCACHED_ENV_VARIABLES).map(([env, option]) => [option, env]));

describe('numeric options are bounded', () => {
  it.each(names)(
    '%s: out-of-range, fractional, non-numeric and null values fail, naming the option and the range',
    (name) => {
      const bound = NUMERIC_OPTIONS[name];
      const bad: unknown[] = [bound.min - 1, bound.max + 1, Number.NaN, Infinity, '5', null, true];
      if (bound.integer) bad.push(bound.min + 0.5);
      for (const value of bad) {
        expect(() => resolveOptions({ [name]: value })).toThrow(MemcachedConfigError);
        expect(() => resolveOptions({ [name]: value })).toThrow(
          new RegExp(`option "${name}".*from ${bound.min} to ${bound.max}`),
        );
      }
      expect(resolveOptions({ [name]: bound.min })).toBeDefined();
      expect(resolveOptions({ [name]: bound.max })).toBeDefined();
    },
  );

  it('any value inside a bound is accepted, any outside rejected (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...names), fc.double({ noNaN: true }), (name, value) => {
        const bound = NUMERIC_OPTIONS[name];
        const ok = value >= bound.min && value <= bound.max && (!bound.integer || Number.isInteger(value));
        if (ok) expect(() => resolveOptions({ [name]: value })).not.toThrow();
        else expect(() => resolveOptions({ [name]: value })).toThrow(MemcachedConfigError);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['timeout above what a Node timer can hold', { timeout: 2 ** 31 }],
    ['a ttl so large that every set would throw', { ttl: 2 ** 32 }],
    ['a leaseTtl above 30 days (memcached would read it as a date in 1970)', { leaseTtl: 2_592_001 }],
  ])('rejects %s', (_, options) => {
    expect(() => resolveOptions(options)).toThrow(MemcachedConfigError);
  });

  it.each(names.filter((n) => envOf[n]))('env variable for %s: same bounds, decimal digits only', (name) => {
    const bound = NUMERIC_OPTIONS[name];
    const env = envOf[name];
    for (const raw of [String(bound.max + 1), '0x10', '+5', '1e3', '-1', '5.5', 'soon']) {
      expect(() => readMemcachedEnv({ [env]: raw })).toThrow(new RegExp(`Invalid ${env}="${raw.replace('+', '\\+')}"`));
    }
    expect(readMemcachedEnv({ [env]: String(bound.max) })).toMatchObject({ [name]: bound.max });
  });
});

describe('servers', () => {
  it.each([
    'h:0x2bcb',
    'h:+11211',
    'h:011211',
    'h:1e4',
    'h:11211.0',
    'h: 11211',
    'h:65536',
    'h:0',
    'h:11211:0x2',
    'h:11211:+2',
    'h:11211:100000',
  ])('rejects %s, naming the entry', (entry) => {
    expect(() => resolveOptions({ servers: entry })).toThrow(/option "servers"/);
  });

  it.each([
    { host: 'a b' },
    { host: '' },
    { host: 'x\ny' },
    { host: 'h', port: 1.5 },
    { host: 'h', weight: 0 },
    { host: 'h', port: '11211' },
  ])('rejects the object form %j', (entry) => {
    expect(() => resolveOptions({ servers: [entry as never] })).toThrow(/option "servers"/);
  });

  it('accepts names, IPv4 and IPv6', () => {
    const nodes = resolveOptions({ servers: 'cache-1.internal:11212:3,10.0.0.5,[::1]:11213' }).nodes;
    expect(nodes.map((n) => [n.host, n.port, n.weight])).toStrictEqual([
      ['cache-1.internal', 11212, 3],
      ['10.0.0.5', 11211, 1],
      ['::1', 11213, 1],
    ]);
  });
});

describe('keyPrefix and credentials', () => {
  it.each(['has space', 'tab\t', 'hash#', 'é', 'x'.repeat(129)])('rejects the key prefix %j', (prefix) => {
    expect(() => resolveOptions({ keyPrefix: prefix })).toThrow(/option "keyPrefix"/);
  });

  it('keeps the password out of what inspecting or serialising the options shows', () => {
    const options = resolveOptions({ username: 'app', password: 'hunter2-secret' });
    expect(passwordOf(options)).toBe('hunter2-secret');
    expect(inspect(options, { depth: 5, showHidden: true })).not.toContain('hunter2');
    expect(JSON.stringify(options)).not.toContain('hunter2');
    const fromUrl = resolveOptions({ servers: 'app:url-secret@cache:11211' });
    expect(inspect(fromUrl, { showHidden: true })).not.toContain('url-secret');
    expect(passwordOf(fromUrl)).toBe('url-secret');
  });
});

describe('TTL at a call', () => {
  it('null, negative, NaN and beyond ten years are refused; undefined is the default', () => {
    for (const bad of [null, -1, Number.NaN, MAX_TTL + 1, '60']) {
      expect(() => ttlOrDefault(bad, 60)).toThrow(/Invalid ttl/);
    }
    expect(ttlOrDefault(undefined, 60)).toBe(60);
    expect(normalizeTtl(0.2)).toBe(1);
  });
});

describe('environment variables for the value format and the HTTP rules', () => {
  it('reads them, and names the variable when one is wrong', () => {
    expect(
      readMemcachedEnv({
        MEMCACHED_SERIALIZER: 'json',
        MEMCACHED_HTTP_CREDENTIAL_HEADERS: 'x-partner, x-tenant',
        MEMCACHED_HTTP_IGNORE_COOKIES: '_ga',
      }),
    ).toMatchObject({
      serializer: 'json',
      http: { credentialHeaders: ['x-partner', 'x-tenant'], ignoreCookies: ['_ga'] },
    });
    expect(() => readMemcachedEnv({ MEMCACHED_SERIALIZER: 'yaml' })).toThrow(/Invalid MEMCACHED_SERIALIZER="yaml"/);
    expect(() => readMemcachedEnv({ MEMCACHED_HTTP_IGNORE_COOKIES: 'a b' })).toThrow(
      /Invalid MEMCACHED_HTTP_IGNORE_COOKIES/,
    );
    expect(() => resolveOptions({ http: { credentialHeaders: ['bad header'] } })).toThrow(
      /option "http.credentialHeaders"/,
    );
    expect(() => resolveOptions({ http: { ignore: [] } as never })).toThrow(/option "http.ignore"/);
  });
});

describe('near cache and bus options', () => {
  const base = { logger: false as const };
  it('accepts a near cache with a bus, and fills in defaults', () => {
    const o = resolveOptions({
      ...base,
      keyPrefix: 'orders:',
      nearCache: {},
      bus: {
        follow: [{ keyPrefix: 'users:', namespace: 'users', evict: 'user-names' }],
        keys: [{ id: 1, key: Buffer.alloc(32, 1) }],
      },
    });
    expect(o.nearCache).toMatchObject({ maxBytes: 64 * 1024 * 1024, ttl: 10, namespaces: '*' });
    expect(o.bus).toMatchObject({
      transport: 'nats',
      url: 'nats://127.0.0.1:4222',
      channel: 'nestjs-memcached.invalidations',
      heartbeat: 1000,
    });
    expect(o.bus!.follow).toStrictEqual([
      { keyPrefix: 'users:', namespace: 'users', evict: 'user-names', allEntries: false },
    ]);
  });

  it.each([
    [{ nearCache: {} }, /"nearCache".*a bus to keep it coherent/],
    [{ nearCache: { maxBytes: 10 }, bus: {} }, /"nearCache.maxBytes": 10/],
    [{ nearCache: { ttl: -1 }, bus: {} }, /"nearCache.ttl": -1/],
    [{ nearCache: { namespaces: ['bad space'] }, bus: {} }, /"nearCache.namespaces"/],
    [{ nearCache: { size: 1 }, bus: {} }, /"nearCache.size"/],
    [{ bus: { transport: 'kafka' } }, /"bus.transport": "kafka"/],
    [{ bus: { transport: 'redis', url: 'nats://x:1' } }, /"bus.url".*redis:\/\/host:port/],
    [{ bus: { url: 'nats://user:secret@host:4222/', transport: 'redis' } }, /\*\*\*/],
    [{ bus: { channel: 'has space' } }, /"bus.channel": "has space"/],
    [{ bus: { heartbeat: 5 } }, /"bus.heartbeat": 5/],
    [{ bus: { follow: [{ namespace: 'users' }], unsafeFollowWithoutKeys: true } }, /"bus.follow\[0\].evict"/],
    [
      { bus: { follow: [{ namespace: 'users', evict: 'users' }], unsafeFollowWithoutKeys: true } },
      /"bus.follow\[0\]".*different namespace/,
    ],
    [{ bus: { follow: [{ namespace: 'users', evict: 'names' }] } }, /"bus.follow".*bus.keys as well/],
    [{ bus: { unsafeFollowWithoutKeys: 'yes' } }, /"bus.unsafeFollowWithoutKeys": "yes"/],
    [{ bus: { keys: [] } }, /"bus.keys".*1 to 8 keys/],
    [{ bus: { keys: [{ id: 0, key: Buffer.alloc(32) }] } }, /"bus.keys\[0\].id": 0/],
    [{ bus: { keys: [{ id: 1, key: 'c2hvcnQ=' }] } }, /"bus.keys\[0\].key": "\*\*\*".*exactly 32 bytes/],
    [
      {
        bus: {
          keys: [
            { id: 1, key: Buffer.alloc(32) },
            { id: 1, key: Buffer.alloc(32) },
          ],
        },
      },
      /"bus.keys\[1\].id": 1.*no other key/,
    ],
    [{ bus: { follow: 'users' } }, /"bus.follow"/],
  ])('rejects %j naming the option', (options, message) => {
    expect(() => resolveOptions({ ...base, ...(options as object) })).toThrow(message);
  });

  it('bus.keys: accepted with follow, kept out of the resolved options (only their ids show)', () => {
    const key = Buffer.alloc(32, 0x5a);
    const o = resolveOptions({
      ...base,
      bus: {
        keys: [
          { id: 2, key },
          { id: 1, key: key.toString('base64') },
        ],
        follow: [{ namespace: 'a', evict: 'b' }],
      },
    });
    expect(o.bus!.keyIds).toStrictEqual([2, 1]);
    expect(busKeysOf(o).map((k) => k.id)).toStrictEqual([2, 1]);
    const shown = inspect(o, { depth: 12, showHidden: true }) + JSON.stringify(o);
    expect(shown).not.toContain(key.toString('base64'));
    expect(shown).not.toContain('5a5a5a5a');
    expect(
      resolveOptions({ ...base, bus: { follow: [{ namespace: 'a', evict: 'b' }], unsafeFollowWithoutKeys: true } }).bus!
        .keyIds,
    ).toStrictEqual([]);
  });

  it('never shows a broker password in an error', () => {
    expect(() => resolveOptions({ ...base, bus: { transport: 'redis', url: 'redis://:hunter2@' } })).toThrow(
      /^(?!.*hunter2)/s,
    );
  });
});

describe('near cache and bus variables', () => {
  it('read the bus from its URL (transport by scheme) and turn the near cache on by its TTL', () => {
    expect(
      readMemcachedEnv({
        MEMCACHED_BUS_URL: 'redis://10.0.0.9:6379',
        MEMCACHED_BUS_CHANNEL: 'inv',
        MEMCACHED_NEAR_CACHE_TTL: '2.5',
      }),
    ).toMatchObject({
      bus: { transport: 'redis', url: 'redis://10.0.0.9:6379', channel: 'inv' },
      nearCache: { ttl: 2.5 },
    });
    expect(readMemcachedEnv({ MEMCACHED_BUS_URL: 'amqp://u:p@h:5672' }).bus).toStrictEqual({
      transport: 'rabbitmq',
      url: 'amqp://u:p@h:5672',
    });
    expect(() => readMemcachedEnv({ MEMCACHED_BUS_URL: 'kafka://u:secret@h:9092' })).toThrow(
      /MEMCACHED_BUS_URL="kafka:\/\/u:\*\*\*@h:9092"/,
    );
    expect(() => readMemcachedEnv({ MEMCACHED_NEAR_CACHE_TTL: '0' })).toThrow(/MEMCACHED_NEAR_CACHE_TTL/);
    // the module refuses a near cache without a bus, naming the option
    expect(() => resolveOptions({ ...readMemcachedEnv({ MEMCACHED_NEAR_CACHE_TTL: '5' }), logger: false })).toThrow(
      /"nearCache"/,
    );
  });
});

describe('metrics: the bounds of per-namespace counting', () => {
  it('defaults to 500 namespaces and 50 families by leading letters, and checks what it is given', () => {
    const resolved = resolveOptions({ logger: false });
    expect(resolved.metrics.namespaces).toBe(500);
    expect(resolved.metrics.families).toBe(50);
    expect(resolved.metrics.family('user-7')).toBe('user');
    const family = (ns: string) => ns.split('-')[0];
    expect(resolveOptions({ logger: false, metrics: { namespaces: 0, families: 3, family } }).metrics).toStrictEqual({
      namespaces: 0,
      families: 3,
      family,
    });
    for (const [metrics, named] of [
      [{ namespaces: -1 }, /"metrics\.namespaces".*-1/],
      [{ namespaces: 10_001 }, /"metrics\.namespaces"/],
      [{ namespaces: 1.5 }, /"metrics\.namespaces"/],
      [{ families: 0 }, /"metrics\.families".*0/],
      [{ families: '10' }, /"metrics\.families"/],
      [{ family: 'user' }, /"metrics\.family"/],
      [{ labels: 3 }, /"metrics\.labels"/],
      ['1000', /"metrics"/],
      [null, /"metrics"/],
    ] as const) {
      expect(() => resolveOptions({ logger: false, metrics: metrics as never })).toThrow(MemcachedConfigError);
      expect(() => resolveOptions({ logger: false, metrics: metrics as never })).toThrow(named);
    }
  });

  it('reads MEMCACHED_METRICS_NAMESPACES and MEMCACHED_METRICS_FAMILIES, naming the variable when one is wrong', () => {
    expect(
      readMemcachedEnv({ MEMCACHED_METRICS_NAMESPACES: '200', MEMCACHED_METRICS_FAMILIES: '5' }).metrics,
    ).toStrictEqual({
      namespaces: 200,
      families: 5,
    });
    expect(() => readMemcachedEnv({ MEMCACHED_METRICS_NAMESPACES: '1e3' })).toThrow(
      /MEMCACHED_METRICS_NAMESPACES="1e3"/,
    );
    expect(() => readMemcachedEnv({ MEMCACHED_METRICS_FAMILIES: '-1' })).toThrow(/MEMCACHED_METRICS_FAMILIES/);
    expect(() =>
      resolveOptions({ ...readMemcachedEnv({ MEMCACHED_METRICS_FAMILIES: '5000' }), logger: false }),
    ).toThrow(/"metrics\.families"/);
  });
});
