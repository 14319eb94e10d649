import { randomBytes } from 'node:crypto';
import type { BusTransport } from '../interfaces/bus-transport.interface.js';
import { type BusMessage, type BusMessageType, decodeBusMessage, encodeBusMessage } from './bus-message.js';

/** What the bus tells the tier it keeps coherent. */
export interface BusListener {
  /** `derived`: caused by a followed change (not to be followed further). */
  keys(families: string[], derived: boolean): void;
  namespaces(names: string[], derived: boolean): void;
  /** Something may have been missed (a gap, a new source, a malformed message): drop everything. */
  flush(reason: BusFlushReason): void;
  /** The bus vouches for the tier (`true`) or no longer does. */
  healthy(healthy: boolean): void;
}

export type { BusTransport };

export type BusFlushReason = 'gap' | 'source' | 'malformed' | 'down' | 'silent';

export interface BusStats {
  healthy: boolean;
  connected: boolean;
  published: number;
  publishFailures: number;
  received: number;
  gaps: number;
  newSources: number;
  malformed: number;
  flushes: number;
  /** The last heartbeat's round trip through the broker, in ms. */
  lagMs: number | undefined;
  /** Sources (processes) heard from recently. */
  sources: number;
}

interface Source {
  seq: number;
  seen: number;
}

/**
 * Sequenced invalidations over a transport. Publishes this process's evictions with a per-source
 * sequence number; receives everyone's and hands them on; sends a heartbeat every quarter of
 * `heartbeat` ms and calls the channel silent when its own heartbeat has not come back within
 * `heartbeat` ms. The tier is vouched for only while connected and not silent; a gap in any
 * source's sequence, a source first heard after start-up, or a malformed message flushes it.
 */
export class InvalidationBus {
  readonly source = randomBytes(9).toString('base64url');
  private seq = 0;
  private connected = false;
  private isHealthy = false;
  private lastEcho = 0;
  private subscribedAt = 0;
  private readonly sources = new Map<string, Source>();
  private readonly pings = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private lagMs: number | undefined;
  private readonly counters = { published: 0, publishFailures: 0, received: 0, gaps: 0, newSources: 0, malformed: 0, flushes: 0 };

  constructor(
    private readonly transport: BusTransport,
    private readonly listener: BusListener,
    private readonly heartbeat: number,
    private readonly clock: () => number = Date.now,
  ) {}

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
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retry) clearTimeout(this.retry);
    this.timer = undefined;
    this.setHealthy(false);
    await this.transport.close();
  }

  private connect(): Promise<void> {
    return this.transport.start((data) => this.receive(data), (up) => this.state(up));
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
  publishKeys(families: string[], derived = false): void {
    this.publish('k', families, derived);
  }

  publishNamespaces(names: string[], derived = false): void {
    this.publish('n', names, derived);
  }

  stats(): BusStats {
    return { ...this.counters, healthy: this.isHealthy, connected: this.connected, lagMs: this.lagMs, sources: this.sources.size };
  }

  /** Exposed for tests: one heartbeat and health check, as the timer runs them. */
  tick(): void {
    const now = this.clock();
    if (this.connected) {
      const seq = this.publish('h', []);
      this.pings.set(seq, now);
      if (this.pings.size > 64) this.pings.delete(this.pings.keys().next().value!);
    }
    for (const [id, source] of this.sources) if (now - source.seen > 4 * this.heartbeat) this.sources.delete(id);
    if (this.isHealthy && now - this.lastEcho > this.heartbeat) {
      this.counters.flushes++;
      this.listener.flush('silent');
      this.setHealthy(false);
    }
  }

  private publish(type: BusMessageType, names: string[], derived = false): number {
    // every message takes a number, sent or not, so receivers see a gap for one that was lost
    const seq = ++this.seq;
    if (!this.connected) {
      if (type !== 'h') this.counters.publishFailures++;
      return seq;
    }
    const data = encodeBusMessage({ source: this.source, seq, type, names, derived });
    this.transport.publish(data).then(
      () => (type === 'h' ? undefined : void this.counters.published++),
      () => (type === 'h' ? undefined : void this.counters.publishFailures++),
    );
    return seq;
  }

  private receive(data: string | Uint8Array): void {
    const message = decodeBusMessage(data);
    const now = this.clock();
    if (message === undefined) {
      this.counters.malformed++;
      this.drop('malformed');
      return;
    }
    if (message.source === this.source) {
      if (message.type === 'h') this.echo(message.seq, now);
      return;
    }
    this.counters.received++;
    this.track(message, now);
    if (message.type === 'k') this.listener.keys(message.names, message.derived === true);
    else if (message.type === 'n') this.listener.namespaces(message.names, message.derived === true);
  }

  private track(message: BusMessage, now: number): void {
    const known = this.sources.get(message.source);
    if (known === undefined) {
      this.sources.set(message.source, { seq: message.seq, seen: now });
      // a source first heard well after we subscribed: a new or restarted process, or one we lost
      if (now - this.subscribedAt > this.heartbeat) {
        this.counters.newSources++;
        this.drop('source');
      }
      return;
    }
    known.seen = now;
    if (message.seq > known.seq + 1) {
      this.counters.gaps++;
      this.drop('gap');
    }
    if (message.seq > known.seq) known.seq = message.seq;
  }

  private echo(seq: number, now: number): void {
    const sent = this.pings.get(seq);
    if (sent !== undefined) {
      this.lagMs = now - sent;
      this.pings.delete(seq);
    }
    this.lastEcho = now;
    if (this.connected && !this.isHealthy) this.setHealthy(true);
  }

  private state(up: boolean): void {
    if (up === this.connected) return;
    this.connected = up;
    if (up) {
      // what was sent while we were away is lost: start over (the tier was flushed when we went down)
      this.subscribedAt = this.clock();
      this.sources.clear();
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
