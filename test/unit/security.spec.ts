import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FLAG_ENCRYPTED, ValueCipher } from '../../lib/codec/value-cipher.js';
import { FLAGS_MAGIC } from '../../lib/codec/value.codec.js';
import { tlsSetupFailed } from '../../lib/memcached.messages.js';
import { readMemcachedEnv } from '../../lib/config/memcached-env.js';
import { encryptionKeysOf, MemcachedConfigError, resolveOptions, tlsOf } from '../../lib/config/memcached-options.js';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n';
const key32 = () => randomBytes(32);
const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
};

describe('tls option', () => {
  it('true and false', () => {
    expect(resolveOptions({ tls: true }).tls).toBe(true);
    expect(tlsOf(resolveOptions({ tls: true }))).toEqual({ minVersion: 'TLSv1.2' });
    expect(resolveOptions({ tls: false }).tls).toBe(false);
    expect(tlsOf(resolveOptions({}))).toBeUndefined();
  });

  it('keeps the settings apart from the resolved options: inspecting them shows no key or passphrase', () => {
    const resolved = resolveOptions({
      tls: { ca: PEM, cert: PEM, key: KEY_PEM, passphrase: 'pass-phrase-xyz', servername: 'cache.internal' },
    });
    expect(tlsOf(resolved)).toMatchObject({
      ca: PEM,
      key: KEY_PEM,
      passphrase: 'pass-phrase-xyz',
      servername: 'cache.internal',
      rejectUnauthorized: true,
    });
    const shown = inspect(resolved, { depth: null, showHidden: true });
    expect(shown).not.toContain('SECRETKEYMATERIAL');
    expect(shown).not.toContain('pass-phrase-xyz');
  });

  it.each([
    ['tls', 'yes', /option "tls"/],
    ['tls', [PEM], /option "tls"/],
    ['tls.ca', { ca: 'not a pem' }, /option "tls\.ca".*not a pem.*PEM/],
    ['tls.ca', { ca: [] }, /option "tls\.ca"/],
    ['tls.cert', { cert: PEM }, /option "tls\.key".*together/],
    ['tls.key', { key: KEY_PEM }, /option "tls\.cert".*together/],
    ['tls.servername', { servername: 'bad name/../' }, /option "tls\.servername"/],
    ['tls.rejectUnauthorized', { rejectUnauthorized: 'false' }, /option "tls\.rejectUnauthorized"/],
    ['tls.minVersion', { minVersion: 'TLSv1' }, /option "tls\.minVersion".*TLSv1/],
    ['tls.verify', { verify: true }, /option "tls\.verify"/],
  ])('%s: a bad value fails naming it (%j)', (_, tls, message) => {
    const error = thrown(() => resolveOptions({ tls } as never));
    expect(error).toBeInstanceOf(MemcachedConfigError);
    expect(error.message).toMatch(message);
  });

  it('a bad key is refused without showing it', () => {
    const error = thrown(() => resolveOptions({ tls: { cert: PEM, key: 'SECRETKEYMATERIAL' } }));
    expect(error.message).toMatch(/tls\.key/);
    expect(error.message).not.toContain('SECRETKEYMATERIAL');
  });
});

describe('encryption option', () => {
  it('the first key encrypts; ids are visible, key bytes are not', () => {
    const [a, b] = [key32(), key32()];
    const resolved = resolveOptions({
      encryption: {
        keys: [
          { id: 2, key: a.toString('base64') },
          { id: 1, key: b },
        ],
      },
    });
    expect(resolved.encryptionKeyIds).toEqual([2, 1]);
    expect(encryptionKeysOf(resolved)).toEqual([
      { id: 2, key: a },
      { id: 1, key: b },
    ]);
    const shown = inspect(resolved, { depth: null, showHidden: true });
    expect(shown).not.toContain(a.toString('base64'));
    expect(shown).not.toContain(a.toString('hex').slice(0, 16));
  });

  it("copies the caller's Buffer, so zeroing it later changes nothing", () => {
    const raw = key32();
    const copy = Buffer.from(raw);
    const resolved = resolveOptions({ encryption: { keys: [{ id: 1, key: raw }] } });
    raw.fill(0);
    expect(encryptionKeysOf(resolved)![0].key).toEqual(copy);
  });

  const secret = randomBytes(31).toString('base64');
  it.each([
    ['no keys', { keys: [] }, /encryption\.keys.*1 to 8/],
    [
      'nine keys',
      { keys: Array.from({ length: 9 }, (_, i) => ({ id: i + 1, key: key32() })) },
      /encryption\.keys.*1 to 8/,
    ],
    ['id 0', { keys: [{ id: 0, key: key32() }] }, /encryption\.keys\[0\]\.id.*1 to 255/],
    ['id 256', { keys: [{ id: 256, key: key32() }] }, /encryption\.keys\[0\]\.id/],
    [
      'a repeated id',
      {
        keys: [
          { id: 3, key: key32() },
          { id: 3, key: key32() },
        ],
      },
      /encryption\.keys\[1\]\.id.*no other key/,
    ],
    ['a 31-byte key', { keys: [{ id: 1, key: secret }] }, /encryption\.keys\[0\]\.key.*32 bytes/],
    ['hex instead of base64', { keys: [{ id: 1, key: key32().toString('hex') }] }, /encryption\.keys\[0\]\.key/],
    ['an unknown field', { keys: [{ id: 1, key: key32() }], algorithm: 'aes' }, /encryption\.algorithm/],
    ['no keys field', {}, /option "encryption"/],
  ])('%s fails naming the option, never showing a key', (_, encryption, message) => {
    const error = thrown(() => resolveOptions({ encryption } as never));
    expect(error).toBeInstanceOf(MemcachedConfigError);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain(secret);
  });

  it('needs the native value format, and pylibmc needs a JSON serializer', () => {
    expect(
      thrown(() => resolveOptions({ encryption: { keys: [{ id: 1, key: key32() }] }, valueFormat: 'pylibmc' })).message,
    ).toMatch(/encryption.*valueFormat "native"/);
    expect(thrown(() => resolveOptions({ valueFormat: 'pylibmc', serializer: 'structured' })).message).toMatch(
      /serializer.*"auto" or "json"/,
    );
    expect(thrown(() => resolveOptions({ valueFormat: 'php' as never })).message).toMatch(/valueFormat.*php/);
  });
});

describe('security env variables', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-env-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, PEM);

  it('MEMCACHED_TLS and the file variables', () => {
    expect(readMemcachedEnv({ MEMCACHED_TLS: 'true' }).tls).toBe(true);
    expect(readMemcachedEnv({ MEMCACHED_TLS: 'off' }).tls).toBe(false);
    expect(readMemcachedEnv({ MEMCACHED_TLS_CA_FILE: caFile, MEMCACHED_TLS_SERVERNAME: 'cache.internal' }).tls).toEqual(
      { ca: Buffer.from(PEM), servername: 'cache.internal' },
    );
    expect(thrown(() => readMemcachedEnv({ MEMCACHED_TLS: 'maybe' })).message).toMatch(/MEMCACHED_TLS="maybe"/);
    expect(thrown(() => readMemcachedEnv({ MEMCACHED_TLS_CA_FILE: join(dir, 'missing.pem') })).message).toMatch(
      /MEMCACHED_TLS_CA_FILE=.*missing\.pem.*ENOENT/,
    );
    expect(thrown(() => readMemcachedEnv({ MEMCACHED_TLS: 'false', MEMCACHED_TLS_CA_FILE: caFile })).message).toMatch(
      /MEMCACHED_TLS="false"/,
    );
  });

  it('MEMCACHED_BUS_KEYS: id:base64 pairs like the encryption keys, and only beside MEMCACHED_BUS_URL', () => {
    const a = Buffer.alloc(32, 1).toString('base64');
    const options = readMemcachedEnv({
      // only parsed, never connected to
      MEMCACHED_BUS_URL: 'nats://bus.internal:4222',
      MEMCACHED_BUS_KEYS: `2:${a},1:${a}`,
    });
    expect(options.bus?.keys?.map((k) => k.id)).toStrictEqual([2, 1]);
    const alone = thrown(() => readMemcachedEnv({ MEMCACHED_BUS_KEYS: `1:${a}` }));
    expect(alone.message).toMatch(/MEMCACHED_BUS_KEYS.*MEMCACHED_BUS_URL/);
    expect(alone.message).not.toContain(a);
    const bad = thrown(() => readMemcachedEnv({ MEMCACHED_BUS_URL: 'nats://h:4222', MEMCACHED_BUS_KEYS: `x:${a}` }));
    expect(bad.message).toMatch(/MEMCACHED_BUS_KEYS/);
    expect(bad.message).not.toContain(a);
  });

  it('MEMCACHED_ENCRYPTION_KEYS: id:base64 pairs, the current first; a bad list never shows a key', () => {
    const [a, b] = [key32().toString('base64'), key32().toString('base64')];
    const options = readMemcachedEnv({ MEMCACHED_ENCRYPTION_KEYS: `7:${a}, 3:${b}` });
    expect(resolveOptions(options).encryptionKeyIds).toEqual([7, 3]);
    for (const bad of [`${a}`, `7=${a}`, `7:${a};3:${b}`]) {
      const error = thrown(() => readMemcachedEnv({ MEMCACHED_ENCRYPTION_KEYS: bad }));
      expect(error.message).toMatch(/MEMCACHED_ENCRYPTION_KEYS/);
      expect(error.message).not.toContain(a.slice(0, 20));
    }
    expect(readMemcachedEnv({ MEMCACHED_VALUE_FORMAT: 'pylibmc' }).valueFormat).toBe('pylibmc');
    expect(readMemcachedEnv({ MEMCACHED_HASHING: 'ketama-plain' }).hashing).toBe('ketama-plain');
  });
});

describe('ValueCipher', () => {
  const FLAGS = (FLAGS_MAGIC | FLAG_ENCRYPTED) >>> 0;
  const wireKey = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 });
  const body = fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a));

  it('opens what it sealed, with the inner flags, for any key, flags and body (property)', () => {
    const cipher = new ValueCipher([{ id: 9, key: key32() }]);
    fc.assert(
      fc.property(wireKey, body, fc.nat(), (wire, bytes, flags) => {
        const sealed = cipher.seal(wire, { bytes, flags });
        expect(sealed.flags).toBe(FLAGS);
        expect(sealed.bytes[1]).toBe(9);
        expect(cipher.open(wire, sealed.bytes, sealed.flags)).toEqual({ bytes, flags: flags >>> 0 });
      }),
      { numRuns: 300 },
    );
  });

  it('any changed byte, another key, other flags, a truncated body or an unknown key id: undefined (property)', () => {
    const cipher = new ValueCipher([{ id: 1, key: key32() }]);
    fc.assert(
      fc.property(wireKey, body, fc.nat(), fc.integer({ min: 0, max: 255 }), (wire, bytes, at, bits) => {
        const sealed = cipher.seal(wire, { bytes, flags: 0 }).bytes;
        const tampered = Buffer.from(sealed);
        tampered[at % tampered.length] ^= bits === 0 ? 1 : bits;
        expect(cipher.open(wire, tampered, FLAGS)).toBeUndefined();
        expect(cipher.open(`${wire}x`, sealed, FLAGS)).toBeUndefined();
        expect(cipher.open(wire, sealed, FLAGS | 1)).toBeUndefined();
        expect(cipher.open(wire, sealed.subarray(0, sealed.length - 1), FLAGS)).toBeUndefined();
        expect(new ValueCipher([{ id: 2, key: key32() }]).open(wire, sealed, FLAGS)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on hostile bytes (property)', () => {
    const cipher = new ValueCipher([{ id: 1, key: key32() }]);
    fc.assert(
      fc.property(body, (bytes) => {
        if (bytes.length > 1) bytes[0] = 1;
        if (bytes.length > 2) bytes[1] = 1;
        expect(cipher.open('k', bytes, FLAGS)).toBeUndefined();
      }),
    );
  });

  it('rotation: a cipher with the new key first reads both; the old key alone cannot read new values', () => {
    const [oldKey, newKey] = [
      { id: 1, key: key32() },
      { id: 2, key: key32() },
    ];
    const before = new ValueCipher([oldKey]).seal('k', { bytes: Buffer.from('old'), flags: 5 });
    const rotated = new ValueCipher([newKey, oldKey]);
    const after = rotated.seal('k', { bytes: Buffer.from('new'), flags: 5 });
    expect(after.bytes[1]).toBe(2);
    expect(rotated.open('k', before.bytes, before.flags)?.bytes.toString()).toBe('old');
    expect(rotated.open('k', after.bytes, after.flags)?.bytes.toString()).toBe('new');
    expect(new ValueCipher([oldKey]).open('k', after.bytes, after.flags)).toBeUndefined();
  });

  it('uses a fresh IV each time: the same value sealed twice differs', () => {
    const cipher = new ValueCipher([{ id: 1, key: key32() }]);
    const value = { bytes: Buffer.from('same'), flags: 0 };
    expect(cipher.seal('k', value).bytes.equals(cipher.seal('k', value).bytes)).toBe(false);
  });
});

describe('TLS setup errors name the setting to check', () => {
  it('an encrypted key that a wrong passphrase decrypts to bytes that are no key still points at tls.passphrase', () => {
    const undecodable = 'error:1E08010C:DECODER routines::unsupported';
    expect(tlsSetupFailed('ERR_OSSL_UNSUPPORTED', undecodable, true)).toMatch(/check tls\.passphrase/);
    expect(tlsSetupFailed('ERR_OSSL_BAD_DECRYPT', 'bad decrypt', true)).toMatch(/check tls\.passphrase/);
    // a plain key that is not one: PEM text and the certificate, not the passphrase
    expect(tlsSetupFailed('ERR_OSSL_UNSUPPORTED', undecodable, false)).not.toMatch(/passphrase/);
  });
});
