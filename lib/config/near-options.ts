import type { CipherKey } from '../codec/value-cipher.js';
import type { BusTransport } from '../interfaces/bus-transport.interface.js';
import { resolveKeyList } from './security-options.js';
import { KEY_PREFIX_PATTERN, NAMESPACE_PATTERN } from '../codec/key.codec.js';
import type {
  MemcachedBusFollow,
  MemcachedBusOptions,
  MemcachedNearCacheOptions,
} from '../interfaces/memcached-module-options.interface.js';

/** Most `bus.keys` (the current one and older ones being rolled out); also the most MACs a bus message carries. */
export const MAX_BUS_KEYS = 8;

export interface ResolvedNearCacheOptions {
  maxBytes: number;
  ttl: number;
  /** '*': every namespace. */
  namespaces: ReadonlySet<string> | '*';
}

export interface ResolvedBusOptions {
  transport: 'nats' | 'redis' | 'rabbitmq' | BusTransport;
  url: string;
  channel: string;
  heartbeat: number;
  follow: Array<Required<MemcachedBusFollow>>;
  /** The ids of `bus.keys`, the current one first (the keys themselves are kept apart, as secrets). */
  keyIds: number[];
}

export const NEAR_DEFAULTS = {
  maxBytes: 64 * 1024 * 1024,
  ttl: 10,
  channel: 'nestjs-memcached.invalidations',
  heartbeat: 1000,
} as const;

const BROKER_URLS = {
  nats: { url: 'nats://127.0.0.1:4222', schemes: ['nats:', 'tls:'] },
  redis: { url: 'redis://127.0.0.1:6379', schemes: ['redis:', 'rediss:'] },
  rabbitmq: { url: 'amqp://guest:guest@127.0.0.1:5672', schemes: ['amqp:', 'amqps:'] },
} as const;

const CHANNEL = /^[A-Za-z0-9_.:-]{1,200}$/;

type Fail = (name: string, value: unknown, expected: string) => Error;

/** Validates `nearCache` and `bus`; a near cache without a bus cannot be kept coherent. */
export function resolveNearOptions(
  near: MemcachedNearCacheOptions | undefined,
  bus: MemcachedBusOptions | undefined,
  keyPrefix: string,
  fail: Fail,
): { nearCache?: ResolvedNearCacheOptions; bus?: ResolvedBusOptions; busKeys?: CipherKey[] } {
  const result: { nearCache?: ResolvedNearCacheOptions; bus?: ResolvedBusOptions; busKeys?: CipherKey[] } = {};
  if (bus !== undefined) {
    const resolved = resolveBus(bus, keyPrefix, fail);
    result.bus = resolved.options;
    result.busKeys = resolved.keys;
  }
  if (near === undefined) return result;
  if (near === null || typeof near !== 'object') throw fail('nearCache', near, 'an object such as { maxBytes, ttl }');
  known('nearCache', near, ['maxBytes', 'ttl', 'namespaces'], fail);
  if (result.bus === undefined)
    throw fail('nearCache', near, 'a bus to keep it coherent across processes: set the bus option too');
  const maxBytes = near.maxBytes ?? NEAR_DEFAULTS.maxBytes;
  if (!Number.isInteger(maxBytes) || maxBytes < 1024 || maxBytes > 2 ** 40)
    throw fail('nearCache.maxBytes', maxBytes, 'a whole number of bytes from 1024 to 2^40');
  const ttl = near.ttl ?? NEAR_DEFAULTS.ttl;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0.001 || ttl > 86_400)
    throw fail('nearCache.ttl', ttl, 'a number of seconds from 0.001 to 86400');
  const namespaces = near.namespaces ?? '*';
  if (
    namespaces !== '*' &&
    !(Array.isArray(namespaces) && namespaces.every((n) => typeof n === 'string' && NAMESPACE_PATTERN.test(n)))
  ) {
    throw fail('nearCache.namespaces', namespaces, "'*' or a list of namespaces ([A-Za-z0-9_.-])");
  }
  result.nearCache = { maxBytes, ttl, namespaces: namespaces === '*' ? '*' : new Set(namespaces) };
  return result;
}

function resolveBus(
  bus: MemcachedBusOptions,
  keyPrefix: string,
  fail: Fail,
): { options: ResolvedBusOptions; keys: CipherKey[] } {
  if (bus === null || typeof bus !== 'object')
    throw fail('bus', bus, "an object such as { transport: 'nats', url: 'nats://127.0.0.1:4222' }");
  known('bus', bus, ['transport', 'url', 'channel', 'heartbeat', 'follow', 'keys', 'unsafeFollowWithoutKeys'], fail);
  let keys: CipherKey[] = [];
  if (bus.keys !== undefined) {
    if (!Array.isArray(bus.keys) || bus.keys.length === 0 || bus.keys.length > MAX_BUS_KEYS) {
      throw fail(
        'bus.keys',
        Array.isArray(bus.keys) ? `${bus.keys.length} keys` : '***',
        `1 to ${MAX_BUS_KEYS} keys { id, key }, the current one first`,
      );
    }
    keys = resolveKeyList('bus.keys', bus.keys, fail);
  }
  if (bus.unsafeFollowWithoutKeys !== undefined && typeof bus.unsafeFollowWithoutKeys !== 'boolean')
    throw fail('bus.unsafeFollowWithoutKeys', bus.unsafeFollowWithoutKeys, 'true or false');
  if (bus.follow !== undefined && bus.follow.length > 0 && keys.length === 0 && bus.unsafeFollowWithoutKeys !== true) {
    throw fail(
      'bus.follow',
      `${bus.follow.length} rule(s)`,
      'bus.keys as well (the same on every process of the bus), so that only your services can make this one ' +
        'evict; or bus.unsafeFollowWithoutKeys: true, if anyone who can publish on the channel may',
    );
  }
  const transport = bus.transport ?? 'nats';
  const custom = typeof transport === 'object' && transport !== null;
  if (custom) {
    for (const method of ['start', 'publish', 'close'] as const) {
      if (typeof (transport as unknown as Record<string, unknown>)[method] !== 'function')
        throw fail('bus.transport', transport, 'an object with start(), publish() and close()');
    }
  } else if (transport !== 'nats' && transport !== 'redis' && transport !== 'rabbitmq') {
    throw fail('bus.transport', transport, '"nats", "redis", "rabbitmq" or a BusTransport');
  }
  let url = '';
  if (!custom) {
    const broker = BROKER_URLS[transport as keyof typeof BROKER_URLS];
    url = bus.url ?? broker.url;
    let parsed: URL | undefined;
    try {
      parsed = typeof url === 'string' ? new URL(url) : undefined;
    } catch {
      parsed = undefined;
    }
    if (
      parsed === undefined ||
      !(broker.schemes as readonly string[]).includes(parsed.protocol) ||
      parsed.hostname === ''
    ) {
      throw fail('bus.url', redact(url), `a ${broker.schemes.map((s) => `${s}//host:port`).join(' or ')} URL`);
    }
  } else if (bus.url !== undefined) {
    throw fail('bus.url', redact(bus.url), 'nothing with a custom transport (it connects itself)');
  }
  const channel = bus.channel ?? NEAR_DEFAULTS.channel;
  if (typeof channel !== 'string' || !CHANNEL.test(channel))
    throw fail('bus.channel', channel, 'at most 200 characters of [A-Za-z0-9_.:-]');
  const heartbeat = bus.heartbeat ?? NEAR_DEFAULTS.heartbeat;
  if (!Number.isInteger(heartbeat) || heartbeat < 20 || heartbeat > 600_000)
    throw fail('bus.heartbeat', heartbeat, 'a whole number of milliseconds from 20 to 600000');
  const options: ResolvedBusOptions = {
    transport: transport as ResolvedBusOptions['transport'],
    url,
    channel,
    heartbeat,
    follow: resolveFollow(bus.follow, keyPrefix, fail),
    keyIds: keys.map((k) => k.id),
  };
  return { options, keys };
}

function resolveFollow(
  follow: MemcachedBusFollow[] | undefined,
  keyPrefix: string,
  fail: Fail,
): Array<Required<MemcachedBusFollow>> {
  if (follow === undefined) return [];
  if (!Array.isArray(follow)) throw fail('bus.follow', follow, 'a list of { keyPrefix, namespace, evict }');
  return follow.map((rule, i) => {
    const name = `bus.follow[${i}]`;
    if (rule === null || typeof rule !== 'object') throw fail(name, rule, 'an object { keyPrefix, namespace, evict }');
    known(name, rule, ['keyPrefix', 'namespace', 'evict', 'allEntries'], fail);
    const prefix = rule.keyPrefix ?? keyPrefix;
    if (typeof prefix !== 'string' || !KEY_PREFIX_PATTERN.test(prefix))
      throw fail(`${name}.keyPrefix`, prefix, "the other service's keyPrefix (printable ASCII without spaces or '#')");
    if (typeof rule.namespace !== 'string' || !NAMESPACE_PATTERN.test(rule.namespace))
      throw fail(`${name}.namespace`, rule.namespace, 'a namespace ([A-Za-z0-9_.-])');
    if (typeof rule.evict !== 'string' || !NAMESPACE_PATTERN.test(rule.evict))
      throw fail(`${name}.evict`, rule.evict, 'a namespace of this service ([A-Za-z0-9_.-])');
    if (rule.allEntries !== undefined && typeof rule.allEntries !== 'boolean')
      throw fail(`${name}.allEntries`, rule.allEntries, 'true or false');
    if (prefix === keyPrefix && rule.namespace === rule.evict)
      throw fail(name, rule, 'a different namespace to evict than the one followed');
    return { keyPrefix: prefix, namespace: rule.namespace, evict: rule.evict, allEntries: rule.allEntries ?? false };
  });
}

function known(option: string, value: object, names: string[], fail: Fail): void {
  for (const name of Object.keys(value)) {
    if (!names.includes(name))
      throw fail(`${option}.${name}`, (value as Record<string, unknown>)[name], `a known option: ${names.join(', ')}`);
  }
}

/** The transport a broker URL's scheme names (`nats://`, `redis://`, `amqp://`...), if any. */
export function transportOfUrl(url: string): keyof typeof BROKER_URLS | undefined {
  const scheme = /^([a-z]+:)\/\//.exec(url)?.[1];
  if (scheme === undefined) return undefined;
  return (Object.keys(BROKER_URLS) as Array<keyof typeof BROKER_URLS>).find((name) =>
    (BROKER_URLS[name].schemes as readonly string[]).includes(scheme),
  );
}

/** A broker URL as an error may show it: without its password. */
export function redact(url: unknown): unknown {
  if (typeof url !== 'string') return url;
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
  }
}
