import { RawJson, type ResponseMeta } from '../codec/value.codec.js';
import {
  type BusFlushReason,
  type BusListener,
  type BusStats,
  type BusTransport,
  InvalidationBus,
} from '../bus/invalidation-bus.js';
import { createBusTransport } from '../bus/transports.js';
import type { ResolvedBusOptions } from '../config/near-options.js';
import type { LoggerService } from '@nestjs/common';
import {
  type BusKey,
  BusCodec,
  type BusRejection,
  MAX_BUS_MESSAGE,
  MAX_BUS_NAME,
  MAX_BUS_NAMES,
} from '../bus/bus-message.js';
import {
  busBack,
  busConnected,
  busDown,
  busRejected,
  busUnavailable,
  busUnsigned,
  followFailed,
} from '../memcached.messages.js';
import { StateLog } from '../utils/state-log.js';
import type { NearCache } from '../near/near-cache.js';
import { changeNames, type EntryRef, type KeyChange, type NamespaceChange, type TagChange } from '../codec/keyspace.js';
import type { Lookup, Namespaces } from './namespaces.js';
import type { KeptBytes, Operations } from './operations.js';
import type { Debt } from './debts.js';

/** The invalidation bus, in `stats()` when one is configured. */
export interface BusReport extends BusStats {
  /** Evictions made because a followed namespace changed (`bus.follow`), and those that failed. */
  followed: { evictions: number; failures: number };
}

/** A hit served from memory. */
export interface NearHit {
  value: unknown;
  meta?: ResponseMeta;
}

/** Most follow evictions under way at once (past it, a followed change evicts its whole namespace). */
const MAX_FOLLOWING = 256;

/** HTTP hits of held entries, decoded once (their value is an immutable RawJson). */
const decodedHits = new WeakMap<object, NearHit>();

/**
 * The near cache as the client uses it: reads it before memcached, keeps validated hits, drops
 * what this process or another one changed, and publishes this process's changes on the bus once
 * memcached has taken them. Changes name a key or a namespace, not a wire key, so every variant
 * of a key, under any generation, goes with it.
 */
export class NearTier implements BusListener {
  readonly bus: InvalidationBus;
  readonly followed = { evictions: 0, failures: 0 };
  /**
   * Follow evictions under way, by target: a change that arrives meanwhile does not start another
   * one, but makes this one run once more when it ends (memcached may have taken the first delete
   * before a refill), so repeated changes do not pile up writes and none is lost.
   */
  private readonly following = new Map<string, { again: boolean }>();
  private readonly follow: ResolvedBusOptions['follow'];
  private readonly busName: string;
  private readonly stateLog: StateLog;
  /** Settles once the transport's package is loaded; rejects when it is missing. */
  private readonly loaded: Promise<BusTransport>;
  private closed = false;
  /**
   * With `bus.keys`: owed changes from other processes are held as debts. Without, anyone could
   * publish one, and a debt drives writes to memcached and keeps reads from it: they are read as
   * plain changes (near entries dropped), as `bus.follow` is refused without keys.
   */
  private readonly signed: boolean;

  constructor(
    readonly cache: NearCache,
    private readonly ops: Operations,
    private readonly spaces: Namespaces,
    private readonly prefix: string,
    /** The tag keyspace: tag changes on the bus from other keyspaces are not ours. */
    private readonly tagPrefix: string,
    logger: LoggerService | false,
    /** Whether a near cache is configured (else only this process's changes are published). */
    readonly serving: boolean,
    options: ResolvedBusOptions,
    keys: BusKey[],
    /** Carries out the evictions `bus.follow` asks for. */
    private readonly evictor: (target: { namespace: string; key?: string }) => Promise<unknown>,
    /** Holds a debt another process told of (`failover`: owed to a node when it returns). */
    private readonly holdDebt: (debt: Debt, failover: boolean) => void,
  ) {
    this.busName = typeof options.transport === 'string' ? options.transport : 'custom';
    this.follow = options.follow;
    this.stateLog = new StateLog(logger, ({ up, previous, changes, downForMs }) =>
      up
        ? {
            level: 'log',
            message:
              previous === undefined
                ? busConnected(this.busName, serving, changes)
                : busBack(this.busName, serving, downForMs, changes),
          }
        : { level: 'warn', message: busDown(this.busName, this.unhealthyReason(), serving, changes) },
    );
    const codec = new BusCodec(keys);
    this.signed = codec.signed;
    this.loaded =
      typeof options.transport === 'string'
        ? createBusTransport(options.transport, { url: options.url, channel: options.channel })
        : Promise.resolve(options.transport);
    // the bus exists from the start; its broker client (an optional package) arrives when loaded
    this.bus = new InvalidationBus(deferred(this.loaded), this, options.heartbeat, undefined, codec);
    if (!codec.signed) this.ops.warnings.once('bus:unsigned', busUnsigned(this.busName));
  }

  /**
   * Starts the bus in the background once the transport's package is loaded (until then, or while
   * the broker is away, retried, the near cache stays off). Resolves once the package is loaded,
   * and rejects when it is missing (the module then fails to start).
   */
  connect(): Promise<void> {
    void this.loaded
      .then(() => (this.closed ? undefined : this.bus.start()))
      .catch((error: Error) =>
        this.ops.warnings.warn('bus:unavailable', () => busUnavailable(this.busName, error.message, this.serving)),
      );
    return this.loaded.then(() => undefined);
  }

  close(): void {
    this.closed = true;
    this.stateLog.close();
    void this.bus.close().catch(() => undefined);
  }

  /** The entry held for the target, decoded as a memcached hit would be; undefined otherwise. */
  read(target: EntryRef, rawJson: boolean): NearHit | undefined {
    const cache = this.cache;
    if (!cache.active || this.bus.vouches() === false) return undefined;
    let wire: string;
    if (target.namespace === undefined) {
      wire = this.spaces.plainWire(target.key);
    } else {
      const generation = cache.generation(this.namespaceName(target.namespace));
      if (generation === undefined) return undefined;
      const group = target.variant === undefined ? 0 : cache.group(changeNames.family(this.change(target)));
      if (group === undefined) return undefined;
      wire = this.spaces.wireAt(target, generation, group);
    }
    const entry = cache.get(wire);
    if (entry === undefined) return undefined;
    if (!rawJson) return this.ops.decodeKept(entry.held as KeptBytes, false);
    // an HTTP hit's JSON text cannot be changed by whoever receives it: decoded once, then shared
    const known = decodedHits.get(entry);
    if (known !== undefined) return known;
    const hit = this.ops.decodeKept(entry.held as KeptBytes, true);
    if (hit !== undefined && hit.value instanceof RawJson) {
      hit.value.shared = true;
      decodedHits.set(entry, hit);
    }
    return hit;
  }

  /** Keeps a fresh memcached hit read since `start` (refused if an invalidation came after it). */
  keep(start: number, target: EntryRef, found: Lookup): void {
    const item = found.item;
    if (item.state !== 'hit' || item.kept === undefined) return;
    let ttl: number | undefined;
    if (item.freshUntil !== undefined) {
      ttl = (item.freshUntil - Date.now()) / 1000;
      if (ttl <= 0) return;
    }
    this.cache.store(
      start,
      found.wire,
      {
        family: changeNames.family(this.change(target)),
        held: item.kept,
        size: item.kept.bytes.length + found.wire.length,
        tags: item.tags?.map(([tag]) => this.tagName(tag)),
      },
      target.namespace === undefined
        ? {}
        : {
            namespace: this.namespaceName(target.namespace),
            generation: found.generation,
            group: target.variant === undefined ? undefined : found.group,
          },
      ttl,
    );
  }

  /** A key is about to change, or just changed, here: drop it and refuse reads that began before. */
  keyChanging(target: { namespace?: string; key: string }): void {
    if (this.serving) this.cache.invalidateKey(changeNames.family(this.change(target)));
  }

  /**
   * A key changed in memcached: drop it again (reads begun meanwhile) and tell every process.
   * `derived`: the change follows another one (`bus.follow`), so it is not followed further.
   * `owed`: memcached did not confirm it (every process with keys holds it as a debt).
   */
  keyChanged(target: { namespace?: string; key: string }, derived = false, owed: 0 | 1 = 0): void {
    const change = this.change(target);
    if (this.serving) this.cache.invalidateKey(changeNames.family(change));
    this.bus.publishKeys([change], derived, owed);
    if (!derived) this.followKey(change);
  }

  /** Tags are about to get, or just got, new versions here: drop their entries and refuse reads begun before. */
  tagsChanging(tags: readonly string[]): void {
    if (this.serving) for (const tag of tags) this.cache.invalidateTag(this.tagName(tag));
  }

  /**
   * Tags got new versions in memcached (or may have): drop their entries again, and tell every
   * process. `owed`: memcached did not confirm them (every process with keys holds them as debts).
   */
  tagsChanged(tags: readonly string[], owed: boolean): void {
    if (tags.length === 0) return;
    this.tagsChanging(tags);
    const changes = tags.map((tag): TagChange => ({ tagPrefix: this.tagPrefix, tag }));
    for (let i = 0; i < changes.length; i += MAX_BUS_NAMES)
      this.bus.publishTags(changes.slice(i, i + MAX_BUS_NAMES), owed);
  }

  namespaceChanging(namespace: string): void {
    if (this.serving) this.cache.invalidateNamespace(this.namespaceName(namespace));
  }

  namespaceChanged(namespace: string, derived = false, owed: 0 | 1 = 0): void {
    const change: NamespaceChange = { prefix: this.prefix, namespace };
    if (this.serving) this.cache.invalidateNamespace(changeNames.namespaceName(change));
    this.bus.publishNamespaces([change], derived, owed);
    if (!derived) this.followNamespace(change);
  }

  /**
   * An invalidation memcached did not confirm: dropped here, and every process told at once, so
   * their near caches drop it and they hold the debt too (it outlives this process).
   */
  owed(debt: Debt, derived: boolean): void {
    if (debt.key === undefined) this.namespaceChanged(debt.namespace, derived, 1);
    else this.keyChanged(debt, derived, 1);
  }

  /** A change that landed on a stand-in node (already published as a change): owed to its owner on return. */
  owedOnReturn(debt: Debt): void {
    if (debt.key === undefined)
      this.bus.publishNamespaces([{ prefix: this.prefix, namespace: debt.namespace }], true, 2);
    else this.bus.publishKeys([this.change(debt)], true, 2);
  }

  // BusListener: another process's changes
  keys(changes: KeyChange[], derived: boolean, owed: 0 | 1 | 2): void {
    for (const change of changes) {
      if (this.serving) this.cache.invalidateKey(changeNames.family(change));
      if (owed !== 0 && this.signed && change.prefix === this.prefix) {
        // a key known by its hash only: its namespace is owed (a key without one: its writer pays it)
        const debt: Debt | undefined =
          change.hashed !== true
            ? change.namespace === ''
              ? { key: change.key }
              : { namespace: change.namespace, key: change.key }
            : change.namespace === ''
              ? undefined
              : { namespace: change.namespace };
        if (debt !== undefined) this.holdDebt(debt, owed === 2);
      }
      if (!derived) this.followKey(change);
    }
  }

  namespaces(changes: NamespaceChange[], derived: boolean, owed: 0 | 1 | 2): void {
    for (const change of changes) {
      if (this.serving) this.cache.invalidateNamespace(changeNames.namespaceName(change));
      if (owed !== 0 && this.signed && change.prefix === this.prefix)
        this.holdDebt({ namespace: change.namespace }, owed === 2);
      if (!derived) this.followNamespace(change);
    }
  }

  tags(changes: TagChange[], owed: boolean): void {
    const ours: string[] = [];
    for (const change of changes) {
      if (change.tagPrefix !== this.tagPrefix) continue;
      if (this.serving) this.cache.invalidateTag(changeNames.tagName(change));
      ours.push(change.tag);
    }
    // an owed one is held only from an authenticated bus (a debt keeps reads away from memcached)
    if (ours.length > 0) this.heardTags?.(ours, owed && this.signed);
  }

  /** Hears the tags other processes invalidated, and whether to hold them as owed (set by the client). */
  heardTags?: (tags: string[], owed: boolean) => void;

  /** A followed key changed: evict the same key (or everything) of the namespace derived from it. */
  private followKey(change: KeyChange): void {
    for (const rule of this.follow) {
      if (rule.keyPrefix !== change.prefix || rule.namespace !== change.namespace) continue;
      // a long key travels as its hash: the same key here cannot be known, so the whole namespace goes
      this.evictFollowing(
        rule.allEntries || change.hashed === true
          ? { namespace: rule.evict }
          : { namespace: rule.evict, key: change.key },
      );
    }
  }

  private followNamespace(change: NamespaceChange): void {
    for (const rule of this.follow) {
      if (rule.keyPrefix === change.prefix && rule.namespace === change.namespace)
        this.evictFollowing({ namespace: rule.evict });
    }
  }

  /**
   * Evicts what a followed change asks for: one eviction per target at a time (run once more if
   * the target changed again meanwhile: memcached may have taken the first delete before a
   * refill), and at most `MAX_FOLLOWING` targets at once; past that, each namespace is evicted
   * whole, so no flood of changes turns into as many memcached writes.
   */
  private evictFollowing(wanted: { namespace: string; key?: string }): void {
    const evictor = this.evictor;
    const target = this.following.size >= MAX_FOLLOWING ? { namespace: wanted.namespace } : wanted;
    const id =
      target.key === undefined
        ? changeNames.namespaceName({ prefix: '', namespace: target.namespace })
        : changeNames.family({ prefix: '', namespace: target.namespace, key: target.key });
    const running = this.following.get(id);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.following.set(id, state);
    const run = (): void => {
      this.followed.evictions++;
      evictor(target)
        .catch((error: Error) => {
          this.followed.failures++;
          this.ops.warnings.warn(`follow:${target.namespace}`, () => followFailed(target.namespace, error.message));
        })
        .finally(() => {
          if (!state.again) return void this.following.delete(id);
          state.again = false;
          run();
        });
    };
    run();
  }

  flush(_reason: BusFlushReason): void {
    this.cache.flush();
  }

  rejected(reason: BusRejection): void {
    this.ops.warnings.warn(`bus:${reason}`, () => busRejected(this.busName, reason));
  }

  healthy(healthy: boolean): void {
    this.cache.setActive(healthy && this.serving);
    this.stateLog.set(healthy);
    // debts owed while the bus was away were told to nobody: told again now, as they stand
    if (healthy && this.owedHere !== undefined) this.retell(this.owedHere());
  }

  /** This process's debts, told again whenever the bus is back (set by the client). */
  owedHere?: () => Array<Debt | 'everything'>;

  /** Publishes debts as owed (only the messages: near entries and follows were dealt with when they were taken). */
  private retell(debts: Array<Debt | 'everything'>): void {
    const keys: KeyChange[] = [];
    const namespaces: NamespaceChange[] = [];
    for (const debt of debts) {
      if (debt === 'everything') continue;
      if (debt.key === undefined) namespaces.push({ prefix: this.prefix, namespace: debt.namespace });
      else keys.push(this.change(debt));
    }
    for (const batch of batches(keys)) this.bus.publishKeys(batch as KeyChange[], true, 1);
    for (const batch of batches(namespaces)) this.bus.publishNamespaces(batch as NamespaceChange[], true, 1);
  }

  /** The bus's counters and what `bus.follow` did. */
  report(): BusReport {
    const stats = this.bus.stats();
    return { ...stats, followed: { ...this.followed } };
  }

  private unhealthyReason(): string {
    const stats = this.bus.stats();
    if (!stats.connected) return 'is disconnected';
    if (stats.quietSources > 0)
      return `has not heard from ${stats.quietSources} other process(es) within the heartbeat`;
    return 'is silent';
  }

  /** A key's change as the bus carries it (a key too long for a message as its hash). */
  private change(target: { namespace?: string; key: string }): KeyChange {
    return changeNames.ofKey(this.prefix, target, MAX_BUS_NAME);
  }

  private tagName(tag: string): string {
    return changeNames.tagName({ tagPrefix: this.tagPrefix, tag });
  }

  private namespaceName(namespace: string): string {
    return changeNames.namespaceName({ prefix: this.prefix, namespace });
  }
}

/** Changes in groups a message can carry: at most `MAX_BUS_NAMES`, and well under `MAX_BUS_MESSAGE`. */
function batches(changes: Array<KeyChange | NamespaceChange>): Array<Array<KeyChange | NamespaceChange>> {
  const out: Array<Array<KeyChange | NamespaceChange>> = [];
  let batch: Array<KeyChange | NamespaceChange> = [];
  let size = 0;
  for (const change of changes) {
    // JSON may escape a character into six: the worst case of each change's strings, plus its brackets
    const cost = 6 * (change.prefix.length + change.namespace.length + (change.key?.length ?? 0)) + 16;
    if (batch.length > 0 && (batch.length >= MAX_BUS_NAMES || size + cost > MAX_BUS_MESSAGE / 2)) {
      out.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(change);
    size += cost;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/** A transport whose broker client is still being loaded: every call waits for it. */
function deferred(loaded: Promise<BusTransport>): BusTransport {
  return {
    start: (deliver, state) => loaded.then((transport) => transport.start(deliver, state)),
    publish: (data) => loaded.then((transport) => transport.publish(data)),
    // a transport that never loaded has nothing to close
    close: () =>
      loaded.then(
        (transport) => transport.close(),
        () => undefined,
      ),
  };
}
