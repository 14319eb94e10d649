/**
 * TLS to memcached (memcached 1.5.13+ started with `-Z -o ssl_chain_cert=...,ssl_key=...`).
 * PEM text or Buffers. The private key is never logged or shown when the client is inspected.
 *
 * @example
 * tls: { ca: readFileSync('/etc/memcached/ca.pem'), servername: 'cache.internal' }
 */
export interface MemcachedTlsOptions {
  /** Certificate authorities to trust instead of Node's built-in list (a private CA). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate, for servers that verify clients (`ssl_verify_mode`). Needs `key`. */
  cert?: string | Buffer;
  /** The client certificate's private key. Needs `cert`. */
  key?: string | Buffer;
  /** Passphrase of an encrypted `key`. */
  passphrase?: string;
  /** Name the server's certificate must carry; default: the host as written in `servers`. */
  servername?: string;
  /** Refuse servers whose certificate does not verify. Default true; false only for tests. */
  rejectUnauthorized?: boolean;
  /** Lowest protocol version offered. Default `TLSv1.2` (memcached's own minimum). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/**
 * Encrypted values (AES-256-GCM): memcached and anyone reading its memory or its network see
 * ciphertext only. The memcached key and the format flags are authenticated with each value, so
 * a ciphertext copied to another key does not decrypt. Reads fail closed: an entry that is not
 * encrypted, or that no key here decrypts, is a miss (counted in `stats().undecryptable`).
 *
 * @example
 * encryption: { keys: [{ id: 2, key: process.env.CACHE_KEY_2! }, { id: 1, key: process.env.CACHE_KEY_1! }] }
 */
export interface MemcachedEncryptionOptions {
  /**
   * 32-byte keys, as Buffers or base64 text, each with an id from 1 to 255 stored with every
   * value. The first key encrypts; the others (at most 7) only decrypt, so entries written before
   * a rotation stay readable until they expire.
   */
  keys: Array<{ id: number; key: string | Buffer }>;
}

/**
 * How plain values are laid out for other clients on the same pool. `native` (default): our own
 * flags, which keep every type exactly. `pylibmc`: pylibmc's flags (also libmemcached-based C
 * clients using them): strings, bytes and integers cross as they are; other JSON values carry a
 * JSON flag that a small pylibmc subclass reads (see docs/sharing-a-pool.md).
 */
export type MemcachedValueFormat = 'native' | 'pylibmc';
