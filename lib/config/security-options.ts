import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { CipherKey } from '../codec/value-cipher.js';
import type {
  MemcachedEncryptionOptions,
  MemcachedTlsOptions,
  MemcachedValueFormat,
} from '../interfaces/memcached-security-options.interface.js';

type Fail = (name: string, value: unknown, expected: string) => Error;

const TLS_FIELDS = new Set(['ca', 'cert', 'key', 'passphrase', 'servername', 'rejectUnauthorized', 'minVersion']);
const MAX_OLD_KEYS = 7;

const isPem = (value: unknown): value is string | Buffer =>
  (typeof value === 'string' && value.includes('-----BEGIN')) || (Buffer.isBuffer(value) && value.length > 0);

const preview = (value: unknown) =>
  typeof value === 'string' ? `${value.slice(0, 40)}${value.length > 40 ? '...' : ''}` : value;

/**
 * `tls` as Node's `tls.connect` takes it (undefined: plain TCP). Secrets (key, passphrase) are in
 * the result, so it is kept apart from the resolved options, as the password is.
 */
export function resolveTls(
  tls: boolean | MemcachedTlsOptions | undefined,
  fail: Fail,
): TlsConnectionOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  if (tls === true) return { minVersion: 'TLSv1.2' };
  if (tls === null || typeof tls !== 'object' || Array.isArray(tls)) throw fail('tls', tls, 'true, false or an object');
  for (const name of Object.keys(tls)) {
    if (!TLS_FIELDS.has(name)) throw fail(`tls.${name}`, '(set)', `a known option: ${[...TLS_FIELDS].join(', ')}`);
  }
  const { ca, cert, key, passphrase, servername, rejectUnauthorized, minVersion } = tls;
  if (ca !== undefined && !(isPem(ca) || (Array.isArray(ca) && ca.length > 0 && ca.every(isPem)))) {
    throw fail('tls.ca', preview(ca), 'PEM text (-----BEGIN CERTIFICATE-----...), a Buffer, or a list of them');
  }
  if (cert !== undefined && !isPem(cert)) throw fail('tls.cert', preview(cert), 'PEM text or a Buffer');
  // the key's value is never shown
  if (key !== undefined && !isPem(key)) throw fail('tls.key', '***', 'PEM text or a Buffer');
  if ((cert === undefined) !== (key === undefined))
    throw fail(
      cert === undefined ? 'tls.cert' : 'tls.key',
      '(missing)',
      'a client certificate and its key, given together',
    );
  if (passphrase !== undefined && typeof passphrase !== 'string') throw fail('tls.passphrase', '***', 'a string');
  if (servername !== undefined && !(typeof servername === 'string' && /^[A-Za-z0-9.-]{1,253}$/.test(servername))) {
    throw fail('tls.servername', servername, 'a DNS name');
  }
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== 'boolean')
    throw fail('tls.rejectUnauthorized', rejectUnauthorized, 'true or false');
  if (minVersion !== undefined && minVersion !== 'TLSv1.2' && minVersion !== 'TLSv1.3')
    throw fail('tls.minVersion', minVersion, '"TLSv1.2" or "TLSv1.3"');
  const out: TlsConnectionOptions = {
    minVersion: minVersion ?? 'TLSv1.2',
    rejectUnauthorized: rejectUnauthorized ?? true,
  };
  if (ca !== undefined) out.ca = ca;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  if (passphrase !== undefined) out.passphrase = passphrase;
  if (servername !== undefined) out.servername = servername;
  return out;
}

/** The keys of `encryption`, the current one first; undefined when it is off. Key bytes never appear in an error. */
export function resolveEncryption(
  encryption: MemcachedEncryptionOptions | undefined,
  fail: Fail,
): CipherKey[] | undefined {
  if (encryption === undefined) return undefined;
  if (encryption === null || typeof encryption !== 'object' || !Array.isArray(encryption.keys)) {
    throw fail(
      'encryption',
      typeof encryption === 'object' ? '(an object without keys)' : encryption,
      'an object with keys: [{ id, key }, ...]',
    );
  }
  for (const name of Object.keys(encryption))
    if (name !== 'keys') throw fail(`encryption.${name}`, '(set)', 'a known option: keys');
  const { keys } = encryption;
  if (keys.length === 0 || keys.length > 1 + MAX_OLD_KEYS) {
    throw fail(
      'encryption.keys',
      `${keys.length} keys`,
      `1 to ${1 + MAX_OLD_KEYS} keys: the current one first, then old ones that only decrypt`,
    );
  }
  return resolveKeyList('encryption.keys', keys, fail);
}

/**
 * A list of `{ id, key }` (encryption or bus keys): ids 1 to 255, each once; keys of 32 bytes, a
 * Buffer or base64. Key bytes never appear in an error.
 */
export function resolveKeyList(option: string, keys: unknown[], fail: Fail): CipherKey[] {
  const seen = new Set<number>();
  return keys.map((entry, index) => {
    const name = `${option}[${index}]`;
    if (entry === null || typeof entry !== 'object') throw fail(name, entry, 'an object { id, key }');
    const { id, key } = entry as { id?: unknown; key?: unknown };
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 255)
      throw fail(`${name}.id`, id, 'a whole number from 1 to 255');
    if (seen.has(id)) throw fail(`${name}.id`, id, 'an id no other key has');
    seen.add(id);
    const bytes = Buffer.isBuffer(key)
      ? key
      : typeof key === 'string' && /^[A-Za-z0-9+/]{43}=?$/.test(key.trim())
        ? Buffer.from(key.trim(), 'base64')
        : undefined;
    if (bytes === undefined || bytes.length !== 32) {
      throw fail(`${name}.key`, '***', 'exactly 32 bytes: a Buffer, or base64 text (openssl rand -base64 32)');
    }
    // a copy: the caller's Buffer may be reused or zeroed
    return { id, key: Buffer.from(bytes) };
  });
}

export function resolveValueFormat(format: MemcachedValueFormat | undefined, fail: Fail): MemcachedValueFormat {
  if (format === undefined) return 'native';
  if (format !== 'native' && format !== 'pylibmc') throw fail('valueFormat', format, '"native" or "pylibmc"');
  return format;
}
