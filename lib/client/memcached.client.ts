import { checkTags } from '../codec/tags.js';
import { MemcachedUsageError } from '../memcached.errors.js';
import type { LoggerService, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { inspect } from 'node:util';
import type { NodeStatus } from '../cluster/breaker-node.js';
import type { NodeRouter } from '../cluster/router.js';
import { normalizeTtl, toExpiry, ttlOrDefault } from '../codec/ttl.js';
import type { ResolvedMemcachedOptions } from '../config/memcached-options.js';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import {
  fillRefused,
  invalidGrace,
  invalidCounterBigint,
  invalidCounterNumber,
  reachable,
  unreachable,
} from '../memcached.messages.js';
import { Opcode } from '../transport/protocol.js';
import type {
  CacheStats,
  MemcachedClientStats,
  MemcachedCounters,
  OperationEvent,
  OperationStats,
} from '../stats/cache-stats.js';
import { ClientCore } from './client-core.js';
import { freshness } from './lease.js';
import type { Namespaces } from './namespaces.js';
import { flushAll, type NodePing, pingAll, serverStats } from './node-commands.js';
import type { Operations } from './operations.js';
import type { ReadThrough, Served } from './read-through.js';
import type { BusReport, NearTier } from './near-tier.js';
import type { NearCacheStats } from '../near/near-cache.js';
import type { OwedReport } from './debts.js';

export type {
  LatencyCounts,
  MemcachedClientStats,
  MemcachedCounters,
  NamespaceCounterView,
  OperationEvent,
  OperationStats,
} from '../stats/cache-stats.js';
export type { NodePing } from './node-commands.js';
export type { BusReport } from './near-tier.js';

/** Options every key-taking method accepts. */
export interface KeyOptions {
  /**
   * The key's namespace, `[A-Za-z0-9_.-]`: the same entries a decorator with this namespace
   * reads and writes, evicted together by `@CacheEvict({ allEntries: true })` or `evictAll`.
   */
  namespace?: string;
}

export interface SetOptions extends KeyOptions {
  /** Seconds; 0 = no expiry; above 30 days sent as an absolute time. Default: the module's `ttl`. */
  ttl?: number;
}

export interface CounterOptions extends SetOptions {
  /** Creates the counter with this value when missing; without it a missing counter gives `null`. */
  initial?: number | bigint;
}

export interface GetOrSetOptions<T> extends KeyOptions {
  /** Seconds, or a function of the loaded value. Default: the module's `ttl`. */
  ttl?: number | ((value: T) => number);
  /** `false` skips the lease protocol for this call (plain load and set). Default: the module's `leases`. */
  lease?: boolean;
  /** Read through the near cache (when the module has one): default per `nearCache.namespaces`. */
  nearCache?: boolean;
  /**
   * Seconds the value is kept past its TTL to answer when `loader` fails or passes the module's
   * `graceDeadline` (the last good value is returned instead). Default: the module's `grace`.
   */
  grace?: number;
  /**
   * Tags of the entry (up to 32 strings of 1 to 200 characters): `invalidateTags` with any of them
   * makes it miss, here and in every service sharing the `tagPrefix`. Read before `loader` runs.
   *
   * @example
   * cache.getOrSet(`order:${id}`, () => repo.findOrder(id), { tags: [`order:${id}`] })
   */
  tags?: string[];
  /**
   * Tags learned from the loaded value (the ids in a list), recorded with it.
   *
   * @example
   * cache.getOrSet('orders:recent', () => repo.recent(), { resultTags: (orders) => orders.map((o) => `user:${o.userId}`) })
   */
  resultTags?: (value: T) => string[];
}

const MAX_UINT64 = (1n << 64n) - 1n;

/** `getOrSet`'s `grace`: seconds, like a TTL; anything else is the caller's mistake. */
function normalizeGrace(grace: unknown): number {
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0)
    throw new MemcachedUsageError('TTL', invalidGrace(grace));
  return grace;
}

/**
 * The injectable memcached client: typed, promise-based, over its own binary-protocol sockets.
 * Keys are made safe (any string works), values keep their type (or are refused), every operation
 * has a deadline. Primitives reject with `MemcachedError` when memcached fails; `getOrSet` fails
 * open. A `namespace` option addresses the same entries as the decorators with that namespace.
 *
 * @example
 * constructor(private readonly cache: MemcachedClient) {}
 * const user = await this.cache.getOrSet(id, () => this.repo.findOne(id), { namespace: 'users', ttl: 60 });
 */
export class MemcachedClient implements OnApplicationBootstrap, OnApplicationShutdown {
  /** The client's parts; a subclass (the in-memory client) reads its own. */
  protected readonly core: ClientCore;
  private readonly options: ResolvedMemcachedOptions;
  private readonly router: NodeRouter;
  private readonly ops: Operations;
  private readonly namespaces: Namespaces;
  private readonly readThrough: ReadThrough;
  /** Set by `close()`: the startup ping of an app closed at once reports nothing. */
  private closed = false;
  private readonly statistics: CacheStats;
  private readonly logger: LoggerService | false;
  private readonly near: NearTier | undefined;

  /** @param options see `MemcachedModuleOptions` */
  constructor(options: MemcachedModuleOptions | ClientCore = {}) {
    const core = (this.core = options instanceof ClientCore ? options : new ClientCore(options));
    this.options = core.options;
    this.router = core.router;
    this.ops = core.ops;
    this.namespaces = core.namespaces;
    this.readThrough = core.readThrough;
    this.statistics = core.stats;
    this.logger = core.logger;
    this.near = core.near;
  }

  /** The key as sent to memcached for a key without a namespace: prefixed, made safe for the protocol. */
  keyFor(key: string): string {
    return this.namespaces.plainWire(key);
  }

  /** The `host:port` of the node that holds `key` (a key without a namespace). */
  nodeOf(key: string): string {
    return this.router.nodeFor(this.keyFor(key)).label;
  }

  /** Reads a value; `undefined` means a miss (stored `null`, `false`, `0`, `''` come back as such). */
  async get<T = unknown>(key: string, options?: KeyOptions): Promise<T | undefined> {
    const started = performance.now();
    const namespace = options?.namespace || undefined;
    let value: unknown;
    // an invalidation of it that memcached did not confirm: what memcached holds may be older
    if (this.readThrough.owes({ namespace, key })) value = undefined;
    else {
      const target = { namespace, key };
      this.namespaces.check(target);
      const { item } = await this.namespaces.lookup(target);
      // an entry stored with tags is read as a miss once one of them is invalidated
      value = item.state === 'hit' && (await this.readThrough.current(item)) ? item.value : undefined;
    }
    this.statistics.read(namespace, key, value === undefined ? 'MISS' : 'HIT', performance.now() - started);
    return value as T | undefined;
  }

  /**
   * Reads many keys in one pipelined round trip per node, all nodes in parallel; the map holds the
   * hits only. Keys on a node that fails or is down read as misses (logged, counted): one sick
   * node never costs the others' values.
   */
  async getMulti<T = unknown>(keys: readonly string[], options?: KeyOptions): Promise<Map<string, T>> {
    const started = performance.now();
    const wires = options?.namespace
      ? await this.namespaces.currentWires(options.namespace, keys)
      : keys.map((key) => this.keyFor(key));
    const found = await this.ops.fetchTolerant(wires);
    const result = new Map<string, T>();
    const namespace = options?.namespace || undefined;
    const items = keys.map((key, i) => {
      const res = this.readThrough.owes({ namespace, key }) ? undefined : found[i];
      return res === undefined ? undefined : this.ops.decodeTagged(res, wires[i]);
    });
    // entries stored with tags: their versions in one more round trip, a changed one a miss
    const stale = await this.readThrough.staleTagged(items.map((item) => item?.tags));
    const durationMs = performance.now() - started;
    for (let i = 0; i < keys.length; i++) {
      const value = stale[i] ? undefined : items[i]?.value;
      this.statistics.read(namespace, keys[i], value === undefined ? 'MISS' : 'HIT', durationMs);
      if (value !== undefined) result.set(keys[i], value as T);
    }
    return result;
  }

  /**
   * Stores a value. Resolves `false` without storing when the item exceeds `maxItemSize` (the key
   * is deleted instead, so an older value cannot survive as a stale hit). Rejects with
   * `UnsupportedValueError` for a value that would not come back as it is (see `serializer`).
   */
  async set(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.store(Opcode.Set, 'set', key, value, options);
  }

  /** Stores only if the key is absent; `false` when it exists. */
  async add(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.store(Opcode.Add, 'add', key, value, options);
  }

  /** Stores only if the key exists; `false` when it is missing. */
  async replace(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.store(Opcode.Replace, 'replace', key, value, options);
  }

  /**
   * Deletes a key and every variant of it (the HTTP responses cached under it); `false` when it
   * was not there. A load of the key already running in this process is not joined afterwards and
   * its result is not stored.
   */
  async delete(key: string, options?: KeyOptions): Promise<boolean> {
    return this.readThrough.evict({ namespace: options?.namespace, key });
  }

  /** Makes every entry of a namespace miss, with one atomic increment of its generation. */
  async deleteNamespace(namespace: string): Promise<void> {
    await this.readThrough.evictAll(namespace);
  }

  /**
   * Makes every entry carrying one of `tags` miss: in every namespace, in this process and in every
   * service sharing the `tagPrefix` (near caches drop them on the bus). Each tag gets a new random
   * version; rejects with `MemcachedError` when memcached did not take one.
   *
   * @example
   * await this.cache.invalidateTags([`user:${id}`]);
   */
  async invalidateTags(tags: string[]): Promise<void> {
    await this.readThrough.invalidateTags(checkTags(tags));
  }

  /** Sets a new TTL (seconds) on an existing key; `false` when it is missing. */
  async touch(key: string, ttl: number, options?: KeyOptions): Promise<boolean> {
    const expiry = toExpiry(normalizeTtl(ttl));
    return this.ops.touch(await this.wireOf(key, options), expiry);
  }

  /**
   * Atomically adds `delta` to a counter and resolves the new value, exact over memcached's whole
   * unsigned 64-bit range. `null` when the counter is missing and no `initial` was given.
   */
  increment(key: string, delta: number | bigint = 1, options?: CounterOptions): Promise<bigint | null> {
    return this.counter(Opcode.Increment, 'increment', key, delta, options);
  }

  /** Atomically subtracts `delta` (memcached stops at 0). See `increment`. */
  decrement(key: string, delta: number | bigint = 1, options?: CounterOptions): Promise<bigint | null> {
    return this.counter(Opcode.Decrement, 'decrement', key, delta, options);
  }

  /**
   * Cache-aside: returns the cached value, or calls `loader`, returns its result and stores it.
   * Concurrent calls for one key in this process share one load (never one that started before an
   * eviction of the key); with leases (the default), one load across processes and no stale fill
   * after an eviction. Fails open: if memcached errs or times out, `loader` runs and its result
   * (or error) reaches the caller unchanged. `undefined` results are not stored; a value that
   * would not come back as it is (a class instance) is returned, not stored, and counted.
   */
  async getOrSet<T>(key: string, loader: () => T | Promise<T>, options?: GetOrSetOptions<T>): Promise<T> {
    const ttl = options?.ttl;
    const fixedTtl = typeof ttl === 'function' ? 0 : ttlOrDefault(ttl, this.options.ttl);
    const grace = options?.grace === undefined ? this.options.grace : normalizeGrace(options.grace);
    const fillOf = (seconds: number) => freshness(seconds, grace);
    if (typeof key !== 'string') this.keyFor(key);
    const tags = options?.tags === undefined ? undefined : checkTags(options.tags);
    const resultTags = options?.resultTags;
    const namespace = options?.namespace || undefined;
    const label = namespace ? `namespace "${namespace}"` : 'keys without a namespace';
    const started = performance.now();
    let served: Served<T>;
    try {
      served = await this.core.read({
        target: { namespace, key },
        near: this.core.usesNear(namespace, options?.nearCache),
        tags,
        load: async () => {
          const value = await loader();
          if (value === undefined || (typeof ttl !== 'function' && resultTags === undefined))
            return { value, fill: fillOf(fixedTtl) };
          try {
            const fill = fillOf(typeof ttl === 'function' ? normalizeTtl(ttl(value), 'ttl()') : fixedTtl);
            return resultTags === undefined
              ? { value, fill }
              : { value, fill, resultTags: checkTags(resultTags(value)) };
          } catch (error) {
            this.ops.warnings.warn(`fill:${label}`, () => fillRefused(label, (error as Error).message));
            return { value, fill: undefined };
          }
        },
        lease: this.options.leases && options?.lease !== false,
        label,
        grace: this.core.gracePolicy(grace),
      });
    } catch (error) {
      // only the loader's own error gets here (the cache fails open): the read was a miss
      this.statistics.read(namespace, key, 'MISS', performance.now() - started);
      throw error;
    }
    this.statistics.served(namespace, key, served, performance.now() - started, (operation, error) => {
      this.statistics.failed(namespace, operation, error);
      this.ops.warnFailure(error);
    });
    return served.value;
  }

  /** Removes every item on every node (memcached `flush_all`). Only on explicit request. */
  flush(): Promise<void> {
    return flushAll(this.ops);
  }

  /** memcached's own statistics (`stats`), per node. */
  serverStats(): Promise<Record<string, Record<string, string>>> {
    return serverStats(this.ops);
  }

  /** Each node's health: up or down (breaker open), consecutive failures, last error, latency. */
  nodeStatus(): NodeStatus[] {
    return this.router.status();
  }

  /**
   * This client's counters since it started: every read path's hits and misses, writes, errors,
   * leases; with `nearCache` when a near cache is configured and `bus` when a bus is.
   */
  stats(): MemcachedClientStats & { owed: OwedReport; nearCache?: NearCacheStats; bus?: BusReport } {
    const counters: MemcachedClientStats & { owed: OwedReport; nearCache?: NearCacheStats; bus?: BusReport } = {
      ...this.statistics.snapshot(),
      owed: {
        ...this.readThrough.debts.report(),
        tags: this.readThrough.tags.owedCount,
        onReturn: this.readThrough.failover.report(),
      },
    };
    if (this.near === undefined) return counters;
    if (this.near.serving) counters.nearCache = this.near.cache.stats();
    counters.bus = this.near.report();
    return counters;
  }

  /**
   * The live counters (totals, per namespace, per operation and node), for an exporter of your
   * own that reads them when it is scraped, without the copies `stats()` makes. Read, never kept.
   *
   * @example
   * // families(): bounded labels (namespaces named in code, the others by family)
   * for (const [namespace, c] of client.counters().families()) gauge.set({ namespace }, c.hits);
   */
  counters(): MemcachedCounters {
    return this.statistics;
  }

  /** Count, failures and latency histogram of each operation (get, set, getMulti, ...). */
  operationStats(): Record<string, OperationStats> {
    return this.statistics.operationStats();
  }

  /**
   * Calls `listener` after every operation with its duration (and error); returns an unsubscribe
   * function. Used by the Prometheus integration.
   */
  onOperation(listener: (event: OperationEvent) => void): () => void {
    return this.statistics.onOperation(listener);
  }

  /**
   * Asks every node for its version, and for a `noop`, which needs SASL authentication (so a node
   * that refuses our credentials is reported as such). Never rejects.
   */
  ping(): Promise<NodePing[]> {
    return pingAll(this.ops);
  }

  /** Closes the sockets and the bus. Called by Nest on application shutdown. */
  close(): void {
    this.closed = true;
    this.core.close();
  }

  onApplicationBootstrap(): void {
    void this.ping().then((results) => {
      // an app closed before its first ping came back: the nodes are not unreachable, we left them
      if (!this.logger || this.closed) return;
      for (const r of results) {
        if (r.ok) this.logger.log(reachable(r.node, r.version ?? '?'));
        else this.logger.warn(unreachable(r.node, r.error ?? 'no answer'));
      }
    });
  }

  onApplicationShutdown(): void {
    this.close();
  }

  [inspect.custom](): string {
    return `MemcachedClient { nodes: [${this.router.nodes.map((n) => n.label).join(', ')}], keyPrefix: ${JSON.stringify(this.options.keyPrefix)} }`;
  }

  toJSON(): object {
    return { nodes: this.router.nodes.map((n) => n.label), keyPrefix: this.options.keyPrefix };
  }

  private async wireOf(key: string, options?: KeyOptions): Promise<string> {
    return options?.namespace ? this.namespaces.currentWire({ namespace: options.namespace, key }) : this.keyFor(key);
  }

  private async store(
    opcode: number,
    operation: string,
    key: string,
    value: unknown,
    options?: SetOptions,
  ): Promise<boolean> {
    const expiry = toExpiry(ttlOrDefault(options?.ttl, this.options.ttl));
    const label = options?.namespace ? `namespace "${options.namespace}"` : 'keys without a namespace';
    const encoded = this.ops.encode(value);
    const target = { namespace: options?.namespace, key };
    const outcome = await this.readThrough.overwrite(
      target,
      () => this.wireOf(key, options),
      (wire) => this.ops.store(opcode, operation, wire, encoded, expiry, label),
      (stored) => stored === 'stored',
      // a set or replace memcached did not take leaves the old value there (an add changed nothing)
      opcode === Opcode.Add ? undefined : () => false,
    );
    return outcome === 'stored';
  }

  private async counter(
    opcode: number,
    operation: string,
    key: string,
    delta: number | bigint,
    options: CounterOptions | undefined,
  ): Promise<bigint | null> {
    const amount = toUint64(delta, 'delta');
    const initial = options?.initial === undefined ? undefined : toUint64(options.initial, 'initial');
    const expiry = toExpiry(ttlOrDefault(options?.ttl, this.options.ttl));
    const target = { namespace: options?.namespace, key };
    // a counter is data, not a copy: one memcached did not change is not deleted later
    return this.readThrough.overwrite(
      target,
      () => this.wireOf(key, options),
      (wire) => this.ops.counter(opcode, operation, wire, amount, initial, expiry),
      (result) => result !== null,
    );
  }
}

function toUint64(value: number | bigint, name: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new MemcachedUsageError('COUNTER', invalidCounterNumber(name, value));
    }
    return BigInt(value);
  }
  if (typeof value !== 'bigint' || value < 0n || value > MAX_UINT64) {
    throw new MemcachedUsageError('COUNTER', invalidCounterBigint(name, value));
  }
  return value;
}
