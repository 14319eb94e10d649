import type { ResponseMeta } from '../codec/value.codec.js';
import { type Debt, type DebtObserver, InvalidationDebts, owesAfter } from './debts.js';
import { Flights } from './flights.js';
import { type CacheFailure, type FillReport, type Loaded, LeaseProtocol, type Loader } from './lease.js';
import { type EntryRef, flightNames } from '../codec/keyspace.js';
import type { Lookup, Namespaces } from './namespaces.js';
import type { NearTier } from './near-tier.js';
import type { ItemRead, Operations } from './operations.js';
import { flushAll } from './node-commands.js';
import type { BreakerNode } from '../cluster/breaker-node.js';
import { LRUCache } from 'lru-cache';
import { answerTurn } from '../near/answer-turn.js';
import type { TagStamp } from '../codec/tags.js';
import type { TagVersions, TagVersionsRead } from './tag-versions.js';

import type { ReadOutcome } from '../stats/cache-stats.js';

export interface ReadRequest<T> {
  target: EntryRef;
  /** The source: its value, and how to store it. */
  load: Loader<T>;
  /** Fill under a lease (one loader across processes, no stale set after an eviction). */
  lease: boolean;
  /** JSON hits come back as `RawJson` text (the HTTP path sends it as is). */
  rawJson?: boolean;
  /** Names the entries in warnings (the namespace); keys are never logged. */
  label: string;
  /** Serve from and keep in the near cache (when the client has one). */
  near?: boolean;
  /**
   * The entry's tags, checked (`checkTags`): their versions are read with it, and stamped into
   * its fill as read before the load, so an invalidation during the load leaves the fill stale.
   */
  tags?: readonly string[];
  /**
   * Grace (stale-if-error): past its freshness (and `staleWhileRevalidate`), an entry is reloaded
   * by the caller, and if the load fails or passes `deadline`, the entry is served instead.
   */
  grace?: GracePolicy;
}

/** How a read serves an entry past its freshness when its source fails. */
export interface GracePolicy {
  /** Seconds an entry past its freshness may be served stale while a refresh runs (`staleWhileRevalidate`). */
  staleFor: number;
  /** Longest wait for the reload, ms; past it the entry is served and the reload goes on. */
  deadline: number;
  /** After a failed reload, ms during which the key's callers get the entry without reloading. */
  backoff: number;
}

export interface Served<T> {
  value: T;
  outcome: ReadOutcome;
  /** A hit's recorded metadata (HTTP entries). */
  meta?: ResponseMeta;
  /** The call waited for another caller's fill. */
  waited?: boolean;
  /** Served from this process's near cache. */
  near?: boolean;
  /** A cache operation that failed (the value then came from the source). */
  failure?: CacheFailure;
  /** This call's fill or background refresh, settling after the call returns. */
  filled?: Promise<FillReport>;
  /** GRACED: ms since the entry stopped being fresh. */
  staleMs?: number;
  /** GRACED: why the source did not answer (its error, or the deadline). */
  graceReason?: unknown;
}

/** Keys whose reload failed lately (in this process), and until when their callers get the entry as it is. */
const FAILING_KEYS = 10_000;

/**
 * Cache-aside reads, one implementation for `getOrSet` and the decorators: read the entry under
 * its namespace's generation; on a hit return it (stale ones are refreshed once in the
 * background); on a miss load once per key in this process (see `Flights`) and fill, under a
 * lease or plainly. Fails open: when the cache cannot be read, the source is loaded and nothing
 * is filled (a failed read means a sick node: no fill is queued behind it). What happened comes
 * back in the result; nothing is called back but the load.
 */
export class ReadThrough {
  readonly flights = new Flights();
  readonly leases: LeaseProtocol;
  /** Invalidations memcached did not confirm: their targets are not read from it until they are paid. */
  readonly debts: InvalidationDebts;
  /**
   * Invalidations that landed on a stand-in node while their owner was down (`deadNodePolicy:
   * 'rehash'`): read from the stand-ins meanwhile, owed to the owner, and not read from it until
   * paid there once every node is back.
   */
  readonly failover: InvalidationDebts;
  /** The nodes down while failover debts were taken: once any is back, those debts gate reads. */
  private readonly failedOver = new Set<BreakerNode>();
  /** Wire key -> until when (ms) a failed reload is not tried again, under grace. */
  private readonly failing = new LRUCache<string, number>({ max: FAILING_KEYS });

  constructor(
    private readonly ops: Operations,
    readonly namespaces: Namespaces,
    leaseOptions: { leaseTtl: number; leaseWait: number },
    /** The in-process tier, when a bus is configured. */
    private readonly near: NearTier | undefined,
    /** Hears debts held and paid (the spool, the counters, the logs; `failover` for those owed on return). */
    debtObserver: (failover: boolean) => DebtObserver,
    /** Longest pause between attempts to pay a debt, ms. */
    payEvery: number,
    /** The versions of tags, in the tag keyspace. */
    readonly tags: TagVersions,
  ) {
    this.leases = new LeaseProtocol(ops, leaseOptions);
    const payer = {
      key: (target: { namespace?: string; key: string }) => this.evict(target, { paying: true }),
      namespace: (namespace: string) => this.evictAll(namespace, { paying: true }),
      everything: () => flushAll(this.ops),
      // a payment made while a node's keys go elsewhere would land on the stand-in
      canPay: () => !this.ops.router.rehashing,
      allUp: () => this.ops.router.allUp,
    };
    this.debts = new InvalidationDebts(payer, debtObserver(false), payEvery);
    const failover = debtObserver(true);
    this.failover = new InvalidationDebts(
      payer,
      { ...failover, cleared: () => (this.failedOver.clear(), failover.cleared()) },
      payEvery,
    );
  }

  /** Whether an invalidation of the target is unpaid: what memcached holds for it may be older. */
  owes(target: EntryRef): boolean {
    return (
      (this.debts.size !== 0 && this.debts.covers(target)) ||
      (this.failover.size !== 0 && this.ownerBack() && this.failover.covers(target))
    );
  }

  /** Holds a debt another process told of on the bus. */
  hold(debt: Debt, failover: boolean): void {
    if (!failover) return this.debts.owe(debt, false);
    this.noteFailedOver();
    this.failover.owe(debt, false);
  }

  /** Whether a node that was down while failover debts were taken answers again (and may serve the old values). */
  private ownerBack(): boolean {
    // debts told by another process, while this one saw no node down: any node may be the owner
    if (this.failedOver.size === 0) return true;
    for (const node of this.failedOver) if (!node.isOpen) return true;
    return false;
  }

  private noteFailedOver(): void {
    for (const node of this.ops.router.nodes) if (node.isOpen) this.failedOver.add(node);
  }

  /** Whether a read of the target skips memcached: its node is down, or an invalidation of it is unpaid. */
  private skips(target: EntryRef): boolean {
    return this.namespaces.isDown(target) || this.owes(target);
  }

  async read<T>(request: ReadRequest<T>): Promise<Served<T>> {
    const target = request.target;
    this.namespaces.check(target);
    const ticket = this.flights.ticket();
    const near = request.near === true ? this.near : undefined;
    let start = 0;
    if (near !== undefined && near.cache.active) {
      const hit = near.read(target, request.rawJson === true);
      if (hit !== undefined) {
        const turn = answerTurn();
        if (turn !== undefined) await turn;
        return hit.meta === undefined
          ? { value: hit.value as T, outcome: 'HIT', near: true }
          : { value: hit.value as T, outcome: 'HIT', meta: hit.meta, near: true };
      }
      start = near.cache.begin();
    }
    let found: Lookup | undefined;
    let failure: CacheFailure | undefined;
    const declared = request.tags ?? NO_TAGS;
    const readTags = this.tags.toRead(target, declared);
    let versions: TagVersionsRead | undefined;
    let staleCas: Buffer | undefined;
    const tagStart = this.tags.begin();
    // an owed invalidation of one of its tags: memcached may hold what it invalidated
    if (!this.skips(target) && !this.tags.owes(readTags)) {
      try {
        found = await this.namespaces.lookup(
          target,
          request.rawJson,
          near !== undefined && near.cache.active,
          readTags.length === 0 ? NO_TAGS : readTags.map((tag) => this.tags.wireOf(tag)),
        );
        if (readTags.length > 0) versions = this.tags.versionsOf(readTags, found.tagItems!);
        const read = found.item;
        if (read.state === 'hit' && (read.tags !== undefined || declared.length > 0)) {
          versions ??= new Map();
          if (!(await this.tags.verify(target, read.tags, declared, versions))) {
            staleCas = read.cas;
            found = { ...found, item: { state: 'unreadable', cas: read.cas } };
          }
        }
      } catch (error) {
        found = undefined;
        failure = { operation: 'get', error };
      }
    }
    const item = found?.item;
    if (item?.state === 'hit') {
      if (item.freshUntil !== undefined && item.freshUntil <= Date.now()) {
        const grace = request.grace;
        const reload = this.tags.stamped(request, readTags, versions, tagStart);
        if (grace !== undefined && item.freshUntil + grace.staleFor * 1000 <= Date.now())
          return this.graced({ ...request, load: reload }, found!, item, ticket, grace);
        return {
          value: item.value as T,
          outcome: 'STALE',
          meta: item.meta,
          filled: this.leases.refresh(found!.wire, item.cas, reload, request.label),
        };
      }
      if (item.kept !== undefined) near?.keep(start, target, found!);
      return item.meta === undefined
        ? { value: item.value as T, outcome: 'HIT' }
        : { value: item.value as T, outcome: 'HIT', meta: item.meta };
    }
    if (found === undefined) {
      // the cache cannot be read: nothing is filled; loads of the key that start together are shared
      const { result } = await this.flights.run(
        flightNames.ofEntry(target),
        ticket,
        undefined,
        async () => (await request.load(NOTHING_KEPT)).value,
      );
      return failure === undefined ? { value: result, outcome: 'MISS' } : { value: result, outcome: 'MISS', failure };
    }
    const wire = found.wire;
    let stamps: TagStamp[] | undefined;
    if (readTags.length > 0) {
      try {
        // read before the load: an invalidation during it leaves the fill stale
        stamps = await this.tags.stamps(readTags, versions!);
      } catch (error) {
        const { result } = await this.flights.run(
          flightNames.ofEntry(target),
          ticket,
          undefined,
          async () => (await request.load(NOTHING_KEPT)).value,
        );
        return { value: result, outcome: 'MISS', failure: { operation: 'tag', error } };
      }
    }
    const load = this.tags.stamped(request, readTags, versions, tagStart, stamps);
    const reread =
      readTags.length === 0 && staleCas === undefined
        ? undefined
        : () => this.tags.reread(target, wire, declared, readTags, request.rawJson === true);
    // a load under other tag versions is not the one a call that read these may join
    const flightName =
      stamps === undefined
        ? flightNames.ofWire(wire, request.rawJson === true)
        : flightNames.ofTagged(wire, request.rawJson === true, stamps);
    const { result, joined } = await this.flights.run(flightName, ticket, item, async (flight): Promise<Served<T>> => {
      if (request.lease)
        return this.leases.load(wire, load, request.label, flight, request.rawJson, { replace: staleCas, reread });
      flight.leased(null);
      const loaded = await load();
      return { value: loaded.value, outcome: 'MISS', filled: this.leases.fill(wire, loaded, request.label, flight) };
    });
    // a call that joined another's load shares its value, not its fill or its wait
    if (!joined) return result;
    return result.outcome === 'GRACED'
      ? { value: result.value, outcome: 'GRACED', staleMs: result.staleMs, graceReason: result.graceReason }
      : { value: result.value, outcome: result.outcome };
  }

  /** Whether a hit read without its tags' versions is still valid under them (see `TagVersions.current`). */
  current(item: ItemRead): Promise<boolean> {
    return this.tags.current(item);
  }

  /** Which entries, by their stamps, were stored under a tag version that changed (see `TagVersions.staleOf`). */
  staleTagged(stamps: ReadonlyArray<readonly TagStamp[] | undefined>): Promise<boolean[]> {
    return this.tags.staleOf(stamps);
  }

  /**
   * An entry past its freshness, under grace: reloaded once per key in this process (callers that
   * come meanwhile share the reload); if the loader throws or passes the deadline, the entry is
   * served (GRACED) and the key's reloads pause for the back-off. A reload that succeeds replaces
   * the entry only if it is still the one read (an eviction meanwhile wins), even one that ends
   * after the deadline.
   */
  private async graced<T>(
    request: ReadRequest<T>,
    found: Lookup,
    item: Extract<ItemRead, { state: 'hit' }>,
    ticket: number,
    grace: GracePolicy,
  ): Promise<Served<T>> {
    const wire = found.wire;
    const asEntry = (reason: unknown): Served<T> => ({
      value: item.value as T,
      outcome: 'GRACED',
      meta: item.meta,
      staleMs: Date.now() - item.freshUntil!,
      graceReason: reason,
    });
    const pausedUntil = this.failing.get(wire);
    if (pausedUntil !== undefined) {
      if (pausedUntil > Date.now()) return asEntry(RELOAD_PAUSED);
      this.failing.delete(wire);
    }
    const { result, joined } = await this.flights.run(
      flightNames.ofWire(wire, request.rawJson === true),
      ticket,
      item,
      async (flight): Promise<Served<T>> => {
        flight.leased(null);
        const loading = request.load();
        const fill = (loaded: Loaded<T>) => this.leases.fill(wire, loaded, request.label, flight, item.cas);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<typeof DEADLINE>((resolve) => {
          timer = setTimeout(resolve, grace.deadline, DEADLINE);
          timer.unref();
        });
        try {
          const loaded = await Promise.race([loading, late]);
          if (loaded === DEADLINE) {
            this.failing.set(wire, Date.now() + grace.backoff);
            // the reload goes on: if it ends well, it replaces the entry
            loading.then(fill, () => undefined);
            return asEntry(DEADLINE);
          }
          return { value: loaded.value, outcome: 'MISS', filled: fill(loaded) };
        } catch (error) {
          this.failing.set(wire, Date.now() + grace.backoff);
          return asEntry(error);
        } finally {
          clearTimeout(timer);
        }
      },
    );
    return joined ? { ...result, filled: undefined } : result;
  }

  /**
   * Evicts a key and every variant of it: its running loads in this process are split off (not
   * joined, not stored), the entry is deleted and its variants' generation bumped. `derived`: the
   * eviction follows another service's change (`bus.follow`), so it is not followed further.
   * When memcached does not confirm it, the eviction is owed (see `InvalidationDebts`) and the
   * error is rethrown. `paying`: this is the payment of a debt (nothing more is owed or published).
   */
  async evict(
    target: { namespace?: string; key: string },
    how: { derived?: boolean; paying?: boolean } = {},
  ): Promise<boolean> {
    this.flights.invalidatePrefix(flightNames.keyPrefix(target));
    this.near?.keyChanging(target);
    let deleted: boolean;
    let moved: boolean;
    try {
      const wire = await this.namespaces.currentWire(target);
      this.flights.invalidateWire(wire);
      // decided as it is sent: a node that comes back meanwhile still missed this eviction
      moved = this.rehashed(target, wire);
      [deleted] = await Promise.all([
        this.ops.delete(wire),
        target.namespace ? this.namespaces.bumpVariants(target.namespace, target.key) : undefined,
      ]);
    } catch (error) {
      if (how.paying !== true) this.owe(key(target), error, how.derived === true);
      throw error;
    }
    if (how.paying === true) return deleted;
    this.near?.keyChanged(target, how.derived === true);
    if (moved) this.oweOnReturn(key(target));
    return deleted;
  }

  /** Evicts every entry of a namespace (a new generation; running loads belong to the old one). */
  async evictAll(namespace: string, how: { derived?: boolean; paying?: boolean } = {}): Promise<void> {
    this.flights.invalidatePrefix(flightNames.namespacePrefix(namespace));
    this.near?.namespaceChanging(namespace);
    const moved = this.ops.router.rehashed(this.namespaces.generationWire(namespace));
    try {
      await this.namespaces.bump(namespace);
    } catch (error) {
      if (how.paying !== true) this.owe({ namespace }, error, how.derived === true);
      throw error;
    }
    if (how.paying === true) return;
    this.near?.namespaceChanged(namespace, how.derived === true);
    if (moved) this.oweOnReturn({ namespace });
  }

  /**
   * Gives `tags` new versions: every entry stamped with them misses, in every process and service
   * sharing the tag keyspace; near caches drop them (this one at once, the others on the bus).
   * Rejects when memcached did not take every new version: those are owed (entries carrying them
   * are not read from memcached, here and in every process told on a signed bus, until paid).
   */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return;
    this.near?.tagsChanging(tags);
    try {
      await this.tags.invalidate(tags);
    } catch (error) {
      // those memcached did not take are owed here, and told as owed: other processes hold them too
      const owed = tags.filter((tag) => this.tags.owes([tag]));
      this.near?.tagsChanged(owed, true);
      this.near?.tagsChanged(
        tags.filter((tag) => !owed.includes(tag)),
        false,
      );
      throw error;
    }
    this.near?.tagsChanged(tags, false);
  }

  /** An invalidation failed: held until paid, and every process told (unless it was the caller's mistake). */
  private owe(debt: Debt, error: unknown, derived = false): void {
    if (!owesAfter(error)) return;
    this.near?.owed(debt, derived);
    this.debts.owe(debt, true);
  }

  /** Whether any of the target's wire keys (`wire`: its entry's) goes to a stand-in node now. */
  private rehashed(target: { namespace?: string; key: string }, wire: string): boolean {
    const router = this.ops.router;
    if (!router.rehashing) return false;
    if (router.rehashed(wire)) return true;
    const namespace = target.namespace;
    return (
      namespace !== undefined &&
      namespace !== '' &&
      (router.rehashed(this.namespaces.generationWire(namespace)) ||
        router.rehashed(this.namespaces.keyspace.group(namespace, target.key)))
    );
  }

  /**
   * With `deadNodePolicy: 'rehash'` a node's keys go elsewhere while it is down: what it held is
   * invalidated on the node it returns to only if the invalidation is owed to it meanwhile.
   */
  private oweOnReturn(debt: Debt): void {
    this.noteFailedOver();
    this.near?.owedOnReturn(debt);
    this.failover.owe(debt, true);
  }

  /**
   * Overwrites a key (a set, a counter change, a put): before `send`, the key's running loads in
   * this process are split off (their older result must not be stored) and the near cache stops
   * keeping what it read before; once `landed` says memcached took the write, every process's
   * near cache drops the key. With `owes`, a write memcached did not take (it threw, or `failed`
   * says so) leaves the old value there: it is owed as an eviction. The one way to write, so no
   * caller can do half of it.
   */
  async overwrite<R>(
    target: { namespace?: string; key: string },
    wireOf: () => string | Promise<string>,
    send: (wire: string) => Promise<R>,
    landed: (result: R) => boolean,
    owes?: (result: R) => boolean,
  ): Promise<R> {
    this.near?.keyChanging(target);
    let result: R;
    let moved: boolean;
    try {
      const wire = await wireOf();
      this.flights.invalidateWire(wire);
      moved = owes !== undefined && this.rehashed(target, wire);
      result = await send(wire);
    } catch (error) {
      if (owes !== undefined) this.owe(key(target), error);
      throw error;
    }
    if (owes?.(result) === true) this.owe(key(target), undefined);
    else if (landed(result)) {
      this.near?.keyChanged(target);
      if (moved) this.oweOnReturn(key(target));
    }
    return result;
  }
}

/** A key's debt, in the shape debts keep (no namespace for a plain key). */
function key(target: { namespace?: string; key: string }): Debt {
  return target.namespace ? { namespace: target.namespace, key: target.key } : { key: target.key };
}

const NOTHING_KEPT = { keep: false };
const NO_TAGS: readonly string[] = [];

/** Why a graced entry was served: the reload passed its deadline, or reloads of the key are paused after a failure. */
export const DEADLINE = Symbol('deadline');
export const RELOAD_PAUSED = Symbol('reload paused');
