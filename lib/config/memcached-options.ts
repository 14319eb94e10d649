import type { LoggerService } from '@nestjs/common';
import type {
  MemcachedHttpOptions,
  MemcachedMetricsLimits,
  MemcachedModuleOptions,
  MemcachedSerializer,
} from '../interfaces/memcached-module-options.interface.js';
import type { ValueMode } from '../codec/value.codec.js';
import { invalidOption, optionsNotObject, show, unknownOption } from '../memcached.messages.js';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { CipherKey } from '../codec/value-cipher.js';
import { DEFAULT_NAMESPACE_LIMITS, type NamespaceLimits } from '../stats/namespace-table.js';
import { KEY_PREFIX_PATTERN } from '../codec/key.codec.js';
import { resolveEncryption, resolveTls } from './security-options.js';
import {
  type NumericBound,
  type NumericOption,
  OPTION_TABLE,
  type OptionName,
  type OptionRow,
  type PlainOptions,
} from './option-table.js';
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

/**
 * The options as the client uses them: every plain option of the table (defaults filled in), and the
 * structured ones resolved. The password and keys are not properties (see `passwordOf`, `tlsOf`...).
 */
export interface ResolvedMemcachedOptions extends Omit<PlainOptions, 'password' | 'username'> {
  nodes: MemcachedNodeAddress[];
  username?: string;
  serializer?: MemcachedSerializer;
  valueMode: ValueMode;
  /** Whether nodes are reached over TLS (the settings: `tlsOf`). */
  tls: boolean;
  /** The ids of the encryption keys, the current one first (the keys: `encryptionKeysOf`). */
  encryptionKeyIds?: number[];
  http: HttpCachePolicy;
  nearCache?: ResolvedNearCacheOptions;
  bus?: ResolvedBusOptions;
  /** How per-namespace counters and metric labels are bounded. */
  metrics: NamespaceLimits;
  /** undefined: Nest's Logger. */
  logger: LoggerService | false | undefined;
}

/** The plain options (checked by their rows alone), in the table's order. */
const PLAIN_NAMES = (Object.keys(OPTION_TABLE) as OptionName[]).filter(
  (name) => OPTION_TABLE[name].kind.type !== 'structured',
) as Array<keyof PlainOptions>;

export type { NumericBound, NumericOption } from './option-table.js';

/** The bounds of the numeric options (from the option table), for the options and their variables alike. */
export const NUMERIC_OPTIONS = Object.fromEntries(
  Object.entries(OPTION_TABLE as Record<string, OptionRow>).flatMap(([name, row]) =>
    row.kind.type === 'number' ? [[name, row.kind.bound]] : [],
  ),
) as Record<NumericOption, NumericBound>;

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

/** `"a", "b" or "c"`. */
export function describeChoices(choices: readonly string[]): string {
  const quoted = choices.map((c) => `"${c}"`);
  return quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

/** A plain option's value checked against its row of the table, or its default when it is not given. */
function plainOption(name: OptionName, value: unknown, fail: Fail): unknown {
  const row: OptionRow = OPTION_TABLE[name];
  const given = value === undefined ? row.default : value;
  if (given === undefined) return undefined;
  const kind = row.kind;
  switch (kind.type) {
    case 'number':
      if (given === false && kind.falseIsOff) return 0;
      if (!withinBound(given, kind.bound)) throw fail(name, given, describeBound(kind.bound));
      return given;
    case 'boolean':
      if (typeof given !== 'boolean') throw fail(name, given, 'true or false');
      return given;
    case 'choice':
      if (typeof given !== 'string' || !kind.choices.includes(given))
        throw fail(name, given, describeChoices(kind.choices));
      return given;
    case 'text':
      if (typeof given !== 'string') throw fail(name, kind.secret ? '***' : given, 'a string');
      return given;
    case 'structured':
      return value;
  }
}

type Fail = (name: string, value: unknown, expected: string) => Error;

const DEFAULT_SERVERS = `127.0.0.1:${DEFAULT_PORT}`;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Printable ASCII without space or '#', so a prefixed key can still be sent as it is. */

/** Validates options and fills in defaults. Throws `MemcachedConfigError` naming the bad option. */
export function resolveOptions(options: MemcachedModuleOptions = {}): ResolvedMemcachedOptions {
  if (options === null || typeof options !== 'object') {
    throw new MemcachedConfigError(optionsNotObject(show(options)));
  }
  for (const name of Object.keys(options)) {
    if (!Object.hasOwn(OPTION_TABLE, name)) throw new MemcachedConfigError(unknownOption(name));
  }
  const fail: Fail = (name, value, expected) => new MemcachedConfigError(invalidOption(name, value, expected));
  // the plain options, from their rows of the table
  const get = <T>(name: OptionName): T => plainOption(name, options[name], fail) as T;

  const { nodes, username, password } = resolveServers(options.servers ?? DEFAULT_SERVERS);
  const ttl = get<number>('ttl');
  const timeout = get<number>('timeout');
  const serializer = options.serializer ?? 'auto';
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
  const keyPrefix = get<string>('keyPrefix');
  if (!KEY_PREFIX_PATTERN.test(keyPrefix)) {
    throw fail('keyPrefix', keyPrefix, "at most 128 printable ASCII characters, without spaces or '#'");
  }
  const tagPrefix = get<string>('tagPrefix');
  if (!KEY_PREFIX_PATTERN.test(tagPrefix)) {
    throw fail('tagPrefix', tagPrefix, "at most 128 printable ASCII characters, without spaces or '#'");
  }

  const { busKeys, ...near } = resolveNearOptions(options.nearCache, options.bus, keyPrefix, fail);
  // every plain option from its row; the few with a rule beyond their row are set after
  const plain = Object.fromEntries(PLAIN_NAMES.map((name) => [name, get(name)])) as PlainOptions;
  const { password: _password, ...client } = plain;
  const resolved: ResolvedMemcachedOptions = {
    ...client,
    nodes,
    username: plain.username ?? username,
    ttl: Math.ceil(ttl),
    connectTimeout: options.connectTimeout === undefined ? timeout : plain.connectTimeout,
    serializer: custom ? (serializer as MemcachedSerializer) : undefined,
    valueMode: custom ? 'auto' : (serializer as ValueMode),
    tls: false,
    http: resolveHttp(options.http, fail),
    ...near,
    metrics: resolveMetrics(options.metrics, fail),
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
  secrets.set(resolved, { password: plain.password ?? password, tls, keys, busKeys });
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

/** The `metrics` option: bounds within reach of one process's memory and one scrape. */
function resolveMetrics(metrics: MemcachedMetricsLimits | undefined, fail: Fail): NamespaceLimits {
  if (metrics === undefined) return DEFAULT_NAMESPACE_LIMITS;
  if (metrics === null || typeof metrics !== 'object')
    throw fail('metrics', metrics, 'an object such as { namespaces: 1000 }');
  for (const name of Object.keys(metrics)) {
    if (!['namespaces', 'families', 'family'].includes(name))
      throw fail(`metrics.${name}`, '(set)', 'no such option (namespaces, families, family)');
  }
  const whole = (name: 'namespaces' | 'families', min: number, max: number): number => {
    const value = metrics[name] ?? DEFAULT_NAMESPACE_LIMITS[name];
    if (!Number.isInteger(value) || value < min || value > max)
      throw fail(`metrics.${name}`, value, `a whole number from ${min} to ${max}`);
    return value;
  };
  const family = metrics.family ?? DEFAULT_NAMESPACE_LIMITS.family;
  if (typeof family !== 'function')
    throw fail('metrics.family', family, 'a function of the namespace returning its family');
  return { namespaces: whole('namespaces', 0, 10_000), families: whole('families', 1, 1000), family };
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
