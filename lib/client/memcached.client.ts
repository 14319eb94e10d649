import {
  Logger,
  type LoggerService,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { BreakerNode, type NodeStatus } from '../cluster/breaker-node.js';
import { KetamaRing } from '../cluster/ketama.js';
import { composeKey, toWireKey } from '../codec/key.codec.js';
import { normalizeTtl, toExpiry } from '../codec/ttl.js';
import { type DecodedItem, LEASE, UNDECODABLE, ValueCodec } from '../codec/value.codec.js';
import { resolveOptions, type ResolvedMemcachedOptions } from '../config/memcached-options.js';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { oversizeSkipped, reachable, unreachable } from '../memcached.messages.js';
import { LatencyHistogram, type LatencySnapshot } from '../utils/latency-histogram.js';
import { RateLimitedLogger } from '../utils/rate-limited-logger.js';
import { SingleFlight } from '../utils/single-flight.js';
import { MemcachedError } from './memcached.error.js';
import { NodeConnection, type NodeTransportFactory, PENDING } from './node-connection.js';
import {
  type BinaryResponse,
  buildMultiGet,
  buildRequest,
  counterExtras,
  expiryExtras,
  NO_INITIAL,
  Opcode,
  Status,
  STATUS_TEXT,
  storeExtras,
} from './protocol.js';

/** Options every key-taking method accepts. */
export interface KeyOptions {
  /** Joined into the key as `prefix + namespace + ':' + key`; `[A-Za-z0-9_.-]` only. */
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
}

/** Counters since the client started (see `stats()`). */
export interface MemcachedClientStats {
  hits: number;
  misses: number;
  sets: number;
  deletes: number;
  errors: number;
  timeouts: number;
  /** Values not stored because they exceed `maxItemSize` (their key was deleted instead). */
  oversizeSkips: number;
  /** Items whose bytes could not be decoded (foreign writer, corruption); read as misses. */
  undecodable: number;
  /** Leases taken: this process loaded a missing key for everyone. */
  leaseGrants: number;
  /** Misses that found another caller's lease and waited for its fill. */
  leaseWaits: number;
  /** Waits that ran out (`leaseWait`) and loaded without filling. */
  leaseWaitTimeouts: number;
  /** Fills refused because the key was evicted or overwritten after the lease was taken. */
  rejectedFills: number;
}

/** Per operation: count, failures and latency. */
export interface OperationStats {
  count: number;
  errors: number;
  latency: LatencySnapshot;
}

/** A finished operation, as `onOperation` listeners see it. */
export interface OperationEvent {
  operation: string;
  node: string;
  durationMs: number;
  error?: unknown;
}

/** What `readItems` found for a key. */
export type ItemRead =
  | { state: 'miss' }
  | { state: 'lease' }
  | { state: 'hit'; value: unknown; cas: Buffer; freshUntil?: number };

const MISS: ItemRead = { state: 'miss' };
const LEASED: ItemRead = { state: 'lease' };

/** How `loadWithLease` fills. */
export interface LeaseFill<T> {
  /** TTL in seconds for the loaded value. Default: the module's `ttl`. */
  ttl?: (value: T) => number | undefined;
  /** `false` returns the value without storing it (and releases the lease). */
  shouldStore?: (value: T) => boolean;
  /** Seconds the entry stays fresh, for stale-while-revalidate entries. */
  freshFor?: (value: T) => number | undefined;
  /** Longest wait for another caller's fill, in ms. Default: the module's `leaseWait`. */
  maxWait?: number;
  onFilled?: (outcome: 'stored' | 'rejected' | 'skipped') => void;
  /** Called when this call finds another caller's lease and waits. */
  onWait?: () => void;
  /** A value found after waiting comes back as `RawJson` when it is JSON (the HTTP path). */
  rawJson?: boolean;
}

export interface LeasedLoad<T> {
  value: T;
  /** HIT when another caller's fill was waited for. */
  outcome: 'HIT' | 'MISS';
}

export interface NodePing {
  node: string;
  ok: boolean;
  version?: string;
  latencyMs?: number;
  error?: string;
}

/** memcached's per-item overhead beyond key and value (item header, CAS, flags, CRLF), rounded up. */
const ITEM_OVERHEAD = 72;
const MAX_UINT64 = (1n << 64n) - 1n;

/**
 * The injectable memcached client: typed, promise-based, over memjs's binary-protocol sockets.
 * Keys are made safe (any string works), values keep their type, every operation has a deadline.
 * Primitives reject with `MemcachedError` when memcached fails; `getOrSet` fails open.
 *
 * @example
 * constructor(private readonly cache: MemcachedClient) {}
 * const user = await this.cache.getOrSet(`user:${id}`, () => this.repo.findOne(id), { ttl: 60 });
 */
export class MemcachedClient implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly options: ResolvedMemcachedOptions;
  private readonly nodes: BreakerNode[];
  private readonly ring?: KetamaRing;
  private readonly codec: ValueCodec;
  private readonly logger: LoggerService | false;
  private readonly warnings: RateLimitedLogger;
  private readonly flights = new SingleFlight();
  private readonly operations = new Map<string, { count: number; errors: number; latency: LatencyHistogram }>();
  private readonly operationListeners: Array<(event: OperationEvent) => void> = [];
  private readonly counters: MemcachedClientStats = {
    hits: 0,
    misses: 0,
    sets: 0,
    deletes: 0,
    errors: 0,
    timeouts: 0,
    oversizeSkips: 0,
    undecodable: 0,
    leaseGrants: 0,
    leaseWaits: 0,
    leaseWaitTimeouts: 0,
    rejectedFills: 0,
  };
  private seq = 0;

  /**
   * @param options see `MemcachedModuleOptions`
   * @param transport internal: how nodes are reached (the testing module swaps in memory)
   */
  constructor(
    options: MemcachedModuleOptions = {},
    transport: NodeTransportFactory = (address, connection) => new NodeConnection(address, connection),
  ) {
    this.options = resolveOptions(options);
    const o = this.options;
    this.logger = o.logger === undefined ? new Logger('MemcachedClient') : o.logger;
    this.warnings = new RateLimitedLogger(this.logger);
    this.codec = new ValueCodec({ compressionThreshold: o.compressionThreshold, serializer: o.serializer });
    const breaker = { threshold: o.breakerThreshold, cooldown: o.breakerCooldown, logger: this.logger };
    this.nodes = o.nodes.map((address) =>
      new BreakerNode(transport(address, {
          username: o.username,
          password: o.password,
          timeout: o.timeout,
          connectTimeout: o.connectTimeout,
          keepAlive: o.keepAlive,
          retries: o.retries,
        retryDelay: o.retryDelay,
      }), breaker),
    );
    if (this.nodes.length > 1) this.ring = new KetamaRing(o.nodes, { spy: o.hashing === 'ketama-spy' });
  }

  /** The key as sent to memcached: prefix and namespace joined, made safe for the protocol. */
  keyFor(key: string, namespace?: string): string {
    return toWireKey(composeKey(this.options.keyPrefix, namespace, key));
  }

  /** Whether cache-aside fills use leases (the `leases` option). */
  get leasesEnabled(): boolean {
    return this.options.leases;
  }

  /** The module's default TTL in seconds. */
  get defaultTtl(): number {
    return this.options.ttl;
  }

  /**
   * True when the node holding `key` is down (its breaker is open) and no other node serves it
   * (`deadNodePolicy: 'miss'`): callers can go to their source without building a request.
   */
  isDown(key: string, namespace?: string): boolean {
    if (this.ring === undefined) return this.nodes[0].isOpen;
    return this.nodeFor(this.keyFor(key, namespace)).isOpen;
  }

  /** The `host:port` of the node that holds `key`. */
  nodeOf(key: string, namespace?: string): string {
    return this.nodeFor(this.keyFor(key, namespace)).label;
  }

  /** Reads a value; `undefined` means a miss (stored `null`, `false`, `0`, `''` come back as such). */
  async get<T = unknown>(key: string, options?: KeyOptions): Promise<T | undefined> {
    return this.getWire<T>(this.keyFor(key, options?.namespace));
  }

  /**
   * Reads many keys in one pipelined round trip per node, all nodes in parallel; the map holds the
   * hits only. Keys on a node that fails or is down read as misses (logged, counted): one sick
   * node never costs the others' values.
   */
  async getMulti<T = unknown>(keys: readonly string[], options?: KeyOptions): Promise<Map<string, T>> {
    const found = await this.fetchMany(keys, options?.namespace, true);
    const result = new Map<string, T>();
    for (let i = 0; i < keys.length; i++) {
      const res = found[i];
      const value = res === undefined ? undefined : this.decode(res);
      if (value === undefined) this.counters.misses++;
      else {
        this.counters.hits++;
        result.set(keys[i], value as T);
      }
    }
    return result;
  }

  /**
   * For the cache engine: reads keys with their CAS and lease state, one pipelined request per
   * node; the result is in the order of `keys`. Rejects if a node fails (the engine then serves
   * from the source without filling).
   */
  async readItems(keys: readonly string[], options: { rawJson?: boolean } = {}): Promise<ItemRead[]> {
    const found = await this.fetchMany(keys, undefined, false);
    const result: ItemRead[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const res = found[i];
      const item = res === undefined ? undefined : this.decodeItem(res, options.rawJson);
      if (item === undefined) result[i] = MISS;
      else if (item === LEASE) result[i] = LEASED;
      // the CAS is a slice of a received chunk, which nothing writes to afterwards
      else result[i] = { state: 'hit', value: item.value, cas: res!.header.cas, freshUntil: item.freshUntil };
    }
    return result;
  }

  /**
   * Cache-aside fill under a lease (Facebook's "Scaling Memcache" §3.2.1), for a key that just
   * missed. The caller that wins an atomic `add` of a short-lived marker loads and fills with the
   * marker's CAS, so the fill fails if the key was evicted or overwritten meanwhile (no stale set
   * after a write). Others wait for the fill with bounded backoff, then load without filling.
   * A holder that dies leaves a marker that expires after `leaseTtl`.
   */
  async loadWithLease<T>(key: string, load: () => Promise<T>, fill: LeaseFill<T> = {}): Promise<LeasedLoad<T>> {
    const o = this.options;
    const deadline = Date.now() + (fill.maxWait ?? o.leaseWait);
    let backoff = 4;
    for (;;) {
      let cas: Buffer | null;
      try {
        cas = await this.acquireLease(key);
      } catch (error) {
        this.warnFailure(error);
        return { value: await load(), outcome: 'MISS' };
      }
      if (cas) {
        this.counters.leaseGrants++;
        return { value: await this.loadAndFill(key, cas, load, fill), outcome: 'MISS' };
      }
      this.counters.leaseWaits++;
      fill.onWait?.();
      // someone else holds the lease: wait for their fill
      let item: ItemRead = LEASED;
      while (item.state === 'lease' && Date.now() + backoff < deadline) {
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 50);
        try {
          [item] = await this.readItems([key], { rawJson: fill.rawJson });
        } catch (error) {
          this.warnFailure(error);
          return { value: await load(), outcome: 'MISS' };
        }
      }
      if (item.state === 'hit') return { value: item.value as T, outcome: 'HIT' };
      if (item.state === 'lease') {
        this.counters.leaseWaitTimeouts++;
        return { value: await load(), outcome: 'MISS' };
      }
      // the marker went away without a value (evicted, released): try to take the lease ourselves
    }
  }

  /** Takes the lease on a key: its marker's CAS, or null when the key exists (value or marker). */
  async acquireLease(key: string): Promise<Buffer | null> {
    const wire = this.keyFor(key);
    const seq = this.nextSeq();
    const marker = this.codec.leaseMarker(randomBytes(8));
    const frame = buildRequest(Opcode.Add, wire, storeExtras(marker.flags, toExpiry(this.options.leaseTtl)), marker.bytes, seq);
    return this.send(this.nodeFor(wire), 'lease', seq, frame, {
      onResponse: (res) => {
        if (res.header.status === Status.Ok) return Buffer.from(res.header.cas);
        if (res.header.status === Status.KeyExists || res.header.status === Status.NotStored) return null;
        throw this.serverError('lease', wire, res.header.status);
      },
    });
  }

  /**
   * Stores `value` only if the key still holds the item with this CAS (a lease marker, or the
   * stale entry a refresh started from): `rejected` when it was evicted or overwritten since.
   */
  async fillIfUnchanged(key: string, value: unknown, cas: Buffer, options: { ttl?: number; freshUntil?: number } = {}): Promise<'stored' | 'rejected' | 'skipped'> {
    const wire = this.keyFor(key);
    const { bytes, flags } = this.codec.encode(value, options.freshUntil);
    const size = bytes.length + wire.length + ITEM_OVERHEAD;
    if (size > this.options.maxItemSize) {
      await this.skipOversize(wire, undefined, size);
      return 'skipped';
    }
    const seq = this.nextSeq();
    const frame = buildRequest(Opcode.Set, wire, storeExtras(flags, toExpiry(options.ttl ?? this.options.ttl)), bytes, seq, cas);
    const status = await this.send(this.nodeFor(wire), 'fill', seq, frame, { onResponse: (res) => res.header.status });
    if (status === Status.Ok) {
      this.counters.sets++;
      return 'stored';
    }
    if (status === Status.KeyNotFound || status === Status.KeyExists) {
      this.counters.rejectedFills++;
      return 'rejected';
    }
    if (status === Status.ValueTooLarge) {
      this.noteOversize(wire, undefined, size);
      return 'skipped';
    }
    throw this.serverError('fill', wire, status);
  }

  /** Deletes the key only if it still holds the item with this CAS (our own lease marker). */
  async deleteIfUnchanged(key: string, cas: Buffer): Promise<boolean> {
    const wire = this.keyFor(key);
    const seq = this.nextSeq();
    return this.send(this.nodeFor(wire), 'release', seq, buildRequest(Opcode.Delete, wire, null, null, seq, cas), {
      onResponse: (res) => res.header.status === Status.Ok,
    });
  }

  private async loadAndFill<T>(key: string, cas: Buffer, load: () => Promise<T>, fill: LeaseFill<T>): Promise<T> {
    let value: T;
    try {
      value = await load();
    } catch (error) {
      this.deleteIfUnchanged(key, cas).catch(() => undefined);
      throw error;
    }
    let ttl: number | undefined;
    let store: boolean;
    try {
      store = value !== undefined && (fill.shouldStore?.(value) ?? true);
      ttl = store ? fill.ttl?.(value) : undefined;
    } catch (error) {
      store = false;
      this.warnings.warn(`fill:${key}`, `not caching ${key}: ${(error as Error).message}`);
    }
    if (!store) {
      // release the lease so waiters stop waiting
      this.deleteIfUnchanged(key, cas).catch(() => undefined);
      return value;
    }
    const freshFor = fill.freshFor?.(value);
    const freshUntil = freshFor === undefined ? undefined : Date.now() + freshFor * 1000;
    // the fill goes out behind the result (the next request on this socket is ordered after it)
    void this.fillIfUnchanged(key, value, cas, { ttl, freshUntil }).then(
      (outcome) => fill.onFilled?.(outcome),
      (error) => this.warnFailure(error),
    );
    return value;
  }

  /**
   * Stores a value. Resolves `false` without storing when the item exceeds `maxItemSize`: the key
   * is deleted instead, so an older value cannot survive as a stale hit.
   */
  async set(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.store(Opcode.Set, 'set', this.keyFor(key, options?.namespace), value, options?.ttl, options?.namespace);
  }

  /** Stores only if the key is absent; `false` when it exists. */
  async add(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.store(Opcode.Add, 'add', this.keyFor(key, options?.namespace), value, options?.ttl, options?.namespace);
  }

  /** Stores only if the key exists; `false` when it is missing. */
  async replace(key: string, value: unknown, options?: SetOptions): Promise<boolean> {
    return this.store(Opcode.Replace, 'replace', this.keyFor(key, options?.namespace), value, options?.ttl, options?.namespace);
  }

  /** Deletes a key; `false` when it was not there. */
  async delete(key: string, options?: KeyOptions): Promise<boolean> {
    return this.deleteWire(this.keyFor(key, options?.namespace), 'delete');
  }

  /** Sets a new TTL (seconds) on an existing key; `false` when it is missing. */
  async touch(key: string, ttl: number, options?: KeyOptions): Promise<boolean> {
    const wire = this.keyFor(key, options?.namespace);
    const seq = this.nextSeq();
    const frame = buildRequest(Opcode.Touch, wire, expiryExtras(toExpiry(ttl)), null, seq);
    return this.send(this.nodeFor(wire), 'touch', seq, frame, {
      idempotent: true,
      onResponse: (res) => this.expect(res, 'touch', wire, { [Status.Ok]: true, [Status.KeyNotFound]: false }),
    });
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
   * Concurrent calls for one key in this process share one load. Fails open: if memcached errs
   * or times out, `loader` runs and its result (or error) reaches the caller unchanged.
   * `undefined` results are not stored.
   */
  async getOrSet<T>(key: string, loader: () => T | Promise<T>, options?: GetOrSetOptions<T>): Promise<T> {
    const wire = this.keyFor(key, options?.namespace);
    let cached: T | undefined;
    try {
      cached = await this.getWire<T>(wire);
    } catch (err) {
      // after a failed read the node is suspect: serve from the source, fill nothing (FB §3.1)
      this.warnFailure(err);
      return this.flights.run(wire, async () => loader());
    }
    if (cached !== undefined) return cached;
    // concurrent misses of one key in this process share one load (hits never wait on each other)
    return this.flights.run(wire, () => this.loadMissing(key, wire, loader, options));
  }

  private async loadMissing<T>(key: string, wire: string, loader: () => T | Promise<T>, options?: GetOrSetOptions<T>): Promise<T> {
    const ttl = (value: T) => (typeof options?.ttl === 'function' ? normalizeTtl(options.ttl(value), 'ttl()') : options?.ttl);
    if (this.options.leases && options?.lease !== false) {
      const leaseKey = options?.namespace ? `${options.namespace}:${key}` : key;
      return (await this.loadWithLease(leaseKey, async () => loader(), { ttl })).value;
    }
    const value = await loader();
    if (value !== undefined) {
      let seconds: number | undefined;
      try {
        seconds = ttl(value);
      } catch (err) {
        this.warnings.warn(`ttl:${key}`, (err as Error).message);
        return value;
      }
      this.store(Opcode.Set, 'set', wire, value, seconds, options?.namespace).catch((err) => this.warnFailure(err));
    }
    return value;
  }

  /** Removes every item on every node (memcached `flush_all`). Only on explicit request. */
  async flush(): Promise<void> {
    await Promise.all(
      this.nodes.map((node) => {
        const seq = this.nextSeq();
        return this.send(node, 'flush', seq, buildRequest(Opcode.Flush, '', null, null, seq), {
          idempotent: true,
          onResponse: (res) => this.expect(res, 'flush', '', { [Status.Ok]: undefined }),
        });
      }),
    );
  }

  /** memcached's own statistics (`stats`), per node. */
  async serverStats(): Promise<Record<string, Record<string, string>>> {
    const entries = await Promise.all(
      this.nodes.map(async (node) => {
        const seq = this.nextSeq();
        const acc: Record<string, string> = {};
        const stats = await this.send(node, 'serverStats', seq, buildRequest(Opcode.Stat, '', null, null, seq), {
          quiet: true,
          idempotent: true,
          onResponse(res) {
            if (res.header.keyLength === 0) return acc;
            acc[res.key.toString('latin1')] = res.val.toString('latin1');
            return PENDING;
          },
        });
        return [node.label, stats] as const;
      }),
    );
    return Object.fromEntries(entries);
  }

  /** Each node's health: up or down (breaker open), consecutive failures, last error, latency. */
  nodeStatus(): NodeStatus[] {
    return this.nodes.map((node) => node.status());
  }

  /** This client's counters since it started. */
  stats(): MemcachedClientStats {
    return { ...this.counters };
  }

  /** Count, failures and latency histogram of each operation (get, set, getMulti, ...). */
  operationStats(): Record<string, OperationStats> {
    return Object.fromEntries(
      [...this.operations].map(([op, s]) => [op, { count: s.count, errors: s.errors, latency: s.latency.snapshot() }]),
    );
  }

  /**
   * Calls `listener` after every operation with its duration (and error); returns an unsubscribe
   * function. Used by the Prometheus integration.
   */
  onOperation(listener: (event: OperationEvent) => void): () => void {
    this.operationListeners.push(listener);
    return () => {
      const index = this.operationListeners.indexOf(listener);
      if (index >= 0) this.operationListeners.splice(index, 1);
    };
  }

  /** Asks every node for its version; never rejects. */
  async ping(): Promise<NodePing[]> {
    return Promise.all(
      this.nodes.map(async (node): Promise<NodePing> => {
        const seq = this.nextSeq();
        const started = performance.now();
        try {
          const version = await this.send(node, 'ping', seq, buildRequest(Opcode.Version, '', null, null, seq), {
            idempotent: true,
            onResponse: (res) => res.val.toString('latin1'),
          });
          return { node: node.label, ok: true, version, latencyMs: performance.now() - started };
        } catch (err) {
          return { node: node.label, ok: false, error: (err as Error).message };
        }
      }),
    );
  }

  /** Closes the sockets. Called by Nest on application shutdown. */
  close(): void {
    for (const node of this.nodes) node.close();
  }

  onApplicationBootstrap(): void {
    void this.ping().then((results) => {
      if (!this.logger) return;
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
    return `MemcachedClient { nodes: [${this.nodes.map((n) => n.label).join(', ')}], keyPrefix: ${JSON.stringify(this.options.keyPrefix)} }`;
  }

  toJSON(): object {
    return { nodes: this.nodes.map((n) => n.label), keyPrefix: this.options.keyPrefix };
  }

  private async getWire<T>(wire: string): Promise<T | undefined> {
    const seq = this.nextSeq();
    const res = await this.send(this.nodeFor(wire), 'get', seq, buildRequest(Opcode.Get, wire, null, null, seq), {
      idempotent: true,
      onResponse: (r) => r,
    });
    if (res.header.status === Status.KeyNotFound) {
      this.counters.misses++;
      return undefined;
    }
    if (res.header.status !== Status.Ok) this.expect(res, 'get', wire, {});
    const value = this.decode(res);
    if (value === undefined) this.counters.misses++;
    else this.counters.hits++;
    return value as T | undefined;
  }

  /** Raw responses in the order of `keys` (undefined: a miss), one pipelined request per node, nodes in parallel. */
  private async fetchMany(keys: readonly string[], namespace: string | undefined, partial: boolean): Promise<Array<BinaryResponse | undefined>> {
    const wires = keys.map((key) => this.keyFor(key, namespace));
    const found: Array<BinaryResponse | undefined> = new Array(keys.length);
    if (this.ring === undefined) {
      await this.fetchFromNode(this.nodes[0], wires, found, partial);
      return found;
    }
    const byNode = new Map<BreakerNode, number[]>();
    for (let i = 0; i < wires.length; i++) {
      const node = this.nodeFor(wires[i]);
      const indexes = byNode.get(node);
      if (indexes) indexes.push(i);
      else byNode.set(node, [i]);
    }
    await Promise.all([...byNode].map(([node, indexes]) => this.fetchFromNode(node, wires, found, partial, indexes)));
    return found;
  }

  /** One pipelined GETKQ... NOOP on `node` for `wires` (or those at `indexes`); hits land in `found`. */
  private async fetchFromNode(
    node: BreakerNode,
    wires: string[],
    found: Array<BinaryResponse | undefined>,
    partial: boolean,
    indexes?: number[],
  ): Promise<void> {
    const mine = indexes === undefined ? wires : indexes.map((i) => wires[i]);
    // a few keys: match a hit by scanning; many: by a map of wire key to positions
    let positions: Map<string, number[]> | undefined;
    if (mine.length > 8) {
      positions = new Map();
      for (let j = 0; j < mine.length; j++) {
        const at = indexes === undefined ? j : indexes[j];
        const list = positions.get(mine[j]);
        if (list) list.push(at);
        else positions.set(mine[j], [at]);
      }
    }
    const seq = this.nextSeq();
    try {
      await this.send(node, 'getMulti', seq, buildMultiGet(mine, seq), {
        quiet: true,
        idempotent: true,
        onResponse(res) {
          if (res.header.opcode === Opcode.Noop) return true;
          if (res.header.status !== Status.Ok) return PENDING;
          const wire = res.key.toString('latin1');
          if (positions !== undefined) {
            for (const at of positions.get(wire) ?? []) found[at] = res;
          } else {
            for (let j = 0; j < mine.length; j++) if (mine[j] === wire) found[indexes === undefined ? j : indexes[j]] = res;
          }
          return PENDING;
        },
      });
    } catch (error) {
      if (!partial) throw error;
      // one sick node must not cost the others' hits: its keys read as misses
      this.warnFailure(error);
    }
  }

  private decode(res: BinaryResponse): unknown {
    const item = this.decodeItem(res);
    return item === undefined || item === LEASE ? undefined : item.value;
  }

  private decodeItem(res: BinaryResponse, rawJson = false): DecodedItem | typeof LEASE | undefined {
    const flags = res.extras.length >= 4 ? res.extras.readUInt32BE(0) : 0;
    const item = this.codec.decodeItem(res.val, flags, rawJson);
    if (item === UNDECODABLE) {
      this.counters.undecodable++;
      return undefined;
    }
    return item;
  }

  private async store(
    opcode: number,
    operation: string,
    wire: string,
    value: unknown,
    ttl: number | undefined,
    namespace: string | undefined,
  ): Promise<boolean> {
    const { bytes, flags } = this.codec.encode(value);
    const expiry = toExpiry(ttl ?? this.options.ttl);
    const size = bytes.length + wire.length + ITEM_OVERHEAD;
    if (size > this.options.maxItemSize) return this.skipOversize(wire, namespace, size);
    const seq = this.nextSeq();
    const frame = buildRequest(opcode, wire, storeExtras(flags, expiry), bytes, seq);
    const status = await this.send(this.nodeFor(wire), operation, seq, frame, {
      idempotent: opcode !== Opcode.Add,
      onResponse: (res) => res.header.status,
    });
    switch (status) {
      case Status.Ok:
        this.counters.sets++;
        return true;
      case Status.KeyExists:
      case Status.KeyNotFound:
      case Status.NotStored:
        return false;
      case Status.ValueTooLarge:
        // memcached has already unlinked the old item
        this.noteOversize(wire, namespace, size);
        return false;
      default:
        throw this.serverError(operation, wire, status);
    }
  }

  private async skipOversize(wire: string, namespace: string | undefined, size: number): Promise<boolean> {
    this.noteOversize(wire, namespace, size);
    await this.deleteWire(wire, 'set');
    return false;
  }

  private noteOversize(wire: string, namespace: string | undefined, size: number): void {
    this.counters.oversizeSkips++;
    const pattern = (namespace ?? wire.split(/[:#]/, 1)[0]).slice(0, 60).replace(/[0-9]+/g, '#');
    this.warnings.once(`oversize:${pattern}`, oversizeSkipped(pattern, size, this.options.maxItemSize));
  }

  private async deleteWire(wire: string, operation: string): Promise<boolean> {
    const seq = this.nextSeq();
    const deleted = await this.send(this.nodeFor(wire), operation, seq, buildRequest(Opcode.Delete, wire, null, null, seq), {
      idempotent: true,
      onResponse: (res) => this.expect(res, operation, wire, { [Status.Ok]: true, [Status.KeyNotFound]: false }),
    });
    if (deleted) this.counters.deletes++;
    return deleted;
  }

  private async counter(
    opcode: number,
    operation: string,
    key: string,
    delta: number | bigint,
    options: CounterOptions | undefined,
  ): Promise<bigint | null> {
    const wire = this.keyFor(key, options?.namespace);
    const amount = toUint64(delta, 'delta');
    const initial = options?.initial;
    const expiry = initial === undefined ? NO_INITIAL : toExpiry(options?.ttl ?? this.options.ttl);
    const seq = this.nextSeq();
    const extras = counterExtras(amount, initial === undefined ? 0n : toUint64(initial, 'initial'), expiry);
    // never retried: a lost answer does not mean the increment was not applied
    return this.send(this.nodeFor(wire), operation, seq, buildRequest(opcode, wire, extras, null, seq), {
      onResponse: (res) => {
        if (res.header.status === Status.Ok) return res.val.readBigUInt64BE(0);
        if (res.header.status === Status.KeyNotFound) return null;
        throw this.serverError(operation, wire, res.header.status);
      },
    });
  }

  private send<T>(
    node: BreakerNode,
    operation: string,
    seq: number,
    frame: Buffer,
    spec: { quiet?: boolean; idempotent?: boolean; onResponse: (res: BinaryResponse) => T | typeof PENDING },
  ): Promise<T> {
    return node.request(operation, seq, frame, spec.onResponse, spec, this.settled);
  }

  /** Every operation's end, with its duration, as the node saw it: counters and latency. */
  private readonly settled = (operation: string, node: string, durationMs: number, error?: unknown): void => {
    if (error !== undefined) {
      this.counters.errors++;
      if (error instanceof MemcachedError && error.code === 'TIMEOUT') this.counters.timeouts++;
    }
    this.record(operation, node, durationMs, error);
  };

  private record(operation: string, node: string, durationMs: number, error?: unknown): void {
    let stats = this.operations.get(operation);
    if (!stats) this.operations.set(operation, (stats = { count: 0, errors: 0, latency: new LatencyHistogram() }));
    stats.count++;
    if (error !== undefined) stats.errors++;
    stats.latency.observe(durationMs);
    if (this.operationListeners.length === 0) return;
    const event: OperationEvent = { operation, node, durationMs, error };
    for (const listener of this.operationListeners) {
      try {
        listener(event);
      } catch {
        // a metrics bug must not fail the operation
      }
    }
  }

  private expect<T>(res: BinaryResponse, operation: string, wire: string, outcomes: Record<number, T>): T {
    const status = res.header.status;
    if (status in outcomes) return outcomes[status];
    throw this.serverError(operation, wire, status);
  }

  private serverError(operation: string, wire: string, status: number): MemcachedError {
    const node = wire === '' ? this.nodes[0].label : this.nodeFor(wire).label;
    return new MemcachedError(operation, node, 'SERVER', STATUS_TEXT[status] ?? `status 0x${status.toString(16)}`, status);
  }

  private warnFailure(err: unknown): void {
    const topic = err instanceof MemcachedError ? `${err.operation}:${err.node}:${err.code}` : 'other';
    this.warnings.warn(topic, `cache bypassed: ${(err as Error).message}`);
  }

  private nodeFor(wire: string): BreakerNode {
    if (this.ring === undefined) return this.nodes[0];
    const owner = this.nodes[this.ring.locate(wire)];
    if (!owner.isOpen || this.options.deadNodePolicy === 'miss') return owner;
    const next = this.ring.locate(wire, (index) => this.nodes[index].isOpen);
    return next < 0 ? owner : this.nodes[next];
  }

  private nextSeq(): number {
    // 32-bit opaque, kept unsigned (memjs's own counter turns negative after 2^31 and throws)
    this.seq = this.seq >= 0xfffffffe ? 1 : this.seq + 1;
    return this.seq;
  }
}

function toUint64(value: number | bigint, name: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Invalid ${name} ${value}: expected a whole number >= 0 (use a bigint above 2^53)`);
    }
    return BigInt(value);
  }
  if (typeof value !== 'bigint' || value < 0n || value > MAX_UINT64) {
    throw new RangeError(`Invalid ${name} ${String(value)}: expected an unsigned 64-bit integer`);
  }
  return value;
}
