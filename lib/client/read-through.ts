import type { ResponseMeta } from '../codec/value.codec.js';
import { Flights } from './flights.js';
import { type CacheFailure, type FillReport, LeaseProtocol, type Loader } from './lease.js';
import { type EntryRef, flightNames } from '../codec/keyspace.js';
import type { Lookup, Namespaces } from './namespaces.js';
import type { NearTier } from './near-tier.js';
import type { Operations } from './operations.js';

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
}

export interface Served<T> {
  value: T;
  outcome: ReadOutcome;
  /** A hit's recorded metadata (HTTP entries). */
  meta?: ResponseMeta;
  /** The call waited for another caller's fill. */
  waited?: boolean;
  /** A cache operation that failed (the value then came from the source). */
  failure?: CacheFailure;
  /** This call's fill or background refresh, settling after the call returns. */
  filled?: Promise<FillReport>;
}

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

  constructor(
    private readonly ops: Operations,
    readonly namespaces: Namespaces,
    leaseOptions: { leaseTtl: number; leaseWait: number },
    /** The in-process tier, when a bus is configured. */
    private readonly near: NearTier | undefined,
  ) {
    this.leases = new LeaseProtocol(ops, leaseOptions);
  }

  async read<T>(request: ReadRequest<T>): Promise<Served<T>> {
    const target = request.target;
    this.namespaces.check(target);
    const ticket = this.flights.ticket();
    const near = request.near === true ? this.near : undefined;
    let start = 0;
    if (near !== undefined && near.cache.active) {
      const hit = near.read(target, request.rawJson === true);
      if (hit !== undefined)
        return hit.meta === undefined
          ? { value: hit.value as T, outcome: 'HIT' }
          : { value: hit.value as T, outcome: 'HIT', meta: hit.meta };
      start = near.cache.begin();
    }
    let found: Lookup | undefined;
    let failure: CacheFailure | undefined;
    if (!this.namespaces.isDown(target)) {
      try {
        found = await this.namespaces.lookup(target, request.rawJson, near !== undefined && near.cache.active);
      } catch (error) {
        failure = { operation: 'get', error };
      }
    }
    const item = found?.item;
    if (item?.state === 'hit') {
      if (item.freshUntil !== undefined && item.freshUntil <= Date.now()) {
        return {
          value: item.value as T,
          outcome: 'STALE',
          meta: item.meta,
          filled: this.leases.refresh(found!.wire, item.cas, request.load, request.label),
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
    const { result, joined } = await this.flights.run(
      flightNames.ofWire(wire, request.rawJson === true),
      ticket,
      item,
      async (flight): Promise<Served<T>> => {
        if (request.lease) return this.leases.load(wire, request.load, request.label, flight, request.rawJson);
        flight.leased(null);
        const loaded = await request.load();
        return { value: loaded.value, outcome: 'MISS', filled: this.leases.fill(wire, loaded, request.label, flight) };
      },
    );
    // a call that joined another's load shares its value, not its fill or its wait
    return joined ? { value: result.value, outcome: result.outcome } : result;
  }

  /**
   * Evicts a key and every variant of it: its running loads in this process are split off (not
   * joined, not stored), the entry is deleted and its variants' generation bumped. `derived`: the
   * eviction follows another service's change (`bus.follow`), so it is not followed further.
   */
  async evict(target: { namespace?: string; key: string }, how: { derived?: boolean } = {}): Promise<boolean> {
    this.flights.invalidatePrefix(flightNames.keyPrefix(target));
    this.near?.keyChanging(target);
    const wire = await this.namespaces.currentWire(target);
    this.flights.invalidate(flightNames.ofWire(wire, false));
    this.flights.invalidate(flightNames.ofWire(wire, true));
    const [deleted] = await Promise.all([
      this.ops.delete(wire),
      target.namespace ? this.namespaces.bumpVariants(target.namespace, target.key) : undefined,
    ]);
    this.near?.keyChanged(target, how.derived === true);
    return deleted;
  }

  /** Evicts every entry of a namespace (a new generation; running loads belong to the old one). */
  async evictAll(namespace: string, how: { derived?: boolean } = {}): Promise<void> {
    this.flights.invalidatePrefix(flightNames.namespacePrefix(namespace));
    this.near?.namespaceChanging(namespace);
    await this.namespaces.bump(namespace);
    this.near?.namespaceChanged(namespace, how.derived === true);
  }

  /**
   * Overwrites a key (a set, a counter change, a put): before `send`, the key's running loads in
   * this process are split off (their older result must not be stored) and the near cache stops
   * keeping what it read before; once `landed` says memcached took the write, every process's
   * near cache drops the key. The one way to write, so no caller can do half of it.
   */
  async overwrite<R>(
    target: { namespace?: string; key: string },
    wire: string,
    send: () => Promise<R>,
    landed: (result: R) => boolean,
  ): Promise<R> {
    this.flights.invalidate(flightNames.ofWire(wire, false));
    this.flights.invalidate(flightNames.ofWire(wire, true));
    this.near?.keyChanging(target);
    const result = await send();
    if (landed(result)) this.near?.keyChanged(target);
    return result;
  }
}

const NOTHING_KEPT = { keep: false };
