import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { refreshMarker } from '../codec/keyspace.js';
import { toExpiry } from '../codec/ttl.js';
import { type EncodedValue, type ResponseMeta, UnsupportedValueError } from '../codec/value.codec.js';
import { fillRefused, leaseStatus } from '../memcached.messages.js';
import { buildRequest, Opcode, Status, storeExtras } from '../transport/protocol.js';
import { MemcachedError } from '../transport/memcached.error.js';
import type { FlightHandle } from './flights.js';
import type { ItemRead, Operations, StoreOutcome } from './operations.js';
import type { TagStamp } from '../codec/tags.js';

/** How to store a loaded value. */
export interface FillPlan {
  /** Seconds (an entry served stale after `freshFor` lives this long). */
  ttl: number;
  /** Seconds the entry stays fresh, for stale-while-revalidate entries. */
  freshFor?: number;
  /** Store the value as an HTTP response body (JSON as Nest sends it). */
  asResponse?: boolean;
  /** What an HTTP entry records about its request. */
  meta?: ResponseMeta;
  /** Fill this wire key instead of the one read: another variant of the same key. */
  wire?: string;
  /** The versions of the entry's tags, read before its value was loaded. */
  tags?: readonly TagStamp[];
}

/** What a load returns: the value, and how to store it (undefined: do not store it). */
/**
 * How long memcached keeps an entry read as fresh for `ttl` seconds and usable for `keptFor` more
 * (stale-while-revalidate, grace); a TTL of 0 never expires and needs neither.
 */
export function freshness(ttl: number, keptFor: number): { ttl: number; freshFor?: number } {
  return keptFor > 0 && ttl > 0 ? { ttl: ttl + keptFor, freshFor: ttl } : { ttl };
}

export interface Loaded<T> {
  value: T;
  fill: FillPlan | undefined;
  /** Tags the value carries beyond those known before the load (learned from the value itself). */
  resultTags?: readonly string[];
  /** A value the cache must not keep (an HTTP response that says so): traced as `BYPASS`, not `MISS`. */
  unstorable?: boolean;
}

/** How a call is shown (`X-Cache`, traces): a miss whose value the cache must not keep went around it. */
export function shownOutcome<O extends string>(outcome: O, unstorable: boolean): O | 'BYPASS' {
  return unstorable && outcome === 'MISS' ? 'BYPASS' : outcome;
}

/**
 * Loads from the source. `keep: false` when nothing will be stored (the cache cannot be read), so a
 * loader can skip working out how to store it.
 */
export type Loader<T> = (how?: { keep: boolean }) => Promise<Loaded<T>>;

/** A cache operation that failed while serving a call (the call's value is unaffected). */
export interface CacheFailure {
  operation: string;
  error: unknown;
}

/** What became of a fill. */
export interface FillReport {
  /**
   * `stored`; `rejected` (the key was evicted or overwritten since the load began); `skipped`
   * (not to be stored, too large, split off by an eviction, or a failed operation); `refused`
   * (the value or its TTL cannot be stored: counted and warned by the client).
   */
  outcome: 'stored' | 'rejected' | 'skipped' | 'refused';
  failure?: CacheFailure;
}

export interface LeasedLoad<T> {
  value: T;
  /** HIT when another caller's fill was waited for. */
  outcome: 'HIT' | 'MISS';
  /** This call found another caller's lease and waited for its fill. */
  waited: boolean;
  failure?: CacheFailure;
  /** The fill this call made, settling after the call returns. */
  filled?: Promise<FillReport>;
}

export interface LeaseOptions {
  /** Lifetime of a lease marker, seconds. */
  leaseTtl: number;
  /** Longest wait for another caller's fill, ms. */
  leaseWait: number;
}

const NO_CAS = Buffer.alloc(8);
const SKIPPED: FillReport = { outcome: 'skipped' };

/**
 * The lease protocol (Facebook's "Scaling Memcache" §3.2.1), in one place for `getOrSet` and the
 * decorators. On a miss, the caller that wins an atomic `add` of a short-lived marker loads and
 * fills with the marker's CAS, so the fill fails if the key was evicted or overwritten meanwhile
 * (no stale set after a write). Others wait for the fill with bounded backoff, then load without
 * filling. The marker is released on every path that does not fill it (a failed load, a value
 * that is not to be or cannot be stored, a failed fill); a holder that dies leaves a marker that
 * expires after `leaseTtl`. Stale-while-revalidate refreshes elect one refresher the same way.
 * Callers learn what happened from what is returned; nothing here calls back into them.
 */
export class LeaseProtocol {
  private readonly refreshing = new Set<string>();

  constructor(
    private readonly ops: Operations,
    private readonly options: LeaseOptions,
  ) {}

  /**
   * Takes the lease on a wire key: its marker's CAS, or null when the key exists (value or
   * marker). With `replace`, the CAS of an unreadable item, the marker replaces that item if it
   * is still there.
   */
  async acquire(wire: string, replace?: Buffer): Promise<Buffer | null> {
    const seq = this.ops.nextSeq();
    const marker = this.ops.codec.leaseMarker(randomBytes(8));
    const extras = storeExtras(marker.flags, toExpiry(this.options.leaseTtl));
    const frame = replace
      ? buildRequest(Opcode.Set, wire, extras, marker.bytes, seq, replace)
      : buildRequest(Opcode.Add, wire, extras, marker.bytes, seq);
    const node = this.ops.router.nodeFor(wire);
    return this.ops.send(node, 'lease', seq, frame, {
      onResponse: (res) => {
        if (res.header.status === Status.Ok) return Buffer.from(res.header.cas);
        if (
          res.header.status === Status.KeyExists ||
          res.header.status === Status.NotStored ||
          res.header.status === Status.KeyNotFound
        )
          return null;
        throw new MemcachedError('lease', node.label, 'SERVER', leaseStatus(res.header.status), res.header.status);
      },
    });
  }

  /** Deletes our marker if it is still ours; never rejects. */
  release(wire: string, cas: Buffer): void {
    this.ops.delete(wire, 'release', cas).catch(() => undefined);
  }

  /**
   * Loads a missing key under the lease protocol. `flight` learns which marker this load holds or
   * waits for, and says whether an eviction in this process came after it started. `label` names
   * the entries in warnings. `replace`: the CAS of the item read, which is not a usable value
   * (unreadable, or stored under tags invalidated since); `reread` reads the key while waiting
   * for another caller's fill (the tagged read, which finds such a fill stale too).
   */
  async load<T>(
    wire: string,
    loader: Loader<T>,
    label: string,
    flight: FlightHandle,
    rawJson = false,
    how: { replace?: Buffer; reread?: () => Promise<ItemRead> } = {},
  ): Promise<LeasedLoad<T>> {
    const deadline = Date.now() + this.options.leaseWait;
    let backoff = 4;
    let told = false;
    let waited = false;
    const tell = (cas: Buffer | null) => {
      if (!told) flight.leased(cas);
      told = true;
    };
    // an item nobody can read (tampered with, another writer's) is taken over by its CAS
    let unreadable: Buffer | undefined = how.replace;
    for (;;) {
      let cas: Buffer | null;
      try {
        cas = await this.acquire(wire, unreadable);
        unreadable = undefined;
      } catch (error) {
        tell(null);
        return { value: (await loader()).value, outcome: 'MISS', waited, failure: { operation: 'lease', error } };
      }
      if (cas) {
        tell(cas);
        this.ops.stats.count('leaseGrants');
        const loaded = await this.loadUnderLease(wire, cas, loader);
        return {
          value: loaded.value,
          outcome: 'MISS',
          waited,
          filled: this.fillUnderLease(wire, cas, loaded, label, flight),
        };
      }
      this.ops.stats.count('leaseWaits');
      waited = true;
      // someone else holds the lease: wait for their fill
      let item: ItemRead = { state: 'lease', cas: NO_CAS };
      while (item.state === 'lease' && Date.now() + backoff < deadline) {
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 50);
        try {
          item = how.reread !== undefined ? await how.reread() : (await this.ops.read([wire], { rawJson }))[0];
        } catch (error) {
          tell(null);
          return { value: (await loader()).value, outcome: 'MISS', waited, failure: { operation: 'get', error } };
        }
        tell(item.state === 'lease' ? item.cas : null);
      }
      tell(null);
      if (item.state === 'hit') return { value: item.value as T, outcome: 'HIT', waited };
      if (item.state === 'lease') {
        this.ops.stats.count('leaseWaitTimeouts');
        return { value: (await loader()).value, outcome: 'MISS', waited };
      }
      if (item.state === 'unreadable') unreadable = item.cas;
      // the marker went away without a value (evicted, released): try to take the lease ourselves
    }
  }

  /**
   * A fill without a lease, unless the flight was invalidated meanwhile; with `cas`, only if the
   * entry read at `wire` is still there (a reload replacing it). Never rejects.
   */
  fill<T>(wire: string, loaded: Loaded<T>, label: string, flight?: FlightHandle, cas?: Buffer): Promise<FillReport> {
    const prepared = this.prepare(loaded, label);
    if (prepared === undefined) return Promise.resolve(SKIPPED);
    if (prepared === 'refused') return Promise.resolve({ outcome: 'refused' });
    if (flight?.invalidated) {
      this.ops.stats.count('splitFlights');
      return Promise.resolve(SKIPPED);
    }
    const target = loaded.fill!.wire ?? wire;
    return this.store(target, prepared, label, target === wire ? cas : undefined);
  }

  /**
   * Serves stale, refreshes once: an `add` on a refresh marker elects one refresher across
   * processes; the refreshed value replaces the stale entry only if it is still the one read.
   * Undefined when this process is already refreshing the entry.
   */
  refresh<T>(wire: string, staleCas: Buffer, loader: Loader<T>, label: string): Promise<FillReport> | undefined {
    const marker = refreshMarker(wire);
    if (this.refreshing.has(marker)) return undefined;
    this.refreshing.add(marker);
    return (async (): Promise<FillReport> => {
      const lease = await this.acquire(marker);
      if (!lease) return SKIPPED;
      try {
        const loaded = await loader();
        const prepared = this.prepare(loaded, label);
        if (prepared === undefined) return SKIPPED;
        if (prepared === 'refused') return { outcome: 'refused' };
        return this.report(
          await this.ops.store(Opcode.Set, 'fill', wire, prepared.encoded, prepared.expiry, label, staleCas),
        );
      } finally {
        this.release(marker, lease);
      }
    })()
      .catch((error: unknown): FillReport => ({ outcome: 'skipped', failure: { operation: 'refresh', error } }))
      .finally(() => this.refreshing.delete(marker));
  }

  private async loadUnderLease<T>(wire: string, cas: Buffer, loader: Loader<T>): Promise<Loaded<T>> {
    try {
      return await loader();
    } catch (error) {
      this.release(wire, cas);
      throw error;
    }
  }

  /** Fills under our lease, or releases it so waiters stop waiting; the fill goes out at once. */
  private fillUnderLease<T>(
    wire: string,
    cas: Buffer,
    loaded: Loaded<T>,
    label: string,
    flight: FlightHandle,
  ): Promise<FillReport> {
    const prepared = this.prepare(loaded, label);
    if (prepared === undefined || prepared === 'refused' || flight.invalidated) {
      if (prepared !== undefined && prepared !== 'refused') this.ops.stats.count('splitFlights');
      this.release(wire, cas);
      return Promise.resolve(prepared === 'refused' ? { outcome: 'refused' } : SKIPPED);
    }
    const elsewhere = loaded.fill!.wire;
    if (elsewhere !== undefined && elsewhere !== wire) {
      // another variant of the same key: its group's generation guards it against a racing eviction
      this.release(wire, cas);
      return this.store(elsewhere, prepared, label);
    }
    return this.ops.store(Opcode.Set, 'fill', wire, prepared.encoded, prepared.expiry, label, cas).then(
      (outcome) => this.report(outcome),
      (error: unknown): FillReport => {
        this.release(wire, cas);
        return { outcome: 'skipped', failure: { operation: 'fill', error } };
      },
    );
  }

  private store(
    wire: string,
    prepared: { encoded: EncodedValue; expiry: number },
    label: string,
    cas?: Buffer,
  ): Promise<FillReport> {
    const operation = cas === undefined ? 'set' : 'fill';
    return this.ops.store(Opcode.Set, operation, wire, prepared.encoded, prepared.expiry, label, cas).then(
      (outcome) => this.report(outcome),
      (error: unknown): FillReport => ({ outcome: 'skipped', failure: { operation, error } }),
    );
  }

  /**
   * The bytes and expiry to store; undefined when the value is not to be stored; 'refused' when
   * it cannot be (its TTL is invalid, its type would not come back): counted and warned, naming
   * the namespace (`label`), never the key.
   */
  private prepare<T>(
    loaded: Loaded<T>,
    label: string,
  ): { encoded: EncodedValue; expiry: number } | 'refused' | undefined {
    const plan = loaded.fill;
    if (plan === undefined || loaded.value === undefined) return undefined;
    try {
      const expiry = toExpiry(plan.ttl);
      const freshUntil = plan.freshFor === undefined ? undefined : Date.now() + plan.freshFor * 1000;
      return { encoded: this.ops.encode(loaded.value, freshUntil, plan.asResponse, plan.meta, plan.tags), expiry };
    } catch (error) {
      if (error instanceof UnsupportedValueError) this.ops.warnUnsupported(label, error);
      else this.ops.warnings.warn(`fill:${label}`, () => fillRefused(label, (error as Error).message));
      return 'refused';
    }
  }

  private report(outcome: StoreOutcome): FillReport {
    if (outcome === 'stored') return { outcome: 'stored' };
    if (outcome === 'oversize') return SKIPPED;
    this.ops.stats.count('rejectedFills');
    return { outcome: 'rejected' };
  }
}
