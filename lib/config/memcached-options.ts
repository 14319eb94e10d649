import type { LoggerService } from '@nestjs/common';
import type {
  MemcachedModuleOptions,
  MemcachedSerializer,
} from '../interfaces/memcached-module-options.interface.js';
import { invalidOption, show, unknownOption } from '../memcached.messages.js';
import { type MemcachedNodeAddress, parseEntry, parseServerList, toNode, DEFAULT_PORT } from './server-list.js';

/** Thrown at startup for configuration that cannot work; the message names the option or variable. */
export class MemcachedConfigError extends Error {
  override readonly name = 'MemcachedConfigError';
}

export interface ResolvedMemcachedOptions {
  nodes: MemcachedNodeAddress[];
  username?: string;
  password?: string;
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
  hashing: 'ketama' | 'ketama-spy';
  serializer?: MemcachedSerializer;
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
  breakerCooldown: 2000,
  deadNodePolicy: 'miss',
  hashing: 'ketama',
} as const;

const KNOWN = new Set<string>([
  'servers', 'username', 'password', 'keyPrefix', 'ttl', 'timeout', 'connectTimeout', 'retries',
  'retryDelay', 'keepAlive', 'compressionThreshold', 'maxItemSize', 'serializer', 'logger',
  'breakerThreshold', 'breakerCooldown', 'deadNodePolicy', 'hashing', 'leases', 'leaseTtl', 'leaseWait',
]);

/** Validates options and fills in defaults. Throws `MemcachedConfigError` naming the bad option. */
export function resolveOptions(options: MemcachedModuleOptions = {}): ResolvedMemcachedOptions {
  if (options === null || typeof options !== 'object') {
    throw new MemcachedConfigError(`MemcachedModule options must be an object, got ${show(options)}`);
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
  const int = (name: keyof MemcachedModuleOptions, value: unknown, min: number, unit: string) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw fail(name, value, `a whole number of ${unit} >= ${min}`);
    }
    return value;
  };

  const ttl = def(options.ttl, DEFAULTS.ttl);
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
    throw fail('ttl', ttl, 'a number of seconds >= 0, 0 = no expiry');
  }
  const timeout = int('timeout', def(options.timeout, DEFAULTS.timeout), 1, 'milliseconds');
  const compression = def(options.compressionThreshold, DEFAULTS.compressionThreshold);
  const keepAlive = def(options.keepAlive, DEFAULTS.keepAlive);
  if (typeof keepAlive !== 'boolean') throw fail('keepAlive', keepAlive, 'true or false');
  const leases = def(options.leases, DEFAULTS.leases);
  if (typeof leases !== 'boolean') throw fail('leases', leases, 'true or false');
  const serializer = options.serializer;
  if (
    serializer !== undefined &&
    (typeof serializer?.serialize !== 'function' || typeof serializer?.deserialize !== 'function')
  ) {
    throw fail('serializer', serializer, 'an object with serialize() and deserialize()');
  }
  const logger = options.logger;
  if (logger !== undefined && logger !== false && typeof logger?.warn !== 'function') {
    throw fail('logger', logger, 'a Nest LoggerService or false');
  }

  const deadNodePolicy = def(options.deadNodePolicy, DEFAULTS.deadNodePolicy);
  if (deadNodePolicy !== 'miss' && deadNodePolicy !== 'rehash') throw fail('deadNodePolicy', deadNodePolicy, '"miss" or "rehash"');
  const hashing = def(options.hashing, DEFAULTS.hashing);
  if (hashing !== 'ketama' && hashing !== 'ketama-spy') throw fail('hashing', hashing, '"ketama" or "ketama-spy"');

  return {
    nodes,
    username: str('username', options.username) ?? username,
    password: str('password', options.password) ?? password,
    keyPrefix: str('keyPrefix', def(options.keyPrefix, DEFAULTS.keyPrefix))!,
    ttl: Math.ceil(ttl),
    timeout,
    connectTimeout: int('connectTimeout', def(options.connectTimeout, timeout), 1, 'milliseconds'),
    retries: int('retries', def(options.retries, DEFAULTS.retries), 0, 'attempts'),
    retryDelay: int('retryDelay', def(options.retryDelay, DEFAULTS.retryDelay), 0, 'milliseconds'),
    keepAlive,
    compressionThreshold:
      compression === false ? 0 : int('compressionThreshold', compression, 0, 'bytes (0 or false = off)'),
    maxItemSize: int('maxItemSize', def(options.maxItemSize, DEFAULTS.maxItemSize), 1024, 'bytes'),
    leases,
    leaseTtl: int('leaseTtl', def(options.leaseTtl, DEFAULTS.leaseTtl), 1, 'seconds'),
    leaseWait: int('leaseWait', def(options.leaseWait, DEFAULTS.leaseWait), 0, 'milliseconds'),
    breakerThreshold: int('breakerThreshold', def(options.breakerThreshold, DEFAULTS.breakerThreshold), 0, 'failures (0 = off)'),
    breakerCooldown: int('breakerCooldown', def(options.breakerCooldown, DEFAULTS.breakerCooldown), 1, 'milliseconds'),
    deadNodePolicy,
    hashing,
    serializer,
    logger,
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
    if (entry === null || typeof entry !== 'object' || typeof entry.host !== 'string' || entry.host === '') {
      throw fail(entry, 'an object needs a non-empty "host"');
    }
    const port = entry.port ?? DEFAULT_PORT;
    const weight = entry.weight ?? 1;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail(entry, `port ${show(port)} is not 1-65535`);
    if (!Number.isInteger(weight) || weight < 1) throw fail(entry, `weight ${show(weight)} is not a whole number >= 1`);
    return toNode(entry.host, port, weight);
  });
  return { nodes };
}
