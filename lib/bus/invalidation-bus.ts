import { randomBytes } from 'node:crypto';
import type { BusTransport } from '../interfaces/bus-transport.interface.js';
import { BusCodec, type BusMessage, type BusMessageType, type BusRejection, REPLAY_WINDOW_MS } from './bus-message.js';
import { Inbox, SLICE_MS } from './inbox.js';
import type { ChangeRef, KeyChange, NamespaceChange, TagChange } from '../codec/keyspace.js';
import { type BusReceiveEvent, busReceiveChannel, tracedReceive, traceparentFor } from '../tracing/channels.js';

/** What the bus tells the tier it keeps coherent. */
export interface BusListener {
  /**
   * `derived`: caused by a followed change (not to be followed further); `owed`: the receiver holds
   * it as a debt (see `BusMessage.owed`; 0: not owed).
   */
  keys(changes: KeyChange[], derived: boolean, owed: 0 | 1 | 2): void;
  namespaces(changes: NamespaceChange[], derived: boolean, owed: 0 | 1 | 2): void;
  /** Tags got new versions (entries carrying them miss); `owed`: memcached did not confirm them. */
  tags(changes: TagChange[], owed: boolean): void;
  /** Something may have been missed (a gap, a new source, a lost connection): drop everything. */
  flush(reason: BusFlushReason): void;
  /** The bus vouches for the tier (`true`) or no longer does. */
  healthy(healthy: boolean): void;
  /** A message was dropped before it touched any state (counted in the stats). */
  rejected?(reason: BusRejection): void;
}

export type { BusTransport };

export type BusFlushReason = 'gap' | 'source' | 'down' | 'silent' | 'stale';

export interface BusStats {
  healthy: boolean;
  connected: boolean;
  published: number;
  publishFailures: number;
  received: number;
  gaps: number;
  newSources: number;
  /** Messages dropped unread: not of this format, or over the size and count bounds. */
  malformed: number;
  /** With `bus.keys`: messages that did not authenticate, dropped before touching any state. */
  forged: number;
  /** With `bus.keys`: authentic messages sent again (a sequence number already heard): refused. */
  replayed: number;
  /**
   * With `bus.keys`: authentic messages sent more than the replay window from this process's clock
   * (a replay, or a host whose clock is off): refused, and the tier is flushed (its evictions may
   * be among them).
   */
  stale: number;
  /** Messages dropped because too many were waiting (a flood): an honest one lost this way shows as a gap. */
  dropped: number;
  /** Messages waiting to be handled now. */
  queued: number;
  /** The longest the bus held the event loop handling messages in one turn, ms. */
  longestTurnMs: number;
  flushes: number;
  /** The last heartbeat's round trip through the broker, in ms. */
  lagMs: number | undefined;
  /** Sources (processes) heard from recently. */
  sources: number;
  /** Of those, the ones not heard from within the heartbeat: the near cache waits for them. */
  quietSources: number;
}

/** A bus's counters of messages, all zero. */
function zeroCounters() {
  return {
    published: 0,
    publishFailures: 0,
    received: 0,
    gaps: 0,
    newSources: 0,
    malformed: 0,
    forged: 0,
    replayed: 0,
    stale: 0,
    flushes: 0,
  };
}

interface Source {
  /** The last sequence number heard. */
  seq: number;
  /** When its last message arrived (on our clock). */
  seen: number;
  /** We reconnected since: what it sent meanwhile is lost (and flushed for already), so no gap is counted once. */
  resync: boolean;
}

/** A source not heard from for this many heartbeats (and that did not say goodbye) is presumed gone. */
export const SOURCE_GONE_HEARTBEATS = 10;
/** Most sources remembered; past it the least recently heard is forgotten (and flushed for, if heard again). */
export const MAX_SOURCES = 1024;

/**
 * Sequenced invalidations over a transport. Publishes this process's evictions with a per-source
 * sequence number; receives everyone's and hands them on; sends a heartbeat every quarter of
 * `heartbeat` ms. The tier is vouched for only while connected, while one of its own heartbeats
 * sent within the last `heartbeat` ms has come back (its evictions reach us), and while every
 * other source has been heard from within `heartbeat` ms (ours reach us: a source whose link went
 * silent may be evicting into the void). A gap in any source's sequence, or a source first heard
 * after start-up, flushes it. A source that closes says so; one unheard for
 * `SOURCE_GONE_HEARTBEATS` heartbeats is presumed gone and no longer waited for.
 *
 * Whatever arrives, the work per message does not grow with the number of sources (they are kept in
 * the order they were last heard, so the quietest is the first), and every table is bounded. A
 * message that does not decode, or (with keys) does not authenticate or is replayed, is counted and
 * dropped before it touches any state: it neither flushes, nor registers a source, nor moves a
 * sequence number. Without keys, a sequence number that goes back (a forged one ran ahead of it)
 * flushes and resynchronises, so a forged number cannot hide a later gap.
 */
export class InvalidationBus {
  readonly source = randomBytes(9).toString('base64url');
  private seq = 0;
  private connected = false;
  private isHealthy = false;
  /** When the last heartbeat of ours that came back left (on our clock). */
  private lastEcho = Number.NEGATIVE_INFINITY;
  /** Until when the tier is vouched for, as last worked out: reads before it need no other check. */
  private vouchedUntil = Number.NEGATIVE_INFINITY;
  private subscribedAt = 0;
  private readonly sources = new Map<string, Source>();
  private readonly pings = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private lagMs: number | undefined;
  private readonly inbox: Inbox;
  private readonly counters = zeroCounters();
  /**
   * With keys, the last sequence number of each source that left or was forgotten, for the replay
   * window: a replay of its messages must not bring it back (bounded like the sources).
   */
  private readonly departed = new Map<string, { seq: number; at: number }>();

  constructor(
    private readonly transport: BusTransport,
    private readonly listener: BusListener,
    private readonly heartbeat: number,
    private readonly clock: () => number = () => performance.now(),
    private readonly codec = new BusCodec(),
    /** The wall clock the messages' send times are on (the replay window). */
    private readonly wallClock: () => number = Date.now,
    /** Handling per turn of the event loop, ms (`SLICE_MS`; tests that deliver by hand use Infinity). */
    sliceMs = SLICE_MS,
  ) {
    this.inbox = new Inbox((data, arrived) => this.handle(data, arrived), clock, sliceMs);
  }

  /**
   * Connects (resolves once subscribed). When the broker cannot be reached the returned promise
   * rejects, and the bus keeps trying in the background every `heartbeat` ms until `close()`.
   */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.tick(), Math.max(1, Math.floor(this.heartbeat / 4)));
    this.timer.unref();
    try {
      await this.connect();
    } catch (error) {
      this.retryLater();
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inbox.close();
    if (this.timer) clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    this.timer = undefined;
    this.setHealthy(false);
    // goodbye, so that the others do not wait for our heartbeats (bounded: a dead link must not hold up shutdown)
    const bye = this.publish('b', []);
    await Promise.race([bye, new Promise((resolve) => setTimeout(resolve, Math.min(this.heartbeat, 250)).unref())]);
    await this.transport.close();
  }

  private connect(): Promise<void> {
    return this.transport.start(
      (data) => this.inbox.receive(data),
      (up) => this.state(up),
    );
  }

  private retryLater(): void {
    if (this.closed) return;
    this.retry = setTimeout(() => this.connect().catch(() => this.retryLater()), this.heartbeat);
    this.retry.unref();
  }

  get healthy(): boolean {
    return this.isHealthy;
  }

  /** Keys changed (after memcached took the change). Never throws: a lost message shows as a gap. */
  publishKeys(changes: KeyChange[], derived = false, owed: 0 | 1 | 2 = 0): void {
    void this.publish('k', changes, derived, owed);
  }

  publishNamespaces(changes: NamespaceChange[], derived = false, owed: 0 | 1 | 2 = 0): void {
    void this.publish('n', changes, derived, owed);
  }

  /** Tags invalidated (after memcached took their new versions; `owed`: it did not). */
  publishTags(changes: TagChange[], owed = false): void {
    void this.publish('g', changes, false, owed ? 1 : 0);
  }

  stats(): BusStats {
    const now = this.clock();
    let quietSources = 0;
    // oldest heard first: count until the first one heard within the heartbeat
    for (const source of this.sources.values()) {
      if (now - source.seen <= this.heartbeat) break;
      quietSources++;
    }
    return {
      ...this.counters,
      healthy: this.isHealthy,
      connected: this.connected,
      lagMs: this.lagMs,
      dropped: this.inbox.dropped,
      queued: this.inbox.queued,
      longestTurnMs: Math.round(this.inbox.longestTurnMs * 1000) / 1000,
      sources: this.sources.size,
      quietSources,
    };
  }

  /** Exposed for tests: one heartbeat and health check, as the timer runs them. */
  tick(): void {
    const now = this.clock();
    if (this.connected) {
      // noted before it is sent: a transport may deliver the echo before publish returns
      this.pings.set(this.seq + 1, now);
      if (this.pings.size > 64) this.pings.delete(this.pings.keys().next().value!);
      void this.publish('h', []);
    }
    this.assess(now);
  }

  /**
   * Whether the tier is vouched for now. A heartbeat overdue (ours, or another source's) is
   * silence at once, noticed by whichever comes first, the timer or a read: a busy event loop that
   * runs the timer late does not stretch the time a near cache serves entries the channel may have
   * failed to invalidate.
   */
  vouches(now = this.clock()): boolean {
    return (this.isHealthy && now <= this.vouchedUntil) || this.assess(now);
  }

  /** Works out until when the tier is vouched for; flushes it when that has passed. */
  private assess(now: number): boolean {
    let heard = this.lastEcho;
    // oldest heard first: the gone ones go, and the first left is the one heard longest ago
    for (const [id, source] of this.sources) {
      if (now - source.seen > SOURCE_GONE_HEARTBEATS * this.heartbeat) this.depart(id, source.seq, now);
      else {
        if (source.seen < heard) heard = source.seen;
        break;
      }
    }
    this.vouchedUntil = heard + this.heartbeat;
    const vouched = !this.closed && this.connected && now <= this.vouchedUntil;
    if (vouched !== this.isHealthy) {
      if (!vouched) {
        this.counters.flushes++;
        this.listener.flush('silent');
      }
      this.setHealthy(vouched);
    }
    return vouched;
  }

  private publish(
    type: BusMessageType,
    changes: Array<ChangeRef | TagChange>,
    derived = false,
    owed: 0 | 1 | 2 = 0,
  ): Promise<void> {
    // every message takes a number, sent or not, so receivers see a gap for one that was lost
    const seq = ++this.seq;
    const counted = type === 'k' || type === 'n' || type === 'g';
    if (!this.connected) {
      if (counted) this.counters.publishFailures++;
      return Promise.resolve();
    }
    const data = this.codec.encode({
      source: this.source,
      seq,
      type,
      changes,
      derived,
      owed: owed === 0 ? undefined : owed,
      at: this.wallClock(),
      traceparent: counted ? traceparentFor(KINDS[type as 'k']) : undefined,
    } as BusMessage);
    return this.transport.publish(data).then(
      () => (counted ? void this.counters.published++ : undefined),
      () => (counted ? void this.counters.publishFailures++ : undefined),
    );
  }

  /** Resolves once every message received so far has been handled (for tests). */
  whenIdle(): Promise<void> {
    return this.inbox.whenIdle();
  }

  private handle(data: string | Uint8Array, arrived: number): void {
    const decoded = this.codec.decode(data, this.wallClock());
    if ('rejected' in decoded) {
      this.reject(decoded.rejected);
      // authentic but out of the window: a replay, or a process whose clock is off, whose
      // evictions this process would otherwise never see
      if (decoded.rejected === 'stale') this.drop('stale');
      return;
    }
    const message = decoded.message;
    if (message.source === this.source) {
      if (message.type === 'h') this.echo(message.seq, arrived);
      return;
    }
    if (!this.track(message, arrived)) return this.reject('replayed');
    this.counters.received++;
    if (message.type === 'h' || message.type === 'b') {
      if (message.type === 'b') this.depart(message.source, message.seq, arrived);
    } else if (busReceiveChannel.hasSubscribers) {
      const { type, changes, derived = false, traceparent } = message;
      const event: BusReceiveEvent = { kind: KINDS[type], changes: changes.length, derived, traceparent };
      tracedReceive(event, () => this.apply(message));
    } else this.apply(message);
    // a source heard again (or gone for good) may be what the tier was waiting for
    if (!this.isHealthy) this.assess(this.clock());
  }

  /** Hands another source's change to the listener. */
  private apply(message: BusMessage): void {
    if (message.type === 'k') this.listener.keys(message.changes, message.derived === true, message.owed ?? 0);
    else if (message.type === 'n')
      this.listener.namespaces(message.changes, message.derived === true, message.owed ?? 0);
    else if (message.type === 'g') this.listener.tags(message.changes, message.owed === 1);
  }

  /**
   * Notes a message from another source; false when it must be refused (with keys: a sequence
   * number already heard, from a known source or one that left, is a replay). A new source, or a
   * gap, flushes the tier.
   */
  private track(message: BusMessage, arrived: number): boolean {
    const known = this.sources.get(message.source);
    if (known === undefined) {
      const left = this.departed.get(message.source);
      if (left !== undefined && this.codec.signed && message.seq <= left.seq) return false;
      this.departed.delete(message.source);
      if (this.sources.size >= MAX_SOURCES) {
        const [oldest, source] = this.sources.entries().next().value!;
        this.depart(oldest, source.seq, arrived);
      }
      this.sources.set(message.source, { seq: message.seq, seen: arrived, resync: false });
      // a source first heard well after we subscribed: a new or restarted process, or one we lost
      if (arrived - this.subscribedAt > this.heartbeat) {
        this.counters.newSources++;
        this.drop('source');
      }
      return true;
    }
    if (message.seq <= known.seq) {
      // with keys only the sender can number its messages: an old number is a replay
      if (this.codec.signed) return false;
      // without keys: the same message twice is harmless; a number going back means a forged one
      // ran ahead of the sender's, so resynchronise on this one (a gap it hid may be behind it)
      if (message.seq < known.seq) {
        this.counters.gaps++;
        this.drop('gap');
      }
    } else if (known.resync) {
      known.resync = false;
    } else if (message.seq > known.seq + 1) {
      this.counters.gaps++;
      this.drop('gap');
    }
    known.seq = message.seq;
    known.seen = arrived;
    // kept in the order last heard: the quietest source is the first
    this.sources.delete(message.source);
    this.sources.set(message.source, known);
    return true;
  }

  /** A source left (goodbye), is presumed gone or was forgotten: no longer waited for, its number kept for a while. */
  private depart(id: string, seq: number, now: number): void {
    this.sources.delete(id);
    if (!this.codec.signed) return;
    // oldest first: the expired ones, and past the bound the oldest, go
    for (const [other, left] of this.departed) {
      if (now - left.at <= 2 * REPLAY_WINDOW_MS && this.departed.size < MAX_SOURCES) break;
      this.departed.delete(other);
    }
    this.departed.delete(id);
    this.departed.set(id, { seq, at: now });
  }

  private reject(reason: BusRejection): void {
    this.counters[reason]++;
    this.listener.rejected?.(reason);
  }

  /**
   * Our heartbeat came back: the channel delivered everything sent before it left. It vouches
   * from when it left, not from when it arrived: an echo that sat in a socket while the link went
   * silent (or while this process was not scheduled) must not stretch the bound.
   */
  private echo(seq: number, now: number): void {
    const sent = this.pings.get(seq);
    if (sent === undefined) return;
    this.pings.delete(seq);
    this.lagMs = now - sent;
    if (sent > this.lastEcho) this.lastEcho = sent;
    if (!this.isHealthy) this.assess(now);
  }

  private state(up: boolean): void {
    if (up === this.connected) return;
    this.connected = up;
    // only a heartbeat sent on this subscription vouches for it
    this.pings.clear();
    this.lastEcho = Number.NEGATIVE_INFINITY;
    if (up) {
      // what was sent while we were away is lost, and the tier was flushed when we went down: the
      // sources' sequences start over, but they are still waited for (one gone quiet meanwhile may
      // be evicting into the void)
      this.subscribedAt = this.clock();
      for (const source of this.sources.values()) source.resync = true;
      this.tick();
    } else {
      this.drop('down');
      this.setHealthy(false);
    }
  }

  private drop(reason: BusFlushReason): void {
    this.counters.flushes++;
    this.listener.flush(reason);
  }

  private setHealthy(healthy: boolean): void {
    if (healthy === this.isHealthy) return;
    this.isHealthy = healthy;
    this.listener.healthy(healthy);
  }
}

const KINDS = { k: 'keys', n: 'namespaces', g: 'tags' } as const;
