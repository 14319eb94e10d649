import type { LoggerService } from '@nestjs/common';
import type {
  MemcachedHttpOptions,
  MemcachedModuleOptions,
  MemcachedSerializer,
} from '../interfaces/memcached-module-options.interface.js';
import { MAX_TTL } from '../codec/ttl.js';
import type { ValueMode } from '../codec/value.codec.js';
import { invalidOption, optionsNotObject, show, unknownOption } from '../memcached.messages.js';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { CipherKey } from '../codec/value-cipher.js';
import type { MemcachedValueFormat } from '../interfaces/memcached-security-options.interface.js';
import { resolveEncryption, resolveTls, resolveValueFormat } from './security-options.js';
import { resolveNearOptions, type ResolvedBusOptions, type ResolvedNearCacheOptions } from './near-options.js';
import {
  DEFAULT_PORT,
  isHostName,
  MAX_WEIGHT,
  type MemcachedNodeAddress,
  parseEntry,
  parseServerList,
  toNode,
} from './server-list.js';

/** Thrown at startup for configuration that cannot work; the message names the option or variable. */
export class MemcachedConfigError extends Error {
  override readonly name = 'MemcachedConfigError';
}

/** The module-wide HTTP caching rules, resolved from the `http` option. */
export interface HttpCachePolicy {
  /** Header names (lower case) that identify the caller; undefined: the built-in list and the name rule. */
  credentialHeaders?: ReadonlySet<string>;
  /** Cookies that never change a response (consent, analytics, theme). */
  ignoreCookies: ReadonlyArray<string | RegExp>;
}

export interface ResolvedMemcachedOptions {
  nodes: MemcachedNodeAddress[];
  username?: string;
  keyPrefix: string;
  ttl: number;
  timeout: number;
  connectTimeout: number;
  retries: number;
  retryDelay: number;
  keepAlive: boolean;
  compressionThreshold: number;
  maxItemSize: number;
  leases: boolean;
  leaseTtl: number;
  leaseWait: number;
  breakerThreshold: number;
  breakerCooldown: number;
  deadNodePolicy: 'miss' | 'rehash';
  hashing: 'ketama' | 'ketama-spy' | 'ketama-plain';
  serializer?: MemcachedSerializer;
  valueMode: ValueMode;
  valueFormat: MemcachedValueFormat;
  /** Whether nodes are reached over TLS (the settings: `tlsOf`). */
  tls: boolean;
  /** The ids of the encryption keys, the current one first (the keys: `encryptionKeysOf`). */
  encryptionKeyIds?: number[];
  http: HttpCachePolicy;
  nearCache?: ResolvedNearCacheOptions;
  bus?: ResolvedBusOptions;
  /** undefined: Nest's Logger. */
  logger: LoggerService | false | undefined;
}

export const DEFAULTS = {
  servers: `127.0.0.1:${DEFAULT_PORT}`,
  keyPrefix: '',
  ttl: 60,
  timeout: 500,
  retries: 0,
  retryDelay: 20,
  keepAlive: true,
  compressionThreshold: 128 * 1024,
  maxItemSize: 1024 * 1024,
  leases: true,
  leaseTtl: 5,
  leaseWait: 2000,
  breakerThreshold: 3,
  breakerCooldown: 250,
  deadNodePolicy: 'miss',
  hashing: 'ketama',
} as const;

/** A numeric option's range and unit, shared by the options and their environment variables. */
export interface NumericBound {
  min: number;
  max: number;
  unit: string;
  /** Whole numbers only. */
  integer: boolean;
}

export const NUMERIC_OPTIONS = {
  ttl: { min: 0, max: MAX_TTL, unit: 'seconds (0 = no expiry)', integer: false },
  timeout: { min: 1, max: 600_000, unit: 'milliseconds', integer: true },
  connectTimeout: { min: 1, max: 600_000, unit: 'milliseconds', integer: true },
  retries: { min: 0, max: 10, unit: 'attempts', integer: true },
  retryDelay: { min: 0, max: 60_000, unit: 'milliseconds', integer: true },
  compressionThreshold: { min: 0, max: 1024 * 1024 * 1024, unit: 'bytes (0 = off)', integer: true },
  maxItemSize: { min: 1024, max: 1024 * 1024 * 1024, unit: 'bytes', integer: true },
  leaseTtl: { min: 1, max: 86_400, unit: 'seconds', integer: true },
  leaseWait: { min: 0, max: 600_000, unit: 'milliseconds', integer: true },
  breakerThreshold: { min: 0, max: 10_000, unit: 'failures (0 = off)', integer: true },
  breakerCooldown: { min: 10, max: 600_000, unit: 'milliseconds', integer: true },
} as const satisfies Record<string, NumericBound>;

export type NumericOption = keyof typeof NUMERIC_OPTIONS;

/** What a numeric option accepts, as an error message says it. */
export function describeBound(bound: NumericBound): string {
  return `${bound.integer ? 'a whole number' : 'a number'} of ${bound.unit} from ${bound.min} to ${bound.max}`;
}

export function withinBound(value: unknown, bound: NumericBound): value is number {
  return (
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!bound.integer || Number.isInteger(value)) &&
    value >= bound.min &&
    value <= bound.max
  );
}

const KNOWN = new Set<string>([
  'servers',
  'username',
  'password',
  'keyPrefix',
  'ttl',
  'timeout',
  'connectTimeout',
  'retries',
  'retryDelay',
  'keepAlive',
  'compressionThreshold',
  'maxItemSize',
  'serializer',
  'logger',
  'breakerThreshold',
  'breakerCooldown',
  'deadNodePolicy',
  'hashing',
  'leases',
  'leaseTtl',
  'leaseWait',
  'http',
  'nearCache',
  'bus',
  'tls',
  'encryption',
  'valueFormat',
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Printable ASCII without space or '#', so a prefixed key can still be sent as it is. */
const KEY_PREFIX = /^[\x21-\x22\x24-\x7e]{0,128}$/;

/** Validates options and fills in defaults. Throws `MemcachedConfigError` naming the bad option. */
export function resolveOptions(options: MemcachedModuleOptions = {}): ResolvedMemcachedOptions {
  if (options === null || typeof options !== 'object') {
    throw new MemcachedConfigError(optionsNotObject(show(options)));
  }
  for (const name of Object.keys(options)) {
    if (!KNOWN.has(name)) throw new MemcachedConfigError(unknownOption(name));
  }
  const fail = (name: string, value: unknown, expected: string) =>
    new MemcachedConfigError(invalidOption(name, value, expected));
  const def = <T>(value: T | undefined, fallback: T): T => (value === undefined ? fallback : value);

  const { nodes, username, password } = resolveServers(options.servers ?? DEFAULTS.servers);
  const str = (name: 'username' | 'password' | 'keyPrefix', value: unknown) => {
    if (value !== undefined && typeof value !== 'string') {
      throw fail(name, name === 'password' ? '***' : value, 'a string');
    }
    return value as string | undefined;
  };
  const num = (name: NumericOption, value: unknown) => {
    const bound = NUMERIC_OPTIONS[name];
    if (!withinBound(value, bound)) throw fail(name, value, describeBound(bound));
    return value;
  };

  const ttl = num('ttl', def(options.ttl, DEFAULTS.ttl));
  const timeout = num('timeout', def(options.timeout, DEFAULTS.timeout));
  const compression = def(options.compressionThreshold, DEFAULTS.compressionThreshold);
  const keepAlive = def(options.keepAlive, DEFAULTS.keepAlive);
  if (typeof keepAlive !== 'boolean') throw fail('keepAlive', keepAlive, 'true or false');
  const leases = def(options.leases, DEFAULTS.leases);
  if (typeof leases !== 'boolean') throw fail('leases', leases, 'true or false');
  const serializer = def(options.serializer, 'auto');
  const custom = typeof serializer === 'object' && serializer !== null;
  if (
    !(serializer === 'auto' || serializer === 'json' || serializer === 'structured') &&
    !(custom && typeof serializer.serialize === 'function' && typeof serializer.deserialize === 'function')
  ) {
    throw fail(
      'serializer',
      serializer,
      '"auto", "json", "structured" or an object with serialize() and deserialize()',
    );
  }
  const logger = options.logger;
  if (logger !== undefined && logger !== false && typeof logger?.warn !== 'function') {
    throw fail('logger', logger, 'a Nest LoggerService or false');
  }
  const keyPrefix = str('keyPrefix', def(options.keyPrefix, DEFAULTS.keyPrefix))!;
  if (!KEY_PREFIX.test(keyPrefix)) {
    throw fail('keyPrefix', keyPrefix, "at most 128 printable ASCII characters, without spaces or '#'");
  }

  const deadNodePolicy = def(options.deadNodePolicy, DEFAULTS.deadNodePolicy);
  if (deadNodePolicy !== 'miss' && deadNodePolicy !== 'rehash')
    throw fail('deadNodePolicy', deadNodePolicy, '"miss" or "rehash"');
  const hashing = def(options.hashing, DEFAULTS.hashing);
  if (hashing !== 'ketama' && hashing !== 'ketama-spy' && hashing !== 'ketama-plain')
    throw fail('hashing', hashing, '"ketama", "ketama-spy" or "ketama-plain"');
  const maxItemSize = num('maxItemSize', def(options.maxItemSize, DEFAULTS.maxItemSize));
  const retryDelay = num('retryDelay', def(options.retryDelay, DEFAULTS.retryDelay));

  const { busKeys, ...near } = resolveNearOptions(options.nearCache, options.bus, keyPrefix, fail);
  const resolved: ResolvedMemcachedOptions = {
    nodes,
    username: str('username', options.username) ?? username,
    keyPrefix,
    ttl: Math.ceil(ttl),
    timeout,
    connectTimeout: num('connectTimeout', def(options.connectTimeout, timeout)),
    retries: num('retries', def(options.retries, DEFAULTS.retries)),
    retryDelay,
    keepAlive,
    compressionThreshold: compression === false ? 0 : num('compressionThreshold', compression),
    maxItemSize,
    leases,
    leaseTtl: num('leaseTtl', def(options.leaseTtl, DEFAULTS.leaseTtl)),
    leaseWait: num('leaseWait', def(options.leaseWait, DEFAULTS.leaseWait)),
    breakerThreshold: num('breakerThreshold', def(options.breakerThreshold, DEFAULTS.breakerThreshold)),
    breakerCooldown: num('breakerCooldown', def(options.breakerCooldown, DEFAULTS.breakerCooldown)),
    deadNodePolicy,
    hashing,
    serializer: custom ? (serializer as MemcachedSerializer) : undefined,
    valueMode: custom ? 'auto' : (serializer as ValueMode),
    valueFormat: resolveValueFormat(options.valueFormat, fail),
    tls: false,
    http: resolveHttp(options.http, fail),
    ...near,
    logger,
  };
  if (resolved.valueFormat === 'pylibmc' && (custom || serializer === 'structured')) {
    throw fail(
      'serializer',
      custom ? '(a custom serializer)' : serializer,
      '"auto" or "json" with valueFormat "pylibmc": values other clients read are JSON',
    );
  }
  const tls = resolveTls(options.tls, fail);
  resolved.tls = tls !== undefined;
  const keys = resolveEncryption(options.encryption, fail);
  if (keys !== undefined && resolved.valueFormat !== 'native') {
    throw fail(
      'encryption',
      '(set)',
      `valueFormat "native": other clients cannot read encrypted values (valueFormat is "${resolved.valueFormat}")`,
    );
  }
  if (keys !== undefined) resolved.encryptionKeyIds = keys.map((k) => k.id);
  // secrets are never properties: inspecting the options, even with showHidden, cannot show them
  secrets.set(resolved, { password: str('password', options.password) ?? password, tls, keys, busKeys });
  return resolved;
}

const secrets = new WeakMap<
  ResolvedMemcachedOptions,
  { password?: string; tls?: TlsConnectionOptions; keys?: CipherKey[]; busKeys?: CipherKey[] }
>();

/** The HMAC keys of `bus.keys`, the current one first (kept apart from the options); empty without keys. */
export function busKeysOf(options: ResolvedMemcachedOptions): CipherKey[] {
  return secrets.get(options)?.busKeys ?? [];
}

/** The SASL password of resolved options (kept apart from them). */
export function passwordOf(options: ResolvedMemcachedOptions): string | undefined {
  return secrets.get(options)?.password;
}

/** The TLS settings of resolved options, private key included (kept apart from them). */
export function tlsOf(options: ResolvedMemcachedOptions): TlsConnectionOptions | undefined {
  return secrets.get(options)?.tls;
}

/** The encryption keys of resolved options, the current one first (kept apart from them). */
export function encryptionKeysOf(options: ResolvedMemcachedOptions): CipherKey[] | undefined {
  return secrets.get(options)?.keys;
}

function resolveHttp(
  http: MemcachedHttpOptions | undefined,
  fail: (name: string, value: unknown, expected: string) => Error,
): HttpCachePolicy {
  if (http === undefined) return { ignoreCookies: [] };
  if (http === null || typeof http !== 'object') throw fail('http', http, 'an object');
  for (const name of Object.keys(http)) {
    if (name !== 'credentialHeaders' && name !== 'ignoreCookies')
      throw fail(
        `http.${name}`,
        (http as Record<string, unknown>)[name],
        'a known option: credentialHeaders or ignoreCookies',
      );
  }
  const { credentialHeaders, ignoreCookies } = http;
  if (
    credentialHeaders !== undefined &&
    !(Array.isArray(credentialHeaders) && credentialHeaders.every((h) => typeof h === 'string' && HEADER_NAME.test(h)))
  ) {
    throw fail('http.credentialHeaders', credentialHeaders, 'a list of header names');
  }
  if (
    ignoreCookies !== undefined &&
    !(
      Array.isArray(ignoreCookies) &&
      ignoreCookies.every((c) => (typeof c === 'string' && c !== '') || c instanceof RegExp)
    )
  ) {
    throw fail('http.ignoreCookies', ignoreCookies, 'a list of cookie names or regular expressions');
  }
  return {
    credentialHeaders:
      credentialHeaders === undefined ? undefined : new Set(credentialHeaders.map((h) => h.toLowerCase())),
    ignoreCookies: ignoreCookies ?? [],
  };
}

function resolveServers(servers: unknown): {
  nodes: MemcachedNodeAddress[];
  username?: string;
  password?: string;
} {
  const fail = (entry: unknown, why: string) =>
    new MemcachedConfigError(invalidOption('servers', entry, `host[:port[:weight]]: ${why}`));
  if (typeof servers === 'string') {
    if (servers.trim() === '') throw fail(servers, 'the list is empty');
    return parseServerList(servers, fail);
  }
  if (!Array.isArray(servers) || servers.length === 0) {
    throw fail(servers, 'a comma-separated string or a non-empty array');
  }
  const nodes = servers.map((entry) => {
    if (typeof entry === 'string') return parseEntry(entry.trim(), (why) => fail(entry, why));
    if (entry === null || typeof entry !== 'object' || typeof entry.host !== 'string' || !isHostName(entry.host)) {
      throw fail(entry, 'an object needs a "host": a host name or IP address');
    }
    const port = entry.port ?? DEFAULT_PORT;
    const weight = entry.weight ?? 1;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail(entry, `port ${show(port)} is not 1-65535`);
    if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT)
      throw fail(entry, `weight ${show(weight)} is not a whole number from 1 to ${MAX_WEIGHT}`);
    return toNode(entry.host, port, weight);
  });
  return { nodes };
}
