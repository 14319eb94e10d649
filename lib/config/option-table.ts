import type { LoggerService } from '@nestjs/common';
import { MAX_TTL } from '../codec/ttl.js';
import type {
  MemcachedBusOptions,
  MemcachedHttpOptions,
  MemcachedMetricsLimits,
  MemcachedNearCacheOptions,
  MemcachedSerializer,
  MemcachedServerOptions,
} from '../interfaces/memcached-module-options.interface.js';
import type {
  MemcachedEncryptionOptions,
  MemcachedTlsOptions,
  MemcachedValueFormat,
} from '../interfaces/memcached-security-options.interface.js';

/**
 * Every module option in one table: its environment variables, its default, its bounds or
 * choices, and the line the configuration reference shows. Validation of the plain options, their
 * defaults, the `MEMCACHED_*` reader and the reference table in `docs/configuration.md` (written by
 * `npm run docs:options`, checked by a test) all come from here; options with a structure of
 * their own (`servers`, `tls`, `encryption`, `http`, `nearCache`, `bus`) name the function that
 * validates them. To add an option, add its row here (and read it where it is used).
 */

/** A number's range and unit, for the option and its environment variable alike. */
export interface NumericBound {
  min: number;
  max: number;
  unit: string;
  /** Whole numbers only. */
  integer: boolean;
}

/** How a plain option's value is checked, and how its variable is read. */
export type OptionKind =
  /** A number within bounds; env: whole decimal digits (`size`: with `k` / `m`); `falseIsOff`: `false` reads as 0. */
  | { type: 'number'; bound: NumericBound; size?: boolean; falseIsOff?: boolean }
  | { type: 'boolean' }
  /** One of a few strings. */
  | { type: 'choice'; choices: readonly string[] }
  /** Text; env trimmed, or taken verbatim (`verbatim`: a password or prefix may begin or end with a space). */
  | { type: 'text'; verbatim?: boolean; secret?: boolean }
  /** Validated by its own function (named in `doc`); its variables are read by `memcached-env.ts`. */
  | { type: 'structured' };

export interface OptionRow {
  /** The type the option takes (used by its type only). */
  type: unknown;
  kind: OptionKind;
  /** The default value of a plain option (undefined: none, or computed, as `defaultText` says). */
  default?: number | boolean | string;
  /** The default as the reference shows it. */
  defaultText: string;
  /** The `MEMCACHED_*` variables that set it. */
  env?: readonly string[];
  /** The reference's line for it. */
  doc: string;
}

/** An option's type, carried by its row: `MemcachedModuleOptions` is made from the table. */
const as = <T>() => undefined as T;
const ms = (min: number, max: number): NumericBound => ({ min, max, unit: 'milliseconds', integer: true });
const number = (bound: NumericBound, how: { size?: boolean; falseIsOff?: boolean } = {}) => ({
  type: 'number' as const,
  bound,
  ...how,
});
const choice = (...choices: string[]) => ({ type: 'choice' as const, choices });
const STRUCTURED = { type: 'structured' } as const;
const BOOLEAN = { type: 'boolean' } as const;

export const OPTION_TABLE = {
  /** `host[:port[:weight]]`, comma-separated, or a list. Default `127.0.0.1:11211`. */
  servers: {
    type: as<string | Array<string | MemcachedServerOptions>>(),
    kind: STRUCTURED,
    defaultText: '`127.0.0.1:11211`',
    env: ['MEMCACHED_SERVERS'],
    doc: '`host[:port[:weight]]`, comma-separated (IPv6 as `[::1]:11211`); or an array of strings / `{ host, port, weight }`',
  },
  /** SASL PLAIN user name (memcached started with `-S`). */
  username: {
    type: as<string>(),
    kind: { type: 'text' },
    defaultText: 'none',
    env: ['MEMCACHED_USERNAME'],
    doc: 'SASL PLAIN user (memcached `-S`)',
  },
  /** SASL PLAIN password. Never logged. */
  password: {
    type: as<string>(),
    kind: { type: 'text', verbatim: true, secret: true },
    defaultText: 'none',
    env: ['MEMCACHED_PASSWORD'],
    doc: 'SASL PLAIN password; never logged; the variable is taken verbatim',
  },
  /** Prepended to every key, to share a pool between services. Default `''`. */
  keyPrefix: {
    type: as<string>(),
    kind: { type: 'text', verbatim: true },
    default: '',
    defaultText: "`''`",
    env: ['MEMCACHED_KEY_PREFIX'],
    doc: 'prepended to every key; up to 128 printable ASCII characters without spaces or `#`; the variable is taken verbatim',
  },
  /**
   * Prepended to every tag's version key. Services that give it the same value (the default) share
   * tags: one invalidating `user:7` makes the other's entries tagged `user:7` miss. Default `''`.
   */
  tagPrefix: {
    type: as<string>(),
    kind: { type: 'text', verbatim: true },
    default: '',
    defaultText: "`''`",
    env: ['MEMCACHED_TAG_PREFIX'],
    doc: "prepended to every tag's version key; services with the same `tagPrefix` share tags; up to 128 printable ASCII characters without spaces or `#`; the variable is taken verbatim",
  },
  /** Default TTL in seconds; 0 = no expiry. Default 60. */
  ttl: {
    type: as<number>(),
    kind: number({ min: 0, max: MAX_TTL, unit: 'seconds (0 = no expiry)', integer: false }),
    default: 60,
    defaultText: '`60`',
    env: ['MEMCACHED_TTL'],
    doc: 'default TTL in seconds, 0 to 315360000 (ten years); `0` = no expiry',
  },
  /** Deadline of one operation, in milliseconds, retries included. Default 500. */
  timeout: {
    type: as<number>(),
    kind: number(ms(1, 600_000)),
    default: 500,
    defaultText: '`500`',
    env: ['MEMCACHED_TIMEOUT'],
    doc: 'deadline of one operation in ms (1 to 600000), retries included',
  },
  /** Deadline to open a connection, in milliseconds. Default: `timeout`. */
  connectTimeout: {
    type: as<number>(),
    kind: number(ms(1, 600_000)),
    defaultText: '= `timeout`',
    env: ['MEMCACHED_CONNECT_TIMEOUT'],
    doc: 'deadline to open a connection (and authenticate), ms, 1 to 600000',
  },
  /** Extra attempts for idempotent operations after a connection error, within the deadline. Default 0. */
  retries: {
    type: as<number>(),
    kind: number({ min: 0, max: 10, unit: 'attempts', integer: true }),
    default: 0,
    defaultText: '`0`',
    env: ['MEMCACHED_RETRIES'],
    doc: 'extra attempts (0 to 10) of idempotent operations after a connection error, within the deadline (increments are never retried)',
  },
  /** Pause between attempts, in milliseconds. Default 20. */
  retryDelay: {
    type: as<number>(),
    kind: number(ms(0, 60_000)),
    default: 20,
    defaultText: '`20`',
    env: ['MEMCACHED_RETRY_DELAY'],
    doc: 'pause between attempts, ms, 0 to 60000',
  },
  /** TCP keep-alive on the node sockets. Default true. */
  keepAlive: {
    type: as<boolean>(),
    kind: BOOLEAN,
    default: true,
    defaultText: '`true`',
    env: ['MEMCACHED_KEEP_ALIVE'],
    doc: 'TCP keep-alive on node sockets',
  },
  /**
   * Values of at least this many bytes are deflated; 0 or false turns compression off. Default
   * 131072 (128 KiB): inflating costs CPU on every hit, so only large values are.
   */
  compressionThreshold: {
    type: as<number | false>(),
    kind: number(
      { min: 0, max: 1024 * 1024 * 1024, unit: 'bytes (0 = off)', integer: true },
      { size: true, falseIsOff: true },
    ),
    default: 128 * 1024,
    defaultText: '`131072` (`128k`)',
    env: ['MEMCACHED_COMPRESSION_THRESHOLD'],
    doc:
      'deflate values of at least this many bytes (up to 1 GiB); `0` / `false` = off. Inflating costs CPU on every ' +
      'hit, so the default only compresses large values (the cost is in [benchmarks](benchmarks.md#changes-the-benchmarks-led-to))',
  },
  /** The server's item size limit (`memcached -I`), in bytes. Larger items are not sent. Default 1048576. */
  maxItemSize: {
    type: as<number>(),
    kind: number({ min: 1024, max: 1024 * 1024 * 1024, unit: 'bytes', integer: true }, { size: true }),
    default: 1024 * 1024,
    defaultText: '`1048576` (`1m`)',
    env: ['MEMCACHED_MAX_ITEM_SIZE'],
    doc:
      "the server's item size limit (`memcached -I`), 1 KiB to 1 GiB; sizes take `k` / `m` in env. A response body " +
      'larger than this is skipped as it arrives and read as a miss',
  },
  /**
   * Leases on cache-aside fills (`getOrSet`, `@Cacheable`): one caller across all processes loads
   * a missing key, and a fill that started before an eviction cannot land after it. Default true.
   */
  leases: {
    type: as<boolean>(),
    kind: BOOLEAN,
    default: true,
    defaultText: '`true`',
    env: ['MEMCACHED_LEASES'],
    doc: 'lease protocol on cache-aside fills (`getOrSet`, `@Cacheable`; see [Consistency](consistency.md))',
  },
  /** Lifetime of a lease marker in seconds: a holder that dies blocks the key at most this long. Default 5. */
  leaseTtl: {
    type: as<number>(),
    kind: number({ min: 1, max: 86_400, unit: 'seconds', integer: true }),
    default: 5,
    defaultText: '`5`',
    env: ['MEMCACHED_LEASE_TTL'],
    doc: 'lease marker lifetime, 1 to 86400 seconds: a crashed holder blocks its key at most this long',
  },
  /** Longest wait for another caller's fill, in milliseconds; then the source is read without filling. Default 2000. */
  leaseWait: {
    type: as<number>(),
    kind: number(ms(0, 600_000)),
    default: 2000,
    defaultText: '`2000`',
    env: ['MEMCACHED_LEASE_WAIT'],
    doc: "longest wait for another caller's fill (ms, 0 to 600000); then the source is read without filling",
  },
  /** Consecutive connection failures or timeouts after which a node is skipped; 0 = never. Default 3. */
  breakerThreshold: {
    type: as<number>(),
    kind: number({ min: 0, max: 10_000, unit: 'failures (0 = off)', integer: true }),
    default: 3,
    defaultText: '`3`',
    env: ['MEMCACHED_BREAKER_THRESHOLD'],
    doc: 'consecutive connection failures, timeouts, protocol or authentication errors after which a node is skipped (up to 10000); `0` = never',
  },
  /**
   * While a node is skipped, the longest pause between probes, in milliseconds (they start after a
   * tenth of it and back off). Default 250.
   */
  breakerCooldown: {
    type: as<number>(),
    kind: number(ms(10, 600_000)),
    default: 250,
    defaultText: '`250`',
    env: ['MEMCACHED_BREAKER_COOLDOWN'],
    doc: 'while a node is skipped, the longest pause between probes (ms, 10 to 600000); probes start after a tenth of it and back off',
  },
  /**
   * Where a down node's keys go: `miss` (reads miss, writes are dropped; safe) or `rehash` (the next
   * node on the ring serves them until the node is back; writes made meanwhile are invisible
   * afterwards, and values from before the failure can reappear). Default `miss`.
   */
  deadNodePolicy: {
    type: as<'miss' | 'rehash'>(),
    kind: choice('miss', 'rehash'),
    default: 'miss',
    defaultText: '`miss`',
    env: ['MEMCACHED_DEAD_NODE_POLICY'],
    doc: "a down node's keys: `miss` (reads miss, writes dropped) or `rehash` (next node on the ring); see [Clusters and failures](clusters-and-failures.md)",
  },
  /**
   * Key distribution over several servers, as libmemcached does it: `ketama` (weighted MD5 ketama:
   * pylibmc's `{"ketama_weighted": True}`), `ketama-spy` (its KETAMA_SPY naming), `ketama-plain`
   * (unweighted one-at-a-time ketama: pylibmc's `{"ketama": True}`; weights are ignored). Default `ketama`.
   */
  hashing: {
    type: as<'ketama' | 'ketama-spy' | 'ketama-plain'>(),
    kind: choice('ketama', 'ketama-spy', 'ketama-plain'),
    default: 'ketama',
    defaultText: '`ketama`',
    env: ['MEMCACHED_HASHING'],
    doc: 'key distribution: libmemcached weighted `ketama` (pylibmc `ketama_weighted`), `ketama-plain` (pylibmc `ketama`), or `ketama-spy` (see [Sharing a pool](sharing-a-pool.md))',
  },
  /** TLS to the nodes: `true` (Node's trusted CAs) or the settings. Default off. */
  tls: {
    type: as<boolean | MemcachedTlsOptions>(),
    kind: STRUCTURED,
    defaultText: 'off',
    env: [
      'MEMCACHED_TLS',
      'MEMCACHED_TLS_CA_FILE',
      'MEMCACHED_TLS_CERT_FILE',
      'MEMCACHED_TLS_KEY_FILE',
      'MEMCACHED_TLS_SERVERNAME',
    ],
    doc:
      "`true` (Node's trusted CAs) or `{ ca, cert, key, passphrase, servername, rejectUnauthorized, minVersion }` " +
      '(see [Security](security.md)); env: `MEMCACHED_TLS=true`, or PEM files in `MEMCACHED_TLS_CA_FILE`, ' +
      '`_CERT_FILE`, `_KEY_FILE` (any of them turns TLS on) and `MEMCACHED_TLS_SERVERNAME`, the name the ' +
      "server's certificate must carry (by default the host in `servers`)",
  },
  /** Encrypt every stored value with AES-256-GCM. Default off. */
  encryption: {
    type: as<MemcachedEncryptionOptions>(),
    kind: STRUCTURED,
    defaultText: 'off',
    env: ['MEMCACHED_ENCRYPTION_KEYS'],
    doc: '`{ keys: [{ id, key }, ...] }`, the current key first (see [Security](security.md#encrypted-values)); env: `2:<base64>,1:<base64>`',
  },
  /** The flag layout of plain values, for other clients on the pool. Default `native`. */
  valueFormat: {
    type: as<MemcachedValueFormat>(),
    kind: choice('native', 'pylibmc'),
    default: 'native',
    defaultText: '`native`',
    env: ['MEMCACHED_VALUE_FORMAT'],
    doc: "`native` (our flags, every type kept) or `pylibmc` (pylibmc's flags, for Python clients on the pool; see [Sharing a pool](sharing-a-pool.md))",
  },
  /**
   * How values other than strings and Buffers are stored. `auto`: JSON when the value survives
   * JSON unchanged, else Node's structured serialisation (Date, Map, Set, BigInt, typed arrays,
   * undefined, NaN, cycles); a value neither keeps (a class instance, a function) is not cached,
   * with a counted warning. `json`: JSON only (for values other languages read). `structured`:
   * always structured serialisation. Or your own serializer. Default `auto`.
   */
  serializer: {
    type: as<'auto' | 'json' | 'structured' | MemcachedSerializer>(),
    kind: STRUCTURED,
    defaultText: '`auto`',
    env: ['MEMCACHED_SERIALIZER'],
    doc:
      'how values other than strings and Buffers are stored: `auto` (JSON when the value survives it, else structured ' +
      'serialisation, else not cached), `json` (JSON only, for readers in other languages), `structured` (always ' +
      'structured serialisation), or your own `{ serialize(value), deserialize(buffer) }` (see [The client](client.md#values))',
  },
  /** How `@Cacheable` controller routes decide which requests share cached responses. */
  http: {
    type: as<MemcachedHttpOptions>(),
    kind: STRUCTURED,
    defaultText: 'built-in list + name rule; no cookies',
    env: ['MEMCACHED_HTTP_CREDENTIAL_HEADERS', 'MEMCACHED_HTTP_IGNORE_COOKIES'],
    doc:
      '`{ credentialHeaders, ignoreCookies }`: headers that identify the caller, besides `Authorization`, ' +
      '`Proxy-Authorization` and `Cookie`, and cookies that never change a response, for every route (names or ' +
      'RegExps); see [HTTP caching](http-caching.md); comma-separated names in env',
  },
  /**
   * Serve cached Express and Fastify routes from their handlers, without Nest's interceptor chain (the fastest
   * path; only with the stock `CacheInterceptor`). `false` keeps every route in the chain. Default `true`.
   */
  routeHandlers: {
    type: as<boolean>(),
    kind: BOOLEAN,
    default: true,
    defaultText: '`true`',
    env: ['MEMCACHED_ROUTE_HANDLERS'],
    doc:
      'serve cached Express and Fastify routes from their handlers, without the interceptor chain (stock `CacheInterceptor` ' +
      'only; off by itself, with one warning, if the installed Nest no longer writes what it reads); `false` keeps ' +
      'every route in the chain; see [HTTP caching](http-caching.md)',
  },
  /**
   * Grace (stale-if-error), seconds: memcached keeps entries this long past their TTL; a caller
   * past the TTL reloads, and if the source fails or passes `graceDeadline`, gets the last good
   * value instead (counted as graced; HTTP `X-Cache: STALE` with `Age`). Default 0 (off); a
   * decorator's `grace` or `getOrSet`'s overrides it.
   */
  grace: {
    type: as<number>(),
    kind: number({ min: 0, max: MAX_TTL, unit: 'seconds', integer: false }),
    default: 0,
    defaultText: '`0` (off)',
    env: ['MEMCACHED_GRACE'],
    doc:
      'seconds an entry is kept past its TTL to answer when its source fails or is slow (stale-if-error); a ' +
      "decorator's or `getOrSet`'s `grace` overrides; see [Outages](outages.md#grace-when-the-source-fails)",
  },
  /** Under grace: the longest wait for a reload, ms, before the last good value is served. Default 2000. */
  graceDeadline: {
    type: as<number>(),
    kind: number({ min: 1, max: 600_000, unit: 'ms', integer: true }),
    default: 2000,
    defaultText: '`2000`',
    env: ['MEMCACHED_GRACE_DEADLINE'],
    doc: 'under grace, ms a reload may take before the last good value is served (the reload goes on, and fills if it succeeds)',
  },
  /** Under grace: after a failed reload, ms before the key is reloaded again (per key, per process). Default 5000. */
  graceBackoff: {
    type: as<number>(),
    kind: number({ min: 0, max: 3_600_000, unit: 'ms', integer: true }),
    default: 5000,
    defaultText: '`5000`',
    env: ['MEMCACHED_GRACE_BACKOFF'],
    doc: 'under grace, ms after a failed or late reload during which callers of that key get the last good value without reloading (per process)',
  },
  /**
   * A file where invalidations memcached did not confirm are kept until they are paid, so a
   * process that dies while holding them leaves them to the next one (the bus, when configured,
   * already hands them to every other process). Off by default.
   */
  invalidationSpool: {
    type: as<string>(),
    kind: { type: 'text' },
    defaultText: 'off',
    env: ['MEMCACHED_INVALIDATION_SPOOL'],
    doc:
      'a file path: invalidations memcached did not confirm are written there until paid, and a process that ' +
      'starts pays what it finds; see [Outages](outages.md)',
  },
  /**
   * An in-process tier (L1) in front of memcached, off by default: hits are served from memory,
   * without a round trip, while the invalidation `bus` is healthy. Needs `bus`.
   */
  nearCache: {
    type: as<MemcachedNearCacheOptions>(),
    kind: STRUCTURED,
    defaultText: 'off',
    env: ['MEMCACHED_NEAR_CACHE_TTL'],
    doc:
      '`{ maxBytes, ttl, namespaces }`: the in-process tier (needs `bus`); `maxBytes` 1024 to 2^40 (64 MiB), `ttl` ' +
      "0.001 to 86400 seconds (10; keep it below your memcached TTLs), `namespaces` `'*'` or a list (a decorator's " +
      "or `getOrSet`'s `nearCache` overrides); see [Near cache](near-cache.md). `MEMCACHED_NEAR_CACHE_TTL` turns it on",
  },
  /** The invalidation bus that keeps every process's near cache coherent (needed by `nearCache`). */
  bus: {
    type: as<MemcachedBusOptions>(),
    kind: STRUCTURED,
    defaultText: 'off',
    env: ['MEMCACHED_BUS_URL', 'MEMCACHED_BUS_CHANNEL', 'MEMCACHED_BUS_KEYS'],
    doc:
      '`{ transport, url, channel, heartbeat, keys, follow, unsafeFollowWithoutKeys }`: the invalidation bus; ' +
      '`transport` `nats` (default), `redis`, `rabbitmq` or your own `BusTransport`; `channel` at most 200 of ' +
      '`[A-Za-z0-9_.:-]` (`nestjs-memcached.invalidations`); `heartbeat` 20 to 600000 ms (1000); `keys` 1 to 8 keys ' +
      'of 32 bytes with ids 1 to 255 (required by `follow`); see [Near cache](near-cache.md). Env: the transport ' +
      "follows the URL's scheme (`nats://`, `redis://`, `amqp://`); keys as `2:<base64>,1:<base64>`",
  },
  /** How per-namespace counters and metric labels are bounded (see `MemcachedMetricsLimits`). */
  metrics: {
    type: as<MemcachedMetricsLimits>(),
    kind: STRUCTURED,
    defaultText: '`{ namespaces: 500, families: 50 }`',
    env: ['MEMCACHED_METRICS_NAMESPACES', 'MEMCACHED_METRICS_FAMILIES'],
    doc:
      '`{ namespaces, families, family }`: namespaces not named in code are counted one by one up to `namespaces` ' +
      '(0 to 10000, least recently used folded into `(other)`; `stats()` grows with it), and labelled in metrics by `family(namespace)` ' +
      '(default: its leading letters) up to `families` labels (1 to 1000, the rest `(other)`); see ' +
      '[Observability](observability.md#bounded-by-design)',
  },
  /** Where the client logs (rate-limited); `false` silences it. Default Nest's `Logger`. */
  logger: {
    type: as<LoggerService | false>(),
    kind: STRUCTURED,
    defaultText: 'Nest `Logger`',
    doc: 'a `LoggerService`, or `false` for silence',
  },
} as const satisfies Record<string, OptionRow>;

export type OptionName = keyof typeof OPTION_TABLE;

/** The module's options, one per row of the table, each with its type and documentation. */
// `keyof typeof` written out: a mapped type over an alias of it would drop each option's JSDoc
export type TableOptions = { -readonly [K in keyof typeof OPTION_TABLE]?: (typeof OPTION_TABLE)[K]['type'] };

/** The options checked by their row alone (not `structured`), as resolved: always present, `false` read as 0. */
export type PlainOptions = {
  -readonly [K in OptionName as (typeof OPTION_TABLE)[K]['kind']['type'] extends 'structured' ? never : K]-?: Exclude<
    (typeof OPTION_TABLE)[K]['type'],
    false
  >;
};

/** The module extras (`forRoot` options that are not the client's), for the reference. */
export const EXTRAS_TABLE: Record<string, { defaultText: string; doc: string }> = {
  isGlobal: { defaultText: '`false`', doc: 'register the client globally (module extra)' },
  name: { defaultText: 'none', doc: 'register a named client for `@InjectMemcached(name)` (module extra)' },
  interceptor: {
    defaultText: '`CacheInterceptor`',
    doc:
      "a `CacheInterceptor` subclass that serves the decorators on controller routes instead, always through Nest's " +
      'interceptor chain (module extra; see [HTTP caching](http-caching.md#your-own-rules))',
  },
};

/** The plain options with a number, and their bounds. */
export type NumericOption = {
  [K in OptionName]: (typeof OPTION_TABLE)[K]['kind'] extends { type: 'number' } ? K : never;
}[OptionName];

/** The reference table, as `docs/configuration.md` shows it between its markers. */
export function optionReference(): string {
  const code = (name: string) => `\`${name}\``;
  const rows = Object.entries(OPTION_TABLE).map(([name, row]: [string, OptionRow]) =>
    [code(name), (row.env ?? []).map(code).join(', '), row.defaultText, row.doc].join(' | '),
  );
  const extras = Object.entries(EXTRAS_TABLE).map(([name, row]) =>
    [code(name), '', row.defaultText, row.doc].join(' | '),
  );
  return [
    '| option | environment variables | default | meaning |',
    '|---|---|---|---|',
    ...[...rows, ...extras].map((row) => `| ${row} |`),
  ].join('\n');
}
