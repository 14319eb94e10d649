import { Logger, type LoggerService } from '@nestjs/common';
import { NodeRouter } from '../cluster/router.js';
import { ValueCipher } from '../codec/value-cipher.js';
import { ValueCodec } from '../codec/value.codec.js';
import {
  busKeysOf,
  encryptionKeysOf,
  type HttpCachePolicy,
  passwordOf,
  resolveOptions,
  type ResolvedMemcachedOptions,
  tlsOf,
} from '../config/memcached-options.js';
import type { MemcachedModuleOptions } from '../interfaces/memcached-module-options.interface.js';
import { NearCache } from '../near/near-cache.js';
import { CacheStats } from '../stats/cache-stats.js';
import { NodeConnection, type NodeTransportFactory } from '../transport/node-connection.js';
import { RateLimitedLogger } from '../utils/rate-limited-logger.js';
import { type FillPlan, type FillReport, type Loader, shownOutcome } from './lease.js';
import { TagVersions } from './tag-versions.js';
import type { EntryRef } from '../codec/keyspace.js';
import { Namespaces } from './namespaces.js';
import { DebtSpool } from './debt-spool.js';
import type { Debt, DebtObserver } from './debts.js';
import { invalidationOwed, invalidationsRepaid, remoteDebtDropped, spoolProblem } from '../memcached.messages.js';
import { NearTier } from './near-tier.js';
import { Operations } from './operations.js';
import { type GracePolicy, ReadThrough, type ReadRequest, type Served } from './read-through.js';
import { type CacheCallEvent, cacheChannel, traced } from '../tracing/channels.js';

/**
 * What the cache layer (the decorators' engine) asks of a client, by name: read through, write,
 * evict, and the few settings it applies. Given to the engine at construction; nothing else of
 * the client is reachable from it.
 */
export interface CacheBackend {
  /** The one place reads, fills, evictions and errors are counted and emitted. */
  readonly stats: CacheStats;
  /** The module's HTTP caching rules (the `http` option). */
  readonly httpPolicy: HttpCachePolicy;
  /** The module's `ttl`, seconds. */
  readonly defaultTtl: number;
  /** The module's `leases`. */
  readonly leases: boolean;
  /** The module's `grace`, seconds (0: none). */
  readonly grace: number;
  /** How reads with `grace` seconds (the module's when undefined) treat entries past their freshness; undefined: no grace. */
  gracePolicy(grace: number | undefined, staleFor?: number): GracePolicy | undefined;
  /** The module's `routeHandlers`: cached Express and Fastify routes may be served from their handlers. */
  readonly routeHandlers: boolean;
  /** A cache-aside read: the entry, or the source loaded once and filled. */
  read<T>(request: ReadRequest<T>): Promise<Served<T>>;
  /** Stores a value as an overwrite (`@CachePut`): loads of the key split off, every variant of it dropped. */
  write(
    target: EntryRef,
    value: unknown,
    fill: FillPlan | undefined,
    label: string,
    tags?: readonly string[],
  ): Promise<FillReport>;
  /** Gives tags new versions: every entry carrying one misses, in every service sharing the tag keyspace. */
  invalidateTags(tags: readonly string[]): Promise<void>;
  /** Deletes a key and every variant of it. */
  evict(target: { namespace?: string; key: string }): Promise<boolean>;
  /** Makes every entry of a namespace miss. */
  evictAll(namespace: string): Promise<void>;
  /** Whether reads of the namespace go through the near cache (`choice`: a decorator's own). */
  usesNear(namespace: string | undefined, choice: boolean | undefined): boolean;
  /** Whether the node holding the namespace is known down (its breaker is open). */
  isDown(namespace: string): boolean;
  /** The wire key a target is stored under now (a fill of another variant than the one read). */
  wireOf(target: EntryRef): Promise<string>;
}

/**
 * A client's parts, built once, each given what it needs at construction: the node router, the
 * wire operations, namespaces, the near tier and its bus, the read-through core and the counters.
 * `MemcachedClient` is the public API over it; the engine gets it as its `CacheBackend`.
 */
export class ClientCore implements CacheBackend {
  readonly options: ResolvedMemcachedOptions;
  readonly logger: LoggerService | false;
  readonly router: NodeRouter;
  readonly stats: CacheStats;
  readonly ops: Operations;
  readonly namespaces: Namespaces;
  /** The near tier and its bus, when a bus is configured. */
  readonly near: NearTier | undefined;
  readonly readThrough: ReadThrough;
  /** While the spool's debts are taken back at start (they are in the file already). */
  private loadingSpool = false;
  /** Settles once what the client needs at start is loaded; rejects when a configured bus's package is missing. */
  readonly ready: Promise<void>;

  /**
   * @param options see `MemcachedModuleOptions`
   * @param transport how nodes are reached (the testing module keeps them in memory)
   */
  constructor(
    options: MemcachedModuleOptions = {},
    transport: NodeTransportFactory = (address, connection) => new NodeConnection(address, connection),
  ) {
    const o = (this.options = resolveOptions(options));
    this.logger = o.logger === undefined ? new Logger('MemcachedClient') : o.logger;
    this.stats = new CacheStats(o.metrics);
    // namespaces the options name are named in code: counted and labelled one by one
    if (o.nearCache !== undefined && o.nearCache.namespaces !== '*') {
      for (const namespace of o.nearCache.namespaces) this.stats.declare(namespace);
    }
    for (const rule of o.bus?.follow ?? []) this.stats.declare(rule.evict);
    this.router = new NodeRouter(
      o.nodes,
      transport,
      {
        username: o.username,
        password: passwordOf(o),
        tls: tlsOf(o),
        timeout: o.timeout,
        connectTimeout: o.connectTimeout,
        keepAlive: o.keepAlive,
        retries: o.retries,
        retryDelay: o.retryDelay,
        maxBodyLength: o.maxItemSize + 512,
      },
      {
        hashing: o.hashing,
        deadNodePolicy: o.deadNodePolicy,
        breakerThreshold: o.breakerThreshold,
        breakerCooldown: o.breakerCooldown,
        logger: this.logger,
      },
    );
    const codec = new ValueCodec({
      compressionThreshold: o.compressionThreshold,
      serializer: o.serializer,
      mode: o.valueMode,
      format: o.valueFormat,
    });
    const keys = encryptionKeysOf(o);
    this.ops = new Operations(
      this.router,
      codec,
      this.stats,
      new RateLimitedLogger(this.logger),
      o.maxItemSize,
      keys && new ValueCipher(keys),
    );
    this.namespaces = new Namespaces(this.ops, o.keyPrefix);
    const tags = new TagVersions(this.ops, o.tagPrefix, o.breakerCooldown, {
      owed: (owed, local) => {
        this.stats.count('invalidationsOwed', owed.length);
        // tags can hold user data (ids): counted, never named
        if (local) this.ops.warnings.warn('owed', () => invalidationOwed(`${owed.length} tag(s)`));
      },
      paid: (count) => {
        this.stats.count('invalidationsRepaid', count);
        if (this.logger) this.logger.log?.(invalidationsRepaid(count));
      },
    });
    const warnings = this.ops.warnings;
    const spool =
      o.invalidationSpool === undefined
        ? undefined
        : new DebtSpool(o.invalidationSpool, (message) => warnings.warn('spool', () => spoolProblem(message)));
    // a bus alone (no near cache) still tells other processes' near caches about this one's changes
    this.near =
      o.bus === undefined
        ? undefined
        : new NearTier(
            new NearCache(o.nearCache ?? { maxBytes: 1024, ttl: 1 }),
            this.ops,
            this.namespaces,
            o.keyPrefix,
            o.tagPrefix,
            this.logger,
            o.nearCache !== undefined,
            o.bus,
            busKeysOf(o),
            // what `bus.follow` asks for: evictions caused by another service's change
            (t) =>
              t.key === undefined
                ? this.readThrough.evictAll(t.namespace, { derived: true })
                : this.readThrough.evict({ namespace: t.namespace, key: t.key }, { derived: true }),
            (debt, failover) => this.readThrough.hold(debt, failover),
          );
    this.readThrough = new ReadThrough(
      this.ops,
      this.namespaces,
      { leaseTtl: o.leaseTtl, leaseWait: o.leaseWait },
      this.near,
      (failover) => this.debtObserver(warnings, failover ? undefined : spool, failover),
      o.breakerCooldown,
      tags,
    );
    if (this.near !== undefined) {
      this.near.owedHere = () => this.readThrough.debts.held();
      this.near.heardTags = (heard, owed) => {
        tags.heard(heard);
        if (owed) tags.owe(heard, false);
      };
    }
    // what a process that died with debts left behind is this one's to pay, first
    this.loadingSpool = true;
    for (const debt of spool?.load() ?? []) this.readThrough.debts.owe(debt, true);
    this.loadingSpool = false;
    this.ready = this.near?.connect() ?? Promise.resolve();
    // the module awaits it (and fails to start); a client made by hand is only warned
    this.ready.catch(() => undefined);
  }

  /** Counts, spools and logs debts (the bus hears them from the read-through core itself). */
  private debtObserver(warnings: RateLimitedLogger, spool: DebtSpool | undefined, failover: boolean): DebtObserver {
    let paid = 0;
    return {
      owed: (debt: Debt | 'everything' | undefined, local: boolean) => {
        this.stats.count('invalidationsOwed');
        // this process's own (what other processes hold they spool themselves), once per debt held
        if (local && debt !== undefined && !this.loadingSpool) spool?.add(debt, () => this.readThrough.debts.held());
        if (local && !failover && debt !== undefined)
          warnings.warn('owed', () =>
            invalidationOwed(
              debt === 'everything'
                ? 'too many to hold: every node is flushed when it answers'
                : debt.key === undefined
                  ? `namespace "${debt.namespace}"`
                  : debt.namespace === undefined
                    ? 'a key without a namespace'
                    : `a key of namespace "${debt.namespace}"`,
            ),
          );
      },
      paid: (_debt: Debt | 'everything', count: number) => {
        paid += count;
        this.stats.count('invalidationsRepaid', count);
      },
      dropped: () => warnings.warn('owed:dropped', () => remoteDebtDropped()),
      cleared: () => {
        spool?.clear();
        if (paid > 0 && this.logger) this.logger.log?.(invalidationsRepaid(paid));
        paid = 0;
      },
    };
  }

  get httpPolicy(): HttpCachePolicy {
    return this.options.http;
  }

  get routeHandlers(): boolean {
    return this.options.routeHandlers;
  }

  get defaultTtl(): number {
    return this.options.ttl;
  }

  get leases(): boolean {
    return this.options.leases;
  }

  get grace(): number {
    return this.options.grace;
  }

  gracePolicy(grace: number | undefined, staleFor = 0): GracePolicy | undefined {
    const o = this.options;
    return (grace ?? o.grace) > 0 ? { staleFor, deadline: o.graceDeadline, backoff: o.graceBackoff } : undefined;
  }

  /** A read-through call (the engine's, `getOrSet`), traced when someone listens (`tracing/channels.ts`). */
  read<T>(request: ReadRequest<T>): Promise<Served<T>> {
    return cacheChannel.hasSubscribers ? tracedRead(this.readThrough, request) : this.readThrough.read(request);
  }

  async write(
    target: EntryRef,
    value: unknown,
    fill: FillPlan | undefined,
    label: string,
    tags?: readonly string[],
  ): Promise<FillReport> {
    if (fill !== undefined && tags !== undefined && tags.length > 0) {
      // a put stores what the method just wrote: under the versions its tags have now
      const versions = this.readThrough.tags;
      fill = { ...fill, tags: await versions.stamps(tags, await versions.read(tags)) };
    }
    return this.readThrough.overwrite(
      target,
      () => this.namespaces.currentWire(target),
      // the key's cached variants (HTTP responses) are older than this value: the bump is part of
      // the write, so other processes are told only once both have landed
      async (wire) =>
        (
          await Promise.all([
            this.readThrough.leases.fill(wire, { value, fill }, label),
            target.namespace === undefined ? undefined : this.namespaces.bumpVariants(target.namespace, target.key),
          ])
        )[0],
      (report) => report.outcome === 'stored',
      // a put memcached did not take leaves the old value there
      (report) => report.failure !== undefined,
    );
  }

  evict(target: { namespace?: string; key: string }): Promise<boolean> {
    return this.readThrough.evict(target);
  }

  evictAll(namespace: string): Promise<void> {
    return this.readThrough.evictAll(namespace);
  }

  invalidateTags(tags: readonly string[]): Promise<void> {
    return this.readThrough.invalidateTags(tags);
  }

  usesNear(namespace: string | undefined, choice: boolean | undefined): boolean {
    const near = this.options.nearCache;
    if (near === undefined) return false;
    if (choice !== undefined) return choice;
    return near.namespaces === '*' || (namespace !== undefined && near.namespaces.has(namespace));
  }

  isDown(namespace: string): boolean {
    return this.namespaces.isDown({ namespace, key: '' });
  }

  wireOf(target: EntryRef): Promise<string> {
    return this.namespaces.currentWire(target);
  }

  /** Closes the sockets and the bus. */
  close(): void {
    this.readThrough.tags.close();
    this.readThrough.debts.close();
    this.readThrough.failover.close();
    this.router.close();
    this.near?.close();
  }
}

function tracedRead<T>(readThrough: ReadThrough, request: ReadRequest<T>): Promise<Served<T>> {
  const { namespace, key } = request.target;
  const event: CacheCallEvent = request.tags ? { namespace, key, tags: request.tags } : { namespace, key };
  let unstorable = false;
  const load: Loader<T> = async (how) => {
    const loaded = await request.load(how);
    if (loaded.unstorable) unstorable = true;
    return loaded;
  };
  return traced(event, async () => {
    const served = await readThrough.read({ ...request, load });
    // set before the promise settles: subscribers read them at its end
    event.outcome = served.outcome === 'GRACED' ? 'STALE' : shownOutcome(served.outcome, unstorable);
    if (served.outcome === 'GRACED') event.graced = true;
    if (served.waited) event.leaseWaited = true;
    if (served.near) event.near = true;
    return served;
  });
}
