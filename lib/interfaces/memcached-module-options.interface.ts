import type { NestInterceptor, Type } from '@nestjs/common';
import type { TableOptions } from '../config/option-table.js';
import type { BusTransport } from './bus-transport.interface.js';

/** One memcached node. `weight` (default 1) sets its share of keys in a cluster. */
export interface MemcachedServerOptions {
  host: string;
  port?: number;
  weight?: number;
}

/**
 * Replaces JSON for values that are neither strings nor Buffers (those are always stored as is).
 * The format is recorded in the item's flags, so entries written with JSON stay readable.
 *
 * @example
 * { serialize: (v) => superjson.stringify(v), deserialize: (b) => superjson.parse(b.toString()) }
 */
export interface MemcachedSerializer {
  serialize(value: unknown): Buffer | string;
  deserialize(data: Buffer): unknown;
}

/**
 * Options of `MemcachedModule.forRoot` / `forRootAsync` (and of `new MemcachedClient`).
 * Every field is optional; each one's type, documentation and default come from the option table
 * (lib/config/option-table.ts), as does the reference in docs/configuration.md.
 *
 * @example
 * MemcachedModule.forRoot({ servers: '10.0.0.5:11211,10.0.0.6:11211:2', keyPrefix: 'users-svc:', ttl: 60 })
 */
export type MemcachedModuleOptions = TableOptions;

/**
 * The near cache. It holds stored bytes (decoded per hit, so callers never share an object),
 * bounded by bytes, each entry for at most `ttl` seconds, and only while the bus is healthy.
 *
 * @example
 * nearCache: { maxBytes: 32 * 1024 * 1024, ttl: 5, namespaces: ['users', 'catalog'] }
 */
export interface MemcachedNearCacheOptions {
  /** Bytes held at most (least recently used dropped first). Default 67108864 (64 MiB). */
  maxBytes?: number;
  /** Seconds an entry is served from memory at most; keep it below your memcached TTLs. Default 10. */
  ttl?: number;
  /** Namespaces read through it; `'*'`: all. A decorator's `nearCache` overrides. Default `'*'`. */
  namespaces?: string[] | '*';
}

/**
 * How per-namespace counting is bounded. Namespaces named in code (decorators, `nearCache.namespaces`,
 * `bus.follow`) are always counted and labelled one by one. Any other namespace (a per-user one
 * given to `getOrSet`, `get` or `evictAll`) is counted one by one in `stats()` while it is among the
 * `namespaces` most recently used, then folded into `(other)`; in metrics it is reported under its
 * family, at most `families` of them, the rest under `(other)`. Totals stay exact at any count.
 *
 * @example
 * // 'tenant-42.orders' and 'tenant-7.orders' are both reported as 'tenant-orders'
 * metrics: { family: (namespace) => namespace.replace(/[0-9]+/g, '').replace(/-\./, '-') }
 */
export interface MemcachedMetricsLimits {
  /** Namespaces not named in code counted one by one (least recently used folded first), 0 to 10000; `stats()` grows with it. Default 500. */
  namespaces?: number;
  /** Family labels for namespaces not named in code, 1 to 1000; the rest count under `(other)`. Default 50. */
  families?: number;
  /**
   * A namespace's family (its metric label), 1 to 100 characters; a rule that throws or returns
   * anything else counts it under `(other)`. Default: its leading letters (`user-7` is `user`).
   */
  family?: (namespace: string) => string;
}

/**
 * The invalidation bus. Every eviction, overwrite and namespace eviction is published once
 * memcached took it; every process drops what it holds of it. Messages carry a source and a
 * sequence number, and a heartbeat checks the channel: a gap, a new source, a lost connection or
 * a silent channel drops the whole near cache, which is bypassed until the bus is back.
 *
 * @example
 * bus: { transport: 'nats', url: 'nats://127.0.0.1:4222' }
 */
export interface MemcachedBusOptions {
  /**
   * `nats` (package `@nats-io/transport-node`), `redis` (`ioredis`), `rabbitmq` (`amqplib`: a
   * fanout exchange, one exclusive queue per process), or your own `BusTransport`. Default `nats`.
   */
  transport?: 'nats' | 'redis' | 'rabbitmq' | BusTransport;
  /** The broker. Default `nats://127.0.0.1:4222`, `redis://127.0.0.1:6379` or `amqp://guest:guest@127.0.0.1:5672`. */
  url?: string;
  /** Subject, channel or exchange; the same for every process of one pool and key prefix. Default `nestjs-memcached.invalidations`. */
  channel?: string;
  /** Milliseconds within which a silent channel is noticed (heartbeats go 4 times as often). Default 1000. */
  heartbeat?: number;
  /**
   * Cross-service invalidation: when another service (its `keyPrefix`) evicts or overwrites a key
   * of one of its namespaces, evict the same key (or every entry) of a namespace of yours that
   * you derived from it. Both services must use the same broker and `channel`.
   */
  follow?: MemcachedBusFollow[];
  /**
   * Shared keys that authenticate every message (HMAC-SHA256), the current one first: with them,
   * a message from a publisher without a key changes nothing but a counter. The same on every
   * process of the bus; to rotate, put the new key first everywhere, then drop the old one. Each
   * key is 32 bytes (a Buffer, or base64: `openssl rand -base64 32`) with an id from 1 to 255.
   * Env: `MEMCACHED_BUS_KEYS=2:<base64>,1:<base64>`. Required by `follow`.
   */
  keys?: Array<{ id: number; key: string | Buffer }>;
  /**
   * Lets `follow` run without `keys`: then anyone who can publish on the channel can make this
   * service delete its entries. Default false.
   */
  unsafeFollowWithoutKeys?: boolean;
}

/**
 * One namespace of another service this service derives data from.
 *
 * @example
 * // orders caches user names under 'user-names:<userId>'; the users service evicts 'users:<userId>'
 * follow: [{ keyPrefix: 'users-svc:', namespace: 'users', evict: 'user-names' }]
 */
export interface MemcachedBusFollow {
  /** The other service's `keyPrefix`. Default: this service's own. */
  keyPrefix?: string;
  /** The other service's namespace whose changes matter here. */
  namespace: string;
  /** This service's namespace to evict: the same key, or every entry when `allEntries` is true or the source namespace was evicted whole. */
  evict: string;
  /** Evict every entry of `evict` on any change of the source (for data aggregated over many keys). Default false. */
  allEntries?: boolean;
}

/**
 * The HTTP caching rules. A request that carries a credential header or a cookie is answered
 * around the cache (`X-Cache: BYPASS`) unless its route puts the caller in the key (`principal`),
 * declares the response the same for every caller (`public: true`) or ignores those cookies.
 *
 * @example
 * http: { credentialHeaders: ['x-api-key', 'x-tenant'], ignoreCookies: ['_ga', /^_pk_/, 'theme'] }
 */
export interface MemcachedHttpOptions {
  /**
   * Headers that identify the caller, besides `Authorization`, `Proxy-Authorization` and
   * `Cookie` (always). Default: a built-in list of common ones (`x-api-key`, `x-auth-token`,
   * `x-user-id`, ...) plus any header whose name holds a credential word (token, auth, session,
   * user, tenant, api-key, jwt, ...). Giving the list replaces both.
   */
  credentialHeaders?: string[];
  /** Cookies that never change a response (consent, analytics, theme): names or patterns. */
  ignoreCookies?: Array<string | RegExp>;
}

/** Extras accepted by `forRoot` / `forRootAsync` beside the options. */
export interface MemcachedModuleExtras {
  /** Registers the client globally, so feature modules need not import `MemcachedModule`. */
  isGlobal?: boolean;
  /** Registers a named client, injected with `@InjectMemcached(name)`. */
  name?: string;
  /**
   * A `CacheInterceptor` subclass that serves the cache decorators on controller routes instead
   * of `CacheInterceptor` (its dependencies must be injectable where `MemcachedModule` is).
   */
  interceptor?: Type<NestInterceptor>;
}
